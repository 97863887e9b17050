#!/usr/bin/env python3
"""rwclient.py: python3 under the shim for the rewrite tests. One line of
results on stdout per subcommand; errors as "err ERRNONAME".

  get NAME PORT PATH        blocking HTTP GET over a raw socket: "ok BODY
                            sent=N received=M" (bytes the program moved)
  connect NAME PORT         blocking connect only: "ok" or "err ERRNO"
  options NAME PORT         sets TCP_NODELAY, SO_KEEPALIVE, SO_RCVBUF before a
                            blocking connect, then prints what it reads back:
                            "peer ADDR PORT synthetic=0|1 nodelay=N keepalive=N
                            rcvbuf_same=0|1 inheritable=0|1"
  nonblock NAME PORT PATH [early]  nonblocking connect; prints "returned
                            ERR at T" (with early, connects again at once:
                            "early ERR"), then waits for writability
                            ("writable at T"), SO_ERROR, connects again
                            ("again EISCONN"), sends the GET and prints
                            "ok BODY" or "err ..."
  flood NAME PORT BYTES     sends a GET and then BYTES more, reads until EOF
                            or error: "sent N" and "end EOF|ERRNO"
  abort NAME PORT           connects, sends a line, shuts down its sending side,
                            then closes with a reset (SO_LINGER 0): "ok"
  v6get NAME PORT PATH [nb] an AF_INET6 socket (blocking, or nonblocking with
                            nb) connects to the mapped form of NAME's address
                            and GETs PATH: "ok BODY domain=D sockname=F
                            v6only=V" (D: SO_DOMAIN; F: the family of
                            getsockname; V: IPV6_V6ONLY readable, 0 or 1)
  back6 NAME PORT [nb]      an AF_INET6 socket (blocking, or with a timeout:
                            nonblocking) connects to NAME's IPv6 address, and
                            a second one connects back to a listener on [::]
                            (IPV6_V6ONLY) at the first one's own address, as
                            ftplib's active mode does: "ok self=ADDR back=1"
                            or "err ERRNO self=ADDR"
  hold NAME PORT BYTES SECS connects, sends BYTES, prints "sent", keeps the
                            connection open SECS seconds: "ok"
  bound NAME PORT           binds to 127.0.0.1, port 0, then connects: "ok
                            kept=0|1" (getsockname after the connect is the
                            address bound before it)
  reset NAME PORT           sends a line, waits 1 s, then reads until EOF or
                            error: "got DATA" for what came, then "end
                            EOF|ERRNO"
  oob NAME PORT             connects, sends one byte of urgent data
                            (MSG_OOB): "ok" or "err ERRNO"
  udp NAME PORT             sendto of one datagram: "ok" or "err ERRNO"
  fire NAME PORT N [NAME6 PORT6]  N datagrams, each from a socket closed at
                           once; then one from a socket bound to ::1 to NAME6
                           (its IPv6 address) at PORT6
  ping NAME PORT N SIZE     N datagrams of SIZE bytes starting "ping" (from a
                            socket of NAME's first family), each answer
                            awaited 0.2 s: "pongs K from ADDR:PORT" (the
                            source recvfrom showed), or "err ERRNO"
  echo NAME N               an echo server of its own on NAME's first
                            address, port 0 (in a thread, so under egress
                            too: it answers the sender it sees), and N
                            datagrams to it from a nonblocking socket, each
                            answer awaited 1 s: "echoes K from ADDR:PORT"
  resolve6 NAME             getaddrinfo AF_INET6: "ok ..." or "gaierror NAME"
"""
import errno
import select
import socket
import sys
import threading
import time


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def addr(name, port):
    return socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]


def request(path):
    return ("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode()


def read_all(s):
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            return data
        data += d


def body(data):
    return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()


cmd, name = sys.argv[1], sys.argv[2]
try:
    if cmd == "get":
        s = socket.create_connection(addr(name, int(sys.argv[3])))
        req = request(sys.argv[4])
        s.sendall(req)
        data = read_all(s)
        print("ok %s sent=%d received=%d" % (body(data), len(req), len(data)))
    elif cmd == "connect":
        socket.create_connection(addr(name, int(sys.argv[3])))
        print("ok")
    elif cmd == "options":
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        before = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        a = addr(name, int(sys.argv[3]))
        s.connect(a)
        peer = s.getpeername()
        print("peer %s %d synthetic=%d nodelay=%d keepalive=%d rcvbuf_same=%d inheritable=%d" % (
            peer[0], peer[1], int(peer == a),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            int(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == before),
            int(s.get_inheritable())))
    elif cmd == "nonblock":
        import select
        a = addr(name, int(sys.argv[3]))
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(a)
        print("returned %s at %f" % (errno.errorcode.get(err, err), time.time()), flush=True)
        if len(sys.argv) > 5:
            err = s.connect_ex(a)
            print("early %s" % errno.errorcode.get(err, err), flush=True)
        select.select([], [s], [], 20)
        print("writable at %f" % time.time(), flush=True)
        so = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if so:
            print("err %s" % errno.errorcode.get(so, so))
            sys.exit(0)
        # asking again is how some programs learn that the connect is done
        print("again %s" % errno.errorcode.get(s.connect_ex(a), 0), flush=True)
        s.setblocking(True)
        s.sendall(request(sys.argv[4]))
        print("ok %s blocking=%d" % (body(read_all(s)), int(s.getblocking())))
    elif cmd == "flood":
        s = socket.create_connection(addr(name, int(sys.argv[3])))
        total = int(sys.argv[4])
        sent = 0
        end = "EOF"
        try:
            s.sendall(request("/flood"))
            chunk = b"x" * 4096
            while sent < total:
                sent += s.send(chunk)
            s.settimeout(10)
            read_all(s)
        except OSError as e:
            end = ename(e)
        print("sent %d" % sent)
        print("end %s" % end)
    elif cmd == "abort":
        import struct
        s = socket.create_connection(addr(name, int(sys.argv[3])))
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        print("ok")
    elif cmd == "v6get":
        import select
        a = addr(name, int(sys.argv[3]))
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        if len(sys.argv) > 5:
            s.setblocking(False)
            s.connect_ex(("::ffff:" + a[0], a[1]))
            select.select([], [s], [], 20)
            s.setblocking(True)
        else:
            s.connect(("::ffff:" + a[0], a[1]))
        s.sendall(request(sys.argv[4]))
        data = read_all(s)
        v6only = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        print("ok %s domain=%d sockname=%d v6only=%d" % (
            body(data), s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN),
            len(s.getsockname()) == 4 and socket.AF_INET6 or socket.AF_INET, v6only))
    elif cmd == "back6":
        a = socket.getaddrinfo(name, int(sys.argv[3]), socket.AF_INET6, socket.SOCK_STREAM)[0][4]
        lst = socket.create_server(("", 0), family=socket.AF_INET6)
        lst.settimeout(5)
        s = socket.create_connection(a[:2], timeout=10 if len(sys.argv) > 4 else None)
        own = s.getsockname()[0]
        try:
            back = socket.create_connection((own, lst.getsockname()[1]), timeout=5)
            lst.accept()
            print("ok self=%s back=1" % own)
        except OSError as e:
            print("err %s self=%s" % (ename(e), own))
    elif cmd == "hold":
        s = socket.create_connection(addr(name, int(sys.argv[3])))
        s.sendall(b"h" * int(sys.argv[4]))
        print("sent", flush=True)
        time.sleep(float(sys.argv[5]))
        print("ok")
    elif cmd == "reset":
        s = socket.create_connection(addr(name, int(sys.argv[3])))
        s.sendall(b"hi\n")
        time.sleep(1)
        try:
            while True:
                data = s.recv(4096)
                if not data:
                    print("end EOF")
                    break
                print("got %s" % data.decode(errors="replace"))
        except OSError as e:
            print("end %s" % ename(e))
    elif cmd == "oob":
        s = socket.create_connection(addr(name, int(sys.argv[3])))
        s.send(b"!", socket.MSG_OOB)
        print("ok")
    elif cmd == "bound":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        before = s.getsockname()
        s.connect(addr(name, int(sys.argv[3])))
        print("ok kept=%d" % int(s.getsockname() == before))
    elif cmd == "udp":
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", socket.getaddrinfo(name, int(sys.argv[3]), socket.AF_INET,
                                          socket.SOCK_DGRAM)[0][4])
        print("ok")
    elif cmd == "fire":
        # N sockets, each sends one datagram and is closed at once (a
        # fire-and-forget sender: syslog, statsd); then one from a socket
        # bound to ::1, when NAME6 and PORT6 are given
        dest = socket.getaddrinfo(name, int(sys.argv[3]), socket.AF_INET, socket.SOCK_DGRAM)[0][4]
        for i in range(int(sys.argv[4])):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.sendto(b"fire %d" % i, dest)
            u.close()
        if len(sys.argv) > 6:
            dest6 = socket.getaddrinfo(sys.argv[5], int(sys.argv[6]), socket.AF_INET6,
                                       socket.SOCK_DGRAM)[0][4]
            u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            u.bind(("::1", 0))
            u.sendto(b"fire6", dest6)
            u.close()
        print("ok")
    elif cmd == "ping":
        # of the family NAME has (an address such as ::1 is IPv6)
        family, _, _, _, dest = socket.getaddrinfo(name, int(sys.argv[3]), 0, socket.SOCK_DGRAM)[0]
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.settimeout(0.2)
        pongs, src = 0, None
        for _ in range(int(sys.argv[4])):
            u.sendto(b"ping".ljust(int(sys.argv[5]), b"."), dest)
            try:
                data, src = u.recvfrom(100)
                pongs += data == b"pong"
            except socket.timeout:
                pass
        print("pongs %d from %s:%d" % (pongs, src[0], src[1]) if src else "pongs 0")
    elif cmd == "echo":
        family, _, _, _, where = socket.getaddrinfo(name, 0, 0, socket.SOCK_DGRAM)[0]
        srv = socket.socket(family, socket.SOCK_DGRAM)
        srv.bind(where[:2])
        dest = srv.getsockname()

        def serve():
            while True:
                data, peer = srv.recvfrom(100)
                if data == b"stop":
                    return
                srv.sendto(data, peer)

        threading.Thread(target=serve, daemon=True).start()
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.setblocking(False)
        echoes, src = 0, None
        for i in range(int(sys.argv[3])):
            u.sendto(b"echo %d" % i, dest)
            if select.select([u], [], [], 1)[0]:
                data, src = u.recvfrom(100)
                echoes += data == b"echo %d" % i
        print("echoes %d from %s:%d" % (echoes, src[0], src[1]) if src else "echoes 0")
        srv.sendto(b"stop", dest)
    elif cmd == "resolve6":
        print("ok", socket.getaddrinfo(name, 80, socket.AF_INET6))
except socket.gaierror as e:
    print("gaierror %s" % e.args[0])
except OSError as e:
    print("err %s" % ename(e))
