#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""series-hygiene.py: check what a maintainer checks of a series' form.

Reads patches/TREE/ (format-patch files, cover letter, series file) and
prints one result per line, "ok<TAB>name" or "not ok<TAB>name<TAB>why",
for lint-series.sh to number as TAP:

- the series file lists exactly the numbered patch files, in order;
- the cover letter has a subject "[PATCH 0/N] ...", a summary, a
  diffstat, the base-commit of the prepared tree and the Debian package
  and version the series applies to;
- every patch has a "[PATCH k/N]" subject with a subsystem prefix that
  names what it touches, its author's Signed-off-by, well-formed Fixes:
  tags (12-digit id, quoted subject), and Cc: stable where it carries a
  Fixes: tag (on 6.1.y always: it is a stable tree), unless
  lint.exceptions says why not;
- a stable backport (a body that opens with "commit <sha> upstream.")
  names the full 40-digit upstream id, carries a bracketed backport note
  ("[ ... ]") that says what differs from upstream, then the
  backporter's Signed-off-by last; it keeps upstream's tags as they
  were, so it needs no Fixes: tag for its Cc: stable.
"""
import argparse
import fnmatch
import os
import re
import sys

# Subject prefixes and the paths each may name. A patch's prefix (the part
# before the last ": " of its subject, split at ", " and ": ") must be known, and
# every prefix must match at least one path the patch touches.
PREFIXES = {
    "mm": ["mm/", "include/linux/mm", "include/linux/huge_mm.h", "kernel/fork.c"],
    "mm/khugepaged": ["mm/khugepaged.c", "include/trace/events/huge_memory.h"],
    "mm/shmem": ["mm/shmem.c", "include/linux/shmem_fs.h"],
    "mm/userfaultfd": ["fs/userfaultfd.c", "mm/userfaultfd.c"],
    "mm/hugetlb": ["mm/hugetlb.c", "include/linux/hugetlb.h"],
    "userfaultfd": ["fs/userfaultfd.c", "mm/userfaultfd.c",
                    "include/linux/userfaultfd_k.h",
                    "include/trace/events/userfaultfd.h",
                    "include/uapi/linux/userfaultfd.h",
                    "Documentation/admin-guide/mm/userfaultfd.rst"],
    "Documentation": ["Documentation/"],
    "Documentation/userfaultfd": ["Documentation/admin-guide/mm/userfaultfd.rst"],
    "docs": ["Documentation/"],
    "selftests/mm": ["tools/testing/selftests/mm/"],
    "selftests/vm": ["tools/testing/selftests/vm/"],
}

FIXES_RE = re.compile(r'^Fixes: [0-9a-f]{12,40} \("[^"].*"\)$')
BACKPORT_RE = re.compile(r"^commit ([0-9a-f]+) upstream\.$")


def backport_problems(body):
    """What is wrong with a stable backport's form (stable-kernel-rules)."""
    lines = body.strip("\n").splitlines()
    m = BACKPORT_RE.match(lines[0]) if lines else None
    if not m:
        return None
    probs = []
    if len(m.group(1)) != 40:
        probs.append(f"'{lines[0]}' must name the full 40-digit upstream id")
    if not re.search(r"^\[ .*", body, re.M | re.S) or not re.search(r"\]$", body, re.M):
        probs.append("no bracketed backport note ('[ ... ]') saying what differs from upstream")
    else:
        note_end = max(i for i, l in enumerate(lines) if l.rstrip().endswith("]"))
        after = [l for l in lines[note_end + 1:] if l.strip()]
        if not after or not all(l.startswith("Signed-off-by: ") for l in after):
            probs.append("the backporter's Signed-off-by must follow the backport note")
    return probs


def load_exceptions(path, tree):
    """(glob, check) pairs of lint.exceptions that apply to tree."""
    out = []
    if not path or not os.path.exists(path):
        return out
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split(None, 3)
        if len(f) < 4:
            sys.exit(f"{path}: '{line}': want TREE GLOB CHECK REASON")
        if f[0] in ("*", tree):
            out.append((f[1], f[2]))
    return out


def excepted(exc, name, check):
    return any(fnmatch.fnmatch(name, g) and c == check for g, c in exc)


def parse_patch(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    head, _, rest = text.partition("\n\n")
    # Unfold RFC 2822 header continuation lines.
    head = re.sub(r"\n[ \t]+", " ", head)
    hdr = {}
    for line in head.splitlines():
        k, sep, v = line.partition(": ")
        if sep and k not in hdr:
            hdr[k] = v.strip()
    body, _, diff = rest.partition("\n---\n")
    files = re.findall(r"^diff --git a/(\S+) b/(\S+)$", diff, re.M)
    return hdr, body, diff, sorted({b for _, b in files})


def author_name(frm):
    return re.sub(r"\s*<[^>]*>\s*$", "", frm).strip().strip('"')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pdir")
    ap.add_argument("--tree", required=True)
    ap.add_argument("--base-commit", required=True)
    ap.add_argument("--package", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--exceptions", default="")
    a = ap.parse_args()
    exc = load_exceptions(a.exceptions, a.tree)
    res = []

    def result(name, problems):
        if problems:
            res.append(f"not ok\t{name}\t{'; '.join(problems)}")
        else:
            res.append(f"ok\t{name}")

    # The series file against the files.
    listed = []
    for line in open(os.path.join(a.pdir, "series")):
        line = line.split("#", 1)[0].split()
        if line:
            listed.append(line[0])
    files = sorted(f for f in os.listdir(a.pdir)
                   if re.match(r"^\d{4}-.*\.patch$", f) and not f.startswith("0000-"))
    probs = []
    if sorted(listed) != files:
        extra = sorted(set(listed) - set(files))
        missing = sorted(set(files) - set(listed))
        if extra:
            probs.append("lists missing file(s) " + " ".join(extra))
        if missing:
            probs.append("does not list " + " ".join(missing))
    elif listed != files:
        probs.append("lists the patches out of their numbered order")
    result(f"series {a.tree}: series lists exactly the {len(files)} patch files", probs)
    n = len(files)

    # The cover letter.
    cover = os.path.join(a.pdir, "0000-cover-letter.patch")
    probs = []
    if not os.path.exists(cover):
        probs.append("0000-cover-letter.patch is missing")
    else:
        hdr, body, _, _ = parse_patch(cover)
        subj = hdr.get("Subject", "")
        m = re.match(r"^\[PATCH 0/(\d+)\] (.+)", subj)
        if not m or int(m.group(1)) != n or "***" in subj:
            probs.append(f"subject '{subj}' is not '[PATCH 0/{n}] <summary>'")
        text = open(cover, encoding="utf-8").read()
        if "*** BLURB HERE ***" in text or len(body.split()) < 40:
            probs.append("no summary (fewer than 40 words before the shortlog)")
        if not re.search(r"^ \d+ files? changed", text, re.M):
            probs.append("no diffstat")
        bc = re.findall(r"^base-commit: ([0-9a-f]{40})$", text, re.M)
        if bc != [a.base_commit]:
            probs.append(f"base-commit {bc or 'missing'} is not the prepared tree's base {a.base_commit}")
        flat = " ".join(text.split())
        for what in (a.package, a.version):
            if what not in flat:
                probs.append(f"does not name the base '{what}'")
    result(f"cover {a.tree}: subject, summary, diffstat, base {a.package} {a.version}", probs)

    # Each patch.
    for k, f in enumerate(files, 1):
        hdr, body, diff, touched = parse_patch(os.path.join(a.pdir, f))
        probs = []
        subj = hdr.get("Subject", "")
        m = re.match(r"^\[PATCH (\d+)/(\d+)\] (.*)$", subj)
        if not m or (int(m.group(1)), int(m.group(2))) != (k, n):
            probs.append(f"subject '{subj}' is not numbered [PATCH {k}/{n}]")
            title = subj
        else:
            title = m.group(3)
        prefix, sep, summary = title.rpartition(": ")
        if not sep or not summary:
            probs.append("subject has no 'subsystem: summary' form")
        else:
            for p in re.split(r", |: ", prefix):
                p = p.strip()
                paths = PREFIXES.get(p)
                if paths is None:
                    probs.append(f"unknown subsystem prefix '{p}'")
                elif not any(t.startswith(q) for t in touched for q in paths):
                    probs.append(f"prefix '{p}' names nothing the patch touches")
        frm = hdr.get("From", "")
        sobs = re.findall(r"^Signed-off-by: (.+)$", body, re.M)
        if not sobs:
            probs.append("no Signed-off-by")
        elif not any(author_name(s) == author_name(frm) for s in sobs):
            probs.append(f"no Signed-off-by from the author '{author_name(frm)}'")
        fixes = [l for l in body.splitlines() if l.lower().startswith("fixes:")]
        backport = backport_problems(body)
        if backport is not None:
            probs += backport
        for l in fixes:
            if not FIXES_RE.match(l):
                probs.append(f"malformed '{l}' (want: Fixes: <12-digit id> (\"subject\"))")
        stable = re.search(r"^Cc: stable@vger\.kernel\.org", body, re.M)
        if fixes and not stable and not excepted(exc, f, "NO_CC_STABLE"):
            probs.append("Fixes: without Cc: stable@vger.kernel.org")
        if stable and not fixes and backport is None and not excepted(exc, f, "STABLE_NO_FIXES"):
            probs.append("Cc: stable without a Fixes: tag")
        if not touched:
            probs.append("touches no file")
        tags = "Fixes+stable" if fixes and stable else ("Fixes" if fixes else "no Fixes")
        if backport is not None:
            tags = "stable backport"
        result(f"patch {a.tree}/{k}: subject prefix, Signed-off-by, {tags}: {f}", probs)

    print("\n".join(res))


if __name__ == "__main__":
    main()
