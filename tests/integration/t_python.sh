# t_python.sh: python3 under the shim: urllib, raw connects with the rule's
# errno, threads, fork, UDP (sendto, sendmsg, connected), getaddrinfo of a
# denied name, IPv6 ::1, IPv4-mapped addresses and name attribution. Run
# isolated too (ISOLATE=1, see lib.sh): what then differs is said at each
# check (lo_err, assert_audit_lo, not_isolated).
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
start_server b http 127.0.0.1
start_server c http 127.0.0.1
start_server n http 127.0.0.2
start_server ua udp 127.0.0.1
start_server ub udp 127.0.0.1
start_server s6 http ::1
start_server s6b http ::1
PA=$(port a) PB=$(port b) PC=$(port c) PN=$(port n)
PUA=$(port ua) PUB=$(port ub) P6=$(port s6) P6B=$(port s6b)

{
	policy_egress cache_ttl=300
	policy_hosts api.test=127.0.0.2 svc2.test=127.0.0.1 svc3.test=127.0.0.1
	policy_rule svc2 host=svc2.test "port=$PA" action=allow
	policy_rule svc3-no-c host=svc3.test "port=$PC" proto=tcp action=deny errno=ECONNRESET
	policy_rule svc3 host=svc3.test action=allow
	policy_rule lh host=localhost action=allow
	policy_rule api host=api.test "port=$PN" action=allow
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" proto=tcp action=deny
	policy_rule refuse-c cidr=127.0.0.1/32 "port=$PC" proto=tcp action=deny errno=ECONNREFUSED
	policy_rule udp-ok cidr=127.0.0.1/32 "port=$PUA" proto=udp action=allow
	policy_rule udp-block cidr=127.0.0.1/32 "port=$PUB" proto=udp action=deny
	policy_rule v6-ok cidr=::1/128 "port=$P6" action=allow
	policy_rule no-evil host=evil.test action=deny
} | write_policy
start_broker || finish

echo "# urllib"
pyc u-a urllib "http://127.0.0.1:$PA/u-a"
assert_rc 0 "python urllib (allowed)"
assert_out u-a "body egress-it /u-a" "urllib got the allowed body"
assert_audit 1 "urllib's allowed connect, exe is the python binary" op=connect action=allow port="$PA" rule=srv-a exe="$PY"
pyc u-b urllib "http://127.0.0.1:$PB/u-b"
assert_out u-b "err $(lo_err EPERM)" "urllib to the denied server: URLError with $(lo_err EPERM)"
not_isolated "a denied connect to 127.0.0.1 is refused by the namespace's own loopback, not the shim: no egress line" &&
	assert_contains "$T/u-b.err" "egress: denied connect to 127.0.0.1:$PB (rule block-b)" "egress line on python's stderr"
pyc u-c urllib "http://127.0.0.1:$PC/u-c"
assert_out u-c "err ECONNREFUSED" "urllib to the errno=ECONNREFUSED rule: URLError with ECONNREFUSED"

echo "# raw connects"
pyc c-a connect 127.0.0.1 "$PA"
assert_out c-a "ok" "raw connect allowed"
pyc c-b connect 127.0.0.1 "$PB"
assert_out c-b "err $(lo_err EPERM)" "raw connect denied with $(lo_err EPERM) (default errno)"
pyc c-c connect 127.0.0.1 "$PC"
assert_out c-c "err ECONNREFUSED" "raw connect denied with the rule's errno ECONNREFUSED"
not_isolated "a denied connect to 127.0.0.1 is refused by the namespace's own loopback, not the shim: no egress line" &&
	assert_contains "$T/c-c.err" "egress: denied connect to 127.0.0.1:$PC (rule refuse-c)" "egress line names rule refuse-c"
assert_audit_lo 2 "ECONNREFUSED denials recorded" op=connect action=deny port="$PC" rule=refuse-c errno=ECONNREFUSED
assert_server c 0 "ECONNREFUSED-rule server saw nothing"

echo "# IPv4-mapped IPv6 judged as IPv4"
pyc m-a mapped "$PA"
assert_out m-a "ok" "connect to ::ffff:127.0.0.1 allowed by the 127.0.0.1/32 rule"
pyc m-b mapped "$PB"
assert_out m-b "err $(lo_err EPERM)" "connect to ::ffff:127.0.0.1 on b denied by block-b"
assert_audit 3 "mapped connect recorded with the IPv4 address" op=connect action=allow addr=127.0.0.1 port="$PA" rule=srv-a
assert_audit_lo 3 "mapped deny recorded with the IPv4 address" op=connect action=deny addr=127.0.0.1 port="$PB" rule=block-b

echo "# threads: 8 x 20 x (allowed, denied)"
pyc thr threads 127.0.0.1 "$PA" 127.0.0.1 "$PB" 8 20
assert_rc 0 "threaded python"
assert_out thr "A ok 160
B err $(lo_err EPERM) 160" "160 allowed connects succeeded, 160 denied ones failed with $(lo_err EPERM)"
assert_audit 163 "every threaded allow recorded" op=connect action=allow port="$PA"
assert_audit_lo 163 "every threaded deny recorded" op=connect action=deny port="$PB" errno=EPERM

echo "# fork"
pyc fork fork 127.0.0.1 "$PA" 127.0.0.1 "$PB"
read -r _ PPID_ CPID_ _ _ <<EOF
$(grep '^pids' "$T/fork.out")
EOF
assert_out fork "parent-A ok
child-A ok
child-B err $(lo_err EPERM)
parent-B err $(lo_err EPERM)
pids $PPID_ $CPID_ status 0" "forked child and parent judged alike"
if isolated; then
	# the pids python prints are its PID namespace's; the broker's are the
	# host's: its last two attempts on b, the child's and then the parent's,
	# give them
	set -- $(audit_values pid op=connect "port=$PB" | tail -n 2)
	CPID_=${1:-} PPID_=${2:-}
	assert_ne "$CPID_" "$PPID_" "the child's attempt on b and the parent's are under two pids ($CPID_, $PPID_)"
fi
assert_audit 1 "child's allowed connect recorded under the child's pid" op=connect action=allow port="$PA" pid="$CPID_"
assert_audit_lo 1 "child's denied connect recorded under the child's pid" op=connect action=deny port="$PB" pid="$CPID_"
assert_audit 1 "parent's allowed connect under the parent's pid" op=connect action=allow port="$PA" pid="$PPID_"
assert_audit_lo 1 "parent's denied connect (after the fork) under the parent's pid" op=connect action=deny port="$PB" pid="$PPID_"
assert_server a 165 "allowed server saw every allowed connect (urllib, raw, mapped, threads, fork)"
assert_server b 0 "denied server saw no connection at all"

echo "# UDP sendto"
# Isolated, a datagram to 127.0.0.1 goes to the namespace's own loopback,
# allowed or not: the host's receivers get none.
NOUDP="datagrams do not leave the namespace: 127.0.0.1 is its own loopback, not the receiver's"
pyc st-a sendto 127.0.0.1 "$PUA" 50 st
assert_out st-a "sent 50 errors none" "50 datagrams sent to the allowed receiver"
not_isolated "$NOUDP" && assert_server ua 50 "allowed receiver got all 50"
assert_audit_lo 1 "one send decision for 50 datagrams (cached verdict)" op=send action=allow port="$PUA" proto=udp rule=udp-ok
pyc st-b sendto 127.0.0.1 "$PUB" 50 st
if isolated; then
	assert_out st-b "sent 50 errors none" "50 datagrams to the denied receiver went to the namespace's loopback"
else
	assert_out st-b "sent 0 errors EPERM:50" "50 datagrams to the denied receiver failed with EPERM"
fi
not_isolated "$NOUDP: the shim lets the send through, no egress line" &&
	assert_contains "$T/st-b.err" "egress: denied send to 127.0.0.1:$PUB (rule udp-block)" "egress line for the denied send"
assert_server ub 0 "denied receiver got nothing"
assert_audit_lo 1 "one deny send decision for 50 datagrams (cached verdict)" op=send action=deny port="$PUB" proto=udp rule=udp-block errno=EPERM

echo "# UDP sendmsg"
pyc sm-a sendmsg 127.0.0.1 "$PUA" 50 sm
assert_out sm-a "sent 50 errors none" "sendmsg: 50 datagrams sent"
not_isolated "$NOUDP" && assert_server ua 100 "allowed receiver got the 50 sendmsg datagrams"
pyc sm-b sendmsg 127.0.0.1 "$PUB" 50 sm
if isolated; then
	assert_out sm-b "sent 50 errors none" "sendmsg to the denied receiver went to the namespace's loopback"
else
	assert_out sm-b "sent 0 errors EPERM:50" "sendmsg to the denied receiver fails with EPERM"
fi
assert_server ub 0 "denied receiver still got nothing"
assert_audit_lo 2 "a new process asks again (allow)" op=send action=allow port="$PUA"
assert_audit_lo 2 "a new process asks again (deny)" op=send action=deny port="$PUB"

echo "# connected UDP sockets"
pyc uc-b udpconnect 127.0.0.1 "$PUB" 5 uc
pyc uc-a udpconnect 127.0.0.1 "$PUA" 5 uc
if isolated; then
	# connected to the namespace's loopback, where nothing listens: the
	# kernel reports the refusals to the later sends
	for _t in uc-b uc-a; do
		assert_contains "$T/$_t.out" "errors ECONNREFUSED:" "$_t: the UDP socket connects to the namespace's loopback, which refuses its datagrams"
	done
else
	assert_out uc-b "connect err EPERM" "connect() of a UDP socket to a denied address fails"
	assert_out uc-a "connect ok
sent 5 errors none" "connected UDP socket to the allowed receiver sends"
fi
not_isolated "$NOUDP" && assert_server ua 105 "allowed receiver got the 5 connected sends"
assert_server ub 0 "denied receiver got nothing"
assert_audit_lo 3 "UDP connect judged as a send (deny)" op=send action=deny port="$PUB" proto=udp
assert_audit_lo 3 "UDP connect judged as a send (allow)" op=send action=allow port="$PUA" proto=udp

echo "# getaddrinfo of a denied name"
pyc evil resolve evil.test 80
assert_out evil "gaierror EAI_NONAME" "socket.gaierror EAI_NONAME"
assert_contains "$T/evil.err" "egress: denied resolve of evil.test (rule no-evil)" "egress line for the denied resolve"
assert_audit_ge 1 "deny resolve recorded" op=resolve action=deny name=evil.test rule=no-evil errno=EAI_NONAME addr=null

echo "# name attribution: api.test -> 127.0.0.2, only the name rule opens it"
pyc api resolve-connect api.test "$PN"
assert_out api "ok 127.0.0.2
connect ok" "resolved api.test from [hosts] and connected"
assert_audit 1 "connect judged by the name's rule" op=connect action=allow name=api.test addr=127.0.0.2 port="$PN" rule=api
pyc api-raw connect 127.0.0.2 "$PN"
assert_out api-raw "err $(lo_err EPERM)" "the bare address (no name learned) stays denied"
assert_audit_lo 1 "bare address denied by the default" op=connect action=deny name=null addr=127.0.0.2 port="$PN" rule=default
assert_server n 1 "server behind api.test saw only the named connect"

echo "# a denied connect to a learned name is reported by name"
pyc svc2 nameconnect svc2.test "$PB"
assert_out svc2 "ok 127.0.0.1
connect err $(lo_err EPERM)" "svc2.test resolved; its connect to b denied"
not_isolated "a denied connect to 127.0.0.1 is refused by the namespace's own loopback, not the shim: no egress line" &&
	assert_contains "$T/svc2.err" "egress: denied connect to svc2.test:$PB (rule block-b)" "the denial line names the host, not the address"
assert_audit_lo 1 "deny attributed to the name" op=connect action=deny name=svc2.test addr=127.0.0.1 port="$PB" rule=block-b

echo "# a name rule that denies one port denies the connect, not the lookup"
pyc svc3c resolve-connect svc3.test "$PC"
assert_out svc3c "ok 127.0.0.1
connect err $(lo_err ECONNRESET)" "getaddrinfo(svc3.test, PC) answered; the connect fails with $(lo_err ECONNRESET)"
not_isolated "a denied connect to 127.0.0.1 is refused by the namespace's own loopback, not the shim: no egress line" &&
	assert_contains "$T/svc3c.err" "egress: denied connect to svc3.test:$PC (rule svc3-no-c)" "and the line says connect, with the port"
assert_audit_lo 1 "the connect denied by the name's port rule" op=connect action=deny name=svc3.test \
	port="$PC" rule=svc3-no-c errno=ECONNRESET

echo "# numeric hosts in getaddrinfo are not looked up"
pyc num4 resolve 127.0.0.1 80
assert_out num4 "ok 127.0.0.1" "getaddrinfo of 127.0.0.1"
pyc num6 resolve ::1 80
assert_out num6 "ok ::1" "getaddrinfo of ::1"
assert_audit 0 "no resolve event for numeric hosts" op=resolve name=127.0.0.1
assert_audit 0 "no resolve event for numeric hosts (v6)" op=resolve name=::1

echo "# a name rule alone never opens loopback (localhost via /etc/hosts)"
pyc lh nameconnect localhost "$PA"
assert_not_contains "$T/lh.out" "connect ok" "python could not reach 127.0.0.1 through 'localhost' and a name rule"
assert_audit 0 "no allowed connect attributed to localhost" op=connect action=allow name=localhost
assert_server a 165 "allowed server saw nothing from the localhost attempt"

echo "# the program closes or replaces the shim's broker descriptor"
pyc clob clobber 127.0.0.1 "$PA" 127.0.0.1 "$PB"
assert_rc 0 "python survived closing/replacing every descriptor"
assert_out clob "before ok
closed-A ok
closed-B err $(lo_err EPERM)
duped-A ok
duped-B err $(lo_err EPERM)" "after closerange and dup2 over its socket the shim reconnects and still judges"
assert_not_contains "$T/clob.err" "broker unreachable" "no outage reported: the broker was up all along"
assert_server a 168 "allowed server saw the three connects of the clobber run"
assert_server b 0 "denied server saw nothing"

echo "# exec'd child (subprocess): its own connection, its own pid"
pyc spawn spawn 127.0.0.1 "$PA" 127.0.0.1 "$PB"
CHILD=$(sed -n 's/^pid //p' "$T/spawn.out")
assert_out spawn "parent ok
pid $CHILD
A ok 1
B err $(lo_err EPERM) 1" "a python started by subprocess is judged too"
if isolated; then
	# the pid the child prints is its PID namespace's; the broker's is
	# that of the last attempt on b, the child's
	CHILD=$(audit_values pid op=connect "port=$PB" | tail -n 1)
fi
assert_audit 1 "the child's allow is recorded under the child's pid (no inherited broker fd)" op=connect action=allow port="$PA" pid="$CHILD"
assert_audit_lo 1 "the child's deny is recorded under the child's pid" op=connect action=deny port="$PB" pid="$CHILD"

echo "# long names"
pyc ln253 longname 253
assert_out ln253 "gaierror EAI_NONAME" "a 253-byte name reaches the broker and is denied by default"
assert_audit 1 "the 253-byte name is audited" op=resolve action=deny rule=default
for n in 254 300 5000; do
	pyc "ln$n" longname "$n"
	assert_rc 0 "python with a $n-byte name ran to the end"
	case $(cat "$T/ln$n.out") in gaierror\ *) pass "a $n-byte name fails cleanly ($(cat "$T/ln$n.out"))" ;; *) fail "a $n-byte name: expected a gaierror, got [$(cat "$T/ln$n.out")]" ;; esac
done
broker_status stl
assert_eq "$(jget "$T/stl.json" decisions.malformed)" 0 "the shim never sent a malformed message"
assert_audit 1 "no over-long name reached the audit" op=resolve action=deny rule=default

echo "# IPv6 ::1"
pyc v6 connect ::1 "$P6"
assert_out v6 "ok" "connect to [::1] allowed by cidr ::1/128"
pyc v6b connect ::1 "$P6B"
assert_out v6b "err $(lo_err EPERM)" "connect to [::1] on another port denied"
not_isolated "a denied connect to ::1 is refused by the namespace's own loopback, not the shim: no egress line" &&
	assert_contains "$T/v6b.err" "egress: denied connect to" "egress line for the v6 denial"
assert_audit 1 "v6 allow recorded" op=connect action=allow addr=::1 port="$P6" rule=v6-ok
assert_audit_lo 1 "v6 deny recorded" op=connect action=deny addr=::1 port="$P6B" errno=EPERM
assert_server s6 1 "v6 server saw the allowed connect"
assert_server s6b 0 "denied v6 server saw nothing"

broker_status st
assert_status_matches_audit st

finish
