# t_lookups.sh: the lookups that libc would make past the broker, and the
# functions that connect from inside libc, made for real by a C helper
# (helpers/lookups.c) and python3. A denied name fails as its function's
# contract says and is recorded (op resolve, action deny); an allowed one
# resolves through the broker ([hosts] names no name server knows); the
# queries the shim cannot mediate (TXT) are refused; and nothing reaches
# the name server the helper's resolver points at (helpers/dnslisten.py,
# which would log every query); programs with a resolver of their own
# (node's c-ares, a raw python query) are answered by the broker's lookup
# stub. Reverse lookups are answered from /etc/hosts or not at all, never by a query;
# __connect is judged as connect; rcmd and the Sun RPC clients are refused.
. "$ROOT/tests/integration/lib.sh"
need_build

build_helper lookups -lresolv
LK=$T/lookups

"$PY" "$H/dnslisten.py" "$T/dns.port" "$T/dns.log" 2>"$T/dns.err" &
bg_record $!
wait_for 5 test -s "$T/dns.port" || { fail "dnslisten did not start"; show "$T/dns.err"; finish; }
DNS_PORT=$(cat "$T/dns.port")
: >"$T/dns.log"
start_server a http 127.0.0.1
start_server d http 127.0.0.1
PA=$(port a) PD=$(port d)

{
	policy_egress
	policy_hosts ghbn.ok.test=127.0.0.7 ghbnr.ok.test=127.0.0.7 v6.ok.test=::1 \
		gaia.ok.test=127.0.0.8 port0.ok.test=127.0.0.9 resq.ok.test=127.0.0.10 \
		send.ok.test=127.0.0.10 resd.ok.test=127.0.0.10 py.ok.test=127.0.0.11 \
		txt.ok.test=127.0.0.12 own.test=127.0.0.1
	policy_rule ok 'host=*.ok.test' action=allow
	policy_rule own host=own.test "port=$PD" proto=tcp action=allow
	policy_rule a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
} | write_policy
start_broker || finish

lk() { # TAG ARGS...: the helper under the shim, its resolver on the listener
	_tag=$1
	shift
	run_shim "$_tag" DNS_PORT="$DNS_PORT" "$LK" "$@"
}
denied() { # NAME MSG: one resolve of NAME, denied, in the audit log
	assert_audit 1 "$2" op=resolve "name=$1" action=deny
}
allowed() {
	assert_audit 1 "$2" op=resolve "name=$1" action=allow
}

# ---- gethostbyname and friends (HOST_NOT_FOUND is 1)
lk ghbn-d ghbn d1.test
assert_out ghbn-d "err h_errno=1" "gethostbyname of a denied name: NULL, HOST_NOT_FOUND"
denied d1.test "gethostbyname's denial is recorded"
lk ghbn-a ghbn ghbn.ok.test
assert_out ghbn-a "ok ghbn.ok.test 127.0.0.7" "gethostbyname of an allowed [hosts] name: the broker's address"
allowed ghbn.ok.test "gethostbyname went through the broker"
lk ghbnr-d ghbnr d2.test
assert_out ghbnr-d "err rc=0 h_errno=1" "gethostbyname_r of a denied name: 0, no result, *h_errnop HOST_NOT_FOUND"
denied d2.test "gethostbyname_r's denial is recorded"
lk ghbnr-a ghbnr ghbnr.ok.test
assert_out ghbnr-a "ok ghbnr.ok.test 127.0.0.7" "gethostbyname_r of an allowed name, in the caller's buffer"
allowed ghbnr.ok.test "gethostbyname_r went through the broker"
lk ghbn2-d ghbn2 d3.test 6
assert_out ghbn2-d "err h_errno=1" "gethostbyname2(AF_INET6) of a denied name"
denied d3.test "gethostbyname2's denial is recorded"
lk ghbn2r-a ghbn2r v6.ok.test 6
assert_out ghbn2r-a "ok v6.ok.test ::1" "gethostbyname2_r(AF_INET6) of an allowed name: its IPv6 address"
allowed v6.ok.test "gethostbyname2_r went through the broker"

# ---- getaddrinfo_a, and getaddrinfo with an empty service
lk gaia-d gaia d4.test
assert_out gaia-d "err EAI_NONAME" "getaddrinfo_a of a denied name: gai_error gives EAI_NONAME"
denied d4.test "getaddrinfo_a's denial is recorded"
lk gaia-a gaia-nowait gaia.ok.test
assert_out gaia-a "ok 127.0.0.8:80" "getaddrinfo_a (GAI_NOWAIT, SIGEV_THREAD) of an allowed name: notified, the broker's address"
allowed gaia.ok.test "getaddrinfo_a went through the broker"
lk gai-empty gai port0.ok.test ""
assert_out gai-empty "ok 127.0.0.9:0" "getaddrinfo(name, \"\") is port 0, as in glibc"

# ---- res_* (answers made from the broker's addresses; TXT refused)
lk resq-d resq d5.test a
assert_out resq-d "err -1 h_errno=1" "res_query of a denied name: -1, HOST_NOT_FOUND"
denied d5.test "res_query's denial is recorded"
lk resq-a resq resq.ok.test a
assert_out resq-a "ok rcode=0 an=1 127.0.0.10" "res_query A of an allowed name: an answer with the broker's address"
allowed resq.ok.test "res_query went through the broker"
lk resq-txt resq txt.ok.test txt
assert_out resq-txt "err -1 h_errno=1" "res_query TXT, even of an allowed name: refused"
assert_contains "$T/resq-txt.err" "egress: res_query of txt.ok.test (class 1, type 16) is not mediated; denied" \
	"the refused TXT query says so"
lk ressearch-d ressearch d6.test a
assert_out ressearch-d "err -1 h_errno=1" "res_search of a denied name"
denied d6.test "res_search's denial is recorded"
lk resdomain-a resdomain resd ok.test a
assert_out resdomain-a "ok rcode=0 an=1 127.0.0.10" "res_querydomain(resd, ok.test): resd.ok.test through the broker"
allowed resd.ok.test "res_querydomain went through the broker"
lk ressend-d ressend d7.test a
assert_out ressend-d "err -1 h_errno=1" "res_send of a packet asking for a denied name"
denied d7.test "res_send's denial is recorded"
lk ressend-a ressend send.ok.test a
assert_out ressend-a "ok rcode=0 an=1 127.0.0.10" "res_send of an allowed name's A query: the broker's answer"
lk resnq-d resnquery d8.test a
assert_out resnq-d "err -1 h_errno=1" "res_nquery of a denied name: -1, statp's h_errno HOST_NOT_FOUND"
denied d8.test "res_nquery's denial is recorded"

# ---- reverse lookups: /etc/hosts (a local file, as libc reads it), else
# no query: the numeric form, or not found
LO=$(awk '$1 == "127.0.0.1" { print $2; exit }' /etc/hosts)
if [ -n "$LO" ]; then
	lk gni-lo gni 127.0.0.1
	assert_out gni-lo "ok $LO" "getnameinfo of an address in /etc/hosts: its name, as libc's"
	lk ghba-lo ghba 127.0.0.1
	assert_out ghba-lo "ok $LO 127.0.0.1" "gethostbyaddr of an address in /etc/hosts: its name"
fi
lk gni gni 192.0.2.7
assert_out gni "ok 192.0.2.7" "getnameinfo of another: numeric, without a reverse lookup"
lk gni-req gni 192.0.2.7 namereqd
assert_out gni-req "err EAI_NONAME" "getnameinfo with NI_NAMEREQD: EAI_NONAME"
lk ghba ghba 192.0.2.7
assert_out ghba "err h_errno=1" "gethostbyaddr: not found, without a reverse lookup"

# ---- python3: socket.gethostbyname_ex resolves the name with getaddrinfo,
# then asks gethostbyname_r; gethostbyaddr likewise ends in gethostbyaddr_r
run_shim py-d "$PY" -c '
import socket
try:
    print(socket.gethostbyname_ex("d9.test"))
except socket.gaierror as e:
    print("gaierror", e.args[0])'
assert_out py-d "gaierror -2" "python gethostbyname_ex of a denied name: EAI_NONAME"
denied d9.test "python's denial is recorded"
run_shim py-a "$PY" -c 'import socket; print(socket.gethostbyname_ex("py.ok.test")[2])'
assert_out py-a "['127.0.0.11']" "python gethostbyname_ex of an allowed [hosts] name: gethostbyname_r answered by the broker"
assert_audit 2 "python's getaddrinfo and gethostbyname_r both went through the broker" \
	op=resolve name=py.ok.test action=allow
run_shim py-r "$PY" -c '
import socket
try:
    print(socket.gethostbyaddr("192.0.2.7"))
except socket.herror as e:
    print("herror", e.args[0])'
assert_out py-r "herror 1" "python gethostbyaddr: no reverse lookup, HOST_NOT_FOUND"
if [ -n "$LO" ]; then
	run_shim py-rlo "$PY" -c 'import socket; print(socket.gethostbyaddr("127.0.0.1")[0])'
	assert_out py-rlo "$LO" "python gethostbyaddr of 127.0.0.1: its /etc/hosts name"
fi

# ---- nothing reached the name server
assert_empty "$T/dns.log" "the helper's name server received no query"
assert_eq "$(audit_count op=resolve name=txt.ok.test)" 0 "the refused TXT query was not asked as a lookup"

# ---- resolvers of their own (c-ares in node, a python socket): a
# datagram to port 53 is a lookup, answered by the broker's stub, judged by
# name; the name server it was sent to (here one on 127.0.0.2:53, when the
# port is free) hears nothing, and the answer comes from its address
NS=127.0.0.2
"$PY" "$H/dnslisten.py" "$T/ns53.port" "$T/ns53.log" "$NS" 53 2>"$T/ns53.err" &
bg_record $!
wait_for 5 test -s "$T/ns53.port" || NS=192.0.2.1 # TEST-NET-1: leads nowhere
: >>"$T/ns53.log"
run_shim own-a "$NODE" "$H/ownresolve.js" "$NS" own.test "$PD"
assert_out own-a "ok 127.0.0.1
connected" "node's own resolver: an allowed name resolves, and its connect is judged by the name"
assert_server d 1 "the connect by name arrived"
assert_audit 1 "the query is recorded as the node process's lookup" op=resolve name=own.test \
	action=allow exe=/usr/bin/node
assert_audit_ge 1 "its datagram went to the stub, not the name server" op=send port=53 \
	rule=dns transport=dns
run_shim own-d "$NODE" "$H/ownresolve.js" "$NS" bad.test
assert_out own-d "err ENOTFOUND" "node's own resolver: a denied name is not found"
denied bad.test "the denied name is recorded"
run_shim own-py "$PY" "$H/udpquery.py" "$NS" own.test
assert_out own-py "rcode=0 from=$NS:53 addrs=127.0.0.1" \
	"a raw query: the answer, from the address it was sent to"
assert_empty "$T/ns53.log" "the name server heard no query"

# ---- connects from inside libc
lk conn-d __connect "$PD"
assert_out conn-d "err EPERM" "__connect to a denied port: EPERM"
assert_audit 1 "__connect's denial is recorded" op=connect addr=127.0.0.1 "port=$PD" action=deny
lk conn-a __connect "$PA"
assert_out conn-a "ok" "__connect to an allowed port connects"
assert_server a 1 "the allowed __connect arrived"
lk rcmd rcmd "$PD"
assert_out rcmd "err EPERM" "rcmd: refused, EPERM"
assert_contains "$T/rcmd.err" "egress: rcmd is not mediated; denied" "rcmd's refusal says so"
lk clnt clnttcp "$PD"
assert_out clnt "err EPERM" "clnttcp_create (compat symbol): refused, NULL, EPERM"
assert_contains "$T/clnt.err" "egress: clnttcp_create is not mediated; denied" "clnttcp_create's refusal says so"
assert_server d 1 "the denied server saw only the connect by name: not __connect, rcmd or clnttcp_create"

finish
