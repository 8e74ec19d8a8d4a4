# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# Helpers shared by the bench scripts. Source it; do not run it.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${UFFD_BUILD:-$TOP/build}
PATCHES=${UFFD_PATCHES:-$TOP/patches}
# shellcheck disable=SC2034 # used by the scripts that source this
CACHE=${UFFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uffd-robust}
TREES="6.1 mainline"
# patched: patches/TREE/series on base. mutant: selftests/mutants/TREE/series
# on base, test-only reverts of fixes that prove a selftest can fail; a tree
# has that variant only when the series file exists.
VARIANTS="unpatched patched mutant"

me=$(basename "$0")

die() {
	echo "$me: error: $*" >&2
	exit 1
}

warn() {
	echo "$me: warning: $*" >&2
}

log() {
	echo "$me: $*" >&2
}

need_tool() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
			die "missing tool '$t' (run 'make deps')"
	done
}

check_tree() {
	local t
	for t in $TREES; do
		[ "$1" = "$t" ] && return 0
	done
	die "unknown tree '$1' (known trees: $TREES)"
}

check_variant() {
	case "$1" in
	unpatched|patched|mutant) ;;
	*) die "unknown variant '$1' (known variants: $VARIANTS)" ;;
	esac
}

# variant_patches TREE VARIANT: the directory whose 'series' VARIANT applies.
variant_patches() {
	case "$2" in
	patched) echo "$PATCHES/$1" ;;
	mutant) echo "$TOP/selftests/mutants/$1" ;;
	esac
}

# tree_variants TREE: the variants TREE is built and tested in.
tree_variants() {
	local v
	for v in $VARIANTS; do
		[ "$v" = mutant ] && [ ! -f "$(variant_patches "$1" mutant)/series" ] && continue
		echo "$v"
	done
}

# tree_variant_args USAGE ARGS...: set tree and variant from exactly two
# arguments, checked, or die with "usage: SCRIPT USAGE".
tree_variant_args() {
	local usage=$1
	shift
	[ $# -eq 2 ] || die "usage: $me $usage"
	tree=$1 variant=$2
	check_tree "$tree"
	check_variant "$variant"
}

# base_get TREE KEY: one field of $PATCHES/TREE/base (key=value lines).
base_get() {
	sed -n "s/^$2=//p" "$PATCHES/$1/base"
}

# Write stdin to FILE through a temporary name so FILE is never half-written.
write_atomic() {
	local f=$1 tmp
	tmp=$(mktemp "$f.tmp.XXXXXX") || die "cannot create a temporary file next to $f"
	if ! cat >"$tmp"; then
		rm -f "$tmp"
		die "cannot write $f"
	fi
	mv -f "$tmp" "$f"
}

timer_start() {
	STAGE_T0=$(date +%s.%N)
}

timer_end() {
	local t1
	t1=$(date +%s.%N)
	printf '%s: stage %s took %.1f s\n' "$me" "$1" \
		"$(echo "$t1 - $STAGE_T0" | bc)" >&2
	mkdir -p "$BUILD"
	printf '%s %s %.1f\n' "$(date -u +%FT%TZ)" "$1" \
		"$(echo "$t1 - $STAGE_T0" | bc)" >>"$BUILD/stage-times.log"
}
