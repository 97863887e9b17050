"""dnslisten.py PORTFILE LOG [ADDR PORT]: a UDP name server on 127.0.0.1
(or ADDR:PORT) that answers every query NXDOMAIN at once and logs "query
NAME TYPE" for each, so a test can see whether a program's resolver sent
anything. PORTFILE gets the port once it listens."""
import socket
import sys


def qname(pkt):
    labels, i = [], 12
    while i < len(pkt) and pkt[i] != 0:
        n = pkt[i]
        labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype = int.from_bytes(pkt[i + 1:i + 3], "big") if i + 3 <= len(pkt) else -1
    return ".".join(labels), qtype


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[3], int(sys.argv[4])) if len(sys.argv) > 4 else ("127.0.0.1", 0))
    log = open(sys.argv[2], "a", buffering=1)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        pkt, peer = s.recvfrom(4096)
        if len(pkt) < 12:
            continue
        name, qtype = qname(pkt)
        log.write("query %s %d\n" % (name, qtype))
        reply = bytearray(pkt)
        reply[2] = 0x80 | (pkt[2] & 0x01)  # QR, RD
        reply[3] = 0x83                    # RA, NXDOMAIN
        s.sendto(bytes(reply), peer)


main()
