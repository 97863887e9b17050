# t_bypass.sh: the bypass catalogue. Each way a program might try to get
# past the shim, made for real against loopback servers: it must end denied
# (the denied server sees nothing, the audit log has the denial) or be
# attributed to the right name and process. One case escapes on purpose: a
# program that clears LD_PRELOAD before exec; the test shows the escape,
# which README and docs/THREAT-MODEL.md state as a limit.
. "$ROOT/tests/integration/lib.sh"
need_build

build_helper bypass
BP=$T/bypass

start_server a http 127.0.0.1
start_server d http 127.0.0.1
start_server d6 http ::1
start_server ua udp 127.0.0.1
start_server ud udp 127.0.0.1
PA=$(port a) PD=$(port d) P6=$(port d6) PUA=$(port ua) PUD=$(port ud)

{
	policy_egress cache_ttl=0 # every send asks: the swaps below race the broker, not the cache
	policy_hosts svc.test=127.0.0.1 bad.test=127.0.0.1 rw.test=127.0.0.1
	policy_rule no-bad 'host=bad.test, xn--bcher-kva.test' action=deny errno=ECONNREFUSED
	policy_rule rw host=rw.test "port=$PA" action=rewrite
	policy_rule svc host=svc.test "port=$PA" proto=tcp action=allow
	# lets any other name under .test through to port PA: only name
	# validation keeps the malformed spellings below out
	policy_rule any-test 'host=*.test' "port=$PA" proto=tcp action=allow
	policy_rule a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	# allows port PA anywhere public: only private-range protection keeps
	# 0.0.0.0 and :: (which reach this host) out
	policy_rule public-pa "port=$PA" proto=tcp action=allow
	policy_rule udp-a cidr=127.0.0.1/32 "port=$PUA" proto=udp action=allow
} | write_policy
start_broker || finish

bp() { # TAG ARGS...: the helper under the shim
	_tag=$1
	shift
	run_shim "$_tag" "$BP" "$@"
}

# ---- addresses in other spellings
bp plain addr 127.0.0.1 "$PA"
assert_out plain "addr ok" "sanity: the allowed server is reachable"
bp plain-d addr 127.0.0.1 "$PD"
assert_out plain-d "addr err EPERM" "sanity: the denied server is denied"
bp mapped addr ::ffff:127.0.0.1 "$PD"
assert_out mapped "addr err EPERM" "IPv4-mapped IPv6 form of a denied address: denied"
bp mapped-a addr ::ffff:127.0.0.1 "$PA"
assert_out mapped-a "addr ok" "IPv4-mapped form of the allowed address: judged as 127.0.0.1, allowed"
bp compat addr ::127.0.0.1 "$PD"
assert_out compat "addr err EPERM" "IPv4-compatible IPv6 form: denied"
assert_audit_ge 1 "the compatible form was judged as the IPv4 address" op=connect addr=127.0.0.1 \
	"port=$PD" action=deny

for form in 2130706433 0x7f.1 0177.0.0.1 127.1 0x7f000001; do
	bp "num-$form" name "$form" "$PD"
	if grep -qE '^name (err EPERM|gai EAI_NONAME)$' "$T/num-$form.out"; then
		pass "inet_aton form $form through getaddrinfo: denied ($(cat "$T/num-$form.out"))"
	else
		fail "inet_aton form $form: $(cat "$T/num-$form.out")"
	fi
done

bp zero addr 0.0.0.0 "$PA"
assert_out zero "addr err EPERM" "0.0.0.0 (the local host on Linux) is private: denied"
bp zero6 addr :: "$PA"
assert_out zero6 "addr err EPERM" ":: is private: denied"
assert_audit 2 "both refused by private-range protection" op=connect rule=private "port=$PA"

# port PA is allowed anywhere public (rule public-pa): only private-range
# protection stands between these and the host
bp scope addr fe80::1%lo "$PA"
assert_out scope "addr err EPERM" "link-local with a scope id: denied"
bp scope1 addr ::1%lo "$PA"
assert_out scope1 "addr err EPERM" "::1 with a scope id: denied"
assert_audit 1 "fe80::1%lo refused as private" op=connect addr=fe80::1 rule=private "port=$PA"
assert_audit 1 "::1%lo refused as private" op=connect addr=::1 rule=private "port=$PA"
bp v6short v6short ::1 "$P6"
assert_contains "$T/v6short.out" "v6short-tcp err EPERM" "a TCP connect with a 24-byte (RFC 2133) sockaddr_in6: denied"
assert_contains "$T/v6short.out" "v6short-udp err EPERM" "a UDP sendto with a 24-byte sockaddr_in6: denied"
assert_audit 2 "both judged as ::1" addr=::1 "port=$P6" action=deny

# ---- names in other spellings
bp bad1 name BAD.Test. "$PA"
assert_out bad1 "name gai EAI_NONAME" "a denied name in mixed case with a trailing dot: denied"
bp svc1 name SVC.test. "$PA"
assert_out svc1 "name ok" "an allowed name in another spelling: allowed"
assert_audit 1 "and attributed to its normalised name and rule" op=connect name=svc.test rule=svc
bp label name "$(printf 'a%.0s' $(seq 64)).test" "$PA"
assert_out label "name gai EAI_NONAME" "a 64-byte label is refused"
bp long name "$(printf 'abcdefghi.%.0s' $(seq 30))test" "$PA"
assert_out long "name gai EAI_NONAME" "a 304-byte name is refused"
bp utf8 name "bücher.test" "$PA"
assert_out utf8 "name gai EAI_NONAME" "a raw UTF-8 name is refused"
assert_audit 2 "the over-long label and the raw UTF-8 name are refused as invalid, not looked up" \
	op=resolve rule=invalid-name action=deny
run_shim idna "$PY" "$H/pyclient.py" resolve "bücher.test" "$PA"
assert_contains "$T/idna.out" "gaierror" "an IDN name (python's IDNA encoding) meets its deny rule"
assert_audit 1 "the punycode name was judged" op=resolve name=xn--bcher-kva.test rule=no-bad

# ---- datagrams and fast open
bp udp-d udpsend 127.0.0.1 "$PUD"
assert_contains "$T/udp-d.out" "udpconnect err EPERM" "connect on a UDP socket to a denied port: denied"
assert_not_contains "$T/udp-d.out" "udpsend ok" "the send after it does not go"
bp udp-a udpsend 127.0.0.1 "$PUA"
assert_contains "$T/udp-a.out" "udpsend ok" "a UDP send to the allowed port goes"
bp udp-switch udpswitch 127.0.0.1 "$PUA" "$PUD"
assert_contains "$T/udp-switch.out" "udpconnect ok" "a UDP socket connected to the allowed port"
assert_contains "$T/udp-switch.out" "udpswitch err EPERM" "then sendto() a denied port on it: denied"
bp msg msgsend 127.0.0.1 "$PUD"
assert_contains "$T/msg.out" "msgsend err EPERM" "sendmsg() of a datagram to a denied port: denied"
assert_contains "$T/msg.out" "msgtfo err EPERM" "sendmsg(MSG_FASTOPEN) on a TCP socket: denied as a connect"
bp unspec unspec 127.0.0.1 "$PUD"
assert_contains "$T/unspec.out" "unspec-sendto err EPERM" \
	"sendto() with family AF_UNSPEC, which IPv4 UDP takes as AF_INET: denied"
assert_contains "$T/unspec.out" "unspec-sendmsg err EPERM" "the same through sendmsg(): denied"
assert_server ud 0 "no datagram reached the denied receiver"
assert_server ua 1 "the allowed receiver got its datagram"
# another thread flips the port of the sockaddr being sent: the shim judges
# and sends one copy of it, so a flip between verdict and send changes nothing
bp flip flip 127.0.0.1 "$PUA" "$PUD" 2000
flips=$(sed -n 's/^flip sent=\([0-9]*\) denied=\([0-9]*\)$/\1 \2/p' "$T/flip.out")
assert_ge "${flips% *}" 1 "sends to the allowed port went during the flipping ($flips: sent denied)"
assert_ge "${flips#* }" 1 "sends that read the denied port were denied"
assert_server ud 0 "and not one datagram reached the denied receiver"
bp tfo fastopen 127.0.0.1 "$PD"
assert_out tfo "fastopen err EPERM" "sendto(MSG_FASTOPEN) is judged as the connect it is"

# ---- other processes
bp fork fork 127.0.0.1 "$PD"
assert_contains "$T/fork.out" "fork child denied" "a fork()ed child is denied"
cpid=$(sed -n 's/^pid fork //p' "$T/fork.out")
assert_audit 1 "the denial is the child's" op=connect "pid=$cpid" "port=$PD" action=deny
bp vfork vfork 127.0.0.1 "$PD"
assert_contains "$T/vfork.out" "vfork child EPERM" "a vfork()ed child is denied"
assert_contains "$T/vfork.out" "vfork-parent-after err EPERM" "the parent is still judged after its vfork child"
vpid=$(sed -n 's/^pid vfork //p' "$T/vfork.out")
assert_audit 1 "the vfork child's denial is its own" op=connect "pid=$vpid" "port=$PD"
assert_not_contains "$T/vfork.err" "unreachable" "no broker outage in parent or child"
bp spawn spawn "$BP" 127.0.0.1 "$PD"
assert_contains "$T/spawn.out" "addr err EPERM" "a posix_spawn()ed child is denied"
spid=$(sed -n 's/^pid spawn //p' "$T/spawn.out")
assert_audit 1 "and attributed to the spawned process and its executable" op=connect "pid=$spid" \
	"exe=$BP" action=deny
bp race race 127.0.0.1 "$PA" 127.0.0.1 "$PD" 30
assert_out race "race threads ok=80 denied=80 other=0 children_denied=30/30" \
	"threads connecting while the main thread forks: every answer right, no hang"
bp closeall closeall 127.0.0.1 "$PD"
assert_contains "$T/closeall.out" "closeall err EPERM" "after close_range(3, ~0): still judged, denied"
assert_not_contains "$T/closeall.err" "unreachable" "the shim reconnected instead of failing"

# ---- the socket's history and identity
# a rewritten socket disconnected (AF_UNSPEC) and connected again: judged
# again like any connect, not waved through as "already rewritten"
before=$(audit_count op=connect "port=$PD" action=deny)
bp reconnect reconnect rw.test "$PA" 127.0.0.1 "$PD"
assert_contains "$T/reconnect.out" "reconnect-first ok" "a connect to a rewritten name goes through the transport"
assert_contains "$T/reconnect.out" "reconnect-again err EPERM" \
	"the same socket disconnected and connected to a denied port: denied"
assert_eq "$(audit_count op=connect "port=$PD" action=deny)" "$((before + 1))" \
	"and the second connect is judged and recorded as denied"
# another thread dup2()s other objects onto the descriptor while the shim
# decides: the shim judges and calls on one private duplicate, so the
# kernel acts on the object that was judged
bp swap-tcp swap tcp 127.0.0.1 "$PD" 2000
assert_contains "$T/swap-tcp.out" "swap tcp returned_ok=0" \
	"a pipe and a TCP socket swapped under connect(): no connect to the denied port succeeds"
bp swap-udp swap udp 127.0.0.1 "$PUA" 2000
assert_contains "$T/swap-udp.out" "tcp_accepted=0" \
	"a UDP socket (allowed to the port) and a TCP socket swapped: no TCP connection is made"
bp swap-send swap send 127.0.0.1 "$PUD" 50000
assert_contains "$T/swap-send.out" "swap send returned_ok=" "the sends ran to the end"
assert_server ud 0 "a TCP and a UDP socket swapped under sendto(): no datagram to the denied port"
assert_server d 0 "the denied TCP server saw nothing so far"

# ---- the known escape: LD_PRELOAD cleared before exec
before=$(audit_count op=connect "port=$PD")
bp noenv noenv "$BP" 127.0.0.1 "$PD"
assert_out noenv "addr ok" "KNOWN LIMIT: a child exec'd without LD_PRELOAD escapes the shim"
assert_eq "$(audit_count op=connect "port=$PD")" "$before" "and the broker never hears of it"
assert_server d 1 "the denied server saw exactly the one escaped connection"

finish
