#!/usr/bin/env python3
"""server.py: loopback peers for the integration tests (never preloaded).

  server.py http|udp|unix BIND PORTFILE LOGFILE
  server.py files BIND PORTFILE LOGFILE DIR

Binds BIND (an IPv4 or IPv6 loopback address) on port 0, writes the port to
PORTFILE once it is listening (atomically, via rename), then logs one line
per event to LOGFILE, flushed at once:
  http: "conn <peer>" for every accepted connection (logged in the accepting
        thread, so in accept order) and "req <path>" for every request;
        GET answers 200 with body "egress-it <path>\n".
  udp:  "dgram <payload>" for every datagram received; one that starts
        with "ping" is answered "pong".
  unix: BIND is a path; an AF_UNIX stream server answering "pong" to each
        connection, logging "conn"; PORTFILE gets 0.
  files: http, but GET and HEAD serve the files under DIR (a small Debian
        repository, say) with their status: "req <path> <status>"; the
        probes' /__probe__ paths answer 200 as with http.
Runs until killed.
"""
import http.server
import os
import socket
import socketserver
import sys
import threading

kind, bind, portfile, logfile = sys.argv[1:5]
family = socket.AF_INET6 if ":" in bind else socket.AF_INET
log = open(logfile, "a", buffering=1)
lock = threading.Lock()


def note(line):
    with lock:
        log.write(line + "\n")
        log.flush()


def publish(port):
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, portfile)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        note("req " + self.path)
        body = ("egress-it %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FileHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def send_head(self):
        if self.path.startswith("/__probe__"):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()

    def log_request(self, code="-", size="-"):
        note("req %s %s" % (self.path, getattr(code, "value", code)))

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = family
    daemon_threads = True
    request_queue_size = 512

    def verify_request(self, request, client_address):
        note("conn %s" % (client_address[0],))
        return True

    def handle_error(self, request, client_address):
        pass  # clients that connect and close at once are expected


if kind == "http":
    srv = Server((bind, 0), Handler)
    publish(srv.server_address[1])
    srv.serve_forever()
elif kind == "files":
    root = sys.argv[5]
    srv = Server((bind, 0), lambda *a: FileHandler(*a, directory=root))
    publish(srv.server_address[1])
    srv.serve_forever()
elif kind == "udp":
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((bind, 0))
    publish(s.getsockname()[1])
    while True:
        data, peer = s.recvfrom(65536)
        note("dgram " + data.decode("ascii", "replace"))
        if data.startswith(b"ping"):
            s.sendto(b"pong", peer)
elif kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(bind)
    s.listen(16)
    publish(0)
    while True:
        c, _ = s.accept()
        note("conn unix")
        c.recv(100)
        c.sendall(b"pong")
        c.close()
else:
    sys.exit("server.py: unknown kind " + kind)
