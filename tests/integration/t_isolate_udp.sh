# t_isolate_udp.sh: datagrams under egress-run --isolate. Nothing but DNS
# leaves the namespace by UDP: the sandbox's nftables drop every packet
# that would leave its loopback uncaptured and log it to NFLOG, which the
# broker reads and records as a denied send ("captured":true, rule
# "isolated", errno EPERM: what the program's sendto returned). A program
# that uses libc is judged by the shim before it sends (its own record,
# without "captured"), so the packet is never made and never counted twice.
# The receiver lives in a network namespace of this test's own ("far"),
# reached from the host over a veth pair.
. "$ROOT/tests/integration/lib.sh"
need_build
[ "$(id -u)" = 0 ] || skip "needs root for the test's own network namespace"
command -v nft >/dev/null 2>&1 || { fail "nft is missing (Debian package nftables)"; finish; }
RUN=$ROOT/tools/egress-run

build_helper udpsend -static -O2
US=$T/udpsend

# ---- the far side: a UDP receiver at 10.78.N.2:PU
far_netns u 10.78
ip netns exec "$FAR" "$PY" "$H/server.py" udp "$FARIP" "$T/srv-u.port" "$T/srv-u.log" \
	2>"$T/srv-u.err" &
bg_record $!
echo "udp $FARIP" >"$T/srv-u.kind"
: >"$T/srv-u.probes"
wait_for 5 test -s "$T/srv-u.port" || { fail "the far UDP receiver did not start"; finish; }
PU=$(port u)

# udp-far allows the datagram: a shim client is still refused, ENETUNREACH,
# since datagrams do not leave the namespace; web.test may be looked up
{
	policy_egress
	policy_hosts "web.test=$FARIP"
	policy_rule udp-far "cidr=$FARIP/32" "port=$PU" proto=udp action=allow
	policy_rule web host=web.test "port=$PU" proto=udp action=allow
} | write_policy

iso() { # TAG ARGS...: egress-run --isolate with the test's policy and audit log
	_tag=$1
	shift
	timeout -k 5 60 "$RUN" --isolate --quiet --policy "$POLICY" --audit "$AUDIT" -- "$@" \
		>"$T/$_tag.out" 2>"$T/$_tag.err" </dev/null
	RC=$?
}
# iso_bg TAG ARGS...: the same in the background (its files under $T/TAG.tmp),
# until iso_wait
iso_bg() {
	_tag=$1
	shift
	mkdir -p "$T/$_tag.tmp"
	TMPDIR=$T/$_tag.tmp timeout -k 5 60 "$RUN" --isolate --quiet --policy "$POLICY" \
		--audit "$AUDIT" -- "$@" >"$T/$_tag.out" 2>"$T/$_tag.err" </dev/null &
	ISO_PID=$!
	bg_record "$ISO_PID"
}
iso_wait() {
	wait "$ISO_PID"
	RC=$?
}
# audit_sum FILTERS...: the datagrams the matching events stand for
audit_sum() {
	"$PY" "$H/ej.py" show "$AUDIT" "$@" |
		"$PY" -c 'import json, sys; print(sum(json.loads(l).get("count", 0) for l in sys.stdin))'
}

# ---- a static binary's sendto: dropped, refused at once, recorded with who sent it
iso_bg st "$US" "$FARIP" "$PU" 3 "$T/hold-st"
assert_audit 1 "a static binary's datagram is recorded as a denied send, caught" op=send \
	"addr=$FARIP" "port=$PU" proto=udp action=deny rule=isolated errno=EPERM captured=true \
	"exe=$US" ipproto=17 count=1
touch "$T/hold-st"
iso_wait
assert_out st "EPERM 3/3" "isolated: the static binary's sendto fails at once with EPERM"
assert_eq "$(audit_count "exe=$US" pid=0)" 0 "attributed to its pid (found by its source port)"
assert_eq "$(audit_sum "exe=$US" "port=$PU")" 3 "the events stand for its 3 datagrams"
assert_server u 0 "the receiver got none of them"

# ---- python3 through the shim: judged before it sends, one record, not caught
iso py "$PY" -c 'import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"py", (sys.argv[1], int(sys.argv[2]))); print("sent")
except OSError as e:
    print(errno.errorcode[e.errno])' "$FARIP" "$PU"
assert_out py "ENETUNREACH" "isolated: python's allowed datagram is refused by the shim (ENETUNREACH)"
assert_audit 1 "recorded once, by the shim" op=send "addr=$FARIP" "port=$PU" "exe=$PY" action=deny \
	rule=udp-far errno=ENETUNREACH "captured=<absent>"
assert_eq "$(audit_count "exe=$PY" captured=true)" 0 "and never caught as a dropped packet too"

# ---- the namespace's loopback is its own: UDP servers there work, with and without the shim
loudp='import socket
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(fam, socket.SOCK_DGRAM); srv.bind((host, 0)); srv.settimeout(5)
    c = socket.socket(fam, socket.SOCK_DGRAM); c.sendto(b"ping", srv.getsockname())
    data, peer = srv.recvfrom(10); srv.sendto(b"pong", peer); c.settimeout(5)
    print(host, data.decode(), c.recv(10).decode())'
iso lo "$PY" -c "$loudp"
assert_out lo "127.0.0.1 ping pong
::1 ping pong" "isolated: a UDP server on the namespace's loopback answers (shim)"
iso lo-raw env -u LD_PRELOAD "$PY" -c "$loudp"
assert_out lo-raw "127.0.0.1 ping pong
::1 ping pong" "isolated: and without the shim (nothing of it is dropped)"
assert_eq "$(audit_count captured=true addr=127.0.0.1)" 0 "loopback datagrams are never recorded as dropped"

# ---- IPv6, UDP-lite, a name from the DNS stub
iso v6 "$US" 2001:db8::1 123 1
assert_out v6 "EPERM 1/1" "isolated: an IPv6 datagram fails with EPERM"
assert_audit 1 "and is recorded" op=send addr=2001:db8::1 port=123 proto=udp captured=true \
	rule=isolated
iso lite "$US" -l "$FARIP" "$PU" 1
assert_out lite "EPERM 1/1" "isolated: a UDP-lite datagram fails with EPERM"
assert_audit 1 "and is recorded with its IP protocol" op=send "addr=$FARIP" "port=$PU" proto=any \
	ipproto=136 captured=true rule=isolated
BUSYBOX=$(command -v busybox || true)
if [ -n "$BUSYBOX" ]; then
	iso tftp "$BUSYBOX" tftp -g -r x -l /dev/null web.test "$PU"
	assert_rc_nonzero "isolated: busybox tftp to web.test gets nowhere"
	# (busybox has exited by the time its packet is read: pid 0, its uid)
	assert_audit_ge 1 "its datagram is recorded by the name the stub gave the address for" op=send \
		name=web.test "port=$PU" captured=true rule=isolated uid=0
fi
assert_server u 0 "the receiver got nothing of these"

# ---- raw IP and ICMP sockets cannot be made: CMD has no CAP_NET_RAW
iso raw "$PY" -c 'import errno, socket
for what, args in (("raw", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)),
                   ("raw6", (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)),
                   ("ping", (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))):
    try:
        socket.socket(*args); print(what, "made")
    except OSError as e:
        print(what, errno.errorcode[e.errno])'
assert_out raw "raw EPERM
raw6 EPERM
ping EACCES" "isolated: raw sockets are refused (EPERM), ICMP echo sockets too (EACCES)"

# ---- the NFLOG socket hears only the kernel: a program inside (root there)
# that forges a packet message to it, or tries to take the group, is refused
iso forge "$PY" -c 'import errno, socket, struct
def attr(t, d): return struct.pack("=HH", 4 + len(d), t) + d + bytes(-len(d) % 4)
ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 192, 0, 2, 66]) + struct.pack(">HHHH", 1, 4242, 8, 0)
body = bytes([2, 0, 0, 7]) + attr(9, ip) + attr(12, struct.pack(">I", 0))
pkt = struct.pack("=IHHII", 16 + len(body), 4 << 8, 0, 0, 0) + body
cfg = bytes([0, 0, 0, 7]) + attr(1, bytes([1]))
bind = struct.pack("=IHHII", 16 + len(cfg), (4 << 8) | 1, 5, 1, 0) + cfg
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
got = set()
for portid in range(1, 64):  # the sandbox'"'"'s socket is one of them
    try:
        s.sendto(pkt, (portid, 0)); got.add("sent")
    except OSError as e:
        got.add(errno.errorcode[e.errno])
print("forge", " ".join(sorted(got)))
s.sendto(bind, (0, 0))
err = struct.unpack("=i", s.recv(100)[16:20])[0]
print("bind", errno.errorcode[-err] if err else "ok")'
assert_out forge "forge EPERM
bind EPERM" "isolated: no packet message can be sent to the NFLOG socket, nor the group taken (no CAP_NET_ADMIN)"
assert_eq "$(audit_count port=4242)" 0 "and a forged packet message reaches no audit line"

# ---- a flood: bounded audit lines, every datagram counted in status
iso_bg flood "$US" "$FARIP" 9 10000 "$T/hold-flood"
wait_for 20 grep -q '/10000' "$T/flood.out" || fail "the flood did not end"
FSOCK=$(ls "$T"/flood.tmp/egress-run.*/*.sock 2>/dev/null | head -n 1)
flood_counted() {
	"$BROKER_BIN" status --json --socket "$FSOCK" >"$T/flood.json" 2>"$T/flood-status.err" &&
		[ "$(jget "$T/flood.json" dropped.datagrams)" -ge 10000 ]
}
wait_for 10 flood_counted
assert_eq "$(jget "$T/flood.json" dropped.datagrams)" 10000 "status counts all 10000 dropped datagrams"
"$BROKER_BIN" status --socket "$FSOCK" >"$T/flood.txt" 2>&1
assert_contains "$T/flood.txt" "dropped datagrams: 10000 in isolated namespaces" \
	"and says so in its text form"
lost=$(jget "$T/flood.json" dropped.lost)
unit=$(jget "$T/flood.json" dropped.unitemised)
touch "$T/hold-flood"
iso_wait
assert_out flood "EPERM 10000/10000" "isolated: each datagram of the flood failed with EPERM"
lines=$(audit_count "addr=$FARIP" port=9)
assert_le "$lines" 12 "the flood is a few audit lines, not 10000 ($lines)"
assert_eq $(($(audit_sum port=9) + lost + unit)) 10000 \
	"which stand for every datagram but those status says were lost ($lost) or not itemised ($unit)"
assert_server u 0 "the receiver got nothing"

# ---- the same as an ordinary user, through a user namespace: copies of
# what it runs in a directory open to all, wherever the checkout is
if command -v setpriv >/dev/null 2>&1; then
	U=$T/unpriv
	mkdir -p "$U/tools" "$U/tmp"
	cp -a "$ROOT/build" "$U/" && cp "$RUN" "$U/tools/" && cp "$POLICY" "$U/policy.ini" &&
		cp "$US" "$U/udpsend"
	chmod -R a+rX "$U" && chmod 1777 "$U/tmp" && chmod a+x "$T"
	setpriv --reuid=65534 --regid=65534 --clear-groups env TMPDIR="$U/tmp" \
		timeout -k 5 60 "$U/tools/egress-run" --isolate --quiet --policy "$U/policy.ini" \
		--audit "$U/tmp/audit.jsonl" -- "$U/udpsend" "$FARIP" "$PU" 2 "$U/tmp/hold" \
		>"$T/user.out" 2>"$T/user.err" </dev/null &
	ISO_PID=$!
	bg_record "$ISO_PID"
	main_audit=$AUDIT
	AUDIT=$U/tmp/audit.jsonl
	assert_audit 1 "as uid 65534: the datagram is recorded, with the user and the executable" \
		op=send "addr=$FARIP" "port=$PU" captured=true rule=isolated errno=EPERM uid=65534 \
		"exe=$U/udpsend" count=1
	touch "$U/tmp/hold"
	iso_wait
	assert_out user "EPERM 2/2" "as uid 65534: the static binary's sendto fails with EPERM"
	assert_eq "$(audit_sum "exe=$U/udpsend")" 2 "as uid 65534: both datagrams are in the audit log"
	AUDIT=$main_audit
	assert_not_contains "$T/user.err" "not audited" "as uid 65534: the sandbox opened NFLOG"
	assert_server u 0 "as uid 65534: the receiver got nothing"
fi

finish
