#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fetch-tree.sh [--record | --newest] TREE
#
# Obtain the Debian linux-source package of TREE (see patches/TREE/base),
# cache the .deb and its source tarball outside the repository, and check the
# version and tarball sha256 against the recorded base. Prints the path of the
# tarball on stdout and writes build/fetch/TREE.env for prepare-tree.sh.
#
# The archive moves packages between suites: the recorded version is looked
# for in the suite the base names first, then in the machine's own apt
# sources and every suite of ARCHIVE_SUITES (lib.sh). When no suite has it
# any more, the newest version of the same package (the same kernel line)
# is used, with a loud warning.
# --record: write the version used, its checksum and its suite into the base.
# --newest: fetch the newest version of the package in any of those suites
# instead, into build/fetch/TREE-newest.env, leaving TREE.env alone (the
# newest-base gate checks that the series applies to it).
#
# The machine's apt configuration is never edited: a suite the machine does
# not list gets a private sources list and lists directory under the cache,
# with the archive URI taken from the machine's own apt sources.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

record=0 newest_only=0
case "${1:-}" in
--record) record=1; shift ;;
--newest) newest_only=1; shift ;;
esac
[ $# -eq 1 ] || die "usage: $me [--record | --newest] TREE"
tree=$1
check_tree "$tree"
need_tool apt-get apt-cache dpkg dpkg-deb sha256sum tar

pkg=$(base_get "$tree" package)
extra_suite=$(base_get "$tree" extra_suite)
rec_version=$(base_get "$tree" version)
rec_sha=$(base_get "$tree" tarball_sha256)
[ -n "$pkg" ] || die "patches/$tree/base names no package"

mkdir -p "$CACHE/debs" "$CACHE/tarballs" "$BUILD/fetch"

# use_suite SUITE: point apt_opts at SUITE ('own': the machine's own apt
# sources, as they are); non-zero when its index cannot be had.
use_suite() {
	apt_opts=()
	[ "$1" = own ] || private_apt_try "$1" deb
}

# list_versions: the versions of the package apt_opts sees, newest first.
list_versions() {
	apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null |
		awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | sort -Vru
}

# newest_of: the newest of the "VERSION SUITE" lines on stdin, by dpkg's
# ordering (7.3~rc7 before 7.3.4), as a "VERSION SUITE" line.
newest_of() {
	local v s best='' bests=''
	while read -r v s; do
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v bests=$s
		fi
	done
	[ -z "$best" ] || echo "$best $bests"
}

# Where to look: the suite the base records first (none: the machine's own
# sources), then the machine's own sources and the archive's suite aliases.
# The search stops at the recorded version; --newest searches them all.
suites=${extra_suite:-own}
for s in own $ARCHIVE_SUITES; do
	case " $suites " in *" $s "*) ;; *) suites+=" $s" ;; esac
done
found='' version='' suite=''
for s in $suites; do
	if ! use_suite "$s"; then
		warn "the index of suite '$s' could not be fetched (see $CACHE/apt/$s/update.log); not searched"
		continue
	fi
	vs=$(list_versions)
	# A new machine may never have fetched its own index: fetch it once.
	if [ -z "$vs" ] && [ "$s" = own ] && [ "$(id -u)" = 0 ] &&
		[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*')" ]; then
		log "package '$pkg' not in the apt index; running apt-get update"
		apt-get -q update >/dev/null 2>&1 || warn "apt-get update failed"
		vs=$(list_versions)
	fi
	[ -n "$vs" ] || continue
	found+=$(printf '%s\n' "$vs" | sed "s/\$/ $s/")$'\n'
	if [ "$newest_only" = 0 ] && [ -n "$rec_version" ] && echo "$vs" | grep -qxF "$rec_version"; then
		version=$rec_version suite=$s
		break
	fi
done
[ -n "$found" ] || die "package '$pkg' not found in the archive (searched: $suites)"
read -r newest newest_suite < <(printf '%s' "$found" | newest_of)

if [ "$newest_only" = 1 ]; then
	version=$newest suite=$newest_suite
elif [ -z "$version" ] && [ -n "$rec_version" ]; then
	version=$newest suite=$newest_suite
	cat >&2 <<-WARN
	$me: ###############################################################
	$me: WARNING: $pkg $rec_version (recorded in patches/$tree/base)
	$me: WARNING: is in none of the suites searched ($suites);
	$me: WARNING: using the newest of its line, $newest (suite $suite).
	$me: WARNING: Check that the series still applies, then record it:
	$me: WARNING:   scripts/fetch-tree.sh --record $tree
	$me: ###############################################################
	WARN
elif [ -z "$version" ]; then
	version=$newest suite=$newest_suite
	warn "no version recorded for tree '$tree'; using the newest, $version (suite $suite)"
fi
use_suite "$suite" || die "the index of suite '$suite' went away"
first=${extra_suite:-own}
[ "$suite" = "$first" ] || [ "$newest_only" = 1 ] ||
	log "$pkg $version is no longer in suite '$first', where patches/$tree/base looks first; found in suite '$suite' ('own': the machine's apt sources)"

timer_start
deb=$CACHE/debs/${pkg}_${version}_all.deb
if [ ! -s "$deb" ]; then
	log "downloading $pkg $version"
	dl=$(mktemp -d "$CACHE/debs/dl.XXXXXX")
	if ! (cd "$dl" && apt-get -q "${apt_opts[@]}" -o APT::Sandbox::User=root \
		download "$pkg=$version") >"$dl/log" 2>&1; then
		tail -n 3 "$dl/log" >&2
		rm -rf "$dl"
		die "download of $pkg $version failed"
	fi
	f=$(find "$dl" -maxdepth 1 -name '*.deb' | head -n 1)
	[ -n "$f" ] || { rm -rf "$dl"; die "apt-get download of $pkg $version produced no .deb"; }
	mv -f "$f" "$deb"
	rm -rf "$dl"
fi

tarball=$CACHE/tarballs/${pkg}_${version}.tar.xz
if [ ! -s "$tarball" ]; then
	log "extracting the source tarball from $(basename "$deb")"
	member=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -E "^\./usr/src/$pkg\.tar\.(xz|bz2|gz)$" | head -n 1)
	[ -n "$member" ] || die "$(basename "$deb") holds no usr/src/$pkg.tar.*"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "$member" | write_atomic "$tarball"
fi

sha=$(sha256sum "$tarball" | cut -d' ' -f1)
stage=fetch-$tree
[ "$newest_only" = 0 ] || stage=fetch-newest-$tree
timer_end "$stage"
if [ "$version" = "$rec_version" ] && [ -n "$rec_sha" ] && [ "$sha" != "$rec_sha" ]; then
	die "checksum mismatch for $pkg $version: tarball sha256 $sha, recorded $rec_sha (cached file $tarball)"
fi

if [ $record -eq 1 ]; then
	rec_suite=$suite
	[ "$rec_suite" != own ] || rec_suite=
	sed -e "s/^version=.*/version=$version/" \
		-e "s/^extra_suite=.*/extra_suite=$rec_suite/" \
		-e "s/^tarball_sha256=.*/tarball_sha256=$sha/" \
		"$PATCHES/$tree/base" | write_atomic "$PATCHES/$tree/base"
	log "recorded $pkg $version sha256 $sha in patches/$tree/base"
fi

# --newest leaves the base's record (prepare-tree.sh reads it) alone.
env=$BUILD/fetch/$tree.env
[ "$newest_only" = 0 ] || env=$BUILD/fetch/$tree-newest.env
cat <<-ENV | write_atomic "$env"
	package=$pkg
	version=$version
	suite=$suite
	tarball=$tarball
	tarball_sha256=$sha
	recorded_version=$rec_version
ENV
log "$tree: $pkg $version (suite $suite), tarball sha256 $sha"
echo "$tarball"
