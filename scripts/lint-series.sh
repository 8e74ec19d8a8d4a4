#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# lint-series.sh TREE
#
# The checks of a series' text, as TAP, run by 'make check' per tree:
# - scripts/checkpatch.pl --strict on every patch of patches/TREE/ (the
#   tree's own checkpatch): 0 errors, 0 warnings, 0 checks, except what
#   patches/lint.exceptions lists with its reason;
# - checkpatch --strict -f on the module's and the selftests' sources;
# - series-hygiene.py: series file, cover letter, subjects, Signed-off-by,
#   Fixes:/Cc: stable;
# - the generated selftest patches are what selftests-commit.sh makes of
#   selftests/ today (regenerated in a scratch repository and compared).
# Needs the prepared trees (prepare-tree.sh); exits 1 when a check fails.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
need_tool perl python3 git
pdir=$PATCHES/$tree
exc=$PATCHES/lint.exceptions
[ -f "$pdir/series" ] || die "$pdir/series does not exist: nothing to lint"
usrc=$("$TOP/scripts/prepare-tree.sh" --unpatched "$tree")
psrc=$("$TOP/scripts/prepare-tree.sh" --variant patched "$tree")
# checkpatch's SPDX check needs python3-ply, installed for Debian's python3.
export PATH=/usr/bin:$PATH

# excepted NAME TYPE: does patches/lint.exceptions excuse TYPE for NAME?
excepted() {
	[ -f "$exc" ] || return 1
	awk -v tree="$tree" -v name="$1" -v type="$2" '
		function glob2re(g) {
			gsub(/[.+^$(){}|\[\]\\]/, "\\\\&", g)
			gsub(/\*/, ".*", g)
			gsub(/\?/, ".", g)
			return "^" g "$"
		}
		{ sub(/#.*/, "") }
		NF >= 4 && ($1 == "*" || $1 == tree) && $3 == type && name ~ glob2re($2) { found = 1 }
		END { exit !found }' "$exc"
}

# checkpatch_one NAME ARGS...: run checkpatch in the tree, judge its output.
checkpatch_one() {
	local name=$1 out line type why=() excused=()
	shift
	out=$(cd "$usrc" && scripts/checkpatch.pl --strict --show-types --terse \
		--no-summary "$@" 2>&1) || true
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		type=$(echo "$line" | sed -n 's/^[^:]*:[0-9]*: \(ERROR\|WARNING\|CHECK\):\([A-Z_0-9]*\):.*/\2/p')
		if [ -z "$type" ]; then
			why+=("$line")
		elif excepted "$name" "$type" && excuse_holds "$type"; then
			excused+=("$type")
		else
			why+=("${line#*: }")
		fi
	done <<<"$out"
	if [ ${#why[@]} -eq 0 ]; then
		tap ok "checkpatch --strict $tree: $name${excused:+ (excepted: ${excused[*]})}"
	else
		tap fail "checkpatch --strict $tree: $name" "${why[@]}"
	fi
}

# excuse_holds TYPE: re-check the reason an exception gives, where a script
# can: the files a FILE_PATH_CHANGES patch adds must have a maintainer.
added=()
excuse_holds() {
	local f m
	[ "$1" = FILE_PATH_CHANGES ] || return 0
	for f in "${added[@]}"; do
		m=$(cd "$psrc" && perl scripts/get_maintainer.pl --no-git --no-git-fallback \
			--no-rolestats --nol -f "$f" 2>/dev/null | grep -v Torvalds) || m=
		[ -n "$m" ] || return 1
	done
}

echo "# $tree: checkpatch, series hygiene, selftest patch sync"
while read -r p; do
	mapfile -t added < <(awk '/^diff --git /{f=$4} /^new file mode/{sub(/^b\//,"",f); print f}' "$pdir/$p")
	checkpatch_one "$p" "$pdir/$p"
done < <(series_list "$pdir")
added=()
for f in "$TOP"/module/*.[ch] "$TOP"/module/tests/*.[ch] "$TOP"/selftests/*.[ch]; do
	checkpatch_one "${f#"$TOP"/}" -f "$f"
done

base_commit=$(git -C "$usrc" rev-parse base)
while IFS=$'\t' read -r ok name why; do
	if [ "$ok" = ok ]; then tap ok "$name"; else tap fail "$name" "$why"; fi
done < <(python3 "$TOP/scripts/series-hygiene.py" "$pdir" --tree "$tree" \
	--base-commit "$base_commit" --package "$(base_get "$tree" package)" \
	--version "$(base_get "$tree" version)" --exceptions "$exc")

# The selftest patches against a fresh regeneration: a scratch repository
# holding only the files selftests-commit.sh edits, at base, compared patch
# by patch. A series without them must not touch the selftests at all.
sub=$(tree_selftest_sub "$tree")
if ! has_selftest_patch "$tree"; then
	touching=$(git -C "$psrc" log --format='%s' base..HEAD -- tools/testing/selftests)
	if [ -z "$touching" ]; then
		tap ok "selftest patch $tree: none, and no patch touches tools/testing/selftests"
	else
		tap fail "selftest patch $tree: none, and no patch touches tools/testing/selftests" \
			"touching it: $touching" "$tree has no $(selftest_patches "$tree")"
	fi
	tap_plan
	exit
fi
dir=tools/testing/selftests/$sub
fix="fix: scripts/selftests-commit.sh $tree REPO && scripts/export-series.sh $tree REPO"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/$dir"
for f in Makefile .gitignore run_vmtests.sh; do
	git -C "$usrc" show "base:$dir/$f" >"$scratch/$dir/$f"
done
(
	cd "$scratch"
	git init -q
	git config user.name "$(git -C "$psrc" log -1 --format=%an HEAD)"
	git config user.email "$(git -C "$psrc" log -1 --format=%ae HEAD)"
	git add -f .
	git commit -q -m base
)
if ! out=$("$TOP/scripts/selftests-commit.sh" "$tree" "$scratch" 2>&1); then
	tap fail "selftest patches $tree: regenerated from selftests/" "selftests-commit.sh failed: $out"
	tap_plan
	exit
fi
n=$(($(git -C "$scratch" rev-list --count HEAD) - 1))
total=$(git -C "$psrc" rev-list --count base..HEAD)
k=$((total - n))
# compare_patch I: the series' patch at HEAD~I against the regenerated one.
compare_patch() {
	local i=$1 subject want have f why=()
	subject=$(git -C "$scratch" log -1 --format=%s "HEAD~$i")
	have=$(git -C "$psrc" log -1 --format=%s "HEAD~$i")
	if [ "$subject" != "$have" ]; then
		why+=("the series' patch $((total - i)) is '$have', a regeneration's is '$subject'")
	else
		want=$(git -C "$scratch" diff --name-only "HEAD~$((i + 1))" "HEAD~$i" | sort)
		have=$(git -C "$psrc" diff --name-only "HEAD~$((i + 1))" "HEAD~$i" | sort)
		[ "$want" = "$have" ] ||
			why+=("the patch touches other files than a regeneration: $(diff <(echo "$want") <(echo "$have") | grep '^[<>]' | tr '\n' ' ')")
		for f in $want; do
			cmp -s <(git -C "$scratch" show "HEAD~$i:$f") <(git -C "$psrc" show "HEAD~$i:$f" 2>/dev/null) ||
				why+=("$f differs from a regeneration from selftests/")
		done
		cmp -s <(git -C "$scratch" log -1 --format=%B "HEAD~$i") <(git -C "$psrc" log -1 --format=%B "HEAD~$i") ||
			why+=("the changelog differs from a regeneration (test descriptions changed?)")
	fi
	if [ ${#why[@]} -eq 0 ]; then
		tap ok "selftest patch $tree $((total - i))/$total: in sync with selftests/ ($subject)"
	else
		tap fail "selftest patch $tree $((total - i))/$total: in sync with selftests/" "${why[@]}" "$fix"
	fi
}
if [ "$k" -lt 1 ]; then
	tap fail "selftest patches $tree: regenerated from selftests/" \
		"the series has $total patches, fewer than the $n selftest patches and a fix" "$fix"
	tap_plan
	exit
fi
for ((i = n - 1; i >= 0; i--)); do
	compare_patch "$i"
done
# What a reviewer reads: the selftest patches together, as exported, within
# the budget the tree's selftests set (the selftests of a series, not a
# second test suite).
budget=3000
lines=$(list_entries "$TOP/patches/$tree/series" | tail -n "$n" |
	(cd "$TOP/patches/$tree" && xargs cat) | wc -l)
if [ "$lines" -le "$budget" ]; then
	tap ok "selftest patches $tree: $lines lines, within $budget"
else
	tap fail "selftest patches $tree: $lines lines, within $budget" \
		"the $n selftest patches have $lines lines together, more than $budget"
fi
# No selftest patch of an older generation left before them.
if [ "$k" -gt 0 ] && [[ $(git -C "$psrc" log -1 --format=%s "HEAD~$n") == "selftests/$sub: "* ]]; then
	tap fail "selftest patches $tree: only the generated ones" \
		"patch $k is a selftest patch that $(selftest_patches "$tree") does not list" "$fix"
else
	tap ok "selftest patches $tree: only the generated ones"
fi

tap_plan
