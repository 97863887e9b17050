#!/usr/bin/env python3
"""rawsys.py: a python program that connects past libc's connect(), as
t_isolate.sh needs: the name is resolved with socket.getaddrinfo (the shim
sees that), the connect is libc's syscall(SYS_connect, ...) through ctypes
(the shim does not).

  rawsys.py HOST PORT    prints "ok" (an HTTP answer came), "reset", or
                         "err ERRNO"
"""
import ctypes
import ctypes.util
import errno
import socket
import sys

SYS_CONNECT = 42  # x86_64

host, port = sys.argv[1], int(sys.argv[2])
addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sa = socket.inet_aton(addr[0])
raw = (ctypes.c_ubyte * 16)(*(b"\x02\x00" + port.to_bytes(2, "big") + sa + b"\0" * 8))
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
if libc.syscall(SYS_CONNECT, s.fileno(), raw, 16) != 0:
    print("err", errno.errorcode.get(ctypes.get_errno(), "?"))
    sys.exit(0)
try:
    s.sendall(b"GET /rawsys HTTP/1.0\r\n\r\n")
    data = s.recv(256)
    print("ok" if b" 200 " in data else "reset")
except OSError:
    print("reset")
