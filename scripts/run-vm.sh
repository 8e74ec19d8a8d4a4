#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-vm.sh [--only TEST[,TEST...]] TREE VARIANT
#
# Boot build/obj/TREE-VARIANT's kernel with its initramfs in QEMU (TCG, no
# KVM, 2 vCPUs, 1 GiB) under a whole-run timeout, keep the console in
# build/runs/TREE-VARIANT/console.log and judge it with parse-console.py
# against selftests/expectations. The exit code is the verdict.
#
# UFFD_SELFTESTS names another directory holding tests.list and
# expectations (the bench's own tests use it); UFFD_VM_LIMIT overrides the
# whole-run limit in seconds; UFFD_INITRD and UFFD_RUN another initramfs
# and run directory (scripts/run-upstream-tests.sh uses them); UFFD_APPEND
# more kernel parameters (scripts/run-bench.sh's experiment).
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

only=
if [ "${1:-}" = --only ]; then
	only=$2
	shift 2
fi
tree_variant_args "[--only TEST[,TEST...]] TREE VARIANT" "$@"
need_tool qemu-system-x86_64 timeout python3

kernel=$BUILD/obj/$kname/arch/x86/boot/bzImage
initrd=${UFFD_INITRD:-$BUILD/initramfs/$kname.cpio}
[ -f "$kernel" ] || die "no kernel at $kernel (run scripts/build-kernel.sh $tree $variant)"
[ -f "$initrd" ] || die "no initramfs at $initrd (run scripts/build-initramfs.sh $tree $variant)"

st=${UFFD_SELFTESTS:-$TOP/selftests}
cpus=2
# The debug flavour's sanitisers slow everything down: every time limit is
# multiplied (the guest's per-test limits too, through uffd_bench.slow).
slow=1
case $flavour in *debug) slow=${UFFD_DEBUG_SLOW:-4} ;; esac

# Whole-run limit: every test's own limit, plus boot and reboot.
limit=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$st/tests.list" |
	awk -v only=",$only," '
		only == ",," || index(only, "," $1 ",") { s += $2 + 10 }
		END { print s + 60 }')
limit=$((limit * slow))
limit=${UFFD_VM_LIMIT:-$limit}

run=${UFFD_RUN:-$BUILD/runs/$kname}
mkdir -p "$run"
# A verdict must never outlive the run it came from.
rm -f "$run/results.tsv"
[ -f "$run/console.log" ] && mv -f "$run/console.log" "$run/console.log.old"

append="console=ttyS0 panic=-1 watchdog_thresh=5 hung_task_timeout_secs=15"
append+=" uffd_bench.kernel=$tree-$variant uffd_bench.cpus=$cpus uffd_bench.slow=$slow"
[ -n "$only" ] && append+=" uffd_bench.only=$only"
# Extra kernel parameters (run-bench.sh's count-off experiment).
[ -n "${UFFD_APPEND:-}" ] && append+=" $UFFD_APPEND"

timer_start
log "booting $kname (limit ${limit} s, console: $run/console.log)"
rc=0
timeout -k 10 "$limit" qemu-system-x86_64 -machine pc -accel tcg -cpu max \
	-smp "$cpus" -m 1G -nodefaults -display none -no-reboot \
	-serial stdio -monitor none \
	-kernel "$kernel" -initrd "$initrd" -append "$append" \
	</dev/null >"$run/console.log" 2>"$run/qemu.log" || rc=$?
timer_end "vm-$kname"

status=
case $rc in
0) ;;
124|137) status="--guest-timeout=$limit" ;;
*) die "qemu failed for $kname with exit $rc: $(head -c 300 "$run/qemu.log")" ;;
esac

exec python3 "$TOP/scripts/parse-console.py" ${status:+"$status"} \
	--kernel "$tree-$variant" --name "$kname" --expectations "$st/expectations" \
	--tests "$st/tests.list" ${only:+--only "$only"} \
	--results "$run/results.tsv" "$run/console.log"
