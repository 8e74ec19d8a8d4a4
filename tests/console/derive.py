#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Derive the parser's fixtures from clean.log, a real console of a clean run.

Kernel reports are spliced in, in the formats the kernel prints them, at
the point where uffd-smoke runs; TAP lines are edited as a failing, a
skipped or a killed case would print them. Rerun after recording a new
clean.log (cp build/runs/6.1-unpatched/console.log tests/console/clean.log
after a run of uffd-smoke alone).
"""
import os

os.chdir(os.path.dirname(os.path.abspath(__file__)))
base = open("clean.log").read().splitlines(keepends=True)
AFTER = "# ok 2 missing_copy.anon"


def idx(prefix, lines=base):
    return next(i for i, x in enumerate(lines) if x.startswith(prefix))


def kernel(t, text):
    return [f"[{t:12.6f}] {x}\n" for x in text.strip("\n").split("\n")]


def splice(name, block, after=AFTER):
    i = idx(after)
    open(name, "w").writelines(base[:i + 1] + block + base[i + 1:])


def edit(name, pairs):
    out = []
    for line in base:
        for a, b in pairs:
            line = line.replace(a, b)
        out.append(line)
    open(name, "w").writelines(out)


splice("warn.log", kernel(3.201234, """------------[ cut here ]------------
WARNING: CPU: 1 PID: 73 at mm/khugepaged.c:1812 collapse_file+0x8f1/0x1230
Modules linked in:
CPU: 1 PID: 73 Comm: uffd-smoke Not tainted 6.1.192+ #1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:collapse_file+0x8f1/0x1230
Call Trace:
 <TASK>
 hpage_collapse_scan_file+0x2a1/0x3f0
 madvise_collapse+0x1f5/0x3c0
 </TASK>
---[ end trace 0000000000000000 ]---"""))
# Mainline prints a WARN as "WARNING: FILE:LINE at FUNC, CPU#N: COMM/PID"
# (a format the parser once missed: a real counter WARN went unreported).
splice("warn-mainline.log", kernel(3.201234, """------------[ cut here ]------------
WARNING: mm/shmem.c:1417 at shmem_evict_inode+0x2a/0x20f, CPU#0: uffd-smoke/66
Modules linked in: uffd_debug(O)
CPU: 0 UID: 0 PID: 66 Comm: uffd-smoke Tainted: G           O        7.3.0-rc7+ #1 PREEMPTLAZY
---[ end trace 0000000000000000 ]---"""))
# guest-init's boot-time kmemleak scan: its report is the baseline, not a
# failure; a later report is.
BASELINE = kernel(2.9, "kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)")
splice("kmemleak-baseline.log",
       ["# uffd-bench: kmemleak baseline: scanning what boot left\n"] + BASELINE +
       ["# uffd-bench: kmemleak baseline: 3 object(s) from boot, cleared\n"],
       after="TAP version 13")
splice("kmemleak-after.log",
       ["# uffd-bench: kmemleak baseline: scanning what boot left\n",
        "# uffd-bench: kmemleak baseline: 0 object(s) from boot, cleared\n"] + BASELINE)
splice("kasan.log", kernel(3.4, """==================================================================
BUG: KASAN: use-after-free in userfaultfd_ctx_put+0x2f/0x120
Read of size 4 at addr ffff888004a1c010 by task uffd-smoke/75
CPU: 0 PID: 75 Comm: uffd-smoke Not tainted 6.1.192+ #1
=================================================================="""))
splice("lockdep.log", kernel(3.5, """======================================================
WARNING: possible circular locking dependency detected
6.1.192+ #1 Not tainted
------------------------------------------------------
uffd-smoke/75 is trying to acquire lock:
ffff888003a4c1d8 (&mm->mmap_lock){++++}-{3:3}, at: userfaultfd_release+0x5a/0x200
but task is already holding lock:
ffff888003f2e0a8 (&ctx->fault_pending_wqh){....}-{2:2}, at: userfaultfd_release+0x30/0x200"""))
splice("hung-task-iowait.log", kernel(30.1, """INFO: task uffd-smoke:80 blocked in I/O wait for more than 15 seconds.
      Not tainted 7.3.0-rc7+ #1
"""))
splice("hung-task.log", kernel(30.1, """INFO: task uffd-smoke:80 blocked for more than 15 seconds.
      Not tainted 6.1.192+ #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:uffd-smoke      state:D stack:0     pid:80    ppid:75     flags:0x00004000
Call Trace:
 <TASK>
 rwsem_down_write_slowpath+0x2c1/0x6b0
 userfaultfd_release+0x7d/0x200
 </TASK>"""))
splice("soft-lockup.log", kernel(22.0, """watchdog: BUG: soft lockup - CPU#0 stuck for 11s! [uffd-smoke:79]
Modules linked in:
CPU: 0 PID: 79 Comm: uffd-smoke Not tainted 6.1.192+ #1
RIP: 0010:__get_user_pages+0x1a4/0x6d0"""))
splice("rcu-stall.log", kernel(25.0, """rcu: INFO: rcu_sched self-detected stall on CPU
rcu: 	0-....: (21002 ticks this GP) idle=1c4c/1/0x4000000000000000 softirq=2161/2161 fqs=5174"""))

edit("hugetlb-fails.log", [
    ("# ok 4 missing_copy.hugetlb",
     "# # missing_copy.hugetlb: MISSING fault for page 1, already installed\n"
     "# not ok 4 missing_copy.hugetlb"),
    ("Totals: pass:4 fail:0", "Totals: pass:3 fail:1"),
    ("ok 1 selftests: uffd-robust: uffd-smoke",
     "not ok 1 selftests: uffd-robust: uffd-smoke # exit=1")])
edit("skip.log", [
    ("# ok 4 missing_copy.hugetlb",
     "# # hugetlb: cannot map 8388608 bytes: Cannot allocate memory\n"
     "# ok 4 # SKIP missing_copy.hugetlb"),
    ("Totals: pass:4 fail:0 xfail:0 xpass:0 skip:0",
     "Totals: pass:3 fail:0 xfail:0 xpass:0 skip:1")])
# A guest that came up with fewer CPUs than QEMU gave it.
edit("one-cpu.log", [("# uffd-bench: cpus online 2 of 2", "# uffd-bench: cpus online 1 of 2")])

# The test's own output, and the runner's, quoting kernel words.
i = idx("# ok 1 api")
j = idx("# uffd-bench: kernel")
lines = list(base)
lines.insert(i + 1, "# # diag: expected no 'BUG: soft lockup' and no WARNING: CPU: 0 PID: 1 at mm/gup.c:1 here\n")
lines.insert(j + 1, "# uffd-bench: note: a runner comment quoting WARNING: CPU: 0 PID: 1 at mm/gup.c:1 is not a report\n")
open("test-text.log", "w").writelines(lines)

# The guest hangs in the middle of the test: the console stops.
i = idx(AFTER)
open("hang.log", "w").writelines(
    base[:i + 1] + kernel(30.2, "INFO: task uffd-smoke:80 blocked for more than 15 seconds."))
# The guest kills a test that outlived its time limit; the run goes on.
j = idx("ok 1 selftests")
open("timeout.log", "w").writelines(
    base[:i + 1] + ["# uffd-bench: uffd-smoke still running after 120 s, killing it\n",
                    "not ok 1 selftests: uffd-robust: uffd-smoke # TIMEOUT 120 seconds\n"]
    + base[j + 1:])
# The kernel never reaches /init.
k = next(i for i, x in enumerate(base) if "Freeing unused kernel" in x or "Run /init" in x)
open("no-tap.log", "w").writelines(base[:k] + kernel(0.9, """Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux and Documentation/admin-guide/init.rst for guidance.
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.192+ #1
---[ end Kernel panic - not syncing: No working init found. ]---"""))
