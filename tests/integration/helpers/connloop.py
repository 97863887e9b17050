#!/usr/bin/env python3
"""connloop.py: a long-lived program under the shim that connects to
HOST:PORT again and again for SECONDS. Attempts made before the file MARKER
exists and after are counted apart:

  before ok=N eperm=N other=N after ok=N eperm=N other=N slowest_ms=N

"other" is any result but success or EPERM (what an unreachable broker
gives); slowest_ms the longest single connect.
"""
import errno
import os
import socket
import sys
import time

host, port, seconds, marker = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
counts = {"before": [0, 0, 0], "after": [0, 0, 0]}
slowest = 0.0
end = time.time() + seconds
while time.time() < end:
    phase = "after" if os.path.exists(marker) else "before"
    s = socket.socket()
    t0 = time.time()
    try:
        s.connect((host, port))
        counts[phase][0] += 1
    except OSError as e:
        counts[phase][1 if e.errno == errno.EPERM else 2] += 1
    slowest = max(slowest, time.time() - t0)
    s.close()
    time.sleep(0.02)
print("before ok=%d eperm=%d other=%d after ok=%d eperm=%d other=%d slowest_ms=%d" % (
    tuple(counts["before"]) + tuple(counts["after"]) + (slowest * 1000,)))
