#!/usr/bin/env python3
"""cpycompare.py: compares one mode's results of cpytest.py with the bare
run's, for t_cpython.sh.

  cpycompare.py BARE RESULTS EXPECTED MODE

BARE and RESULTS hold "CASE RESULT" lines. EXPECTED holds one entry a
line, "MODES CASE REASON" (MODES a comma list of modes, CASE with a "~"
prefix when it may pass or fail, and a "*" glob for every case of a class
or group; "#" starts a comment). Prints one line per case lost (passed
bare, not in MODE and not listed for it), per stale entry (no case it
names passed bare and failed in MODE, unless it is marked "~"), and per
listed case that did not pass; the last line is the summary "MODE: N passed bare, M
passed under egress, K listed (L failed as listed)". Exits 1 when a case
was lost or an entry is stale.
"""
import fnmatch
import sys


def results(path):
    """CASE -> RESULT from a cpytest.py output."""
    out = {}
    with open(path) as f:
        for ln in f:
            parts = ln.split()
            if len(parts) == 2:
                out[parts[0]] = parts[1]
    return out


def expected(path, mode):
    """CASE (or glob) -> (intermittent, reason, line number) of MODE's
    entries."""
    out = {}
    with open(path) as f:
        for n, ln in enumerate(f, 1):
            ln = ln.strip()
            if not ln or ln.startswith("#"):
                continue
            modes, case, reason = (ln.split(None, 2) + ["", ""])[:3]
            if mode not in modes.split(","):
                continue
            flaky = case.startswith("~")
            out[case.lstrip("~")] = (flaky, reason, n)
    return out


def main(bare_path, res_path, exp_path, mode):
    bare = results(bare_path)
    got = results(res_path)
    listed = expected(exp_path, mode)
    bad = 0
    passed_bare = [c for c, r in bare.items() if r == "pass"]
    used = {}  # entry -> cases it excused
    for c in sorted(passed_bare):
        r = got.get(c, "missing")
        if r == "pass":
            continue
        entry = next((e for e in listed if fnmatch.fnmatchcase(c, e)), None)
        if entry is not None:
            used.setdefault(entry, []).append(c)
            print("listed %s: %s (%s)" % (c, r, listed[entry][1]))
        else:
            print("lost %s: passed bare, %s under %s" % (c, r, mode))
            bad += 1
    for e, (flaky, reason, n) in sorted(listed.items()):
        if not any(fnmatch.fnmatchcase(c, e) for c in bare):
            print("stale (line %d) %s: no such case" % (n, e))
            bad += 1
        elif e not in used and not flaky:
            print("stale (line %d) %s: passes under %s (%s)" % (n, e, mode, reason))
            bad += 1
    failed_listed = sum(len(v) for v in used.values())
    print("%s: %d passed bare, %d passed under egress, %d listed (%d failed as listed)" % (
        mode, len(passed_bare), sum(1 for r in got.values() if r == "pass"), len(listed),
        failed_listed))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
