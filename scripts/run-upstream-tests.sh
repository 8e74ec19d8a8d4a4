#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-upstream-tests.sh TREE
#
# Run the tree's own selftests that cover the series (the list is
# selftests/upstream/TREE.list) on the unpatched and the patched kernel of
# TREE, one VM boot each, and compare: the patched kernel must pass every
# test the unpatched one passes. The tests are built statically from each
# prepared tree and put in an initramfs of their own, behind a wrapper per
# list entry that runs the binary with its arguments. Consoles are kept in
# build/runs/TREE-VARIANT-upstream/.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
list=$TOP/selftests/upstream/$tree.list
[ -f "$list" ] || die "$list does not exist"
sub=$(tree_selftest_sub "$tree")

for variant in unpatched patched; do
	obj=$("$TOP/scripts/build-kernel.sh" "$tree" "$variant" | tail -n 1)
	src=$("$TOP/scripts/prepare-tree.sh" --variant "$variant" "$tree")
	out=$BUILD/upstream/$tree-$variant
	rm -rf "$out"
	mkdir -p "$out/bin" "$out/st"
	bins=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | awk '{print $3}' | sort -u)
	# shellcheck disable=SC2086 # one target per binary
	make -s -C "$src/tools/testing/selftests/$sub" OUTPUT="$out/bin" \
		EXTRA_CFLAGS=-static KHDR_INCLUDES="-isystem $obj/usr/include" \
		$(for b in $bins; do echo "$out/bin/$b"; done) >"$out/build.log" 2>&1 ||
		die "$tree-$variant: the $sub selftests do not build (see $out/build.log)"
	wrap_list "$list" "$out/bin" "$out/st"
	echo "* * pass" >"$out/st/expectations"
	UFFD_SELFTESTS=$out/st UFFD_PREBUILT=$out/bin UFFD_INITRD=$out/initramfs.cpio \
		"$TOP/scripts/build-initramfs.sh" "$tree" "$variant" >/dev/null
	UFFD_SELFTESTS=$out/st UFFD_INITRD=$out/initramfs.cpio \
		UFFD_RUN=$BUILD/runs/$tree-$variant-upstream \
		"$TOP/scripts/run-vm.sh" "$tree" "$variant" || true
done

python3 - "$BUILD/runs/$tree-unpatched-upstream/results.tsv" \
	"$BUILD/runs/$tree-patched-upstream/results.tsv" <<'PY'
import sys
def load(p):
    r = {}
    for line in open(p):
        f = line.rstrip("\n").split("\t")
        r[(f[1], f[2])] = f[3]
    return r
u, p = load(sys.argv[1]), load(sys.argv[2])
bad = 0
for k in sorted(set(u) | set(p)):
    a, b = u.get(k, "missing"), p.get(k, "missing")
    mark = ""
    if a == "pass" and b != "pass":
        mark, bad = "  <- regression", bad + 1
    print(f"{k[0]}{':' + k[1] if k[1] else ''}\tunpatched {a}\tpatched {b}{mark}")
print(f"{bad} regression(s)")
sys.exit(1 if bad else 0)
PY
