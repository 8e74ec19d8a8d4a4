#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# export-series.sh TREE [REPO]
#
# Write the commits of REPO (default: the prepared build/src/TREE-patched)
# on top of its 'base' tag to patches/TREE/ as 'git format-patch' files,
# with a cover letter and a 'series' file listing the patches in order.
# The series is edited as commits in a tree and moved here by this script,
# never by hand. The cover letter's subject and text come from
# patches/TREE/cover.txt (first line: subject; then a blank line and the
# body); format-patch adds the shortlog, diffstat and base-commit.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $me TREE [REPO]"
tree=$1
check_tree "$tree"
repo=${2:-$BUILD/src/$tree-patched}
pdir=$TOP/patches/$tree
cover=$pdir/cover.txt
git -C "$repo" rev-parse -q --verify base >/dev/null ||
	die "$repo is not a git repository with a 'base' tag"
[ -f "$cover" ] || die "$cover is missing (first line: subject, blank line, body)"
n=$(git -C "$repo" rev-list --count base..HEAD)
[ "$n" -gt 0 ] || die "$repo has no commits on top of base"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A fixed abbreviation: git's automatic one grows with the repository's
# object count, which would rewrite every index line from another clone.
git -C "$repo" -c core.abbrev=7 format-patch -q --cover-letter --numbered --zero-commit \
	--base=base -o "$tmp" base..HEAD

# Fill the cover letter's placeholders from cover.txt.
subject=$(head -n 1 "$cover")
python3 - "$tmp"/0000-cover-letter.patch "$subject" "$cover" <<'PY'
import sys
path, subject, cover = sys.argv[1:4]
body = open(cover).read().split("\n", 1)[1].strip("\n") + "\n"
text = open(path).read()
for old, new in (("*** SUBJECT HERE ***", subject), ("*** BLURB HERE ***\n", body)):
    if old not in text:
        sys.exit(f"{path}: no '{old.strip()}' placeholder")
    text = text.replace(old, new, 1)
open(path, "w").write(text)
PY

rm -f "$pdir"/*.patch
cp "$tmp"/*.patch "$pdir"/
{
	echo "# Applied in order by scripts/apply-series.sh; written by scripts/export-series.sh."
	for p in "$tmp"/*.patch; do
		case "$(basename "$p")" in 0000-cover-letter.patch) continue ;; esac
		basename "$p"
	done
} >"$pdir/series"
log "exported $n patch(es) and a cover letter from $repo to $pdir"
