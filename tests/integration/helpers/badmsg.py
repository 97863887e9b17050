#!/usr/bin/env python3
"""badmsg.py: speaks nonsense to the broker (never preloaded).

  badmsg.py SOCKET   sends a short garbage message and a header with a wrong
                     length on two SOCK_SEQPACKET connections; prints
                     "closed" per connection the broker closed (EOF), or
                     "answered" / "open" otherwise.
"""
import socket
import struct
import sys

path = sys.argv[1]
msgs = [
    b"garbage!",
    # magic, version 1, type ASK, id 7, body length 1000 but no body
    struct.pack("<BBHII", ord("E"), 1, 1, 7, 1000),
]
for m in msgs:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    s.connect(path)
    s.send(m)
    try:
        data = s.recv(70000)
        print("closed" if not data else "answered")
    except socket.timeout:
        print("open")
    except ConnectionResetError:
        print("closed")
    s.close()
