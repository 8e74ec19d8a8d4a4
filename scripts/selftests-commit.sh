#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# selftests-commit.sh TREE REPO
#
# Make the last commits of REPO (a kernel tree on its series branch) the
# series' selftest patches, one per line of patches/TREE/selftests.txt:
# the tests it names, copied from selftests/ into the kernel's mm
# selftests directory with the Makefile, .gitignore and run_vmtests.sh
# wiring, so that after 'git am' of the patches so far,
# 'make -C tools/testing/selftests TARGETS=mm' builds them.
# uffd-race-common.[ch] go with the first. Selftest commits already at
# the tip are replaced, so running it again after editing selftests/
# regenerates the patches; export them with scripts/export-series.sh.
# selftests/ stays the single source.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || die "usage: $me TREE REPO"
tree=$1 repo=$2
check_tree "$tree"
table=$(selftest_patches "$tree")
has_selftest_patch "$tree" ||
	die "the $tree series carries no selftest patch (no $table)"
sub=$(tree_selftest_sub "$tree")
dir=tools/testing/selftests/$sub
[ -d "$repo/$dir" ] || die "$repo has no $dir"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
	die "$repo has uncommitted changes"

while [[ $(git -C "$repo" log -1 --format=%s) == "selftests/$sub: "* ]]; do
	git -C "$repo" reset -q --hard HEAD~1
done

common=(uffd-race-common.c uffd-race-common.h)
for f in "${common[@]}"; do
	[ -f "$TOP/selftests/$f" ] || die "selftests/$f is missing"
done

# wire TEST...: list the tests (all of the series' so far) in the
# directory's Makefile before lib.mk (which turns TEST_GEN_FILES into
# targets), with the shared object and kselftest.h's directory after it,
# and in run_vmtests.sh after the tree's own userfaultfd tests. A second
# call replaces what the first wrote.
wire() {
	python3 - "$repo/$dir/Makefile" "$@" <<'PY'
import sys
path, tests = sys.argv[1], sys.argv[2:]
text = open(path).read()
listed = "UFFD_RACE_TESTS := " + " ".join(tests) + "\n"
if "UFFD_RACE_TESTS := " in text:
    i = text.index("UFFD_RACE_TESTS := ")
    text = text[:i] + listed + text[text.index("\n", i) + 1:]
    open(path, "w").write(text)
    sys.exit(0)
before = ("# userfaultfd race tests (uffd-race-common.c is shared)\n"
          + listed + "TEST_GEN_FILES += $(UFFD_RACE_TESTS)\n\n")
after = ("\n$(UFFD_RACE_TESTS:%=$(OUTPUT)/%): uffd-race-common.c\n"
         "$(UFFD_RACE_TESTS:%=$(OUTPUT)/%): CFLAGS += -I..\n")
anchor = "include ../lib.mk\n"
if text.count(anchor) != 1:
    sys.exit(f"{path}: expected one '{anchor.strip()}'")
i = text.index(anchor)
j = text.index("\n\n", i) + 1 if "\n\n" in text[i:] else len(text)
text = text[:i] + before + text[i:j] + after + text[j:]
open(path, "w").write(text)
PY
	python3 - "$repo/$dir/run_vmtests.sh" "$@" <<'PY'
import re, sys
path, tests = sys.argv[1], sys.argv[2:]
text = open(path).read()
marker = "# userfaultfd race tests (uffd-race-common.c)\n"
# mm's run_vmtests.sh selects tests by category (-t userfaultfd)
cat = 'CATEGORY="userfaultfd" ' if 'CATEGORY="userfaultfd"' in text else ""
block = "\n" + marker + "".join(f"{cat}run_test ./{t}\n" for t in tests)
lines = text.splitlines(keepends=True)
if marker in lines:
    # Replace the block an earlier patch wrote: the blank line, the marker
    # and its run_test lines.
    m = lines.index(marker)
    end = m + 1
    while end < len(lines) and lines[end].startswith(f"{cat}run_test ./uffd-"):
        end += 1
    lines[m - 1:end] = [block]
    open(path, "w").write("".join(lines))
    sys.exit(0)
# After the last line that runs one of the tree's userfaultfd tests (in a
# loop or not): ./userfaultfd on 6.1; uffd-unit-tests, uffd-stress (through
# $uffd_stress_bin) and uffd-wp-mremap on mainline.
uffd_test = re.compile(r"run_test \S*(userfaultfd\b|uffd[-_])")
last = max((i for i, l in enumerate(lines) if uffd_test.search(l)), default=None)
if last is None:
    sys.exit(f"{path}: no userfaultfd test to add ours after")
# Leave any enclosing loop or if block first.
for k in range(last + 1, len(lines)):
    s = lines[k].strip()
    if s in ("done", "fi") or s.startswith("done ") or s.startswith("fi "):
        last = k
    elif s:
        break
lines.insert(last + 1, block)
open(path, "w").write("".join(lines))
PY
}

# without_bench FILE: FILE without its benchmark, the '#ifdef UFFD_BENCH'
# blocks (their '#else' part stays): the selftests Makefile builds a
# test's benchmark from the same source, the kernel gets the test alone.
without_bench() {
	python3 - "$1" <<'PY'
import sys
depth = 0       # #if nesting inside the block being dropped
state = None    # None: outside; "drop": in the #ifdef part; "keep": in #else
for line in open(sys.argv[1]):
    s = line.strip()
    if state is None:
        if s == "#ifdef UFFD_BENCH":
            state, depth = "drop", 0
        else:
            sys.stdout.write(line)
        continue
    if s.startswith("#if"):
        depth += 1
    elif s.startswith("#endif") and depth:
        depth -= 1
    elif s.startswith("#endif"):
        state = None
        continue
    elif s.startswith("#else") and not depth:
        state = "keep"
        continue
    if state == "keep":
        sys.stdout.write(line)
if state:
    sys.exit(f"{sys.argv[1]}: '#ifdef UFFD_BENCH' without its '#endif'")
PY
}

# bullets TEST...: the first paragraph of each test's header comment.
bullets() {
	python3 - "$TOP/selftests" "$@" <<'PY'
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
}

msg=$(mktemp)
trap 'rm -f "$msg"' EXIT
signoff="Signed-off-by: $(git -C "$repo" config user.name) <$(git -C "$repo" config user.email)>"
all=()
first=1
while IFS=$'\t' read -r names subject; do
	[ -n "$subject" ] || die "$table: no subject after the tests '$names'"
	IFS=, read -r -a tests <<<"$names"
	files=("$dir/Makefile" "$dir/.gitignore" "$dir/run_vmtests.sh")
	[ $first = 0 ] || for f in "${common[@]}"; do
		cp "$TOP/selftests/$f" "$repo/$dir/$f"
		files+=("$dir/$f")
	done
	for t in "${tests[@]}"; do
		[ -f "$TOP/selftests/$t.c" ] || die "$table names $t: selftests/$t.c is missing"
		without_bench "$TOP/selftests/$t.c" >"$repo/$dir/$t.c"
		files+=("$dir/$t.c")
		echo "$t" >>"$repo/$dir/.gitignore"
	done
	all+=("${tests[@]}")
	wire "${all[@]}"
	# Only what this script wrote: a build in the tree leaves generated files.
	git -C "$repo" add -f -- "${files[@]}"
	what="the tests"
	[ ${#tests[@]} -gt 1 ] || what="the test"
	{
		echo "selftests/$sub: $subject"
		echo
		if [ $first = 1 ]; then
			fold -s -w 72 <<-EOF | sed 's/ *$//'
			Add $what below, built by the $sub selftests Makefile and run by run_vmtests.sh after the userfaultfd tests. They are written on kselftest_harness.h: a fixture per test, a variant per memory type where a test runs on several, each case in a child with a timeout, so that a hang is reported as a failure instead of stopping the run:
			EOF
		else
			fold -s -w 72 <<-EOF | sed 's/ *$//'
			Add $what below to the userfaultfd race tests, built and run like the others:
			EOF
		fi
		echo
		bullets "${tests[@]}"
		if [ $first = 1 ]; then
			echo
			fold -s -w 72 <<-EOF | sed 's/ *$//'
			uffd-race-common.[ch] hold the plumbing the race tests share: opening and handshaking a userfaultfd, the memory types (anon, shmem, hugetlb), the knobs a soak run sets through the environment (UFFD_ROUNDS, UFFD_SECONDS, UFFD_RANDOM, UFFD_ALL_TYPES), and reporting a failure from a process whose mm may be wedged.
			EOF
		fi
		echo
		echo "$signoff"
	} >"$msg"
	git -C "$repo" commit -q -F "$msg"
	log "$repo: $(git -C "$repo" log -1 --format='%h %s')"
	first=0
done < <(list_entries "$table")
[ $first = 0 ] || die "$table lists no patch"
