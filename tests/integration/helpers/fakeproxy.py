#!/usr/bin/env python3
"""fakeproxy.py: a scripted upstream proxy for the rewrite tests (never
preloaded).

  fakeproxy.py MODE PORTFILE LOGFILE [TARGETPORT]

Listens on 127.0.0.1:0, writes its port to PORTFILE, and answers each
connection according to MODE:
  http:CODE     reads a CONNECT request, answers "HTTP/1.1 CODE ..." and closes
  socks:REP     SOCKS5 without authentication; replies REP to the CONNECT
  slow:SECONDS  reads a CONNECT request, waits SECONDS, answers 200 and then
                tunnels to 127.0.0.1:TARGETPORT (whatever name was asked)
  halting:SECONDS  like slow:0, but sends its status line, waits SECONDS,
                then ends the header (an answer that arrives in parts)
  silent        accepts and never answers
  reset         a destination, not a proxy: reads what comes, sends
                "before-reset", then resets the connection (SO_LINGER 0)
LOGFILE gets "request <first line>" (HTTP) or "socks <name>:<port>" per
connection, and "answered <unix time>" when it answered.
"""
import os
import socket
import sys
import threading
import time

mode, portfile, logfile = sys.argv[1:4]
target = int(sys.argv[4]) if len(sys.argv) > 4 else 0
log = open(logfile, "a", buffering=1)


def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    log.write("request %s\n" % data.split(b"\r\n")[0].decode(errors="replace"))


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def recv_exact(c, n):
    data = b""
    while len(data) < n:
        chunk = c.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(c):
    kind, _, arg = mode.partition(":")
    try:
        if kind == "silent":
            time.sleep(600)
        elif kind == "reset":
            c.recv(4096)
            c.sendall(b"before-reset")  # and at once:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            c.close()
            return
        elif kind == "http":
            read_request(c)
            c.sendall(b"HTTP/1.1 %s Scripted\r\nContent-Length: 0\r\n\r\n" % arg.encode())
            log.write("answered %f\n" % time.time())
        elif kind == "socks":
            greeting = recv_exact(c, 2)
            recv_exact(c, greeting[1])  # the methods offered
            c.sendall(b"\x05\x00")
            head = recv_exact(c, 4)
            if head[3] == 3:
                name = recv_exact(c, recv_exact(c, 1)[0]).decode()
            else:
                name = socket.inet_ntoa(recv_exact(c, 4))
            port = int.from_bytes(recv_exact(c, 2), "big")
            log.write("socks %s:%d\n" % (name, port))
            c.sendall(bytes([5, int(arg), 0, 1, 0, 0, 0, 0, 0, 0]))
            log.write("answered %f\n" % time.time())
        elif kind in ("slow", "halting"):
            read_request(c)
            if kind == "slow":
                time.sleep(float(arg))
            up = socket.create_connection(("127.0.0.1", target))
            c.sendall(b"HTTP/1.1 200 Connection established\r\n")
            if kind == "halting":
                time.sleep(float(arg))
            c.sendall(b"\r\n")
            log.write("answered %f\n" % time.time())
            t = threading.Thread(target=pipe, args=(up, c), daemon=True)
            t.start()
            pipe(c, up)
            t.join(30)
            up.close()
        time.sleep(0.2)
    except (OSError, EOFError):
        pass
    c.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(portfile + ".tmp", portfile)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
