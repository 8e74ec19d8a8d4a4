#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# newest-base.sh TREE
#
# The series is tested on the base patches/TREE/base records; stable and
# the archive move on. This gate checks, as TAP, that patches/TREE/series
# still applies with plain 'git am' to the newest release of the same
# kernel line in any suite fetch-tree.sh searches (fetch-tree.sh --newest).
# Only the files the series changes are taken from that release's tarball
# (cached per version), so the check costs no unpacking of a whole tree.
# A series that does not apply there is reported as TAP TODO: a warning
# with git's reason, not a failure of the run, because the base under test
# is still the recorded one; refresh it with 'fetch-tree.sh --record TREE'.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
need_tool git tar
pdir=$PATCHES/$tree
[ -f "$pdir/series" ] || die "$pdir/series does not exist: nothing to apply"

# The recorded base, then the newest of its line.
"$TOP/scripts/fetch-tree.sh" "$tree" >/dev/null
rec_version=$(sed -n 's/^version=//p' "$BUILD/fetch/$tree.env")
"$TOP/scripts/fetch-tree.sh" --newest "$tree" >/dev/null
package='' version='' suite='' tarball=''
# shellcheck source=/dev/null
. "$BUILD/fetch/$tree-newest.env"
if [ -z "$version" ] || [ ! -f "$tarball" ]; then
	die "fetch-tree.sh --newest left no usable record in $BUILD/fetch/$tree-newest.env"
fi
name="$tree: the series applies with git am to the newest release of its line"
release="$package $version (suite $suite)"

if [ "$version" = "$rec_version" ]; then
	tap ok "$name # SKIP $release is the recorded base, which the bisect gate applies the series to"
	tap_plan
	exit
fi

# The files the series changes that exist before it ('--- a/PATH').
files=$(series_list "$pdir" | while read -r p; do
	sed -n 's|^--- a/||p' "$pdir/$p"
done | sort -u)
[ -n "$files" ] || die "the patches of $pdir/series change no existing file"

# Those files of the release, extracted once per version and file list.
sub=$CACHE/newest/${package}_$version
want=$(echo "$files" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$sub.files" 2>/dev/null)" != "$want" ]; then
	timer_start
	log "extracting the $(echo "$files" | wc -l) files the series changes from $(basename "$tarball")"
	rm -rf "$sub" "$sub.files"
	mkdir -p "$sub"
	top=$(tar -tf "$tarball" 2>/dev/null | head -n 1 | cut -d/ -f1 || true)
	[ -n "$top" ] || die "cannot list $tarball"
	# A file the release no longer has is left out: git am names it.
	echo "$files" | sed "s|^|$top/|" |
		tar -xf "$tarball" -C "$sub" --strip-components=1 --files-from=- \
			--ignore-failed-read 2>"$sub.log" || true
	echo "$want" >"$sub.files"
	timer_end "newest-extract-$tree"
fi

repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
cp -a "$sub/." "$repo/"
git_base_commit "$repo" "$package $version: the files the series changes" ||
	die "cannot make the base commit of $package $version"
# git am commits: the bench's identity, whatever the machine's git knows.
bench_git_identity
if out=$("$TOP/scripts/apply-series.sh" "$repo" "$pdir" 2>&1); then
	tap ok "$name" "$release; recorded base $rec_version; $(echo "$files" | wc -l) files changed by the series"
else
	reason=$(echo "$out" | grep -m1 'error:' | sed "s/^[^:]*: error: //" || true)
	cat >&2 <<-WARN
	$me: ###############################################################
	$me: WARNING: the $tree series does not apply to $package $version,
	$me: WARNING: the newest of its line (suite $suite); it is tested on
	$me: WARNING: $rec_version, the recorded base. $reason
	$me: ###############################################################
	WARN
	echo "not ok $((tap_n + 1)) - $name # TODO $release: ${reason:-$out}"
	echo "#   recorded base $rec_version still under test; rebase, then scripts/fetch-tree.sh --record $tree"
	tap_n=$((tap_n + 1))
fi
tap_plan
