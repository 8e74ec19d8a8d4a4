#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-vm.sh [--check] [--only TEST[,TEST...]] [--seed N] TREE VARIANT
#
# Boot build/obj/TREE-VARIANT's kernel with its initramfs in QEMU (TCG, no
# KVM, 2 vCPUs, 1 GiB), say each test's verdict as the guest finishes it,
# and judge the whole console with parse-console.py against
# selftests/expectations. The exit code is the verdict.
#
# Every run keeps its console, QEMU's messages and its verdicts in a
# directory of its own, build/runs/TREE-VARIANT/YYYYmmdd-HHMMSS/, and
# build/runs/TREE-VARIANT/latest links the newest: a rerun never destroys
# the evidence of an earlier failure.
#
# The guest's time limits are watchdogs on output (guest-init.sh), so a
# busy host that slows it down does not fail it. The host's own limits
# follow: the guest is stopped when guest-init and the tests have printed
# nothing for longer than the longest test's limit (a quarter more, plus a
# minute; kernel messages do not count, a report repeated by a wedged
# kernel must not keep it alive), or, whatever it prints, after twice the
# sum of the limits of the tests it runs.
#
# --check only checks the arguments (an unknown test in --only is an
# error naming the known ones) and exits. --seed N replays a run: every
# test gets -s N.
#
# UFFD_SELFTESTS names another directory holding tests.list and
# expectations (the bench's own tests use it); UFFD_VM_LIMIT overrides the
# silence limit in seconds; UFFD_INITRD and UFFD_RUN another initramfs and
# run directory (used as is: scripts/run-upstream-tests.sh and
# scripts/run-bench.sh keep their own); UFFD_APPEND more kernel parameters
# (scripts/run-bench.sh's experiment).
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

only="" seed="" check=0
while [ $# -gt 0 ]; do
	case "$1" in
	--check) check=1; shift ;;
	--only) only=${2:-}; shift 2 || die "--only needs a list of tests" ;;
	--seed) seed=${2:-}; shift 2 || die "--seed needs a number" ;;
	*) break ;;
	esac
done
tree_variant_args "[--check] [--only TEST[,TEST...]] [--seed N] TREE VARIANT" "$@"
case $seed in ''|*[!0-9]*) [ -z "$seed" ] || die "--seed wants a number, not '$seed'" ;; esac

st=${UFFD_SELFTESTS:-$TOP/selftests}
check_only "$st/tests.list" "$only"
[ "$check" = 1 ] && exit 0

need_tool qemu-system-x86_64 timeout python3
kernel=$BUILD/obj/$kname/arch/x86/boot/bzImage
initrd=${UFFD_INITRD:-$BUILD/initramfs/$kname.cpio}
[ -f "$kernel" ] || die "no kernel at $kernel (run scripts/build-kernel.sh $tree $variant)"
[ -f "$initrd" ] || die "no initramfs at $initrd (run scripts/build-initramfs.sh $tree $variant)"

cpus=2
# The debug flavour's sanitisers slow everything down: every time limit is
# multiplied (the guest's per-test limits too, through uffd_bench.slow).
slow=1
case $flavour in *debug) slow=${UFFD_DEBUG_SLOW:-4} ;; esac

# The tests that run, with their limits ("NAME LIMIT" lines).
selected=$(list_entries "$st/tests.list" | awk -v only=",$only," \
	'only == ",," || index(only, "," $1 ",") { print $1, $2 }')
ntests=$(echo "$selected" | grep -c . || true)
# The host's silence limit: the longest test's (the guest's own clock may
# run a little behind the host's), plus boot and reboot.
silence=$(echo "$selected" | awk -v s="$slow" '$2 > m { m = $2 } END { print int(m * s * 1.25) + 60 }')
silence=${UFFD_VM_LIMIT:-$silence}
# The hard limit: a guest that keeps printing but never ends.
cap=$(echo "$selected" | awk -v s="$slow" '{ t += $2 + 10 } END { print (t * s + 60) * 2 }')
[ "$cap" -ge "$silence" ] || cap=$silence

if [ -n "${UFFD_RUN:-}" ]; then
	run=$UFFD_RUN
	mkdir -p "$run"
	# A verdict must never outlive the run it came from.
	rm -f "$run/results.tsv"
	[ -f "$run/console.log" ] && mv -f "$run/console.log" "$run/console.log.old"
else
	run=$(new_run_dir "$BUILD/runs/$kname")
fi

append="console=ttyS0 panic=-1 watchdog_thresh=5 hung_task_timeout_secs=15"
append+=" uffd_bench.kernel=$tree-$variant uffd_bench.cpus=$cpus uffd_bench.slow=$slow"
[ -n "$only" ] && append+=" uffd_bench.only=$only"
[ -n "$seed" ] && append+=" uffd_bench.seed=$seed"
# Extra kernel parameters (run-bench.sh's count-off experiment).
[ -n "${UFFD_APPEND:-}" ] && append+=" $UFFD_APPEND"

judge=(python3 "$TOP/scripts/parse-console.py" --kernel "$tree-$variant" --name "$kname"
	--expectations "$st/expectations" --tests "$st/tests.list" ${only:+--only "$only"})

# guest_lines: how many lines guest-init and the tests have printed.
guest_lines() {
	grep -cE '^(#|ok |not ok |TAP version|1\.\.)' "$run/console.log" || true
}

# say_finished N [final]: print the verdicts of the tests the guest
# finished beyond the first N, from the console so far (but its last
# line, which may be half written, unless final); prints the new count.
say_finished() {
	local done_before=$1 final=${2:-} names name i=0
	names=$(tr -d '\r' <"$run/console.log" | { if [ -n "$final" ]; then cat; else sed '$d'; fi; } |
		sed -n 's/^\(not \)\{0,1\}ok [0-9]* selftests: uffd-robust: \([^ ]*\).*/\2/p')
	for name in $names; do
		i=$((i + 1))
		[ "$i" -le "$done_before" ] && continue
		"${judge[@]}" --brief "$name" --position "$i/$ntests" "$run/console.log" |
			sed "s/^/$me: /" >&2 || true
	done
	echo "$i"
}

timer_start
log "booting $kname: $ntests test(s); stopped after ${silence} s of silence or ${cap} s in all"
log "console: $run/console.log"
qemu-system-x86_64 -machine pc -accel tcg -cpu max \
	-smp "$cpus" -m 1G -nodefaults -display none -no-reboot \
	-serial stdio -monitor none \
	-kernel "$kernel" -initrd "$initrd" -append "$append" \
	</dev/null >"$run/console.log" 2>"$run/qemu.log" &
qemu=$!
# Whatever ends this script ends the guest too.
trap 'kill "$qemu" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
start=$SECONDS moved=$SECONDS lines=0 finished=0 killed=""
while kill -0 "$qemu" 2>/dev/null; do
	sleep 2
	now_lines=$(guest_lines)
	if [ "$now_lines" != "$lines" ]; then
		lines=$now_lines moved=$SECONDS
		finished=$(say_finished "$finished")
	fi
	if [ $((SECONDS - moved)) -gt "$silence" ]; then
		killed="guest silent for $((SECONDS - moved)) s"
	elif [ $((SECONDS - start)) -gt "$cap" ]; then
		killed="still running after ${cap} s"
	fi
	if [ -n "$killed" ]; then
		log "stopping the guest: $killed"
		kill "$qemu" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qemu" 2>/dev/null || break
			sleep 1
		done
		kill -9 "$qemu" 2>/dev/null || true
		break
	fi
done
rc=0
wait "$qemu" || rc=$?
say_finished "$finished" final >/dev/null
timer_end "vm-$kname"

status=()
if [ -n "$killed" ]; then
	status=(--guest-timeout="$((SECONDS - start))" --guest-killed="$killed")
elif [ "$rc" != 0 ]; then
	die "qemu failed for $kname with exit $rc: $(head -c 300 "$run/qemu.log")"
fi

# The command that reruns a failed test, where a make target makes this
# run's initramfs (not the bench's or upstream-test's own).
case $flavour in
kvm) rerun="make kvm-test TREE=$tree VARIANT=$variant" ;;
kvm-debug) rerun="make kvm-test TREE=$tree VARIANT=$variant DEBUG=1" ;;
*) rerun="make vm-test TREE=$tree VARIANT=$variant${flavour:+ UFFD_FLAVOUR=$flavour}" ;;
esac
[ -n "${UFFD_INITRD:-}" ] && rerun=""
exec "${judge[@]}" "${status[@]}" --results "$run/results.tsv" ${rerun:+--rerun "$rerun"} \
	"$run/console.log"
