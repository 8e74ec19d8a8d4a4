#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# check.sh [--debug-only] [TREE...]
#
# Everything CI checks: for each tree (default: all) the unpatched, the
# patched and (where the tree has mutants) the mutant kernel built, booted
# and judged against selftests/expectations; the series' quality gates
# (bisect-build.sh builds the patched kernel patch by patch, then
# lint-series.sh and static-check.sh); the patched kernel in the debug
# flavour (config/flavour-debug.config) for the trees in UFFD_DEBUG_TREES
# (default: mainline, see README); then the host-side tests of the bench itself.
# --debug-only: only the debug flavour of each tree's patched kernel.
# Ends with one line "N passed, N failed, N skipped" counting every case on
# every kernel and every gate.
set -u -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

debug_only=0
if [ "${1:-}" = --debug-only ]; then
	debug_only=1
	shift
fi
trees=${*:-$TREES}
debug_trees=${UFFD_DEBUG_TREES-mainline}
[ "$debug_only" = 1 ] && debug_trees=$trees
for t in $trees; do check_tree "$t"; done

sum=$BUILD/check
[ "$debug_only" = 1 ] && sum=$BUILD/check-debug
rm -rf "$sum"
mkdir -p "$sum"
T0=$(date +%s)

# tap_tsv KERNEL SUITE: TAP on stdin to summary rows; a failure's detail is
# its first diagnostic line. A "not ok ... # TODO reason" is TAP's known
# failure: result "todo", counted with the skipped, its reason listed.
tap_tsv() {
	awk -v k="$1" -v suite="$2" '
		function flush() {
			if (name != "")
				print k "\t" suite "\t" name "\t" res "\tpass\t" (res == "fail" ? "FAIL" : "ok") "\t" why
			name = ""
		}
		/^(not )?ok [0-9]+ / {
			flush()
			res = ($1 == "ok") ? "pass" : "fail"
			name = $0
			sub(/^(not )?ok [0-9]+ (- )?/, "", name)
			why = ""
			if (res == "pass" && sub(/ # SKIP.*/, "", name))
				res = "skip"
			if (res == "fail" && match(name, / # TODO /)) {
				why = substr(name, RSTART + 8)
				name = substr(name, 1, RSTART - 1)
				res = "todo"
			}
			next
		}
		/^#   / && name != "" && why == "" { why = substr($0, 5); next }
		END { flush() }'
}

# gate TREE NAME CMD...: run one gate script, keep its TAP, time it.
gate() {
	local tree=$1 name=$2 t0 rc=0 tsv
	shift 2
	t0=$(date +%s)
	"$@" >"$sum/$tree-$name.tap" 2>"$sum/$tree-$name.err" || rc=$?
	cat "$sum/$tree-$name.tap"
	tsv=$sum/$tree-gates-$name.tsv
	tap_tsv "$tree-gates" "$name" <"$sum/$tree-$name.tap" >"$tsv"
	# A gate that stopped early must not pass on the cases it printed.
	if [ "$rc" != 0 ] && ! awk -F'\t' '$6 == "FAIL" { f = 1 } END { exit !f }' "$tsv"; then
		printf '%s-gates\t%s\trun\tfail\tpass\tFAIL\t%s exited %s: %s\n' "$tree" "$name" \
			"$(basename "$1")" "$rc" "$(tail -n 1 "$sum/$tree-$name.err")" >>"$tsv"
	fi
	grep -q . "$tsv" ||
		printf '%s-gates\t%s\trun\tfail\tpass\tFAIL\t%s printed no result (see %s)\n' \
			"$tree" "$name" "$1" "$sum/$tree-$name.err" >"$tsv"
	echo "$tree $name $(( $(date +%s) - t0 ))" >>"$sum/gate-times"
}

# run_kernel TREE VARIANT [FLAVOUR]: build, boot and judge one kernel.
run_kernel() {
	local tree=$1 variant=$2 flavour=${3:-} k tsv only=() before after
	k=$tree-$variant${flavour:+-$flavour}
	tsv=$sum/$k.tsv
	# Per command, so that an early return cannot leave it set for the next kernel.
	if ! UFFD_FLAVOUR=$flavour "$TOP/scripts/build-kernel.sh" "$tree" "$variant" >/dev/null; then
		printf '%s\tbench\tbuild\tfail\tpass\tFAIL\tkernel did not build\n' "$k" >"$tsv"
		return
	fi
	if ! UFFD_FLAVOUR=$flavour "$TOP/scripts/build-initramfs.sh" "$tree" "$variant" >/dev/null; then
		printf '%s\tbench\tinitramfs\tfail\tpass\tFAIL\tselftests or initramfs did not build\n' "$k" >"$tsv"
		return
	fi
	# A mutant runs the tests that exercise what its mutations touch.
	[ "$variant" = mutant ] && [ -f "$TOP/selftests/mutants/$tree/tests" ] &&
		only=(--only "$(sed -e 's/#.*//' "$TOP/selftests/mutants/$tree/tests" | xargs | tr ' ' ,)")
	# The run's verdicts, never an earlier run's: run-vm.sh makes a new
	# run directory and points latest at it.
	before=$(readlink "$BUILD/runs/$k/latest" 2>/dev/null || true)
	UFFD_FLAVOUR=$flavour "$TOP/scripts/run-vm.sh" "${only[@]}" "$tree" "$variant"
	after=$(readlink "$BUILD/runs/$k/latest" 2>/dev/null || true)
	if [ -n "$after" ] && [ "$after" != "$before" ] &&
		[ -f "$BUILD/runs/$k/$after/results.tsv" ]; then
		cp "$BUILD/runs/$k/$after/results.tsv" "$tsv"
	else
		printf '%s\tbench\trun\tfail\tpass\tFAIL\tno verdict from run-vm.sh\n' "$k" >"$tsv"
	fi
}

for tree in $trees; do
	for variant in $(tree_variants "$tree"); do
		[ "$debug_only" = 1 ] && break
		# The patched kernel is built patch by patch: bisectability for free.
		if [ "$variant" = patched ] && [ -n "$(series_list "$PATCHES/$tree")" ]; then
			log "$tree: building the series patch by patch"
			gate "$tree" bisect "$TOP/scripts/bisect-build.sh" "$tree"
		fi
		run_kernel "$tree" "$variant"
	done
	# After the tree's kernels: static-check.sh reads both builds.
	if [ "$debug_only" = 0 ] && [ -n "$(series_list "$PATCHES/$tree")" ]; then
		log "$tree: quality gates of the series"
		gate "$tree" lint "$TOP/scripts/lint-series.sh" "$tree"
		gate "$tree" static "$TOP/scripts/static-check.sh" "$tree"
		gate "$tree" newest "$TOP/scripts/newest-base.sh" "$tree"
	fi
	case " $debug_trees " in
	*" $tree "*)
		log "$tree: the patched kernel in the debug flavour"
		run_kernel "$tree" patched debug
		;;
	esac
done

# Last, so that its real-guest cases find a built kernel.
if [ "$debug_only" = 0 ]; then
	log "host-side tests of the bench"
	"$TOP/tests/run.sh" >"$sum/host.out" 2>&1
	cat "$sum/host.out"
	tap_tsv host bench-host <"$sum/host.out" >"$sum/host.tsv"
	grep -q . "$sum/host.tsv" ||
		printf 'host\tbench-host\trun\tfail\tpass\tFAIL\ttests/run.sh printed no result\n' >"$sum/host.tsv"
fi

echo
echo "== summary (${sum#"$TOP"/}/*.tsv; consoles in build/runs/*/latest/console.log) =="
cat "$sum"/*.tsv | awk -F'\t' '
	{ k[$1]++; if ($6 == "FAIL") f[$1]++; else if ($4 == "skip" || $4 == "todo") s[$1]++; else p[$1]++ }
	$6 == "FAIL" { bad = bad sprintf("FAIL %s %s:%s %s (expect %s) %s\n", $1, $2, $3, $4, $5, $7) }
	$4 == "todo" { bad = bad sprintf("TODO %s %s:%s %s\n", $1, $2, $3, $7) }
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
if [ -f "$sum/gate-times" ]; then
	awk '{ t[$1] = t[$1] sprintf(" %s %d s,", $2, $3); s[$1] += $3 }
		END { for (x in t) printf "gates %-8s%s total %d s\n", x, t[x], s[x] }' "$sum/gate-times" | sort
fi
echo "check took $(( $(date +%s) - T0 )) s"
cat "$sum"/*.tsv | awk -F'\t' '
	$6 == "FAIL" { f++; next } $4 == "skip" || $4 == "todo" { s++; next } { p++ }
	END { printf "%d passed, %d failed, %d skipped\n", p, f, s; exit f > 0 }'
