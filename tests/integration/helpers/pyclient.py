#!/usr/bin/env python3
"""pyclient.py: the python3 program the tests run under the shim. Each
subcommand prints one result line per attempt on stdout ("ok ..." or
"err ERRNONAME ..."), so the tests assert on what the program saw.

  connect HOST PORT                  TCP connect (v6 when HOST has ':')
  mapped PORT                        v6 socket, connect ::ffff:127.0.0.1
  urllib URL                         body, or err ERRNO of the URLError
  threads HA PA HB PB NTHREADS N     each thread: N x (connect A, connect B)
  fork HA PA HB PB                   connect A in the parent, then a child
                                     connects A and B; prints the child's
                                     results and "pids PARENT CHILD"
  sendto HOST PORT N TAG             N datagrams "TAG i" with sendto
  sendmsg HOST PORT N TAG            the same with sendmsg
  udpconnect HOST PORT N TAG         connect a UDP socket, then N send()s
  resolve NAME [PORT]                getaddrinfo: "ok ADDR..." or "gaierror NAME"
  resolve-connect NAME PORT          getaddrinfo, then connect the first address
  nameconnect NAME PORT              getaddrinfo(NAME) without a port, then
                                     connect the first address to PORT
  clobber HA PA HB PB                connect A; close every descriptor above 2
                                     (the shim's broker connection too); connect
                                     A and B; then dup2 /dev/null over every
                                     socket descriptor; connect A and B again
  spawn HA PA HB PB                  connect A, then a child python (exec'd by
                                     subprocess) connects A and B; prints the
                                     child's lines and "child PID"
  longname LEN                       getaddrinfo of a LEN-byte name
  unix PATH                          AF_UNIX stream connect, send "ping", read
  loop                               one command per stdin line (connect HOST
                                     PORT | quit); result lines flushed
"""
import errno
import os
import socket
import sys
import threading
import urllib.error
import urllib.request


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "E?"


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def try_connect(host, port):
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect((host, int(port)))
        return "ok"
    except OSError as e:
        return "err " + ename(e)
    finally:
        s.close()


def gai_name(code):
    for n in ("EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_FAMILY",
              "EAI_SERVICE", "EAI_SYSTEM", "EAI_ADDRFAMILY", "EAI_NODATA"):
        if getattr(socket, n, None) == code:
            return n
    return str(code)


def udp(cmd, host, port, n, tag):
    port, n = int(port), int(n)
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    ok = 0
    errs = {}
    if cmd == "udpconnect":
        try:
            s.connect((host, port))
            out("connect ok")
        except OSError as e:
            out("connect err " + ename(e))
            return
    for i in range(n):
        data = ("%s %d" % (tag, i)).encode()
        try:
            if cmd == "sendto":
                s.sendto(data, (host, port))
            elif cmd == "sendmsg":
                s.sendmsg([data], [], 0, (host, port))
            else:
                s.send(data)
            ok += 1
        except OSError as e:
            errs[ename(e)] = errs.get(ename(e), 0) + 1
    out("sent %d errors %s" % (ok, ",".join("%s:%d" % kv for kv in sorted(errs.items())) or "none"))


def threads(ha, pa, hb, pb, nthreads, n):
    res = {}
    lock = threading.Lock()

    def work():
        for _ in range(int(n)):
            for key, h, p in (("A", ha, pa), ("B", hb, pb)):
                r = try_connect(h, p)
                with lock:
                    res[(key, r)] = res.get((key, r), 0) + 1

    ts = [threading.Thread(target=work) for _ in range(int(nthreads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for (key, r), c in sorted(res.items()):
        out("%s %s %d" % (key, r, c))


def fork(ha, pa, hb, pb):
    out("parent-A " + try_connect(ha, pa))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = "child-A %s\nchild-B %s\n" % (try_connect(ha, pa), try_connect(hb, pb))
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(data.decode())
    out("parent-B " + try_connect(hb, pb))
    out("pids %d %d status %d" % (os.getpid(), pid, status))


def resolve(name, port=None):
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        out("gaierror " + gai_name(e.errno))
        return None
    addrs = []
    for i in infos:
        if i[4][0] not in addrs:
            addrs.append(i[4][0])
    out("ok " + " ".join(addrs))
    return infos


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "connect":
        out(try_connect(a[1], a[2]))
    elif cmd == "mapped":
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.settimeout(10)
        try:
            s.connect(("::ffff:127.0.0.1", int(a[1])))
            out("ok")
        except OSError as e:
            out("err " + ename(e))
    elif cmd == "urllib":
        try:
            with urllib.request.urlopen(a[1], timeout=10) as r:
                out("body " + r.read().decode().strip())
        except urllib.error.URLError as e:
            r = e.reason
            out("err " + (ename(r) if isinstance(r, OSError) else str(r)))
    elif cmd == "threads":
        threads(*a[1:7])
    elif cmd == "fork":
        fork(*a[1:5])
    elif cmd in ("sendto", "sendmsg", "udpconnect"):
        udp(cmd, *a[1:5])
    elif cmd == "resolve":
        resolve(*a[1:3])
    elif cmd == "resolve-connect":
        infos = resolve(a[1], a[2])
        if infos:
            f, t, p, _, sa = infos[0]
            s = socket.socket(f, t, p)
            s.settimeout(10)
            try:
                s.connect(sa)
                out("connect ok")
            except OSError as e:
                out("connect err " + ename(e))
    elif cmd == "nameconnect":
        infos = resolve(a[1])
        if infos:
            f, t, p, _, sa = infos[0]
            s = socket.socket(f, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect((sa[0], int(a[2])) + tuple(sa[2:]))
                out("connect ok")
            except OSError as e:
                out("connect err " + ename(e))
    elif cmd == "clobber":
        ha, pa, hb, pb = a[1:5]
        out("before " + try_connect(ha, pa))
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        out("closed-A " + try_connect(ha, pa))
        out("closed-B " + try_connect(hb, pb))
        null = os.open("/dev/null", os.O_RDWR)
        for fd in os.listdir("/proc/self/fd"):
            fd = int(fd)
            try:
                if fd > 2 and fd != null and os.readlink("/proc/self/fd/%d" % fd).startswith("socket:"):
                    os.dup2(null, fd)
            except OSError:
                pass
        out("duped-A " + try_connect(ha, pa))
        out("duped-B " + try_connect(hb, pb))
    elif cmd == "spawn":
        import subprocess
        ha, pa, hb, pb = a[1:5]
        out("parent " + try_connect(ha, pa))
        code = ("import os, sys; sys.argv = [sys.argv[0]] + sys.argv[1:]; "
                "print('pid %d' % os.getpid(), flush=True)")
        r = subprocess.run([sys.executable, "-c",
                            code + "; exec(open(%r).read())" % os.path.abspath(__file__),
                            "threads", ha, pa, hb, pb, "1", "1"],
                           capture_output=True, text=True, timeout=20)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
    elif cmd == "longname":
        n = int(a[1])
        name = ".".join(["a" * 49] * (n // 50 + 1))[:n - 5].rstrip(".") + ".test"
        name = "b" * (n - len(name)) + name
        assert len(name) == n, len(name)
        resolve(name)
    elif cmd == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(a[1])
            s.sendall(b"ping")
            out("ok " + s.recv(100).decode())
        except OSError as e:
            out("err " + ename(e))
    elif cmd == "loop":
        out("ready %d" % os.getpid())
        for line in sys.stdin:
            w = line.split()
            if not w:
                continue
            if w[0] == "quit":
                break
            if w[0] == "connect":
                out("%s %s" % (w[3] if len(w) > 3 else "step", try_connect(w[1], w[2])))
        out("bye")
    else:
        sys.exit("pyclient.py: unknown command " + cmd)


main()
