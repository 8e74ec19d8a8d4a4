#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# selftests-commit.sh TREE REPO
#
# Make the last commit of REPO (a kernel tree on its series branch) the
# series' selftest patch: the uffd-* tests of selftests/tests.list whose
# source is in selftests/ (the debug module's own tests, in module/tests/,
# stay out) and their shared code, copied into the kernel's mm selftests
# directory with its Makefile, .gitignore and run_vmtests.sh wiring, so
# that after 'git am', 'make -C tools/testing/selftests TARGETS=mm' builds
# them. Only the trees of SELFTEST_PATCH_TREES (lib.sh) carry the patch.
# A previous selftest commit at the tip is replaced, so running it again
# after editing selftests/ regenerates the patch; export it with
# scripts/export-series.sh. selftests/ stays the single source.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || die "usage: $me TREE REPO"
tree=$1 repo=$2
check_tree "$tree"
has_selftest_patch "$tree" ||
	die "the $tree series carries no selftest patch (SELFTEST_PATCH_TREES in lib.sh)"
sub=$(tree_selftest_sub "$tree")
dir=tools/testing/selftests/$sub
subject="selftests/$sub: add userfaultfd race tests"
[ -d "$repo/$dir" ] || die "$repo has no $dir"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
	die "$repo has uncommitted changes"

if [ "$(git -C "$repo" log -1 --format=%s)" = "$subject" ]; then
	git -C "$repo" reset -q --hard HEAD~1
fi

# The uffd-* tests of selftests/; kmemleak-scan is the bench's check of a
# whole run.
tests=()
while read -r name _; do
	[[ $name == uffd-* && -f $TOP/selftests/$name.c ]] && tests+=("$name")
done < <(list_entries "$TOP/selftests/tests.list")
common=(uffd-race-common.c uffd-race-common.h)
for f in "${tests[@]/%/.c}" "${common[@]}"; do
	[ -f "$TOP/selftests/$f" ] || die "selftests/$f is missing"
	cp "$TOP/selftests/$f" "$repo/$dir/$f"
done

# Wire them into the directory's Makefile: the list before lib.mk (which
# turns TEST_GEN_FILES into targets), the shared object and kselftest.h's
# directory after it.
python3 - "$repo/$dir/Makefile" "${tests[@]}" <<'PY'
import sys
path, tests = sys.argv[1], sys.argv[2:]
text = open(path).read()
before = ("# userfaultfd race tests: closing under GUP, hugetlb pte recheck,\n"
          "# events, and collapse of armed shmem (uffd-race-common.c is shared)\n"
          "UFFD_RACE_TESTS := " + " ".join(tests) + "\n"
          "TEST_GEN_FILES += $(UFFD_RACE_TESTS)\n\n")
after = ("\n$(UFFD_RACE_TESTS:%=$(OUTPUT)/%): uffd-race-common.c uffd-race-common.h\n"
         "$(UFFD_RACE_TESTS:%=$(OUTPUT)/%): CFLAGS += -I..\n")
anchor = "include ../lib.mk\n"
if text.count(anchor) != 1:
    sys.exit(f"{path}: expected one '{anchor.strip()}'")
i = text.index(anchor)
j = text.index("\n\n", i) + 1 if "\n\n" in text[i:] else len(text)
text = text[:i] + before + text[i:j] + after + text[j:]
open(path, "w").write(text)
PY
# uffd-race-common.h is a dependency, not a source to link
sed -i 's|^\$(UFFD_RACE_TESTS:%=\$(OUTPUT)/%): uffd-race-common.c uffd-race-common.h$|$(UFFD_RACE_TESTS:%=$(OUTPUT)/%): uffd-race-common.c|' "$repo/$dir/Makefile"
printf '%s\n' "${tests[@]}" >>"$repo/$dir/.gitignore"

# run_vmtests.sh: run them after the tree's own userfaultfd tests.
python3 - "$repo/$dir/run_vmtests.sh" "${tests[@]}" <<'PY'
import re, sys
path, tests = sys.argv[1], sys.argv[2:]
text = open(path).read()
# mm's run_vmtests.sh selects tests by category (-t userfaultfd)
cat = 'CATEGORY="userfaultfd" ' if 'CATEGORY="userfaultfd"' in text else ""
block = "".join(f"{cat}run_test ./{t}\n" for t in tests)
# After the last line that runs the tree's userfaultfd test (in a loop or not).
lines = text.splitlines(keepends=True)
last = max((i for i, l in enumerate(lines) if re.search(r"run_test \./userfaultfd\b|uffd-unit-tests", l)), default=None)
if last is None:
    sys.exit(f"{path}: no userfaultfd test to add ours after")
# Leave any enclosing loop or if block first.
depth = 0
for k in range(last + 1, len(lines)):
    s = lines[k].strip()
    if s in ("done", "fi") or s.startswith("done ") or s.startswith("fi "):
        last = k
    elif s:
        break
lines.insert(last + 1, "\n# userfaultfd race tests (uffd-race-common.c)\n" + block)
open(path, "w").write("".join(lines))
PY

# Only what this script wrote: a build in the tree leaves generated files.
files=("$dir/Makefile" "$dir/.gitignore" "$dir/run_vmtests.sh")
for f in "${tests[@]/%/.c}" "${common[@]}"; do files+=("$dir/$f"); done
git -C "$repo" add -f -- "${files[@]}"
# The first paragraph of each test's header comment, as a bullet.
bullets=$(python3 - "$TOP/selftests" "${tests[@]}" <<'PY'
import sys, textwrap
src, tests = sys.argv[1], sys.argv[2:]
for t in tests:
    lines = open(f"{src}/{t}.c").read().splitlines()[2:]
    para = []
    for l in lines:
        l = l.strip()
        if l in ("*", "*/"):
            break
        para.append(l.lstrip("* ").strip())
    print(textwrap.fill(" ".join(para), width=72, initial_indent=" - ",
                        subsequent_indent="   "))
PY
)
msg=$(mktemp)
trap 'rm -f "$msg"' EXIT
cat >"$msg" <<MSG
$subject

Add the tests that go with this series, built by the $sub selftests
Makefile and run by run_vmtests.sh after the userfaultfd tests. Each
runs its cases in child processes with a deadline, so that a hang is
reported as a failure instead of stopping the run, and prints TAP:

$bullets

uffd-race-common.[ch] hold the plumbing they share: opening and
handshaking a userfaultfd, the memory types (anon, shmem, hugetlb), and
running a case in a child with a deadline.

Signed-off-by: $(git -C "$repo" config user.name) <$(git -C "$repo" config user.email)>
MSG
git -C "$repo" commit -q -F "$msg"
log "$repo: $(git -C "$repo" log -1 --format='%h %s')"
