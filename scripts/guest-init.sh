#!/bin/busybox sh
# shellcheck shell=dash
# SPDX-License-Identifier: GPL-2.0
#
# /init of the bench initramfs. Mounts the pseudo filesystems, runs every
# test of /tests/tests.list with its time limit, prints kselftest-style TAP
# on the console (each test's own TAP nested behind "# ") and reboots.
# A test's limit is a watchdog on its output, not a budget for its whole
# run: a test that printed nothing for its limit is killed with its process
# group (a busy host slows a test down but does not silence it; a hang
# does). One that cannot be killed (stuck in D state) is reported, the
# blocked tasks are dumped, and the run goes on without waiting for it.

/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
echo 64 >/proc/sys/vm/nr_hugepages 2>/dev/null

# The debug module: the tests that use it find it loaded.
if [ -f /lib/modules/uffd_debug.ko ]; then
	insmod /lib/modules/uffd_debug.ko ||
		echo "# uffd-bench: insmod uffd_debug.ko failed"
fi

kernel=$(sed -n 's/.*uffd_bench.kernel=\([^ ]*\).*/\1/p' /proc/cmdline)
only=$(sed -n 's/.*uffd_bench.only=\([^ ]*\).*/\1/p' /proc/cmdline)
slow=$(sed -n 's/.*uffd_bench.slow=\([0-9]*\).*/\1/p' /proc/cmdline)
# uffd_bench.seed=N replays a run: every test gets UFFD_RANDOM=N in its
# environment (the tests without random choices ignore it).
seed=$(sed -n 's/.*uffd_bench.seed=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -z "$seed" ] || export UFFD_RANDOM="$seed"
# The tests' own case deadlines stretch with the limits.
export UFFD_TIMEOUT_SCALE=${slow:-1}

# kmemleak (the debug flavour): what boot itself leaves unreferenced (6.1's
# early ACPI caches) is not the suite's doing. Scan past kmemleak's minimum
# object age, twice (a scan reports objects that were already that old at
# the scan before it), and mark those seen, so that kmemleak-scan, last,
# reports only what the suite leaked. The parser ignores kmemleak's report
# between these two lines.
km=/sys/kernel/debug/kmemleak
if [ -w $km ]; then
	echo "# uffd-bench: kmemleak baseline: scanning what boot left"
	sleep 6
	echo scan >$km
	echo scan >$km
	echo "# uffd-bench: kmemleak baseline: $(grep -c '^unreferenced object' $km) object(s) from boot, cleared"
	echo clear >$km
fi

# Let the console settle so boot messages do not cut through TAP lines.
sleep 1

tests=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' /tests/tests.list |
	while read -r name limit; do
		case ",$only," in ,,|*",$name,"*) echo "$name:$limit" ;; esac
	done)
n=0
for t in $tests; do n=$((n + 1)); done

echo "TAP version 13"
echo "# uffd-bench: kernel $kernel ($(uname -r)), $n test(s)"
echo "# uffd-bench: cpus online $(grep -c '^processor' /proc/cpuinfo) of $(sed -n 's/.*uffd_bench.cpus=\([0-9]*\).*/\1/p' /proc/cmdline)"
echo "1..$n"

# elapsed T0: seconds since uptime T0, one decimal.
elapsed() {
	awk -v t0="$1" '{ printf "%.1f", $1 - t0 }' /proc/uptime
}

# uptime_cs: the uptime in centiseconds (/proc/uptime has two decimals).
uptime_cs() {
	local up _
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# kill_session SID: SIGKILL every process of session SID (a test runs in
# a session of its own; its cases may have process groups of their own).
kill_session() {
	local sid=$1 d stat
	for d in /proc/[0-9]*; do
		read -r stat 2>/dev/null <"$d/stat" || continue
		# After the command name: state, ppid, pgrp, session.
		# shellcheck disable=SC2086 # split on purpose
		set -- ${stat##*) }
		[ "${4:-}" = "$sid" ] && kill -9 "${d#/proc/}" 2>/dev/null
	done
	return 0
}

i=0
for t in $tests; do
	i=$((i + 1))
	name=${t%%:*}
	limit=$((${t#*:} * ${slow:-1}))
	rm -f /tmp/rc /tmp/pid /tmp/lines
	t0=$(cut -d' ' -f1 /proc/uptime)
	echo "# selftests: uffd-robust: $name"
	# awk, not sed: sed holds each line back until it has read the next.
	# It also keeps the count of the test's lines in /tmp/lines: the
	# watchdog below restarts whenever it moves.
	# shellcheck disable=SC2016 # $$ and $0 are the inner sh's
	(
		cd /tests &&
			setsid sh -c 'echo $$ >/tmp/pid; exec ./"$0"' "$name" 2>&1
		echo $? >/tmp/rc
	) | awk '{ print "# " $0; fflush(); print ++n > "/tmp/lines"; close("/tmp/lines") }' &
	pipe=$!
	# Silence is measured on the clock, not in rounds of the loop: each
	# round takes longer than its sleep, more so on a busy host.
	last=$(uptime_cs)
	seen=0
	while [ ! -f /tmp/rc ]; do
		sleep 0.1
		lines=$seen
		[ -f /tmp/lines ] && read -r lines </tmp/lines
		if [ "${lines:-$seen}" != "$seen" ]; then
			seen=$lines
			last=$(uptime_cs)
		fi
		[ $(($(uptime_cs) - last)) -ge $((limit * 100)) ] && break
	done
	if [ -f /tmp/rc ]; then
		# The test is done: its leftover children go with it, also
		# those in process groups of their own (run_case()'s cases).
		pid=$(cat /tmp/pid 2>/dev/null)
		[ -n "$pid" ] && kill_session "$pid"
		# A leftover process of the test (stuck in D state, say) can
		# hold the output pipe open: give the output 5 s, not forever.
		waited=0
		while kill -0 $pipe 2>/dev/null && [ $waited -lt 50 ]; do
			sleep 0.1
			waited=$((waited + 1))
		done
		if kill -0 $pipe 2>/dev/null; then
			echo "# uffd-bench: $name exited but a leftover process holds its output"
			kill $pipe 2>/dev/null
		fi
		rc=$(cat /tmp/rc)
		echo "# uffd-bench: $name took $(elapsed "$t0") s (limit $limit s without output)"
		case $rc in
		0) echo "ok $i selftests: uffd-robust: $name" ;;
		4) echo "ok $i selftests: uffd-robust: $name # SKIP" ;;
		*) echo "not ok $i selftests: uffd-robust: $name # exit=$rc" ;;
		esac
		continue
	fi
	pid=$(cat /tmp/pid 2>/dev/null)
	echo "# uffd-bench: $name printed nothing for ${limit} s (running for $(elapsed "$t0") s), killing it"
	[ -n "$pid" ] && kill_session "$pid"
	waited=0
	while [ ! -f /tmp/rc ] && [ $waited -lt 50 ]; do
		sleep 0.1
		waited=$((waited + 1))
	done
	if [ -f /tmp/rc ]; then
		echo "not ok $i selftests: uffd-robust: $name # TIMEOUT $limit seconds without output"
	else
		echo "# uffd-bench: $name did not die after SIGKILL (D state); blocked tasks:"
		echo w >/proc/sysrq-trigger 2>/dev/null
		sleep 1
		echo "not ok $i selftests: uffd-robust: $name # TIMEOUT $limit seconds without output, unkillable"
	fi
done

echo "# uffd-bench: done"
sync
reboot -f
