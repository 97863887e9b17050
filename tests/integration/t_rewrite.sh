# t_rewrite.sh: rewritten connections with scripted upstreams: what a
# program sees when the upstream refuses, fails or is slow (the documented
# errno, the reason in the audit log), the direct and relay transports with
# their byte counts and limit, a nonblocking connect that never waits for
# the network (node's timer keeps firing; python's connect returns before
# the proxy answers), socket options and getpeername across the hand-over,
# and datagrams to a rewritten name.
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
PA=$(port a)

# fake upstreams: fakeproxy.py MODE PORTFILE LOG [TARGET]
fake() {
	"$PY" "$H/fakeproxy.py" "$2" "$T/fp-$1.port" "$T/fp-$1.log" "${3:-0}" 2>"$T/fp-$1.err" &
	bg_record $!
	wait_for 5 test -s "$T/fp-$1.port" || fail "fake proxy $1 did not start"
}
fport() { cat "$T/fp-$1.port"; }
# at_least A B SECS: both times known (seconds since the epoch) and A >= B + SECS
at_least() {
	[ -n "$1" ] && [ -n "$2" ] &&
		"$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) + float(sys.argv[3]) else 1)' "$1" "$2" "$3"
}
fake h403 http:403
fake h407 http:407
fake h504 http:504
fake h502 http:502
fake s2 socks:2
fake s3 socks:3
fake s4 socks:4
fake s5 socks:5
fake silent silent
fake slow slow:2 "$PA"
fake rst reset
fake halting halting:2 "$PA"
DOWN=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

{
	policy_egress timeout=3
	policy_hosts direct.egress.test=127.0.0.1 relay.egress.test=127.0.0.1 \
		limited.egress.test=127.0.0.1 hold.egress.test=127.0.0.1 \
		limdirect.egress.test=127.0.0.1 relay6.egress.test=::1
	policy_rule direct host=direct.egress.test action=rewrite
	policy_rule relay host=relay.egress.test,relay6.egress.test action=rewrite transport=relay
	policy_rule limited host=limited.egress.test action=rewrite transport=relay limit=64K
	policy_rule limdirect host=limdirect.egress.test action=rewrite limit=64K
	policy_rule hold host=hold.egress.test action=rewrite transport=relay
	policy_rule halting host=halting.egress.test action=rewrite "transport=http://127.0.0.1:$(fport halting)"
	policy_rule lh host=localhost action=rewrite
	policy_rule down host=down.egress.test action=rewrite "transport=http://127.0.0.1:$DOWN"
	policy_rule slow host=slow.egress.test action=rewrite "transport=http://127.0.0.1:$(fport slow)"
	policy_rule silent host=silent.egress.test action=rewrite "transport=socks5://127.0.0.1:$(fport silent)"
	for f in h403 h407 h504 h502; do
		policy_rule "$f" "host=$f.egress.test" action=rewrite "transport=http://127.0.0.1:$(fport $f)"
	done
	for f in s2 s3 s4 s5; do
		policy_rule "$f" "host=$f.egress.test" action=rewrite "transport=socks5://127.0.0.1:$(fport $f)"
	done
} | write_policy
start_broker || finish

# ---- refusals and failures: errno, stderr line, audit reason
check_fail() { # NAME ERRNO UPSTREAM
	run_shim "f-$1" "$PY" "$H/rwclient.py" connect "$1.egress.test" 443
	assert_out "f-$1" "err $2" "$1: connect fails with $2"
	assert_lines "$T/f-$1.err" "egress: connect to $1.egress.test:443 failed in the transport" 1 \
		"$1: one line on stderr names the destination"
	assert_audit 1 "$1: the reason is recorded" op=connect action=rewrite "name=$1.egress.test" \
		"errno=$2" "upstream=$3"
}
check_fail down ECONNREFUSED "connect to the proxy: Connection refused"
check_fail h403 EACCES "HTTP 403 Scripted"
check_fail h407 EACCES "HTTP 407 Scripted"
check_fail h504 ETIMEDOUT "HTTP 504 Scripted"
check_fail h502 ECONNREFUSED "HTTP 502 Scripted"
check_fail s2 EACCES "SOCKS5 reply 2 (not allowed by ruleset)"
check_fail s3 ENETUNREACH "SOCKS5 reply 3 (network unreachable)"
check_fail s4 EHOSTUNREACH "SOCKS5 reply 4 (host unreachable)"
check_fail s5 ECONNREFUSED "SOCKS5 reply 5 (connection refused)"
check_fail silent ETIMEDOUT "timeout"
assert_contains "$T/fp-h403.log" "request CONNECT h403.egress.test:443 HTTP/1.1" "the HTTP proxy got the name"
assert_contains "$T/fp-s5.log" "socks s5.egress.test:443" "the SOCKS5 proxy got the name (address type domain)"

# the direct transport looks a name up when the program does: one that
# resolves only to a private address (here loopback, which no rule opens)
# fails at its lookup
run_shim lh "$PY" "$H/rwclient.py" connect localhost "$PA"
assert_out lh "gaierror -2" "direct transport: a name that resolves only to loopback fails at its lookup"
assert_audit 1 "the refusal says why" op=resolve name=localhost action=deny rule=private \
	errno=EAI_NONAME

# ---- direct and relay
run_shim direct "$PY" "$H/rwclient.py" get direct.egress.test "$PA" /direct
assert_contains "$T/direct.out" "ok egress-it /direct" "direct: the program got the body"
BROKER_MAKES="under --isolate the broker makes the connection outside and hands its socket in"
not_isolated "$BROKER_MAKES" &&
	assert_audit 1 "direct: the program's own socket connected, recorded as a rewrite" \
		op=connect name=direct.egress.test action=rewrite transport=direct \
		"upstream=the program's own socket"
assert_audit 0 "direct: nothing relayed" op=close name=direct.egress.test
# the program's own socket: what it bound stays, and a refusal is the
# kernel's own, blocking or not
run_shim bound "$PY" "$H/rwclient.py" bound direct.egress.test "$PA"
not_isolated "$BROKER_MAKES: the address bound inside is not that socket's" &&
	assert_out bound "ok kept=1" "direct: the address bound before connect is the socket's after it"
run_shim refused "$PY" "$H/rwclient.py" connect direct.egress.test "$DOWN"
assert_out refused "err ECONNREFUSED" "direct: a refused blocking connect is ECONNREFUSED"
run_shim nb-refused "$PY" "$H/rwclient.py" nonblock direct.egress.test "$DOWN" /x
assert_contains "$T/nb-refused.out" "returned EINPROGRESS" "direct: a nonblocking connect is in progress"
assert_contains "$T/nb-refused.out" "err ECONNREFUSED" "and its SO_ERROR is the refusal, as without egress"

# through the relay a nonblocking connect is held in progress until the
# relay's own connect is done: a refusal is a refused connect
run_shim nb-refused-relay "$PY" "$H/rwclient.py" nonblock relay.egress.test "$DOWN" /x
assert_contains "$T/nb-refused-relay.out" "returned EINPROGRESS" "relay: a nonblocking connect is in progress"
assert_contains "$T/nb-refused-relay.out" "err ECONNREFUSED" \
	"and its SO_ERROR is the refusal, not a reset after success"

run_shim relay "$PY" "$H/rwclient.py" get relay.egress.test "$PA" /relay
assert_contains "$T/relay.out" "ok egress-it /relay" "relay: the program got the body"
sent=$(sed -n 's/.* sent=\([0-9]*\) .*/\1/p' "$T/relay.out")
received=$(sed -n 's/.* received=\([0-9]*\)$/\1/p' "$T/relay.out")
assert_audit 1 "relay: byte counts equal what the program sent and received" op=close \
	name=relay.egress.test "bytes_sent=$sent" "bytes_received=$received" limit_hit=false
broker_status st1
assert_eq "$(jget "$T/st1.json" relay.bytes_sent)" "$sent" "status: relayed bytes sent"
assert_eq "$(jget "$T/st1.json" relay.bytes_received)" "$received" "status: relayed bytes received"
assert_eq "$(jget "$T/st1.json" relay.active)" 0 "status: no relayed connection left open"

# an AF_INET6 socket (connecting to the mapped synthetic address) gets an
# AF_INET6 socket back, whichever way the connection is made
run_shim v6-direct "$PY" "$H/rwclient.py" v6get direct.egress.test "$PA" /v6-direct
assert_out v6-direct "ok egress-it /v6-direct domain=10 sockname=10 v6only=0" \
	"direct: an IPv6 socket stays IPv6 (SO_DOMAIN, getsockname, IPV6_V6ONLY)"
run_shim v6-relay "$PY" "$H/rwclient.py" v6get relay.egress.test "$PA" /v6-relay
assert_out v6-relay "ok egress-it /v6-relay domain=10 sockname=10 v6only=0" \
	"relay: an IPv6 socket stays IPv6"
run_shim v6-nb "$PY" "$H/rwclient.py" v6get direct.egress.test "$PA" /v6-nb nb
assert_out v6-nb "ok egress-it /v6-nb domain=10 sockname=10 v6only=0" \
	"nonblocking: an IPv6 socket stays IPv6"

# an IPv6 socket connected through the relay to ::1 has ::1 as its own
# address (its loopback leg is IPv6, not ::ffff:127.0.0.1), so a program
# that gives the peer its own address to connect back to (ftplib's active
# mode, to a listener on [::] that takes IPv6 only) is reached there
start_server a6 http ::1
for nb in "" nb; do
	run_shim "back6$nb" "$PY" "$H/rwclient.py" back6 relay6.egress.test "$(port a6)" $nb
	if not_isolated "the broker connects back from the host, where the listener in the program's namespace is not"; then
		assert_out "back6$nb" "ok self=::1 back=1" \
			"relay: an IPv6 connection to ::1 is from ::1, and reached back there${nb:+ (nonblocking)}"
	else
		assert_contains "$T/back6$nb.out" "self=::1" \
			"relay: an IPv6 connection to ::1 is from ::1${nb:+ (nonblocking)}"
	fi
done

# to the silent fake, which takes the bytes and never answers or closes: a
# web server would answer the GET and reset the flood before the limit
run_shim limited "$PY" "$H/rwclient.py" flood limited.egress.test "$(fport silent)" 1048576
assert_not_contains "$T/limited.out" "end EOF" "limit: the connection was cut, not finished"
assert_audit 1 "limit: the close event says the limit was hit" op=close name=limited.egress.test \
	limit_hit=true
assert_audit 1 "limit: exactly the 64K allowed got through before the cut" op=close \
	name=limited.egress.test bytes_sent=65536 bytes_received=0
# the same limit on the direct transport, whose blocking connect would
# otherwise get the upstream socket itself: the broker relays to cut it
run_shim limdirect "$PY" "$H/rwclient.py" flood limdirect.egress.test "$(fport silent)" 1048576
assert_not_contains "$T/limdirect.out" "end EOF" "limit on direct: the connection was cut"
assert_audit 1 "limit on direct: exactly 64K got through, the limit hit" op=close \
	name=limdirect.egress.test bytes_sent=65536 bytes_received=0 limit_hit=true transport=direct

# a destination that sends, then resets: the bytes come first, as over a
# direct connection, through the relay as through the program's own socket
for via in relay direct; do
	run_shim "rst-$via" "$PY" "$H/rwclient.py" reset "$via.egress.test" "$(fport rst)"
	assert_out "rst-$via" "got before-reset
end ECONNRESET" "$via: the data sent before a reset arrives, then the reset"
done

# urgent data: the program's own socket carries it; the relay would pass it
# on as an ordinary byte, so the program is told instead
run_shim oob-direct "$PY" "$H/rwclient.py" oob direct.egress.test "$PA"
assert_out oob-direct "ok" "direct: urgent data (MSG_OOB) is sent"
run_shim oob-relay "$PY" "$H/rwclient.py" oob relay.egress.test "$PA"
assert_out oob-relay "err ENOTSUP" "relay: urgent data is refused (EOPNOTSUPP)"
assert_contains "$T/oob-relay.err" "urgent data (MSG_OOB) to 127.0.0.1:$PA cannot go" \
	"with one line naming where it was going"

# ---- the broker does not spin: CPU ticks it used (utime + stime) over a
# wait of 2 s, against the 200 a busy loop takes; a bound on a bug, not a
# speed figure
ticks() { awk '{ print $14 + $15 }' "/proc/$BROKER_PID/stat"; }
t0=$(ticks)
run_shim halting "$PY" "$H/rwclient.py" get halting.egress.test "$PA" /halting
assert_contains "$T/halting.out" "ok egress-it /halting" "an HTTP proxy answer that arrives in two parts, 2 s apart"
t1=$(ticks)
assert_le $((t1 - t0)) 50 "the broker waited for the rest of it without spinning ($((t1 - t0)) ticks)"
# a relayed program that half-closes, then resets, to a destination that
# never speaks (the silent fake): the relay ends, and does not spin
run_shim abort "$PY" "$H/rwclient.py" abort hold.egress.test "$(fport silent)"
assert_out abort "ok" "the program half-closed, then reset its relayed connection"
gone_relay() {
	env $BROKER_SAN_ENV "$BROKER_BIN" status --json --socket "$SOCK" >"$T/st-abort.json" 2>/dev/null &&
		[ "$(jget "$T/st-abort.json" relay.active)" = 0 ]
}
wait_for 5 gone_relay
broker_status st-abort
assert_eq "$(jget "$T/st-abort.json" relay.active)" 0 "the relay dropped the reset connection"
t0=$(ticks)
sleep 2
t1=$(ticks)
assert_le $((t1 - t0)) 50 "and the broker is idle after it ($((t1 - t0)) ticks in 2 s)"

# status lists each relayed connection with its bytes while it lasts
run_shim hold "$PY" "$H/rwclient.py" hold hold.egress.test "$(fport silent)" 4321 4 &
HOLD=$!
listed() {
	env $BROKER_SAN_ENV "$BROKER_BIN" status --json --socket "$SOCK" >"$T/st-hold.json" 2>/dev/null &&
		grep -q '"bytes_sent":4321,' "$T/st-hold.json"
}
wait_for 5 listed
"$PY" - "$T/st-hold.json" "$(fport silent)" >"$T/hold-conn.out" <<'PYEOF'
import json, sys
conns = json.load(open(sys.argv[1]))["relay"]["connections"]
print(" ".join("%s %s %d %d" % (c["destination"], c["rule"], c["bytes_sent"], c["bytes_received"])
               for c in conns))
PYEOF
assert_out hold-conn "hold.egress.test:$(fport silent) hold 4321 0" \
	"status --json lists the relayed connection: destination, rule, bytes both ways"
env $BROKER_SAN_ENV "$BROKER_BIN" status --socket "$SOCK" >"$T/st-hold.txt" 2>/dev/null
assert_contains "$T/st-hold.txt" "relaying hold.egress.test:$(fport silent) (pid " "status lists it too"
wait $HOLD

# ---- nonblocking: no waiting on the network
run_shim nb-node "$NODE" "$H/rwnode.js" slow.egress.test "$PA" /node-slow
assert_contains "$T/nb-node.out" "ok 200 egress-it /node-slow" "node got the body through a slow proxy"
ticks=$(sed -n 's/.*ticks=\([0-9]*\)/\1/p' "$T/nb-node.out")
assert_ge "${ticks:-0}" 20 "node's 20 ms timer kept firing while the proxy took 2 s ($ticks ticks)"

before=$(audit_count op=connect name=slow.egress.test)
run_shim nb-py "$PY" "$H/rwclient.py" nonblock slow.egress.test "$PA" /py-slow early
assert_contains "$T/nb-py.out" "ok egress-it /py-slow blocking=1" "python nonblocking connect, then the exchange"
assert_contains "$T/nb-py.out" "early EALREADY" "a second connect while the proxy has not answered: EALREADY, as without egress"
assert_contains "$T/nb-py.out" "again EISCONN" "a second connect on the finished socket: EISCONN, as without egress"
sleep 0.5 # the audit event of a second rewrite would be written by now
assert_eq "$(audit_count op=connect name=slow.egress.test)" $((before + 1)) \
	"and no second connection through the transport (one audit event)"
returned=$(sed -n 's/^returned EINPROGRESS at \([0-9.]*\)$/\1/p' "$T/nb-py.out")
answered=$(tail -n 1 "$T/fp-slow.log" | sed -n 's/^answered //p')
if [ -n "$returned" ] && [ -n "$answered" ] && ! at_least "$returned" "$answered" 0; then
	pass "python's connect returned EINPROGRESS before the proxy answered"
else
	fail "python's connect did not return before the proxy answered (returned [$returned], answered [$answered])"
	show "$T/nb-py.out"
fi
writable=$(sed -n 's/^writable at \([0-9.]*\)$/\1/p' "$T/nb-py.out")
if at_least "$writable" "$returned" 1.5; then
	pass "and its socket turned writable (connected) only once the proxy had answered, 2 s later"
else
	fail "python's socket turned writable before the proxy answered (returned [$returned], writable [$writable])"
	show "$T/nb-py.out"
fi

run_shim nb-fail "$NODE" "$H/rwnode.js" h403.egress.test 443 /
assert_contains "$T/nb-fail.out" "err EACCES" "nonblocking: a proxy's refusal (403) is the connect's error, EACCES"

# ---- the hand-over keeps what the program set
# (through a proxy, whose names get synthetic addresses)
run_shim opts "$PY" "$H/rwclient.py" options slow.egress.test "$PA"
assert_contains "$T/opts.out" "synthetic=1 nodelay=1 keepalive=1 rcvbuf_same=1 inheritable=0" \
	"getpeername is the synthetic address; TCP_NODELAY, SO_KEEPALIVE, SO_RCVBUF, FD_CLOEXEC kept"
assert_contains "$T/opts.out" "peer 198.1" "the peer is in 198.18.0.0/15"

# ---- datagrams and IPv6-only lookups
start_server u udp 127.0.0.1
NOUDP="datagrams do not leave an isolated namespace"
run_shim udp "$PY" "$H/rwclient.py" udp direct.egress.test "$(port u)"
if isolated; then
	assert_out udp "ok" "isolated: a datagram to 127.0.0.1 goes to the namespace's own loopback"
	assert_server u 0 "and not to the host's"
else
	assert_out udp "ok" "a datagram to a name rewritten through the direct transport goes"
	assert_server u 1 "and arrives"
	assert_audit 1 "recorded as a rewrite" op=send action=rewrite name=direct.egress.test \
		transport=direct
fi
# through the relay: the broker's association carries them both ways,
# counted, held to the limit, the answers shown as from the destination
if not_isolated "$NOUDP: the relay's association is on the host's loopback"; then
	run_shim udp-relay "$PY" "$H/rwclient.py" ping relay.egress.test "$(port u)" 3 100
	assert_out udp-relay "pongs 3 from 127.0.0.1:$(port u)" \
		"relay: three datagrams there and their answers back, from the destination's address"
	assert_audit_ge 1 "recorded as a rewrite through the datagram relay" op=send \
		action=rewrite name=relay.egress.test transport=relay "upstream=datagram relay"
	# fire-and-forget senders (each socket closed as soon as it has sent)
	# and a socket bound to ::1: the association takes them by the port
	# the shim named when it asked
	start_server f udp 127.0.0.1
	start_server f6 udp ::1
	run_shim udp-fire "$PY" "$H/rwclient.py" fire relay.egress.test "$(port f)" 20 \
		relay6.egress.test "$(port f6)"
	assert_out udp-fire ok "relay: 20 sockets sent one datagram each and closed at once"
	assert_server f 20 "relay: all 20 arrived, none lost to a closed sender"
	assert_server f6 1 "relay: a socket bound to ::1 reaches the association on ::1"
	assert_audit 21 "each sending socket's first datagram recorded once (none twice for naming its port)" \
		op=send action=rewrite transport=relay "upstream=datagram relay" pid="$(audit_values pid op=send name=relay6.egress.test | head -n 1)"
	run_shim udp-lim "$PY" "$H/rwclient.py" ping limited.egress.test "$(port u)" 640 100
	assert_out udp-lim "pongs 630 from 127.0.0.1:$(port u)" \
		"relay limit 64K: 630 exchanges of 104 bytes get through, then nothing"
	# a receiver under egress (an echo server in the sending process, as
	# asyncio's tests have) answers the sender it sees: the association's
	# socket, connected to it, which takes a datagram from it alone
	run_shim udp-echo "$PY" "$H/rwclient.py" echo relay.egress.test 3
	assert_contains "$T/udp-echo.out" "echoes 3 from 127.0.0.1:" \
		"relay: an echo server under egress answers through the association, all three back"
	assert_audit_ge 1 "the answer is recorded as sent by the program's own socket" op=send \
		action=rewrite transport=relay "upstream=the program's own socket (an answer to a socket connected to it)"
fi
# through an HTTP proxy, which cannot carry datagrams: refused, said so
run_shim udp-http "$PY" "$H/rwclient.py" udp slow.egress.test "$(port u)"
assert_out udp-http "err EPROTONOSUPPORT" "an HTTP proxy's datagram: EPROTONOSUPPORT"
assert_contains "$T/udp-http.err" "its transport carries no datagrams" "and one line that says why"
assert_audit 1 "the refusal is recorded" op=send action=deny name=slow.egress.test
run_shim v6 "$PY" "$H/rwclient.py" resolve6 h403.egress.test
assert_contains "$T/v6.out" "gaierror" "an IPv6-only lookup of a name a proxy resolves gets no address"

broker_status st2
assert_eq "$(jget "$T/st2.json" resolver.lookups)" 1 "the broker's only DNS lookup was localhost's"
if not_isolated "$NOUDP: no datagram relay was made"; then
	assert_eq "$(jget "$T/st2.json" datagram_relays.active)" 5 "status: five datagram relays active (ping, fire, fire on ::1, limited, echo)"
	# an association's end (idle, or the broker stopping) is recorded with its bytes
	stop_broker
	assert_audit 1 "relay: the association's close has its byte counts" op=close \
		name=relay.egress.test proto=udp bytes_sent=300 bytes_received=12
	assert_audit 1 "limit: the association's close says the limit was hit" op=close \
		name=limited.egress.test proto=udp limit_hit=true
fi
finish
