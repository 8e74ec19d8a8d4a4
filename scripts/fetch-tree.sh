#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fetch-tree.sh [--record] TREE
#
# Obtain the Debian linux-source package of TREE (see patches/TREE/base),
# cache the .deb and its source tarball outside the repository, and check the
# version and tarball sha256 against the recorded base. Prints the path of the
# tarball on stdout and writes build/fetch/TREE.env for prepare-tree.sh.
#
# The machine's apt configuration is never edited: a suite the machine does
# not list gets a private sources list and lists directory under the cache,
# with the archive URI taken from the machine's own apt sources.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

record=0
if [ "${1:-}" = --record ]; then
	record=1
	shift
fi
[ $# -eq 1 ] || die "usage: $me [--record] TREE"
tree=$1
check_tree "$tree"
need_tool apt-get apt-cache dpkg-deb sha256sum tar

pkg=$(base_get "$tree" package)
extra_suite=$(base_get "$tree" extra_suite)
rec_version=$(base_get "$tree" version)
rec_sha=$(base_get "$tree" tarball_sha256)
[ -n "$pkg" ] || die "patches/$tree/base names no package"

mkdir -p "$CACHE/debs" "$CACHE/tarballs" "$BUILD/fetch"

apt_opts=()
[ -z "$extra_suite" ] || private_apt "$extra_suite" deb

list_versions() {
	apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null |
		awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | sort -Vru
}
versions=$(list_versions)
# A new machine may never have fetched its own index: fetch it once.
if [ -z "$versions" ] && [ -z "$extra_suite" ] && [ "$(id -u)" = 0 ] &&
	[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*')" ]; then
	log "package '$pkg' not in the apt index; running apt-get update"
	apt-get -q update >/dev/null 2>&1 || die "apt-get update failed"
	versions=$(list_versions)
fi
[ -n "$versions" ] || die "package '$pkg' not found in the archive"
newest=$(echo "$versions" | head -n 1)

version=
if [ -n "$rec_version" ]; then
	if echo "$versions" | grep -qxF "$rec_version"; then
		version=$rec_version
	else
		version=$newest
		cat >&2 <<-WARN
		$me: ###############################################################
		$me: WARNING: $pkg $rec_version (recorded in patches/$tree/base)
		$me: WARNING: is no longer in the archive; using the newest, $newest.
		$me: WARNING: Check that the series still applies, then record it:
		$me: WARNING:   scripts/fetch-tree.sh --record $tree
		$me: ###############################################################
		WARN
	fi
else
	version=$newest
	warn "no version recorded for tree '$tree'; using the newest, $version"
fi

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
timer_end "fetch-$tree"
if [ "$version" = "$rec_version" ] && [ -n "$rec_sha" ] && [ "$sha" != "$rec_sha" ]; then
	die "checksum mismatch for $pkg $version: tarball sha256 $sha, recorded $rec_sha (cached file $tarball)"
fi

if [ $record -eq 1 ]; then
	sed -e "s/^version=.*/version=$version/" \
		-e "s/^tarball_sha256=.*/tarball_sha256=$sha/" \
		"$PATCHES/$tree/base" | write_atomic "$PATCHES/$tree/base"
	log "recorded $pkg $version sha256 $sha in patches/$tree/base"
fi

cat <<-ENV | write_atomic "$BUILD/fetch/$tree.env"
	package=$pkg
	version=$version
	tarball=$tarball
	tarball_sha256=$sha
	recorded_version=$rec_version
ENV
log "$tree: $pkg $version, tarball sha256 $sha"
echo "$tarball"
