#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""compare-warnings.py: the warnings a patched tree adds to its base.

    compare-warnings.py [--strip PREFIX]... BASE.log PATCHED.log

Reads compiler (gcc W=1), sparse and coccicheck output of the same files
built from the unpatched and the patched tree and prints the diagnostics
of PATCHED.log that BASE.log does not have. Line and column numbers move
when a patch adds lines above a warning, so a diagnostic is keyed by its
file (with the tree's PREFIX removed), its severity and its text (line
numbers inside the text, "at line 123", masked), and compared as a
multiset: a second copy of a known warning in the same file is new.
Prints "N new, M known" last; exits 1 when anything is new.
"""
import argparse
import collections
import re
import sys

DIAG = re.compile(r"^(?P<file>[^:\s]+\.[chS]):(?P<line>\d+)(?::\d+)?(?:-\d+)?:\s*"
                  r"(?P<sev>warning|error|WARNING|ERROR|INFO|CHECK):?\s*(?P<msg>.*)$")
# sparse continues a warning on lines without a severity ("   expected ...").
CONT = re.compile(r"^(?P<file>[^:\s]+\.[chS]):(?P<line>\d+)(?::\d+)?:\s{2,}(?P<msg>\S.*)$")
LINE_REF = re.compile(r"\b(line|lines) \d+")


def read(path, strips):
    diags = []
    last = None
    for raw in open(path, encoding="utf-8", errors="replace"):
        raw = raw.rstrip("\n")
        line = raw
        for s in strips:
            line = line.replace(s, "")
        m = DIAG.match(line)
        if m:
            last = (m.group("file"), m.group("sev").lower(), LINE_REF.sub(r"\1 N", m.group("msg")))
            diags.append((last, raw))
            continue
        m = CONT.match(line)
        if m and last:
            # Part of the warning before it: key it with that warning.
            diags.append(((last[0], last[1], last[2] + " | " + m.group("msg")), raw))
    return diags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strip", action="append", default=[],
                    help="path prefix to remove (the tree's source directory)")
    ap.add_argument("base")
    ap.add_argument("patched")
    a = ap.parse_args()
    strips = sorted(a.strip, key=len, reverse=True)
    base = collections.Counter(k for k, _ in read(a.base, strips))
    new = []
    known = 0
    for k, raw in read(a.patched, strips):
        if base[k] > 0:
            base[k] -= 1
            known += 1
        else:
            new.append(raw)
    for raw in new:
        print(raw)
    print(f"{len(new)} new, {known} known")
    sys.exit(1 if new else 0)


if __name__ == "__main__":
    main()
