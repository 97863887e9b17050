#!/usr/bin/python3.11
"""cpytest.py: runs CPython's own unittest modules (Debian's
libpython3.11-testsuite) and prints one line per case, "CASE RESULT", RESULT
pass, fail, error, skip, timeout or notrun, sorted by CASE, for t_cpython.sh to
compare between runs.

  cpytest.py [-j N] [--shards N] [--case-timeout S] [--module-timeout S]
             [--times FILE] MODULE...

MODULE is a module of the package test (test_socket,
test_asyncio.test_streams). CASE is
the unittest id without its "test." prefix (test_socket.GeneralModuleTests.
testFoo); an error in a class or module fixture is its own case
("setUpClass(test_x.Y)") and the cases it kept from running are missing.
An expected failure counts as pass, an unexpected success as fail, a case
with a failing subtest as fail.

Each module runs in child interpreters of its own, its cases dealt out to
--shards N of them (default 1; a case stuck holds up only its shard); -j N
children run at once. A child first lists its cases, then says when each starts and how it ended,
on a pipe apart from the tests' own output (that goes to /dev/null). A
case that makes no progress for --case-timeout seconds (default 20) is
reported as timeout (a child still listing its cases gets 60 s): the
child is killed and a new one runs the shard's
remaining cases. Once a shard has run --module-timeout seconds (default
120), its cases not yet run are reported as notrun. --times FILE writes
"CASE SECONDS" for each case that ended.

No test resources are enabled (test.support.use_resources is empty), so
the cases that need the internet ("network", "urlfetch") are skipped.
"""
import os
import select
import subprocess
import sys
import time
import unittest


# ------------------------------------------------------------- the child


def child(fd, module, shard, skip):
    """Runs MODULE's cases of SHARD ("K/N": the Kth of every N, from 0) but
    those in SKIP, writing "plan ID", "start ID"
    and "RESULT ID" lines to FD; returns 0."""
    from test import support

    support.use_resources = []
    support.verbose = 0
    out = os.fdopen(fd, "w", buffering=1)

    def say(what, test):
        out.write("%s %s\n" % (what, case_id(test)))

    suite = unittest.defaultTestLoader.loadTestsFromName("test." + module)
    k, n = map(int, shard.split("/"))
    cases = [t for i, t in enumerate(flatten(suite))
             if i % n == k and case_id(t) not in skip]
    for t in cases:
        say("plan", t)
    out.write("planned\n")

    class Result(unittest.TestResult):
        def startTest(self, test):
            super().startTest(test)
            self._bad = False
            say("start", test)

        def addSuccess(self, test):
            say("pass", test)

        def addExpectedFailure(self, test, err):
            say("pass", test)

        def addUnexpectedSuccess(self, test):
            say("fail", test)

        def addFailure(self, test, err):
            say("fail", test)

        def addError(self, test, err):
            say("error", test)

        def addSkip(self, test, reason):
            say("skip", test)

        def addSubTest(self, test, subtest, err):
            if err is not None and not self._bad:
                self._bad = True
                say("fail", test)

    unittest.TestSuite(cases).run(Result())
    out.write("done\n")
    out.close()
    return 0


def flatten(suite):
    """Every test of SUITE, in order, as a list."""
    if isinstance(suite, unittest.TestSuite):
        return [t for s in suite for t in flatten(s)]
    return [suite]


def case_id(test):
    """The stable name of TEST: its id without the "test." prefix (a
    fixture's error holder: its description, likewise, without spaces)."""
    i = test.id() if hasattr(test, "id") else str(test)
    return i.replace(" (test.", "(").replace(" ", "_").removeprefix("test.")


# ------------------------------------------------------------- the parent


class Module:
    """One module's state: its cases' results and the child running it."""

    def __init__(self, name, shard):
        self.name = name
        self.shard = shard  # "K/N"
        self.results = {}  # case -> result (a case's first one counts)
        self.plan = {}  # cases any child listed, in order (a dict as a set)
        self.current = None  # the case started and not yet ended
        self.proc = None
        self.rfd = -1
        self.buf = b""
        self.began = None  # time the first child started
        self.progress = 0.0  # time of the last line
        self.finished = False
        self.planned = False  # the child listed all its cases
        self.started = 0.0  # time the current case started
        self.times = {}  # case -> seconds it took

    def spawn(self):
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(w), self.name, self.shard],
            pass_fds=(w,), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(w)
        self.proc.stdin.write("".join(c + "\n" for c in self.results).encode())
        self.proc.stdin.close()
        self.rfd = r
        self.buf = b""
        self.current = None
        self.planned = False
        self.progress = time.monotonic()
        if self.began is None:
            self.began = self.progress

    def line(self, text):
        what, _, case = text.partition(" ")
        if what == "plan":
            self.plan.setdefault(case)
        elif what == "start":
            self.current = case
            self.started = time.monotonic()
        elif what in ("pass", "fail", "error", "skip"):
            self.plan.setdefault(case)
            self.results.setdefault(case, what)
            if case == self.current:
                self.times[case] = time.monotonic() - self.started
                self.current = None
        elif what == "planned":
            self.planned = True
        elif what == "done":
            self.finished = True

    def read(self):
        """Takes what the child wrote; False at its end of file."""
        data = os.read(self.rfd, 65536)
        if not data:
            return False
        self.progress = time.monotonic()
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for ln in lines:
            self.line(ln.decode())
        return True

    def reap(self):
        """The child has ended or is to end: kills it, closes its pipe."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.rfd)
        self.rfd = -1
        self.proc = None

    def stuck(self, case_timeout, module_timeout):
        """True when the case running has made no progress for
        CASE_TIMEOUT seconds (a child still importing its module, on a
        loaded machine, gets 60), or the shard has run MODULE_TIMEOUT."""
        now = time.monotonic()
        limit = case_timeout if self.planned else max(case_timeout, 60.0)
        return now - self.progress > limit or now - self.began > module_timeout

    def over(self, module_timeout):
        return time.monotonic() - self.began > module_timeout


def main(argv):
    jobs = 1
    case_timeout = 20.0
    module_timeout = 120.0
    names = []
    times = None
    shards = 1
    it = iter(argv)
    for a in it:
        if a == "-j":
            jobs = int(next(it))
        elif a == "--case-timeout":
            case_timeout = float(next(it))
        elif a == "--module-timeout":
            module_timeout = float(next(it))
        elif a == "--shards":
            shards = int(next(it))
        elif a == "--times":
            times = next(it)
        else:
            names.append(a)
    waiting = [Module(n, "%d/%d" % (k, shards)) for n in names for k in range(shards)]
    running = []
    done = []
    while waiting or running:
        while waiting and len(running) < jobs:
            m = waiting.pop(0)
            m.spawn()
            running.append(m)
        ready, _, _ = select.select([m.rfd for m in running], [], [], 0.5)
        for m in list(running):
            alive = True
            if m.rfd in ready:
                alive = m.read()
            if alive and not m.stuck(case_timeout, module_timeout):
                continue
            m.reap()
            if m.current is not None:
                m.results.setdefault(m.current, "timeout")
            left = [c for c in m.plan if c not in m.results]
            if m.finished or m.over(module_timeout) or (m.planned and not left):
                for c in left:
                    m.results[c] = "notrun"
                running.remove(m)
                done.append(m)
            elif not m.planned:
                # it could not list its cases (the module does not import):
                # what it listed, if anything, did not run
                for c in left:
                    m.results[c] = "error"
                running.remove(m)
                done.append(m)
            elif not alive and m.current is None:
                # ended between cases (a case exited the interpreter?):
                # the next planned case is charged, so that it cannot loop
                m.results[left[0]] = "error"
                m.spawn()
            else:
                m.spawn()
    every = {}
    for m in done:
        every.update(m.results)
    for c in sorted(every):
        print(c, every[c])
    if times:
        with open(times, "w") as f:
            for m in done:
                for c, t in sorted(m.times.items()):
                    f.write("%s %.2f\n" % (c, t))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        skip = set(sys.stdin.read().split())
        sys.exit(child(int(sys.argv[2]), sys.argv[3], sys.argv[4], skip))
    sys.exit(main(sys.argv[1:]))
