"""unixserve.py PATH...: listens on each PATH (mode 0777, so that any user
may connect) and greets every connection with "hello"; logs "conn PATH" to
stdout for each."""
import os
import select
import socket
import sys

socks = {}
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(8)
    socks[s] = path
print("ready", flush=True)
while True:
    for s in select.select(list(socks), [], [])[0]:
        c, _ = s.accept()
        print("conn %s" % socks[s], flush=True)
        c.sendall(b"hello")
        c.close()
