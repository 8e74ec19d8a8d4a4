#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# prepare-tree.sh [--unpatched | --variant VARIANT] TREE
#
# Make build/src/TREE-unpatched a git repository whose first commit is the
# pristine Debian source (tagged 'base'), and build/src/TREE-VARIANT a
# worktree of it (branch 'series' or 'mutant') with the variant's
# series applied by 'git am' in order: patches/TREE/series for 'patched'
# (the default), selftests/mutants/TREE/series for 'mutant'. With
# --unpatched (--variant unpatched) only the pristine tree is prepared.
# Prints the path of the prepared source tree.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

variant=patched
case "${1:-}" in
--unpatched)
	variant=unpatched
	shift
	;;
--variant)
	variant=${2:-}
	shift 2 || true
	;;
esac
[ $# -eq 1 ] || die "usage: $me [--unpatched | --variant VARIANT] TREE"
tree=$1
check_tree "$tree"
check_variant "$variant"
pdir=$(variant_patches "$tree" "$variant")
[ "$variant" != mutant ] || [ -f "$pdir/series" ] ||
	die "$tree has no $variant variant: $pdir/series does not exist"
need_tool git tar xz

# Fixed identities and dates keep the base commit the same on every machine.
bench_git_identity

"$TOP/scripts/fetch-tree.sh" "$tree" >/dev/null
# The fetched base, as fetch-tree.sh recorded it.
package='' version='' tarball='' tarball_sha256=''
# shellcheck source=/dev/null
. "$BUILD/fetch/$tree.env"
[ -n "$package" ] && [ -n "$version" ] && [ -f "$tarball" ] ||
	die "fetch-tree.sh left no usable record in $BUILD/fetch/$tree.env"

src=$BUILD/src/$tree-unpatched
stamp="$package $version $tarball_sha256"
if [ ! -f "$src/.git/uffd-base" ] || [ "$(cat "$src/.git/uffd-base")" != "$stamp" ]; then
	timer_start
	log "unpacking $package $version into $src"
	mkdir -p "$BUILD/src"
	rm -rf "$src" "$BUILD/src/$tree-"*
	tmp=$(mktemp -d "$BUILD/src/.$tree-unpacking.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	tar -xf "$tarball" -C "$tmp" --strip-components=1
	git_base_commit "$tmp" "$package $version (pristine, tarball sha256 $tarball_sha256)" ||
		die "cannot make the base commit of $package $version"
	echo "$stamp" >"$tmp/.git/uffd-base"
	mv "$tmp" "$src"
	trap - EXIT
	timer_end "prepare-unpack-$tree"
fi

if [ "$variant" = unpatched ]; then
	echo "$src"
	exit 0
fi

wt=$BUILD/src/$tree-$variant
# The series' identity: base, series file and every patch it names.
series_identity() {
	local p
	echo "$stamp"
	[ -f "$pdir/series" ] || return 0
	cat "$pdir/series"
	series_list "$pdir" | while read -r p; do
		if [ -f "$pdir/$p" ]; then cat "$pdir/$p"; fi
	done
}
sstamp=$(series_identity | sha256sum | cut -d' ' -f1)

if [ ! -e "$wt/.git" ]; then
	git -C "$src" worktree prune
	# Branch 'series' for the series, 'mutant' for the mutants.
	branch=series
	[ "$variant" = patched ] || branch=$variant
	git -C "$src" worktree add -q -f -B "$branch" "$wt" base
fi
gitdir=$(git -C "$wt" rev-parse --git-dir)
# A detached HEAD is a bisect-build.sh that did not finish: apply again.
if [ -f "$gitdir/uffd-series" ] && [ "$(cat "$gitdir/uffd-series")" = "$sstamp" ] &&
	git -C "$wt" symbolic-ref -q HEAD >/dev/null &&
	[ -z "$(git -C "$wt" status --porcelain --untracked-files=no)" ]; then
	echo "$wt"
	exit 0
fi

timer_start
rm -f "$gitdir/uffd-series"
"$TOP/scripts/apply-series.sh" "$wt" "$pdir" ||
	die "$pdir/series does not apply to $package $version"
echo "$sstamp" >"$gitdir/uffd-series"
timer_end "prepare-series-$tree"
echo "$wt"
