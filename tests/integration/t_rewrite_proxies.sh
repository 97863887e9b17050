# t_rewrite_proxies.sh: rewrite through real proxies from Debian: tinyproxy
# (HTTP CONNECT), microsocks (SOCKS5, with credentials) and dante (SOCKS5
# UDP ASSOCIATE, for datagrams). curl, python3 and node reach a name that
# only the proxies can resolve: they run in a mount namespace with their
# own /etc/hosts, while the broker and the programs keep this host's, where
# the name does not exist. So a success means the name went to the proxy
# (remote DNS), and the broker's resolver counter shows it made no lookup.
. "$ROOT/tests/integration/lib.sh"
need_build

for p in tinyproxy microsocks danted unshare; do
	command -v $p >/dev/null 2>&1 || { fail "$p is not installed (tools/install-deps.sh --test)"; finish; }
done

start_server a http 127.0.0.1
PA=$(port a)
PT=$(free_port)
PS=$(free_port)
PD=$(free_port)
PASS=hunter2-$$
start_server u udp 127.0.0.1
PU=$(port u)
start_server u6 udp ::1
PU6=$(port u6)

printf '127.0.0.1 localhost\n127.0.0.1 api.egress.test sx.egress.test udp.egress.test\n' >"$T/hosts"
dante_conf "$PD"
cat >"$T/tinyproxy.conf" <<EOF
Port $PT
Listen 127.0.0.1
Timeout 30
Allow 127.0.0.1
ConnectPort $PA
LogFile "$T/tinyproxy.log"
LogLevel Info
MaxClients 20
EOF
# in a private mount namespace: /etc/hosts knows the names there only
unshare -m sh -c "mount --bind '$T/hosts' /etc/hosts && exec tinyproxy -d -c '$T/tinyproxy.conf'" \
	>"$T/tinyproxy.out" 2>&1 &
bg_record $!
start_microsocks() {
	unshare -m sh -c "mount --bind '$T/hosts' /etc/hosts && exec microsocks -i 127.0.0.1 -p $PS -u egress -P $PASS" \
		>>"$T/microsocks.out" 2>&1 &
	MS_PID=$!
	bg_record $MS_PID
}
start_microsocks
unshare -m sh -c "mount --bind '$T/hosts' /etc/hosts && exec danted -f '$T/danted.conf' -p '$T/danted.pid'" \
	>"$T/danted.out" 2>&1 &
bg_record $!
listening() { "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1"; }
wait_for 5 listening "$PT" || fail "tinyproxy did not start"
wait_for 5 listening "$PS" || fail "microsocks did not start"
wait_for 5 listening "$PD" || fail "danted did not start"

if getent hosts api.egress.test >/dev/null; then
	fail "api.egress.test resolves on this host: the test would not show remote DNS"
fi

{
	policy_egress timeout=5
	policy_rule via-http host=api.egress.test action=rewrite "transport=http://127.0.0.1:$PT"
	policy_rule via-socks host=sx.egress.test action=rewrite "transport=socks5://egress:$PASS@127.0.0.1:$PS"
	policy_rule via-dante host=udp.egress.test action=rewrite "transport=socks5://127.0.0.1:$PD"
	policy_rule via-dante6 cidr=::1/128 "port=$PU6" proto=udp action=rewrite \
		"transport=socks5://127.0.0.1:$PD"
	policy_rule via-dante-lo cidr=127.0.0.1/32 proto=udp action=rewrite \
		"transport=socks5://127.0.0.1:$PD"
} | write_policy
start_broker || finish

for name in api.egress.test sx.egress.test; do
	case $name in api*) via=http ;; *) via=socks ;; esac
	run_shim curl-$via "$CURL" -sS "http://$name:$PA/curl-$via"
	assert_rc 0 "curl through $via"
	assert_out curl-$via "egress-it /curl-$via" "curl got the server's body through $via"

	run_shim py-$via "$PY" "$H/pyclient.py" urllib "http://$name:$PA/py-$via"
	assert_contains "$T/py-$via.out" "egress-it /py-$via" "python urllib got the body through $via"

	run_shim node-$via "$NODE" "$H/rwnode.js" "$name" "$PA" "/node-$via"
	assert_contains "$T/node-$via.out" "ok 200 egress-it /node-$via" "node http.get got the body through $via"
done

assert_server a 6 "six requests arrived, every one through a proxy"
assert_contains "$T/tinyproxy.log" "api.egress.test" "tinyproxy's log names the destination by name"
assert_not_contains "$T/tinyproxy.log" "198.18." "tinyproxy never saw a synthetic address"

assert_audit 3 "rewritten connects through tinyproxy" op=connect action=rewrite name=api.egress.test \
	"transport=http://127.0.0.1:$PT" "upstream=HTTP 200 Connection established" errno=null
assert_audit 3 "rewritten connects through microsocks" op=connect action=rewrite name=sx.egress.test \
	"transport=socks5://***@127.0.0.1:$PS" "upstream=SOCKS5 reply 0 (succeeded)" errno=null
run_shim v6-http "$PY" "$H/rwclient.py" v6get api.egress.test "$PA" /v6-http
assert_out v6-http "ok egress-it /v6-http domain=10 sockname=10 v6only=0" \
	"through tinyproxy, an IPv6 socket stays IPv6"
assert_audit_ge 2 "resolves answered with synthetic addresses" op=resolve action=rewrite

# spares: once a proxy has been used, the broker keeps one connection to
# it waiting, greeted and authenticated (SOCKS5) or connected (HTTP), for
# the next connect; one the proxy has closed meanwhile is never used
spares() { ss -Htn state established "( dport = :$1 )" | wc -l; }
wait_for 5 test "$(spares "$PS")" = 1
assert_eq "$(spares "$PS")" 1 "one connection to microsocks waits while no program runs"
wait_for 5 test "$(spares "$PT")" = 2
assert_eq "$(spares "$PT")" 2 "and two to tinyproxy: for IPv4 sockets, and for IPv6 ones (v6-http)"
kill "$MS_PID"
wait_for 5 test "$(spares "$PS")" = 0
start_microsocks
wait_for 5 listening "$PS" || fail "microsocks did not start again"
run_shim curl-respare "$CURL" -sS "http://sx.egress.test:$PA/curl-respare"
assert_rc 0 "curl through a restarted microsocks (its spare had been closed)"
assert_out curl-respare "egress-it /curl-respare" "and got the body"

# datagrams through dante's UDP ASSOCIATE: the name goes to the proxy
# with each datagram, the answers come back as from the address the
# program sent to (its synthetic one)
if not_isolated "datagrams do not leave an isolated namespace"; then
	run_shim udp-dante "$PY" "$H/rwclient.py" ping udp.egress.test "$PU" 3 50
	assert_contains "$T/udp-dante.out" "pongs 3 from 198.1" \
		"python's datagrams through dante: three answered, from the synthetic address"
	assert_contains "$T/udp-dante.out" ":$PU" "and the port it sent to"
	assert_eq "$(grep -c '^dgram ping' "$T/srv-u.log")" 3 "the UDP server got the three, through dante"
	assert_audit_ge 1 "recorded as a rewrite through SOCKS5" op=send action=rewrite \
		name=udp.egress.test "transport=socks5://127.0.0.1:$PD" "upstream=datagram relay"
	# to a receiver on ::1: dante sends from its IPv6 external address
	run_shim udp-dante6 "$PY" "$H/rwclient.py" ping ::1 "$PU6" 3 50
	assert_out udp-dante6 "pongs 3 from ::1:$PU6" \
		"datagrams to ::1 through dante: three answered, from the address sent to"
	assert_eq "$(grep -c '^dgram ping' "$T/srv-u6.log")" 3 "the UDP server on ::1 got the three, through dante"
	# a receiver under egress answers the sender it sees: dante's socket,
	# connected to it (an echo server in the sending process)
	run_shim udp-dante-echo "$PY" "$H/rwclient.py" echo 127.0.0.1 3
	assert_contains "$T/udp-dante-echo.out" "echoes 3 from 127.0.0.1:" \
		"an echo server under egress answers through dante, all three back"
fi

broker_status st
assert_eq "$(jget "$T/st.json" resolver.lookups)" 0 "the broker made no DNS lookup"
assert_eq "$(jget "$T/st.json" decisions.rewrite)" "$(audit_count action=rewrite op!=close)" \
	"status counts the rewrites the audit log has (resolves and connects)"

# the password is nowhere but the policy file
"$BROKER_BIN" status --socket "$SOCK" >"$T/st.txt" 2>&1
tr '\0' ' ' <"/proc/$BROKER_PID/cmdline" >"$T/cmdline"
cat "$T"/*-http.err "$T"/*-socks.err >"$T/programs.err"
for f in "$AUDIT" "$T/st.json" "$T/st.txt" "$T/broker.err" "$T/cmdline" "$T/programs.err"; do
	assert_not_contains "$f" "$PASS" "the proxy password is not in $(basename "$f")"
done
if not_isolated "no datagram association was made"; then
	stop_broker # its association's close, with its bytes
	assert_audit 1 "the association's close has its byte counts" op=close name=udp.egress.test \
		proto=udp bytes_sent=150 bytes_received=12
fi

finish
