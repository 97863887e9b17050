#!/usr/bin/env python3
"""make_seeds.py: writes the seed corpora of the fuzz targets (committed;
run again after a change to the wire protocol or the policy keys).

  python3 tests/fuzz/make_seeds.py
"""
import os
import struct

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
VERSION = 7


def write(kind, name, data):
    d = os.path.join(top, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def msg(mtype, mid, body, version=VERSION):
    return struct.pack("<BBHII", ord("E"), version, mtype, mid, len(body)) + body


def addr(family, raw):
    return bytes([family]) + raw + bytes(16 - len(raw))


def ask(op, l4, family, port, a, flags, name=b"", src_port=0):
    return (bytes([op, l4, family, len(name)]) + struct.pack("<H", port) + a + bytes([flags]) +
            struct.pack("<H", src_port) + name)


def verdict(action, err, ttl, rule, name, addrs, port=0, gen=0):
    return (bytes([action, len(addrs), len(rule), len(name)]) + struct.pack("<iIHI", err, ttl, port, gen)
            + rule + name + b"".join(addrs))


v4 = addr(4, bytes([93, 184, 216, 34]))
v6 = addr(6, bytes.fromhex("20010db8000000000000000000000001"))
write("proto", "ask-resolve", msg(1, 1, ask(1, 1, 0, 443, bytes(17), 0, b"api.example.com")))
write("proto", "ask-resolve-v6", msg(1, 2, ask(1, 0, 6, 0, bytes(17), 0, b"a.b")))
write("proto", "ask-connect", msg(1, 3, ask(2, 1, 0, 443, v4, 0)))
write("proto", "ask-connect-nonblock", msg(1, 4, ask(2, 1, 0, 443, v6, 1)))
write("proto", "ask-connect-inet6", msg(1, 5, ask(2, 1, 0, 443, v6, 3)))
write("proto", "ask-send", msg(1, 5, ask(3, 2, 0, 53, v4, 0)))
write("proto", "ask-send-source", msg(1, 6, ask(3, 2, 0, 53, v4, 8, src_port=40000)))
write("proto", "verdict-allow", msg(2, 1, verdict(1, 0, 0, b"model-api", b"", [v4, v6])))
write("proto", "verdict-deny", msg(2, 3, verdict(2, 111, 0, b"no-metadata", b"api.example.com", [])))
write("proto", "verdict-pending", msg(2, 4, verdict(4, 0, 10000, b"via-proxy", b"", [])))
write("proto", "verdict-fail", msg(2, 4, verdict(5, 13, 0, b"via-proxy", b"a.b", [])))
write("proto", "verdict-stub", msg(2, 5, verdict(1, 0, 0, b"dns", b"", [addr(4, bytes([127, 0, 0, 1])), addr(6, bytes(15) + b"\x01")], 40053)))
write("proto", "verdict-kept", msg(2, 6, verdict(1, 0, 10000, b"model-api", b"", [], 0, 0x1234abcd)))
write("proto", "note-allow", msg(6, 0, ask(2, 1, 0, 443, v4, 0) + bytes([1])))
write("proto", "note-deny", msg(6, 0, ask(2, 1, 0, 443, v6, 0) + bytes([2])))
write("proto", "ring", msg(7, 0, b""))
write("proto", "control-status", msg(3, 9, bytes([2])))
write("proto", "text", msg(4, 9, struct.pack("<i", 0) + b"egress-broker 0.1\n"))
write("proto", "error", msg(5, 9, struct.pack("<i", 1)))
write("proto", "bad-version", msg(1, 1, ask(2, 1, 0, 443, v4, 0), version=9))
write("proto", "truncated", msg(1, 3, ask(2, 1, 0, 443, v4, 0))[:20])

write("policy", "minimal.ini", "[egress]\ndefault = deny\n")
write("policy", "every-key.ini", """; every key once
[egress]
default = rewrite
private = deny
transport = socks5://me:s%40cret@127.0.0.1:1080
timeout = 5
audit = /tmp/audit.jsonl
cache_ttl = 30
errno = EACCES

[rule "api"]
host = api.example.com, *.example.org, Trailing.Dot.
port = 443, 8000-8100
proto = tcp
exe = curl, /usr/bin/python3*
action = allow

[rule "meta"]
cidr = 169.254.169.254/32, fe80::/10, ::ffff:10.0.0.0/104
action = deny
errno = ECONNREFUSED

[rule "relay"]
host = big.example.com
action = rewrite
transport = relay
limit = 10M

[rule "proxy"]
host = *.github.com
action = rewrite
transport = http://[::1]:3128/
private = allow

[hosts]
build-cache.internal = 10.0.0.7, fd00::7
""")
example = os.path.join(os.path.dirname(top), "..", "..", "policy", "example.ini")
with open(example) as f:
    write("policy", "example.ini", f.read())
write("policy", "bad-line.ini", "[egress]\ndefault = maybe\n[rule \"x\"\nhost = a..b\n")
write("policy", "dup.ini", "[rule \"a\"]\naction = allow\n[rule \"a\"]\naction = deny\n")

write("upstream", "http-200", "HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner")
write("upstream", "http-403", "HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
write("upstream", "http-bare-lf", "HTTP/1.1 407 Proxy Authentication Required\nX: y\n\n")
write("upstream", "socks-v4", bytes([5, 0, 0, 1, 127, 0, 0, 1, 4, 56]))
write("upstream", "socks-domain", bytes([5, 5, 0, 3, 4]) + b"host" + bytes([0, 80]))
write("upstream", "socks-v6", bytes([5, 4, 0, 4]) + bytes(16) + bytes([1, 187]))

# NFLOG (broker/nflog.c): netlink datagrams of packet messages, as the
# kernel sends them for packets an isolated namespace drops


def nlattr(atype, data):
    pad = (4 - len(data) % 4) % 4
    return struct.pack("<HH", 4 + len(data), atype) + data + bytes(pad)


def nlmsg(mtype, body, flags=2):
    return struct.pack("<IHHII", 16 + len(body), mtype, flags, 0, 0) + body


def nflog_packet(family, payload, uid=None, seq=None):
    body = bytes([family, 0]) + struct.pack(">H", 7)
    body += nlattr(1, struct.pack(">HBB", 0x0800 if family == 2 else 0x86DD, 3, 0))
    body += nlattr(5, struct.pack(">I", 1))
    body += nlattr(9, payload)
    if uid is not None:
        body += nlattr(11, struct.pack(">I", uid)) + nlattr(14, struct.pack(">I", uid))
    if seq is not None:
        body += nlattr(12, struct.pack(">I", seq))
    return nlmsg((4 << 8) | 0, body)


udp4 = (bytes([0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 10, 9, 9, 9])
        + struct.pack(">HHHH", 40000, 443, 20, 0))
udp6 = (bytes([0x60, 0, 0, 0, 0, 8, 60, 64]) + bytes(15) + b"\x01"
        + bytes.fromhex("20010db8000000000000000000000001")
        + bytes([17, 0, 1, 4, 0, 0, 0, 0]) + struct.pack(">HHHH", 40000, 123, 8, 0))
lite4 = udp4[:9] + bytes([136]) + udp4[10:]
done = nlmsg(3, struct.pack("<i", 0))
write("nflog", "udp4", nflog_packet(2, udp4, uid=0, seq=0))
write("nflog", "udp6-dstopts", nflog_packet(10, udp6, uid=65534, seq=1))
write("nflog", "batch", nflog_packet(2, udp4, 0, 2) + nflog_packet(2, lite4, 0, 3)
      + nflog_packet(10, udp6, None, 4) + done)
write("nflog", "ack", nlmsg(2, struct.pack("<i", 0) + bytes(16), flags=0))
write("nflog", "truncated", nflog_packet(2, udp4, uid=0, seq=5)[:50])
