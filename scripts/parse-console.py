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
    # Mainline's debugfs warns when an open finds its module's refcount
    # zeroed by a delete_module() that has not yet marked the module GOING:
    # a race of the open with a successful unload, not a module that left
    # its files behind ("debugfs file owner did not clean up at exit").
    # Its own class, so that a test racing opens with unloads on purpose
    # can tolerate this one WARN and no other.
    ("debugfs_unload_race", re.compile(r"WARNING: \S*fs/debugfs/file\.c:\d+ at full_proxy_open_regular\+")),
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
# kselftest_harness.h announces each case before its result; 6.1's names
# a skipped case only there ("ok 3 # SKIP reason").
HARNESS_RUN = re.compile(r"^# #\s+RUN\s+(\S+) \.\.\.$")
DONE = "# uffd-bench: done"
CPUS = re.compile(r"^# uffd-bench: cpus online (\d+) of (\d+)")
EXPECTS = ("pass", "fail", "skip", "must-pass")
KMEMLEAK_BASELINE = "# uffd-bench: kmemleak baseline: "
HUNG_TASK = re.compile(r"INFO: task (\S+:\d+) blocked( in I/O wait)? for more than")
TOOK = re.compile(r"^# uffd-bench: (\S+) took (.*)$")
# "seed N (replay with -s N)" in logs recorded before the tests took it
# from the environment.
SEED = re.compile(r"^# # (?:random start|seed) (\d+) \(replay with")
# How many of a failed case's own lines the summary quotes.
WHY_LINES = 8


def new_test():
    """One test binary's record; see parse()."""
    return {"plan": None, "cases": [], "top": None, "took": None, "seed": None,
            "why": {}, "block": [], "tail": []}


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
                   "top": (result, note)|None, "took": str|None,
                   "seed": str|None, "why": {case: [(line_no, text)]},
                   "block": [...], "tail": [...]}}
    "why" holds each case's own lines (those since the previous case's
    result), "tail" the test's last lines, for the summary of failures.
    splats: [(class, test_running_or_None, line_no, text)]
    cpus: (online, requested) as the guest printed them, or None
    """
    saw_tap = done = False
    tests = {}
    current = None
    running = None          # the harness case announced and not yet reported
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
            tests[current] = new_test()
            # A harness case that died before its result names nothing of
            # the next test.
            running = None
            continue
        m = TOOK.match(line)
        if m and m.group(1) in tests:
            tests[m.group(1)]["took"] = m.group(2)
            continue
        m = TOP_RESULT.match(line)
        if m:
            name = m.group(3)
            t = tests.setdefault(name, new_test())
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
            t = tests[current]
            m = SEED.match(line)
            if m and t["seed"] is None:
                t["seed"] = m.group(1)
            m = NESTED_PLAN.match(line)
            if m:
                tests[current]["plan"] = int(m.group(1))
                continue
            m = HARNESS_RUN.match(line)
            if m:
                running = m.group(1)
            m = NESTED_RESULT.match(line)
            if m:
                desc = m.group(3).strip()
                res = "fail" if m.group(1) else "pass"
                # The directive follows the description ("ok 3 name # SKIP
                # why", kselftest_harness.h on mainline) or stands alone
                # ("ok 3 # SKIP why", ksft_test_result_skip()).
                mskip = re.search(r"(?:^|\s)#\s*(SKIP|XFAIL)\b\s*(.*)$", desc, re.I)
                if mskip:
                    if mskip.group(1).upper() == "SKIP":
                        res = "skip"
                    desc = desc[:mskip.start()].strip() or mskip.group(2)
                desc = desc.split(" # ", 1)[0]
                name = desc.split()[0].rstrip(":") if desc.split() else f"case{m.group(2)}"
                if running:
                    name, running = running, None
                tests[current]["cases"].append((name, res, ""))
                t["why"][name] = t["block"]
                t["block"] = []
                continue
            t["block"].append((n, line[2:]))
            t["tail"] = (t["tail"] + [(n, line[2:])])[-WHY_LINES:]
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
          guest_timeout, cpus=None, killed=""):
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
            why = f"the host stopped the guest after {guest_timeout} s" if guest_timeout \
                else "guest stopped before the end of the run"
            if killed:
                why += f" ({killed})"
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


def brief(test, position, kernel, rules, tests, splats):
    """One line for a test the guest just finished: its cases' verdicts,
    its time and limit; then its FAIL rows. Kernel reports are left to
    the judgment of the whole console."""
    t = tests.get(test)
    if t is None or t["top"] is None:
        return 0
    rows, _, _ = judge(kernel, [test], rules, True, True, tests, [], 0, (1, 1))
    rows = [r for r in rows if r[0] == test]
    ok = sum(1 for r in rows if r[4] == "ok" and r[2] != "skip")
    failed = [r for r in rows if r[4] == "FAIL"]
    skipped = sum(1 for r in rows if r[2] == "skip")
    reports = sum(1 for _, during, _, _ in splats if during == test)
    expected_fails = sum(1 for r in rows if r[4] == "ok" and r[2] == "fail")
    words = [f"{ok} ok" + (f" ({expected_fails} failing as expected)" if expected_fails else "")]
    if failed:
        words.append(f"{len(failed)} FAIL")
    if skipped:
        words.append(f"{skipped} skipped")
    if reports:
        words.append(f"{reports} kernel report(s)")
    took = f" in {t['took']}" if t["took"] else ""
    print(f"{kernel[1]}: {'[' + position + '] ' if position else ''}{test}: "
          f"{', '.join(words)}{took}")
    for r in failed:
        print(f"{kernel[1]}:     FAIL {r[0]}:{r[1]} {r[2]} (expect {r[3]})"
              f"{'  - ' + r[5] if r[5] else ''}")
    return 0


def summarise_failures(name, rows, tests, bad, console, rerun):
    """After the rows: what failed, the console lines that say why, and
    the commands that rerun just those tests with their seeds."""
    print(f"\n{name}: == what failed, and why ({console}) ==")
    rerun_tests = []
    for test, case, res, want, verdict, note in rows:
        if verdict != "FAIL":
            continue
        print(f"{name}: FAIL {test}:{case}: {res} (expect {want}){'  - ' + note if note else ''}")
        t = tests.get(test)
        if t is None:
            continue
        lines = t["why"].get(case) or t["tail"]
        for n, text in [x for x in lines if x[1].strip()][-WHY_LINES:]:
            print(f"{name}:   {n:>6}: {text[:160]}")
        if test not in rerun_tests:
            rerun_tests.append(test)
    if bad:
        cls, test, n, text = bad[0]
        print(f"{name}: first kernel report, line {n}{' during ' + test if test else ''}: "
              f"{text[:160]}")
        for _, test, _, _ in bad:
            if test and test not in rerun_tests:
                rerun_tests.append(test)
    if rerun:
        for test in rerun_tests:
            seed = tests[test]["seed"]
            print(f"{name}: rerun: {rerun} ONLY={test}{' SEED=' + seed if seed else ''}")


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
    ap.add_argument("--guest-killed", default="",
                    help="why the host killed the guest")
    ap.add_argument("--brief", metavar="TEST",
                    help="only say, in one line, how TEST did (a console still growing)")
    ap.add_argument("--position", default="", help="with --brief: 'I/N', the test's place in the run")
    ap.add_argument("--rerun", help="the command that reruns this kernel's run: "
                    "a summary of the failures ends with it, for the failed tests")
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

    if args.brief:
        return brief(args.brief, args.position, (args.kernel, name), rules, tests, splats)

    rows, bad, ok_splats = judge((args.kernel, name), listed, rules, saw_tap, done,
                                 tests, splats, args.guest_timeout, cpus, args.guest_killed)
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
    if failed:
        summarise_failures(name, rows, tests, bad, args.console, args.rerun)

    # One line naming the cause for the failures that end a run early.
    if not saw_tap:
        print(f"{ME}: error: {name}: the kernel did not boot or never printed TAP"
              f"{' (killed after %d s)' % args.guest_timeout if args.guest_timeout else ''};"
              f" last console line: {last[:120]!r}", file=sys.stderr)
    elif not done:
        running = [t for t in listed if t in tests and tests[t]["top"] is None]
        killed = ""
        if args.guest_timeout:
            killed = f" (killed after {args.guest_timeout} s" + \
                (f": {args.guest_killed})" if args.guest_killed else ")")
        print(f"{ME}: error: {name}: the guest "
              f"{'hung' if args.guest_timeout else 'stopped'}"
              f"{' during test ' + running[0] if running else ''}{killed}",
              file=sys.stderr)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
