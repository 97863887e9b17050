#!/usr/bin/env python3
"""cachecheck.py: one process that runs the steps it is given, in order,
so that a test can see what a verdict cache keeps and forgets within one
process. Each step is one argument, fields separated by ':'; each prints one
line starting with its TAG.

  connect:ADDR:PORT:TAG        a TCP connect: "TAG ok" or "TAG err ERRNO"
  resolve:NAME:TAG             getaddrinfo (TCP, IPv4): "TAG ok ADDR" or "TAG err CODE"
  reload:BROKER:SOCK:SRC:DST:TAG  copies SRC over DST and runs
                               `BROKER reload --socket SOCK`: "TAG rc N"
  fork:ADDR:PORT:N:TAG         a fork child connects N times and exits:
                               "TAG pid PID" then "TAG ok..." (its results)
  pid:TAG                      "TAG pid PID"
  kill:PID:TAG                 SIGKILL to the broker PID, and waits until its
                               main thread has ended (not its other threads,
                               nor its descriptors): "TAG gone"
  page:BROKERPID:TAG           tries to write the broker's generation page, as
                               the program can: through its own read-only
                               mapping (mprotect) and through the broker's
                               descriptor (write, a shared writable mapping):
                               "TAG mapped=yes|no mprotect=E... write=E... mmap=E..."
  burst:ADDR:PORT:N:THREADS:TAG  THREADS threads connect N times each, at
                               once (0: this thread, N times): "TAG ok K"
                               (K connects went)
  spoil:TAG                    writes over this thread's note ring (its
                               head moved far past the broker's tail), as
                               the program can: "TAG spoilt N" (N rings)
"""
import ctypes
import errno
import mmap
import os
import shutil
import signal
import socket
import subprocess
import struct
import sys
import threading
import time


def connect(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect((addr, int(port)))
        return "ok"
    except OSError as e:
        return "err " + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


def ended(pid):
    """True once pid's main thread has ended (<= 5 s): /proc shows it as a
    zombie, or not at all. Its other threads, and its descriptors, may
    live a moment longer."""
    for _ in range(500):
        try:
            with open("/proc/%s/stat" % pid) as st:
                if st.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except OSError:
            return True
        time.sleep(0.001)
    return False


def ename(e):
    return errno.errorcode.get(e, str(e)) if e else "ok"


def page(broker_pid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    mapped, mprot = "no", "none"
    with open("/proc/self/maps") as f:
        for line in f:
            if "egress-generation" in line:
                mapped = "yes"
                start = int(line.split("-")[0], 16)
                r = libc.mprotect(start, 4096, mmap.PROT_READ | mmap.PROT_WRITE)
                mprot = "ok" if r == 0 else ename(ctypes.get_errno())
    write, shared = "none", "none"
    d = "/proc/%s/fd" % broker_pid
    for name in os.listdir(d):
        try:
            if "egress-generation" not in os.readlink(os.path.join(d, name)):
                continue
            fd = os.open(os.path.join(d, name), os.O_RDWR)
        except OSError as e:
            write = "open-" + ename(e.errno)
            continue
        try:
            os.pwrite(fd, b"\0\0\0\0", 8)
            write = "ok"
        except OSError as e:
            write = ename(e.errno)
        try:
            m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            m[8:12] = b"\0\0\0\0"
            m.close()
            shared = "ok"
        except OSError as e:
            shared = ename(e.errno)
        os.close(fd)
    return "mapped=%s mprotect=%s write=%s mmap=%s" % (mapped, mprot, write, shared)


def burst(addr, port, n, threads):
    ok = [0] * max(threads, 1)

    def run(i):
        ok[i] = sum(connect(addr, port) == "ok" for _ in range(n))

    if threads == 0:
        run(0)
        return "ok %d" % ok[0]
    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return "ok %d" % sum(ok)


def spoil():
    """Moves the head of every note ring mapped here far ahead: this
    thread's, when the others that connected have ended."""
    n = 0
    with open("/proc/self/maps") as f, open("/proc/self/mem", "r+b", buffering=0) as mem:
        for line in f:
            if "egress-notes" in line:
                start = int(line.split("-")[0], 16)
                mem.seek(start + 8)  # struct proto_ring: magic, version, head
                head = struct.unpack("<I", mem.read(4))[0]
                mem.seek(start + 8)
                mem.write(struct.pack("<I", (head + 100000) & 0xffffffff))
                n += 1
    return "spoilt %d" % n


def main():
    for step in sys.argv[1:]:
        f = step.split(":")
        kind, tag = f[0], f[-1]
        if kind == "connect":
            out = connect(f[1], f[2])
        elif kind == "resolve":
            try:
                ai = socket.getaddrinfo(f[1], None, socket.AF_INET, socket.SOCK_STREAM)
                out = "ok " + ai[0][4][0]
            except socket.gaierror as e:
                out = "err %s" % e.errno
        elif kind == "reload":
            shutil.copyfile(f[3], f[4])
            r = subprocess.run([f[1], "reload", "--socket", f[2]], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=20)
            out = "rc %d" % r.returncode
        elif kind == "fork":
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                res = [connect(f[1], f[2]) for _ in range(int(f[3]))]
                print("%s pid %d" % (tag, os.getpid()))
                print("%s %s" % (tag, " ".join(res)), flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
            continue
        elif kind == "pid":
            out = "pid %d" % os.getpid()
        elif kind == "kill":
            os.kill(int(f[1]), signal.SIGKILL)
            out = "gone" if ended(f[1]) else "still there"
        elif kind == "page":
            out = page(f[1])
        elif kind == "burst":
            out = burst(f[1], f[2], int(f[3]), int(f[4]))
        elif kind == "spoil":
            out = spoil()
        else:
            out = "unknown step " + step
        print("%s %s" % (tag, out), flush=True)


main()
