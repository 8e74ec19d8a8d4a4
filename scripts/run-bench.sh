#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-bench.sh TREE
#
# Time the series: boot TREE's unpatched and patched kernels in turn,
# BENCH_ROUNDS times each (default 3: unpatched, patched, unpatched, ...,
# so that a slow spell of the host falls on both; nothing else may run on
# the host meanwhile: a second QEMU triples every figure), run the
# workloads of bench/bench.list in each, and hand the consoles to
# bench-report.py, which writes the tables and plots for the tree into
# Documentation/perf/ (BENCH_OUT overrides it). Consoles are kept in
# build/runs/TREE-VARIANT-perf-bench-N/. The kernels are the perf flavour
# (config/flavour-perf.config: no lockdep, DEBUG_VM or DEBUG_LIST, which
# would inflate the cost of every lock; BENCH_FLAVOUR= picks the normal
# ones). Fails when a workload did not report, except where
# bench/expectations says it cannot (a livelock).
#
# BENCH_AA=1 boots the unpatched kernel in both slots and reports it as
# Documentation/perf/TREE-aa.md: the A/A control, what the bench reads
# as a difference between two boots of one kernel.
#
# BENCH_COUNT_OFF=1 measures the uffd-missing count's own cost: the patched
# kernel plus bench/experiments/TREE-count-off.patch (a uffd_count_off
# boot parameter that skips the count's upkeep), booted with it (the
# "unpatched" slot) and without (the "patched" slot): one image, so the
# kernel's layout cannot differ. Reported as TREE-count-off.md.
set -eu -o pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $me TREE"
tree=$1
check_tree "$tree"
export UFFD_FLAVOUR=${BENCH_FLAVOUR-perf}
case $UFFD_FLAVOUR in *debug) die "the debug flavour's sanitisers say nothing about cost" ;; esac
fl=${UFFD_FLAVOUR:+-$UFFD_FLAVOUR}
need_tool gnuplot python3
rounds=${BENCH_ROUNDS:-3}
out=${BENCH_OUT:-$TOP/Documentation/perf}
second=patched name=$tree first_append=
if [ "${BENCH_AA:-0}" = 1 ]; then
	second=unpatched name=$tree-aa
elif [ "${BENCH_COUNT_OFF:-0}" = 1 ]; then
	name=$tree-count-off first_append=uffd_count_off=1
fi

for variant in $(printf '%s\n' unpatched $second | sort -u); do
	obj=$("$TOP/scripts/build-kernel.sh" "$tree" "$variant" | tail -n 1)
	src=$("$TOP/scripts/prepare-tree.sh" --variant "$variant" "$tree")
	dir=$BUILD/bench/$tree-$variant$fl
	rm -rf "$dir"
	mkdir -p "$dir/bin" "$dir/st"
	make -s -C "$TOP/selftests" KSRC="$src" KHDR="$obj/usr/include" OUT="$dir/bin" \
		"$dir/bin/uffd-release-gup-bench" "$dir/bin/uffd-collapse-guard" ||
		die "the selftests do not build against $tree-$variant"
	make -s -C "$TOP/bench" KSRC="$src" KHDR="$obj/usr/include" OUT="$dir/bin" ||
		die "uffd-bench does not build against $tree-$variant"
	wrap_list "$TOP/bench/bench.list" "$dir/bin" "$dir/st"
	cp "$TOP/bench/expectations" "$dir/st/"
	UFFD_SELFTESTS=$dir/st UFFD_PREBUILT=$dir/bin UFFD_INITRD=$dir/initramfs.cpio \
		"$TOP/scripts/build-initramfs.sh" "$tree" "$variant" >/dev/null
done

# The experiment's kernel: the patched tree plus the patch, in a worktree
# of its own, configured as the patched kernel; booted through a build
# directory of its own that the boot loop below points run-vm.sh at.
kbuild=$BUILD
if [ -n "$first_append" ]; then
	exp=$TOP/bench/experiments/$tree-count-off.patch
	[ -f "$exp" ] || die "$tree has no count-off experiment ($exp)"
	psrc=$BUILD/src/$tree-patched esrc=$BUILD/src/$tree-count-off
	eobj=$BUILD/obj/$tree-count-off$fl
	# Kept while it is the patched tree plus this patch: checking a kernel
	# out takes minutes, and a fresh checkout rebuilds every object.
	pid=$(git patch-id --stable <"$exp" | cut -d' ' -f1)
	if [ "$(git -C "$esrc" rev-parse -q --verify HEAD~1 2>/dev/null)" != \
		"$(git -C "$psrc" rev-parse HEAD)" ] ||
		[ "$(git -C "$esrc" show HEAD | git patch-id --stable | cut -d' ' -f1)" != "$pid" ]; then
		git -C "$psrc" worktree remove --force --force "$esrc" 2>/dev/null || rm -rf "$esrc"
		git -C "$psrc" worktree prune
		git -C "$psrc" worktree add -q --detach "$esrc" HEAD
		git -C "$esrc" -c user.name=bench -c user.email=bench@localhost am -q "$exp" ||
			die "$exp does not apply to $tree-patched"
	fi
	mkdir -p "$eobj"
	cp "$BUILD/obj/$tree-patched$fl/.config" "$eobj/.config"
	kmake_init "$esrc" "$eobj"
	timer_start
	log "building the count-off experiment in $eobj"
	"${kmake[@]}" olddefconfig bzImage >"$eobj/build.log" 2>&1 ||
		die "the count-off kernel does not build (see $eobj/build.log)"
	timer_end "build-$tree-count-off$fl"
	kbuild=$BUILD/bench/$tree-count-off-boot
	rm -rf "$kbuild"
	mkdir -p "$kbuild/obj/$tree-patched$fl/arch/x86/boot"
	ln -s "$eobj/arch/x86/boot/bzImage" "$kbuild/obj/$tree-patched$fl/arch/x86/boot/"
fi

consoles=()
bad=0
for r in $(seq 1 "$rounds"); do
	# The report's slot, the kernel booted in it
	for slot in unpatched:unpatched patched:$second; do
		variant=${slot#*:} slot=${slot%%:*} append=
		if [ -n "$first_append" ]; then
			# Both slots boot the experiment's image, the first with the parameter.
			variant=patched
			[ "$slot" = unpatched ] && append=$first_append
		fi
		run=$BUILD/runs/$name-$slot$fl-bench-$r
		UFFD_BUILD=$kbuild UFFD_APPEND=$append UFFD_SELFTESTS=$BUILD/bench/$tree-$variant$fl/st \
			UFFD_INITRD=$BUILD/bench/$tree-$variant$fl/initramfs.cpio UFFD_RUN=$run \
			"$TOP/scripts/run-vm.sh" "$tree" "$variant" | tail -n 1 || {
			warn "$tree-$variant round $r: the verdict failed (see $run/console.log)"
			bad=1
		}
		consoles+=("$slot=$run/console.log")
	done
done

mkdir -p "$out"
# The command that measured it, for the report
how="make bench TREE=$tree"
[ "$name" = "$tree" ] ||
	how="BENCH_$(echo "${name#"$tree"-}" | tr 'a-z-' 'A-Z_')=1 $how"
python3 "$TOP/scripts/bench-report.py" --tree "$name" --out "$out" --how "$how" \
	--base "$tree: $(base_get "$tree" package) $(base_get "$tree" version), kernels: ${UFFD_FLAVOUR:-normal} flavour" \
	"${consoles[@]}" || bad=1
[ $bad = 0 ] || die "$name: the bench did not run clean (see above)"
log "$name: results in $out/$name.md"
