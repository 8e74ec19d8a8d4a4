#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bisect-build.sh TREE
#
# Build the kernel after each patch of patches/TREE/series in turn, with
# the bench's configuration, so that every patch of the series builds on
# its own (bisectability). It steps the prepared patched worktree itself
# through the series (detached HEAD on each commit, incremental build in
# build/obj/TREE-patched) and ends on the series' branch with the patched
# kernel built by build-kernel.sh: the bisect costs only the incremental
# builds of the intermediate patches. A patch that touches
# tools/testing/selftests also builds the tree's own selftests of that
# directory (TARGETS=vm or mm). Prints TAP, one line per patch with the
# time it took; fails when a patch does not build.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
pdir=$TOP/patches/$tree
[ -f "$pdir/series" ] || die "$pdir/series does not exist: nothing to bisect"

obj=$("$TOP/scripts/build-kernel.sh" --configure-only "$tree" patched | tail -n 1)
src=$BUILD/src/$tree-patched
branch=$(git -C "$src" symbolic-ref -q --short HEAD) ||
	die "$src: HEAD is detached (prepare-tree.sh should have applied the series)"
mapfile -t commits < <(git -C "$src" rev-list --reverse base..HEAD)
n=${#commits[@]}
[ "$n" -gt 0 ] || die "$tree: the series is empty"
blog=$obj/bisect.log
: >"$blog"

# Whatever happens, leave the worktree on the series' branch.
trap 'git -C "$src" checkout -q -f "$branch" 2>/dev/null || true' EXIT

kmake_init "$src" "$obj"
sub=$(tree_selftest_sub "$tree")
ccache_cc=gcc
command -v ccache >/dev/null 2>&1 && ccache_cc="ccache gcc"

echo "1..$n"
# build_selftests: the tree's own selftests directory, as the patch left it.
build_selftests() {
	"${kmake[@]}" -s headers >>"$blog" 2>&1 &&
		make -C "$src/tools/testing/selftests" TARGETS="$sub" O="$obj/kselftest" \
			CC="$ccache_cc" KHDR_INCLUDES="-isystem $obj/usr/include" >>"$blog" 2>&1
}

failed=0
for i in $(seq 0 $((n - 1))); do
	k=$((i + 1))
	c=${commits[$i]}
	name=$(git -C "$src" log -1 --format=%s "$c")
	timer_start
	what=kernel
	ok=1
	if [ "$failed" = 1 ]; then
		echo "not ok $k - bisect $tree: patch $k ($name) not built: an earlier patch does not build"
		continue
	fi
	if [ "$k" -lt "$n" ]; then
		git -C "$src" checkout -q -f --detach "$c"
		"${kmake[@]}" -s bzImage modules >>"$blog" 2>&1 || ok=0
	else
		git -C "$src" checkout -q -f "$branch"
		"$TOP/scripts/build-kernel.sh" "$tree" patched >>"$blog" 2>&1 || ok=0
	fi
	if [ "$ok" = 1 ] &&
		git -C "$src" show --stat --format= "$c" | grep -q 'tools/testing/selftests/'; then
		what="kernel + selftests/$sub"
		build_selftests || ok=0
	fi
	timer_end "bisect-$tree-$k"
	if [ "$ok" = 1 ]; then
		echo "ok $k - bisect $tree: patch $k ($name) builds ($what)"
	else
		echo "not ok $k - bisect $tree: patch $k ($name) does not build ($what; see $blog)"
		failed=1
	fi
done
git -C "$src" checkout -q -f "$branch"
if [ "$failed" = 1 ]; then
	# The VM tests still want the patched kernel: build the tip.
	"$TOP/scripts/build-kernel.sh" "$tree" patched >>"$blog" 2>&1 || true
	log "$tree: the series is not bisectable (see $blog)"
	exit 1
fi
log "all $n patches of $tree build in order"
