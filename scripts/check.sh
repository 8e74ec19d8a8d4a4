#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# check.sh [TREE...]
#
# Everything CI checks: for each tree (default: all) the unpatched, the
# patched and (where the tree has mutants) the mutant kernel built, booted
# and judged against selftests/expectations,
# then the host-side tests of the bench itself. Ends with one line
# "N passed, N failed, N skipped" counting every case on every kernel.
set -u -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

trees=${*:-$TREES}
for t in $trees; do check_tree "$t"; done

sum=$BUILD/check
rm -rf "$sum"
mkdir -p "$sum"
T0=$(date +%s)

for tree in $trees; do
	for variant in $(tree_variants "$tree"); do
		k=$tree-$variant
		tsv=$sum/$k.tsv
		if ! "$TOP/scripts/build-kernel.sh" "$tree" "$variant" >/dev/null; then
			printf '%s\tbench\tbuild\tfail\tpass\tFAIL\tkernel did not build\n' "$k" >"$tsv"
			continue
		fi
		if ! "$TOP/scripts/build-initramfs.sh" "$tree" "$variant" >/dev/null; then
			printf '%s\tbench\tinitramfs\tfail\tpass\tFAIL\tselftests or initramfs did not build\n' "$k" >"$tsv"
			continue
		fi
		"$TOP/scripts/run-vm.sh" "$tree" "$variant"
		if [ -f "$BUILD/runs/$k/results.tsv" ] &&
			[ "$BUILD/runs/$k/results.tsv" -nt "$BUILD/runs/$k/console.log" ]; then
			cp "$BUILD/runs/$k/results.tsv" "$tsv"
		else
			printf '%s\tbench\trun\tfail\tpass\tFAIL\tno verdict from run-vm.sh\n' "$k" >"$tsv"
		fi
	done
done

# Last, so that its real-guest cases find a built kernel.
log "host-side tests of the bench"
"$TOP/tests/run.sh" >"$sum/host.out" 2>&1
cat "$sum/host.out"
awk '
	/^(not )?ok [0-9]+ / {
		res = ($1 == "ok") ? "pass" : "fail"
		name = $0
		sub(/^(not )?ok [0-9]+ /, "", name)
		if (res == "pass" && sub(/ # SKIP.*/, "", name))
			res = "skip"
		print "host\tbench-host\t" name "\t" res "\tpass\t" (res == "fail" ? "FAIL" : "ok") "\t"
	}' "$sum/host.out" >"$sum/host.tsv"
grep -q . "$sum/host.tsv" ||
	printf 'host\tbench-host\trun\tfail\tpass\tFAIL\ttests/run.sh printed no result\n' >"$sum/host.tsv"

echo
echo "== summary (build/check/*.tsv; consoles in build/runs/*/console.log) =="
cat "$sum"/*.tsv | awk -F'\t' '
	{ k[$1]++; if ($6 == "FAIL") f[$1]++; else if ($4 == "skip") s[$1]++; else p[$1]++ }
	$6 == "FAIL" { bad = bad sprintf("FAIL %s %s:%s %s (expect %s) %s\n", $1, $2, $3, $4, $5, $7) }
	END {
		for (x in k) printf "%-20s %3d passed, %3d failed, %3d skipped\n", x, p[x], f[x], s[x]
		printf "%s", bad
	}' | sort
for tree in $trees; do
	env=$BUILD/fetch/$tree.env
	[ -f "$env" ] || continue
	printf '%-8s %s %s (tarball sha256 %s)\n' "$tree" \
		"$(sed -n 's/^package=//p' "$env")" "$(sed -n 's/^version=//p' "$env")" \
		"$(sed -n 's/^tarball_sha256=//p' "$env")"
done
echo "check took $(( $(date +%s) - T0 )) s"
cat "$sum"/*.tsv | awk -F'\t' '
	$6 == "FAIL" { f++; next } $4 == "skip" { s++; next } { p++ }
	END { printf "%d passed, %d failed, %d skipped\n", p, f, s; exit f > 0 }'
