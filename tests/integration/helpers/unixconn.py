"""unixconn.py PATH...: connects a UNIX stream socket to each PATH and
prints "NAME ok" (the server answered its greeting) or "NAME err ERRNO",
NAME being the path's last component's stem (relay.sock -> relay)."""
import errno
import os
import socket
import sys

for path in sys.argv[1:]:
    name = os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path).split(".")[0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
        print("%s %s" % (name, "ok" if s.recv(16) == b"hello" else "silent"))
    except OSError as e:
        print("%s err %s" % (name, errno.errorcode.get(e.errno, e.errno)))
    s.close()
