#!/usr/bin/env python3
"""probe.py: an unpreloaded marker sent to a test server, so that every
earlier attempt has reached the server's log before we count.

  probe.py http HOST PORT TAG   GET /__probe__TAG and wait for the answer
  probe.py udp HOST PORT TAG    send "__probe__TAG"
Exit 0 when sent (http: answered), 1 otherwise.
"""
import socket
import sys

kind, host, port, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
if kind == "http":
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall(("GET /__probe__%s HTTP/1.0\r\n\r\n" % tag).encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    sys.exit(0 if b"200" in data.split(b"\r\n", 1)[0] else 1)
else:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.sendto(("__probe__%s" % tag).encode(), (host, port))
    sys.exit(0)
