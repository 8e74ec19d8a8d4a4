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
# list entry that runs the binary with its arguments. An entry may be one
# of the tree's scripts (ksft_userfaultfd.sh): it comes with the programs
# of the run_vmtests.sh categories it runs, and the initramfs with a bash.
# Consoles are kept in build/runs/TREE-VARIANT-upstream/.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
list=$TOP/selftests/upstream/$tree.list
[ -f "$list" ] || die "$list does not exist"
sub=$(tree_selftest_sub "$tree")

# add_bash CPIO: append to the archive CPIO one that holds a static bash
# as /bin/bash (Debian's bash-static): the tree's scripts are bash.
add_bash() {
	local bash stage
	bash=$(command -v bash-static || true)
	[ -n "$bash" ] || die "missing tool 'bash-static' (run 'make deps')"
	stage=$(mktemp -d "$BUILD/bash-stage.XXXXXX")
	mkdir -m 0755 "$stage/bin"
	cp "$bash" "$stage/bin/bash"
	pack_cpio "$stage" bin >>"$1"
	rm -rf "$stage"
}

for variant in unpatched patched; do
	obj=$("$TOP/scripts/build-kernel.sh" "$tree" "$variant" | tail -n 1)
	src=$("$TOP/scripts/prepare-tree.sh" --variant "$variant" "$tree")
	out=$BUILD/upstream/$tree-$variant
	rm -rf "$out"
	mkdir -p "$out/bin" "$out/st"
	dir=$src/tools/testing/selftests/$sub
	bins=$(list_entries "$list" | while read -r _ _ cmd; do
		echo "${cmd%% *}"
		# A script of the tree's: what it runs too.
		case ${cmd%% *} in *.sh) vmtests_programs "$dir" "$cmd" ;; esac
	done | sort -u)
	progs="" scripts=""
	for b in $bins; do
		case $b in *.sh) scripts+=" $b" ;; *) progs+=" $out/bin/$b" ;; esac
	done
	# shellcheck disable=SC2086 # one target per binary
	make -s -C "$dir" OUTPUT="$out/bin" \
		EXTRA_CFLAGS=-static KHDR_INCLUDES="-isystem $obj/usr/include" \
		$progs >"$out/build.log" 2>&1 ||
		die "$tree-$variant: the $sub selftests do not build (see $out/build.log)"
	for b in $scripts; do cp "$dir/$b" "$out/bin/"; done
	wrap_list "$list" "$out/bin" "$out/st"
	echo "* * pass" >"$out/st/expectations"
	UFFD_SELFTESTS=$out/st UFFD_PREBUILT=$out/bin UFFD_INITRD=$out/initramfs.cpio \
		"$TOP/scripts/build-initramfs.sh" "$tree" "$variant" >/dev/null
	[ -z "$scripts" ] || add_bash "$out/initramfs.cpio"
	UFFD_SELFTESTS=$out/st UFFD_INITRD=$out/initramfs.cpio \
		UFFD_RUN=$BUILD/runs/$tree-$variant-upstream \
		"$TOP/scripts/run-vm.sh" "$tree" "$variant" || true
done

python3 - "$BUILD/runs/$tree-unpatched-upstream/results.tsv" \
	"$BUILD/runs/$tree-patched-upstream/results.tsv" <<'PY'
import sys
# A case name may repeat (run_vmtests.sh names uffd-stress once per memory
# type): the second and later are told apart by their rank.
def load(p):
    r, seen = {}, {}
    for line in open(p):
        f = line.rstrip("\n").split("\t")
        k = (f[1], f[2])
        seen[k] = seen.get(k, 0) + 1
        if seen[k] > 1:
            k = (f[1], f"{f[2]} #{seen[k]}")
        r[k] = f[3]
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
