#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""bench-report.py --tree TREE --out DIR VARIANT=CONSOLE...

Read the consoles of make bench's boots (unpatched and patched, several
boots each), take each workload's "bench:" lines, and write DIR/TREE.md
(a Markdown table: figures, patched/unpatched ratios, whether each goal is
met) and DIR/TREE-*.png (gnuplot). Within one boot a workload already
gives the median of its rounds; across boots of one kernel the median of
those is taken, and their spread (least to most, relative to the median)
is shown: it is the noise a ratio must be read against.

Exits non-zero when a workload printed no figure on a kernel, unless it
livelocked there (release under GUP on a kernel with seed 000 live).
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys

BENCH = re.compile(r"^(?:# )+bench: (\S+) (.*)$")
NESTED_RESULT = re.compile(r"^(?:# )+(?:not )?ok \d+ ")
NOT_OK = re.compile(r"^(?:# )+not ok \d+ (bench\.gup(\d+))")
KERNEL = re.compile(r"^# uffd-bench: kernel (\S+) \(([^)]*)\)")

FAULT = ["anon", "shmem", "hugetlb"]
UPKEEP = ["register", "mprotect", "fork", "munmap"]
GUP = [0, 1, 4, 16]
GUARD = [1, 16, 256, 1024, 4096]
FAULT_GOAL, UPKEEP_GOAL = 0.99, 0.98
# The count's upkeep measured within a boot (MISSING vs MINOR), not moved
# by the boots' speeds: held to the fault path's goal.
PAIR_GOAL = 0.99
P99_GOAL_MS, GUARD_GOAL = 5.0, 10.0
# The selftest's rule for "flat" (uffd-collapse-guard.c)
FLAT_FACTOR, FLAT_SLACK_US = 2, 100
# The trees whose unpatched kernel has no collapse guard to compare with:
# 6.1 fills the holes of armed shmem (seed 004 is live there), so the
# patched guard is measured against nothing at all, not against a walk.
NO_GUARD_UNPATCHED = {"6.1"}


def parse_console(path):
    """{key: {field: value}} of one boot, the kernel release, and the
    release-under-GUP cases that livelocked or failed."""
    figures, hung, release = {}, {}, "?"
    case_lines = []     # the nested lines of the case being reported
    for line in open(path, errors="replace").read().splitlines():
        if NESTED_RESULT.match(line):
            m = NOT_OK.match(line)
            if m:
                hung[int(m.group(2))] = any("livelock" in x for x in case_lines)
            case_lines = []
            continue
        case_lines.append(line)
        m = BENCH.match(line)
        if m:
            fields = dict(kv.split("=", 1) for kv in m.group(2).split())
            figures[m.group(1)] = {k: float(v) for k, v in fields.items()}
            continue
        m = KERNEL.match(line)
        if m:
            release = m.group(2)
    return figures, hung, release


class Kernel:
    def __init__(self):
        self.boots = []     # figures per boot
        self.hung = {}      # GUP threads -> livelocked (True) or failed
        self.release = "?"

    def values(self, key, field):
        return [b[key][field] for b in self.boots if key in b and field in b[key]]

    def median(self, key, field):
        v = self.values(key, field)
        return statistics.median(v) if v else None

    def spread(self, key, field):
        v = self.values(key, field)
        if len(v) < 2:
            return None
        return (max(v) - min(v)) / statistics.median(v)


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def num(x, fmt="{:.0f}"):
    return "missing" if x is None else fmt.format(x)


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                              text=True, check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        qemu = "qemu ?"
    return (f"{os.cpu_count()} x {cpu}, {mem:.0f} GiB, {platform.system()} "
            f"{platform.release()}; {qemu}, TCG, guest 2 vCPUs, 1 GiB")


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default="")
    ap.add_argument("--how", default="", help="the command that measured it")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("consoles", nargs="+", metavar="VARIANT=CONSOLE")
    a = ap.parse_args()

    k = {"unpatched": Kernel(), "patched": Kernel()}
    for arg in a.consoles:
        variant, _, path = arg.partition("=")
        if variant not in k or not path:
            ap.error(f"'{arg}' is not VARIANT=CONSOLE (VARIANT: unpatched or patched)")
        figures, hung, release = parse_console(path)
        k[variant].boots.append(figures)
        k[variant].release = release
        for t, lock in hung.items():
            k[variant].hung[t] = k[variant].hung.get(t, False) or lock
    u, p = k["unpatched"], k["patched"]
    tree = a.tree
    missing, met, unmet = [], 0, 0
    md = []
    w = md.append

    def verdict(ok):
        nonlocal met, unmet
        if ok is None:
            return "n/a"
        if ok:
            met += 1
            return "met"
        unmet += 1
        return "**not met**"

    w(f"# make bench: {tree}\n")
    w(f"Measured {datetime.date.today().isoformat()} by `{a.how or 'make bench TREE=' + tree}` "
      f"({len(u.boots)} boot(s) of each kernel, alternating).\n")
    w(f"- tree: {a.base or tree}; unpatched {u.release}, patched {p.release}")
    w(f"- machine: {machine()}")
    w("- figures: the median over boots of each boot's median of rounds; "
      "\"spread\" is (most - least) / median over the boots of one kernel, "
      "the noise a ratio must be read against.\n")

    def rate_table(title, keys, field, goal, unit):
        w(f"## {title}\n")
        w(f"| workload | unpatched {unit} | spread | patched {unit} | spread | "
          f"patched/unpatched | goal >= {goal} |")
        w("|---|---:|---:|---:|---:|---:|---|")
        rows = []
        for key in keys:
            mu, mp = u.median(key, field), p.median(key, field)
            for kern, m in (("unpatched", mu), ("patched", mp)):
                if m is None:
                    missing.append(f"{kern} {key}")
            ratio = mp / mu if mu and mp else None
            w(f"| {key} | {num(mu)} | {pct(u.spread(key, field))} | {num(mp)} | "
              f"{pct(p.spread(key, field))} | {num(ratio, '{:.3f}')} | "
              f"{verdict(None if ratio is None else ratio >= goal)} |")
            rows.append((key, ratio))
        w("")
        return rows

    def pair_table(key, what, unit, est_key):
        w(f"## Counter upkeep within one boot: {what}, MISSING vs MINOR\n")
        have = [kern for kern in ("unpatched", "patched") if k[kern].values(key, "rel")]
        if not have:
            w("Not in these consoles (a uffd-bench without the case).\n")
            return []
        w(f"The same {what} on one shmem range, in MISSING and in MINOR mode, in blocks "
          "interleaved in one process: only MISSING arms the range, so only it updates "
          "the count. Their difference within a boot is not moved by how fast that boot ran. "
          "Per boot, the median over rounds; here the median over boots (least..most).\n")
        w(f"| kernel | MISSING us/{unit} | MINOR us/{unit} | MISSING - MINOR us | MINOR/MISSING |")
        w("|---|---:|---:|---:|---:|")
        for kern in ("unpatched", "patched"):
            kk = k[kern]
            if kern not in have:
                missing.append(f"{kern} {key}")
                w(f"| {kern} | missing | missing | missing | missing |")
                continue
            ex, rl = kk.values(key, "extra_us"), kk.values(key, "rel")
            w(f"| {kern} | {kk.median(key, 'missing_us'):.3f} | {kk.median(key, 'minor_us'):.3f} | "
              f"{statistics.median(ex):+.3f} ({min(ex):+.3f}..{max(ex):+.3f}) | "
              f"{statistics.median(rl):.4f} ({min(rl):.4f}..{max(rl):.4f}) |")
        w("")
        if len(have) < 2:
            return []
        cost = p.median(key, "extra_us") - u.median(key, "extra_us")
        est = p.median(key, "rel") / u.median(key, "rel")
        w(f"- the count per {unit} (patched's MISSING - MINOR less unpatched's): {cost:+.3f} us")
        w(f"- {est_key} patched/unpatched estimated within boots (patched's MINOR/MISSING "
          f"over unpatched's): {est:.3f} (goal >= {PAIR_GOAL}): "
          f"{verdict(est >= PAIR_GOAL)}")
        w("")
        return [(f"{est_key} (in boot)", est)]

    fault_rows = rate_table("Fault resolution throughput (FAULTERS=2 threads, one monitor, "
                            "UFFDIO_COPY)", [f"fault.{t}" for t in FAULT], "faults_per_s",
                            FAULT_GOAL, "faults/s")
    upkeep_rows = rate_table("Counter upkeep on MISSING-armed shmem VMAs",
                             [f"upkeep.{o}" for o in UPKEEP], "ops_per_s", UPKEEP_GOAL,
                             "ops/s")

    pair_rows = pair_table("upkeep.register_pair", "register + unregister pairs", "pair",
                           "upkeep.register")
    pair_rows += pair_table("upkeep.mprotect_pair", "mprotect() split + merge of an armed VMA",
                            "split+merge", "upkeep.mprotect")

    w("## Release under GUP: close(uffd) with faults of proc_read GUP threads waiting in it, "
      "anon\n")
    w("close() runs the release (the monitor has let go of the file): the goal is judged on it. "
      "\"then mmap\" adds taking mmap_lock for write right after (mmap + munmap), which "
      "competes with the GUP threads' read locks.\n")
    w(f"| GUP threads | unpatched close() p50 / p99 ms | patched close() p50 / p99 ms | "
      f"unpatched then mmap p50 / p99 ms | patched then mmap p50 / p99 ms | "
      f"goal: patched close() p99 < {P99_GOAL_MS:g} ms |")
    w("|---:|---:|---:|---:|---:|---|")
    rel = []
    for t in GUP:
        key = f"release.gup{t}"
        cells = []
        for f50, f99 in (("close_p50_us", "close_p99_us"), ("p50_us", "p99_us")):
            for kern, name in ((u, "unpatched"), (p, "patched")):
                m50, v99 = kern.median(key, f50), kern.values(key, f99)
                if kern.hung.get(t):
                    cells.append("hang (livelock)")
                elif t in kern.hung:
                    cells.append("failed")
                elif m50 is None or not v99:
                    cells.append("missing")
                    if f50 == "p50_us":
                        missing.append(f"{name} {key}")
                else:
                    cells.append(f"{m50 / 1000:.2f} / {max(v99) / 1000:.2f}")
        c99 = p.values(key, "close_p99_us")
        ok = None if not c99 else max(c99) / 1000 < P99_GOAL_MS
        if t in p.hung:
            ok = False
        w(f"| {t} | {' | '.join(cells)} | {verdict(ok if t else None)} |")
        rel.append((t, u.median(key, "close_p50_us"), max(u.values(key, "close_p99_us") or [0]) or None,
                    p.median(key, "close_p50_us"), max(c99 or [0]) or None))
    w("\np99 is the worst of the boots' p99 (nearest rank over each boot's rounds). "
      "0 GUP threads is the floor: the same close with nothing faulting; the goal is "
      "judged with GUP threads only.\n")

    w("## Collapse guard: interrupts-off time of MADV_COLLAPSE filling holes, "
      "N mappings of one shmem file, none armed\n")
    w("| N | unpatched us | patched us | unpatched - its N=1 | patched - its N=1 |")
    w("|---:|---:|---:|---:|---:|")
    guard = []
    for n in GUARD:
        key = f"guard.n{n}"
        gu, gp = u.median(key, "irqsoff_us"), p.median(key, "irqsoff_us")
        for kern, m in (("unpatched", gu), ("patched", gp)):
            if m is None:
                missing.append(f"{kern} {key}")
        guard.append((n, gu, gp))
    g1u, g1p = guard[0][1], guard[0][2]
    for n, gu, gp in guard:
        du = gu - g1u if gu is not None and g1u is not None else None
        dp = gp - g1p if gp is not None and g1p is not None else None
        w(f"| {n} | {num(gu)} | {num(gp)} | {num(du, '{:+.0f}')} | {num(dp, '{:+.0f}')} |")
    gNu, gNp = guard[-1][1], guard[-1][2]
    w("")
    if None not in (g1u, g1p, gNu, gNp):
        flat = gNp <= FLAT_FACTOR * g1p + FLAT_SLACK_US
        w(f"- patched flat in N (N={GUARD[-1]} within {FLAT_FACTOR} x N=1 + "
          f"{FLAT_SLACK_US} us, the selftest's rule): {gNp:.0f} vs {g1p:.0f} us: "
          f"{verdict(flat)}")
        if tree.split("-")[0] in NO_GUARD_UNPATCHED:
            w(f"- whole section at N={GUARD[-1]}, unpatched/patched (goal >= "
              f"{GUARD_GOAL:g}x against the i_mmap walk): n/a, the unpatched kernel "
              f"has no guard at all; patched minus unpatched: {gNp - gNu:+.0f} us "
              f"at N={GUARD[-1]}, {g1p - g1u:+.0f} us at N=1")
        else:
            whole = gNu / gNp
            w(f"- whole section at N={GUARD[-1]}, unpatched/patched: {whole:.1f}x "
              f"(goal >= {GUARD_GOAL:g}x): {verdict(whole >= GUARD_GOAL)}")
            w(f"- the part that grows with N (the guard: unpatched's i_mmap walk): "
              f"{gNu - g1u:+.0f} us unpatched, {gNp - g1p:+.0f} us patched")
    w("")

    w(f"Goals: {met} met, {unmet} not met.\n")
    os.makedirs(a.out, exist_ok=True)
    if not a.no_plots:
        plots(a.out, tree, fault_rows + upkeep_rows + pair_rows, rel, guard)
        w(f"![patched/unpatched ratios]({tree}-ratios.png)\n")
        w(f"![release latency]({tree}-release.png)\n")
        w(f"![collapse guard]({tree}-guard.png)\n")
    tmp = os.path.join(a.out, f".{tree}.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(md).rstrip() + "\n")
    os.replace(tmp, os.path.join(a.out, f"{tree}.md"))
    print("\n".join(md))
    for m in missing:
        print(f"error: no figure for {m}", file=sys.stderr)
    return 1 if missing else 0


def plots(out, tree, ratios, rel, guard):
    d = os.path.join(out, f".{tree}-data")
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/ratios", "w") as f:
        for key, r in ratios:
            f.write(f"\"{key}\" {r if r is not None else 'NaN'}\n")
    with open(f"{d}/release", "w") as f:
        for t, u50, u99, p50, p99 in rel:
            f.write(" ".join(str(x / 1000 if x else "NaN") for x in (u50, u99, p50, p99))
                    + f" {t}\n")
    with open(f"{d}/guard", "w") as f:
        for n, gu, gp in guard:
            f.write(f"{n} {gu if gu is not None else 'NaN'} {gp if gp is not None else 'NaN'}\n")
    common = "set terminal pngcairo size 800,450 font ',10' noenhanced\nset grid ytics\n"
    gnuplot(common + f"""set output '{out}/{tree}-ratios.png'
set title '{tree}: patched / unpatched (higher is faster; goals 0.99 fault, 0.98 upkeep)'
set style data histograms
set style fill solid 0.6
set boxwidth 0.7
set yrange [0.8:1.2]
set xtics rotate by -30
unset key
plot '{d}/ratios' using 2:xtic(1) lc rgb '#4477aa', 0.99 with lines lc rgb 'red', \
     0.98 with lines dt 2 lc rgb 'red', 1 with lines lc rgb 'black'
""")
    gnuplot(common + f"""set output '{out}/{tree}-release.png'
set title '{tree}: close(uffd) with GUP threads faulting on the range (close() alone)'
set xlabel 'GUP threads'
set ylabel 'ms (log)'
set logscale y
set xtics ('0' 0, '1' 1, '4' 2, '16' 3)
plot '{d}/release' using 0:1 with linespoints title 'unpatched p50', \
     '' using 0:2 with linespoints title 'unpatched p99', \
     '' using 0:3 with linespoints title 'patched p50', \
     '' using 0:4 with linespoints title 'patched p99', \
     5 with lines dt 2 lc rgb 'red' title 'goal p99 5 ms'
""")
    gnuplot(common + f"""set output '{out}/{tree}-guard.png'
set title '{tree}: interrupts off while MADV_COLLAPSE fills holes'
set xlabel 'mappings of the file (N, log)'
set ylabel 'us'
set logscale x 2
set key left top
plot '{d}/guard' using 1:2 with linespoints title 'unpatched', \
     '' using 1:3 with linespoints title 'patched'
""")
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    os.rmdir(d)


if __name__ == "__main__":
    sys.exit(main())
