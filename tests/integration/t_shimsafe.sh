# t_shimsafe.sh: the shim asked from awkward places, made for real against
# loopback servers (helpers/shimsafe.c, built here): a signal handler that
# connects and sends while the interrupted code is asking; processes that
# share memory without being threads (clone CLONE_VM); a program that has
# used every descriptor; a process the broker socket refuses (another uid).
# Each must work, or fail with the true reason, never allow silently: the
# servers' counts and the audit log say what happened.
. "$ROOT/tests/integration/lib.sh"
need_build

build_helper shimsafe
SS=$T/shimsafe

start_server a http 127.0.0.1
start_server b http 127.0.0.1
start_server c http 127.0.0.1
start_server n http 127.0.0.1
start_server ua udp 127.0.0.1
start_server ub udp 127.0.0.1
start_server ud udp 127.0.0.1
PA=$(port a) PB=$(port b) PC=$(port c) PN=$(port n)
PUA=$(port ua) PUB=$(port ub) PUD=$(port ud)

{
	policy_egress cache_ttl=60
	policy_rule a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	policy_rule b cidr=127.0.0.1/32 "port=$PB" proto=tcp action=allow
	policy_rule c cidr=127.0.0.1/32 "port=$PC" proto=tcp action=allow
	policy_rule n cidr=127.0.0.1/32 "port=$PN" proto=tcp action=allow
	policy_rule ua cidr=127.0.0.1/32 "port=$PUA" proto=udp action=allow
	policy_rule ub cidr=127.0.0.1/32 "port=$PUB" proto=udp action=allow
} | write_policy
start_broker || finish

# out_field TAG PREFIX N: field N (1-based) of the line of $T/TAG.out that
# starts with PREFIX.
out_field() { awk -v p="$2" -v n="$3" 'index($0, p) == 1 { print $n; exit }' "$T/$1.out"; }

# ---- 1. a signal handler asks while the interrupted code is asking
N=300
run_shim signal "$SS" signal "$PA" "$PUA" "$PB" "$PUB" "$PUD" "$N"
assert_rc 0 "signal: the helper ran"
MT=$(out_field signal "main tcp" 3)
MU=$(out_field signal "main udp" 3)
assert_ge "${MT:-0}" 1 "signal: the main thread connected"
assert_eq "$(out_field signal "main tcp" 5)" 0 "signal: no connect of the main thread failed"
assert_eq "$(out_field signal "main udp" 5)" 0 "signal: no datagram of the main thread failed"
assert_eq "$(out_field signal "main first-err" 3)" 0 "signal: the main thread saw no error"
assert_contains "$T/signal.out" "handler runs $N tcp $N udp $N" "signal: every connect and send of the handler succeeded"
assert_eq "$(out_field signal "handler first-err" 3)" 0 "signal: the handler saw no error"
assert_eq "$(out_field signal "main denied-udp" 4)" 0 "signal: no datagram to the denied port was let through"
assert_not_contains "$T/signal.err" "unreachable" "signal: no ask timed out or failed"
assert_server a "$MT" "signal: every connect of the main thread arrived"
assert_server b "$N" "signal: every connect of the handler arrived"
assert_server ua "$MU" "signal: every datagram of the main thread arrived"
assert_server ub "$N" "signal: every datagram of the handler arrived"
assert_server ud 0 "signal: the denied port received nothing"
assert_audit "$MT" "signal: the main thread's connects" op=connect "port=$PA" action=allow
assert_audit "$N" "signal: the handler's connects" op=connect "port=$PB" action=allow
assert_audit_ge 1 "signal: the main thread's datagrams" op=send "port=$PUA" action=allow
assert_audit_ge 1 "signal: the handler's datagrams" op=send "port=$PUB" action=allow
assert_audit_ge 1 "signal: the denied datagrams" op=send "port=$PUD" action=deny

# ---- 3. clone(CLONE_VM) children: memory (and TLS) shared, not threads
KIDS=4 EACH=100
TOTAL=0
for files in 0 1; do
	tag=clone$files
	run_shim "$tag" "$SS" clone "$PC" "$KIDS" "$EACH" "$files"
	assert_rc 0 "$tag: the helper ran"
	assert_lines "$T/$tag.out" "ok $EACH first-err 0" $((KIDS + 1)) \
		"$tag: every connect of the parent and of its $KIDS CLONE_VM children succeeded"
	TOTAL=$((TOTAL + (KIDS + 1) * EACH))
	assert_server c "$TOTAL" "$tag: every connect arrived"
	for pid in $(awk '{ print $3 }' "$T/$tag.out"); do
		assert_audit "$EACH" "$tag: process $pid's connects, attributed to it" op=connect \
			"port=$PC" action=allow "pid=$pid"
	done
	assert_not_contains "$T/$tag.err" "egress:" "$tag: the shim said nothing"
done

# ---- 4. no free descriptor
run_shim nofd "$SS" nofd "$PN"
assert_rc 0 "nofd: the helper ran"
assert_contains "$T/nofd.out" "table-full EMFILE" "nofd: the descriptor table was full"
assert_contains "$T/nofd.out" "main ok" "nofd: a thread whose broker connection is open still connects"
assert_contains "$T/nofd.out" "thread1 ok" "nofd: a new thread connects through the spare socket"
assert_contains "$T/nofd.out" "thread2 EMFILE" \
	"nofd: with the spare used, a new thread's connect fails with the true reason, EMFILE"
assert_lines "$T/nofd.err" \
	"egress: no free descriptor to ask the broker (Too many open files); connect to 127.0.0.1:$PN denied" 1 \
	"nofd: the line says the descriptors ran out"
assert_not_contains "$T/nofd.err" "unreachable" "nofd: not reported as an unreachable broker"
assert_server n 3 "nofd: the three allowed connects arrived, the denied one did not"
assert_audit 3 "nofd: three connects decided" op=connect "port=$PN"

# ---- 5. a process the broker socket refuses (another uid)
if command -v setpriv >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	chmod 0711 "$T" # the helper is reachable; the socket (0660 root) is not
	for fo in closed open; do
		tag=refused-$fo
		run_shim "$tag" EGRESS_FAIL=$fo setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$SS" connect "$PA"
		assert_rc 0 "$tag: the helper ran as uid 65534"
		assert_out "$tag" "connect err EPERM" "$tag: the connect is denied (EGRESS_FAIL=$fo)"
		assert_lines "$T/$tag.err" \
			"egress: broker at $SOCK refused this process (Permission denied, uid 65534); connect to 127.0.0.1:$PA denied" 1 \
			"$tag: the line says the socket refused this uid"
		assert_not_contains "$T/$tag.err" "broker unreachable" "$tag: not reported as an unreachable broker"
	done
	assert_server a "$MT" "refused: server a received nothing more"
	assert_audit 0 "refused: the broker never heard of uid 65534" uid=65534
else
	echo "  (refused: needs root and setpriv; not run)"
fi

finish
