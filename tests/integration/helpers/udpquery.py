"""udpquery.py SERVER NAME: one DNS query for NAME's A records, sent with
sendto to SERVER:53 and read with recvfrom, as resolvers of their own do:
"rcode=N from=ADDR:PORT addrs=A,B" (from: the source the answer came from,
which a resolver checks against the server it asked), or "err ERRNO"."""
import errno
import socket
import struct
import sys


def query(name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def main():
    server, name = sys.argv[1], sys.argv[2]
    q = query(name)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, (server, 53))
        data, src = s.recvfrom(512)
    except OSError as e:
        print("err %s" % errno.errorcode.get(e.errno, e.errno))
        return
    count = struct.unpack(">H", data[6:8])[0]
    off, addrs = len(q), []
    for _ in range(count):
        rdlen = struct.unpack(">H", data[off + 10:off + 12])[0]
        addrs.append(socket.inet_ntoa(data[off + 12:off + 12 + rdlen]))
        off += 12 + rdlen
    print("rcode=%d from=%s:%d addrs=%s" % (data[3] & 15, src[0], src[1], ",".join(addrs)))


main()
