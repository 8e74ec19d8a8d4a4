#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge one bench VM run from its serial console log.

Reads the kselftest-style TAP that the guest /init prints (one top-level
line per test binary, each binary's own TAP nested behind "# "), applies
selftests/expectations for the kernel that ran, and scans the kernel's
messages for WARN, BUG, Oops, KASAN, lockdep, hung-task, soft-lockup and
similar reports. Any such report fails the run even when every test
passed, unless an expectation tolerates that class for the test during
which it appeared.

Prints one line per test case and a last line "N passed, N failed, N skipped";
exits 0 when every case did what its expectation says and the console is
clean, 1 otherwise, 2 on bad usage or input.
"""
import argparse
import fnmatch
import os
import re
import sys

ME = "parse-console"

# Kernel reports that fail a run; the first pattern that matches names it.
SPLATS = [
    ("kasan", re.compile(r"BUG: KASAN: ")),
    ("kfence", re.compile(r"BUG: KFENCE: ")),
    ("ubsan", re.compile(r"UBSAN: ")),
    ("lockdep", re.compile(
        r"WARNING: (possible circular locking dependency|possible recursive "
        r"locking|inconsistent lock state|suspicious RCU usage|bad unlock "
        r"balance|held lock freed|lock held when returning|nested lock)"
        r"|INFO: possible irq lock inversion|DEBUG_LOCKS_WARN_ON"
        r"|BUG: MAX_LOCKDEP|INFO: trying to register non-static key")),
    # Mainline may say "blocked in I/O wait for more than".
    ("hung_task", re.compile(r"INFO: task \S+:\d+ blocked( in I/O wait)? for more than \d+ seconds")),
    ("soft_lockup", re.compile(r"BUG: soft lockup - CPU#\d+ stuck")),
    ("hard_lockup", re.compile(r"Watchdog detected hard LOCKUP")),
    ("rcu_stall", re.compile(r"rcu: INFO: \S+ (self-)?detected stalls?")),
    ("workqueue_lockup", re.compile(r"BUG: workqueue lockup")),
    ("kmemleak", re.compile(r"kmemleak: \d+ new suspected memory leaks")),
    ("oops", re.compile(r"Oops: |general protection fault|BUG: unable to handle")),
    ("bug", re.compile(r"kernel BUG at |BUG: ")),
    # 6.1: "WARNING: CPU: 0 PID: 66 at mm/x.c:1 f+0x2a/0x20f";
    # mainline: "WARNING: mm/x.c:1 at f+0x2a/0x20f, CPU#0: comm/66".
    ("warn", re.compile(r"WARNING: CPU: \d+ PID: \d+ at |WARNING: at |WARNING: \S+:\d+ at \S+, CPU#\d+: ")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
]
SPLAT_CLASSES = [c for c, _ in SPLATS]

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
TOP_START = re.compile(r"^# selftests: uffd-robust: (\S+)$")
TOP_RESULT = re.compile(
    r"^(not )?ok (\d+) selftests: uffd-robust: (\S+)(?:\s+#\s*(.*))?$")
NESTED_PLAN = re.compile(r"^# 1\.\.(\d+)$")
NESTED_RESULT = re.compile(r"^# (not )?ok (\d+)\s*(.*)$")
DONE = "# uffd-bench: done"
CPUS = re.compile(r"^# uffd-bench: cpus online (\d+) of (\d+)")
EXPECTS = ("pass", "fail", "skip", "must-pass")
KMEMLEAK_BASELINE = "# uffd-bench: kmemleak baseline: "
HUNG_TASK = re.compile(r"INFO: task (\S+:\d+) blocked( in I/O wait)? for more than")


def die(msg, code=2):
    print(f"{ME}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def read_tests(path, only):
    tests = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line and (not only or line[0] in only):
                tests.append(line[0])
    return tests


def read_expectations(path):
    """[(test_glob, case_glob, kernel_glob, expect, allowed_splats)]"""
    rules = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 3:
                die(f"{path}:{n}: want 'TEST[:CASE] KERNEL EXPECT', got {line.strip()!r}")
            target, kernel, expect = words
            test, _, case = target.partition(":")
            expect, *allowed = expect.split("+")
            if expect not in EXPECTS:
                die(f"{path}:{n}: unknown expectation {expect!r} (want one of {', '.join(EXPECTS)})")
            for a in allowed:
                if a not in SPLAT_CLASSES:
                    die(f"{path}:{n}: unknown report class {a!r} (known: {', '.join(SPLAT_CLASSES)})")
            rules.append((test, case or "*", kernel, expect, set(allowed)))
    return rules


def kernel_is(kernel, glob):
    """kernel: the names of the kernel that ran (TREE-VARIANT, and
    TREE-VARIANT-FLAVOUR for a flavour); a rule applies when one matches."""
    return any(fnmatch.fnmatchcase(name, glob) for name in kernel)


def expectation(rules, kernel, test, case):
    want = "pass"
    for t, c, k, e, _ in rules:
        if (fnmatch.fnmatchcase(test, t) and fnmatch.fnmatchcase(case, c)
                and kernel_is(kernel, k)):
            want = e
    return want


def tolerated(rules, kernel, test):
    allowed = set()
    for t, _, k, _, a in rules:
        if fnmatch.fnmatchcase(test, t) and kernel_is(kernel, k):
            allowed |= a
    return allowed


def parse(lines):
    """Returns (saw_tap, done, tests, splats, last_line, cpus).

    tests: {name: {"plan": int|None, "cases": [(case, result, note)],
                   "top": (result, note)|None}}
    splats: [(class, test_running_or_None, line_no, text)]
    cpus: (online, requested) as the guest printed them, or None
    """
    saw_tap = done = False
    tests = {}
    current = None
    splats = []
    last = ""
    cpus = None
    baseline = False        # guest-init's kmemleak scan of what boot left
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if line.strip():
            last = line.strip()
        kernel_text = TIMESTAMP.sub("", line, count=1)
        if line.startswith("TAP version"):
            saw_tap = True
            continue
        if line.startswith(DONE):
            done = True
            # printk does not wait for the end of a line: kernel text may
            # follow on it (a hung-task report's next line, say).
            line = line[len(DONE):]
            if not line.strip():
                continue
            kernel_text = TIMESTAMP.sub("", line, count=1)
        m = CPUS.match(line)
        if m:
            cpus = (int(m.group(1)), int(m.group(2)))
            continue
        m = TOP_START.match(line)
        if m:
            current = m.group(1)
            tests[current] = {"plan": None, "cases": [], "top": None}
            continue
        m = TOP_RESULT.match(line)
        if m:
            name = m.group(3)
            t = tests.setdefault(name, {"plan": None, "cases": [], "top": None})
            note = (m.group(4) or "").strip()
            if m.group(1):
                res = "fail"
            elif note.upper().startswith("SKIP"):
                res = "skip"
            else:
                res = "pass"
            t["top"] = (res, note)
            current = None
            continue
        if current and line.startswith("# "):
            m = NESTED_PLAN.match(line)
            if m:
                tests[current]["plan"] = int(m.group(1))
                continue
            m = NESTED_RESULT.match(line)
            if m:
                desc = m.group(3).strip()
                res = "fail" if m.group(1) else "pass"
                mskip = re.match(r"#\s*(SKIP|XFAIL)\b\s*(.*)$", desc, re.I)
                if mskip:
                    if mskip.group(1).upper() == "SKIP":
                        res = "skip"
                    desc = mskip.group(2)
                desc = desc.split(" # ", 1)[0]
                name = desc.split()[0].rstrip(":") if desc.split() else f"case{m.group(2)}"
                tests[current]["cases"].append((name, res, ""))
                continue
            continue
        if line.startswith(KMEMLEAK_BASELINE):
            baseline = "scanning" in line
            continue
        if line.startswith("#"):
            continue
        for cls, rx in SPLATS:
            if baseline and cls == "kmemleak":
                continue
            if rx.search(kernel_text):
                splats.append((cls, current, n, kernel_text.strip()))
                break
    return saw_tap, done, tests, splats, last, cpus


def leftover_of(task, tests):
    """The test whose own process @task ("comm:pid") is, when one ran: a
    test that leaves a task hung on purpose may exit before the hung-task
    detector's first report of it (the comm is the binary's name, cut to
    15 characters)."""
    comm = task.rsplit(":", 1)[0]
    for name in tests:
        if name[:15] == comm:
            return name
    return None


def judge(kernel, tests_listed, rules, saw_tap, done, tests, splats,
          guest_timeout, cpus=None):
    """[(test, case, result, expect, verdict, note)], verdict in ok/FAIL/skip."""
    rows = []

    def add(test, case, result, note=""):
        want = expectation(rules, kernel, test, case)
        if result == "skip":
            verdict = "ok" if want == "skip" else "skip"
            if want == "must-pass":
                verdict = "FAIL"
                note = (note + "; " if note else "") + "skipped where it must run"
        elif result == want or (result, want) == ("pass", "must-pass"):
            verdict = "ok"
        else:
            verdict = "FAIL"
            if want == "fail" and result == "pass":
                note = (note + "; " if note else "") + \
                    "passed on a kernel where its bug is live: the test has no teeth"
            elif want == "skip":
                note = (note + "; " if note else "") + "expected to skip here"
        rows.append((test, case, result, want, verdict, note))

    for test in tests_listed:
        t = tests.get(test)
        if t is None or t["top"] is None and not t["cases"]:
            add(test, "*", "fail", "did not run: the guest hung or died before it"
                if saw_tap else "did not run")
            continue
        for case, res, note in t["cases"]:
            add(test, case, res, note)
        top_res, top_note = t["top"] or ("fail", "no result line: the guest hung or died during it")
        plan = t["plan"]
        if plan is not None and len(t["cases"]) < plan:
            for i in range(len(t["cases"]) + 1, plan + 1):
                add(test, f"case{i}", "fail",
                    f"planned but never reported ({top_note or 'test ended early'})")
        if not t["cases"] and plan is None:
            add(test, test, top_res, top_note)
        elif top_res == "fail" and all(r != "fail" for _, r, _ in t["cases"]) \
                and (plan is None or len(t["cases"]) >= plan):
            add(test, "exit", "fail", f"binary failed after its cases: {top_note}")

    bench = "bench"
    if not saw_tap:
        rows.append((bench, "boot", "fail", "pass", "FAIL", "the kernel never printed TAP"))
    else:
        rows.append((bench, "boot", "pass", "pass", "ok", ""))
        # The tests race threads: a guest that came up with fewer CPUs
        # than QEMU gave it tests something else.
        if cpus is None:
            rows.append((bench, "cpus", "fail", "pass", "FAIL",
                         "the guest did not say how many CPUs it has online"))
        elif cpus[0] != cpus[1]:
            rows.append((bench, "cpus", "fail", "pass", "FAIL",
                         f"{cpus[0]} of {cpus[1]} CPUs online in the guest"))
        else:
            rows.append((bench, "cpus", "pass", "pass", "ok", ""))
        if done:
            rows.append((bench, "complete", "pass", "pass", "ok", ""))
        else:
            why = f"guest did not finish within {guest_timeout} s" if guest_timeout \
                else "guest stopped before the end of the run"
            rows.append((bench, "complete", "fail", "pass", "FAIL", why))
    bad = []
    ok_splats = []
    # A task whose hang a test was allowed to cause is reported again every
    # check period until reboot: tolerate those repeats, of that task only.
    hung_by = {}
    for cls, test, n, text in splats:
        m = HUNG_TASK.search(text) if cls == "hung_task" else None
        if m and not test:
            test = leftover_of(m.group(1), tests)
        if test and cls in tolerated(rules, kernel, test):
            ok_splats.append((cls, test, n, text))
            if m:
                hung_by.setdefault(m.group(1), test)
        elif m and m.group(1) in hung_by:
            ok_splats.append((cls, hung_by[m.group(1)], n, text))
        else:
            bad.append((cls, test, n, text))
    if bad:
        classes = sorted({c for c, _, _, _ in bad})
        cls, test, n, text = bad[0]
        rows.append((bench, "console", "fail", "pass", "FAIL",
                     f"{len(bad)} kernel report(s) [{', '.join(classes)}], first at line {n}"
                     f"{' during ' + test if test else ''}: {text[:160]}"))
    else:
        note = f"{len(ok_splats)} tolerated report(s)" if ok_splats else ""
        rows.append((bench, "console", "pass", "pass", "ok", note))
    return rows, bad, ok_splats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("console")
    ap.add_argument("--kernel", required=True,
                    help="TREE-VARIANT that ran: the expectations that apply")
    ap.add_argument("--name", help="the name its rows and messages carry "
                    "(default: --kernel; TREE-VARIANT-FLAVOUR for a flavour)")
    ap.add_argument("--expectations", required=True)
    ap.add_argument("--tests", required=True, help="selftests/tests.list")
    ap.add_argument("--only", default="", help="comma-separated tests that ran")
    ap.add_argument("--results", help="write a TSV of the verdicts here")
    ap.add_argument("--guest-timeout", type=int, default=0,
                    help="the host killed the guest after this many seconds")
    args = ap.parse_args()
    name = args.name or args.kernel

    for p in (args.console, args.expectations, args.tests):
        if not os.path.isfile(p):
            die(f"no such file: {p}")
    only = set(filter(None, args.only.split(",")))
    listed = read_tests(args.tests, only)
    rules = read_expectations(args.expectations)
    with open(args.console, errors="replace") as f:
        saw_tap, done, tests, splats, last, cpus = parse(f)

    rows, bad, ok_splats = judge((args.kernel, name), listed, rules, saw_tap, done,
                                 tests, splats, args.guest_timeout, cpus)
    width = max(len(f"{t}:{c}") for t, c, *_ in rows)
    for test, case, res, want, verdict, note in rows:
        print(f"{name}: {test + ':' + case:<{width}}  {res:<4} (expect {want:<4}) "
              f"{verdict}{'  - ' + note if note else ''}")
    for cls, test, n, text in bad:
        print(f"{name}: console line {n}: {cls}: {text[:200]}")
    for cls, test, n, text in ok_splats:
        print(f"{name}: console line {n}: {cls} (tolerated during {test}): {text[:200]}")

    if args.results:
        tmp = args.results + ".tmp"
        with open(tmp, "w") as f:
            for row in rows:
                f.write("\t".join((name,) + tuple(row)) + "\n")
        os.replace(tmp, args.results)

    passed = sum(1 for r in rows if r[4] == "ok" and r[2] != "skip")
    failed = sum(1 for r in rows if r[4] == "FAIL")
    skipped = sum(1 for r in rows if r[2] == "skip")

    # One line naming the cause for the failures that end a run early.
    if not saw_tap:
        print(f"{ME}: error: {name}: the kernel did not boot or never printed TAP"
              f"{' (killed after %d s)' % args.guest_timeout if args.guest_timeout else ''};"
              f" last console line: {last[:120]!r}", file=sys.stderr)
    elif not done:
        running = [t for t in listed if t in tests and tests[t]["top"] is None]
        print(f"{ME}: error: {name}: the guest "
              f"{'hung' if args.guest_timeout else 'stopped'}"
              f"{' during test ' + running[0] if running else ''}"
              f"{' (killed after %d s)' % args.guest_timeout if args.guest_timeout else ''}",
              file=sys.stderr)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
