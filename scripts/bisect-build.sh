#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bisect-build.sh TREE
#
# Build the kernel after each patch of patches/TREE/series in turn, with
# the bench's configuration, so that every patch of the series builds on
# its own (bisectability). Works in its own worktree and build directory
# (build/src/TREE-bisect, build/obj/TREE-bisect), so the prepared trees are
# left alone; incremental builds and ccache keep it cheap. A patch that
# touches tools/testing/selftests also builds the tree's own selftests of
# that directory (TARGETS=vm or mm). Prints one line per patch with the
# time it took, and fails naming the first patch that does not build.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
pdir=$TOP/patches/$tree
[ -f "$pdir/series" ] || die "$pdir/series does not exist: nothing to bisect"

# The patched kernel's configuration is the bench's (and builds the base).
pobj=$("$TOP/scripts/build-kernel.sh" "$tree" patched | tail -n 1)
src=$BUILD/src/$tree-unpatched
wt=$BUILD/src/$tree-bisect
obj=$BUILD/obj/$tree-bisect
if [ ! -e "$wt/.git" ]; then
	git -C "$src" worktree prune
	git -C "$src" worktree add -q -f -B bisect "$wt" base
fi
git -C "$wt" am --abort >/dev/null 2>&1 || true
git -C "$wt" checkout -q -f -B bisect base
mkdir -p "$obj"
cp "$pobj/.config" "$obj/.config"

kmake=(make -C "$wt" O="$obj" ARCH=x86_64 -j"$(nproc)"
	KBUILD_BUILD_TIMESTAMP="2000-01-01" KBUILD_BUILD_USER=bench KBUILD_BUILD_HOST=uffd-robust)
if command -v ccache >/dev/null 2>&1; then
	export CCACHE_BASEDIR=$BUILD CCACHE_NOHASHDIR=1
	kmake+=(CC="ccache gcc" HOSTCC="ccache gcc")
fi

export GIT_AUTHOR_NAME="uffd-robust bench" GIT_AUTHOR_EMAIL="bench@uffd-robust.invalid"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"

n=0
"${kmake[@]}" -s olddefconfig >"$obj/bisect.log" 2>&1
while read -r p _; do
	case "$p" in ''|'#'*) continue ;; esac
	n=$((n + 1))
	git -C "$wt" am -q --keep-cr "$pdir/$p" >>"$obj/bisect.log" 2>&1 ||
		die "patch $n ($p) does not apply (see $obj/bisect.log)"
	timer_start
	"${kmake[@]}" -s all >>"$obj/bisect.log" 2>&1 ||
		die "patch $n ($p): the kernel does not build (see $obj/bisect.log)"
	what=kernel
	if git -C "$wt" show --stat --format= HEAD | grep -q 'tools/testing/selftests/'; then
		sub=vm
		[ "$tree" = 6.1 ] || sub=mm
		"${kmake[@]}" -s headers >>"$obj/bisect.log" 2>&1
		make -C "$wt/tools/testing/selftests" TARGETS=$sub O="$obj/kselftest" \
			KHDR_INCLUDES="-isystem $obj/usr/include" >>"$obj/bisect.log" 2>&1 ||
			die "patch $n ($p): the $sub selftests do not build (see $obj/bisect.log)"
		what="kernel + selftests/$sub"
	fi
	timer_end "bisect-$tree-$n"
	log "patch $n builds ($what): $p"
done <"$pdir/series"
log "all $n patches of $tree build in order"
