#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# apply-series.sh REPO PATCHDIR
#
# Reset REPO's checked-out branch ('series' when HEAD is detached) to its
# 'base' tag and 'git am' the patches PATCHDIR/series lists, in order (no
# series file: nothing to apply). A patch that does not apply stops it with
# the patch name and git's reason, leaving REPO at base plus the patches
# before it.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || die "usage: $me REPO PATCHDIR"
repo=$1 pdir=$2
git -C "$repo" rev-parse -q --verify base >/dev/null 2>&1 ||
	die "$repo is not a git repository with a 'base' tag"

patches=()
while read -r p; do
	[ -f "$pdir/$p" ] || die "$pdir/series names '$p', which does not exist"
	patches+=("$p")
done < <(series_list "$pdir")

git -C "$repo" am --abort >/dev/null 2>&1 || true
branch=$(git -C "$repo" symbolic-ref -q --short HEAD || echo series)
git -C "$repo" checkout -q -f -B "$branch" base
for p in "${patches[@]}"; do
	if ! out=$(git -C "$repo" am -q --keep-cr "$pdir/$p" 2>&1); then
		git -C "$repo" am --abort >/dev/null 2>&1 || true
		reason=$(echo "$out" | grep -E '^(error|fatal|Patch failed)' | head -n 2 | tr '\n' ' ')
		die "patch '$p' does not apply: ${reason:-$out}"
	fi
done
log "${#patches[@]} patch(es) applied on base"
