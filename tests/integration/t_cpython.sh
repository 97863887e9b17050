# t_cpython.sh: CPython's own networking tests (Debian's
# libpython3.11-testsuite: test_socket, test_httplib, test_ftplib,
# test_smtplib, test_urllib2_localnet, asyncio's test_sock_lowlevel and
# test_streams; about 1,000 cases on loopback) run bare, then under egress
# in five modes at once, each with a broker of its own:
#   allow   default = allow, private = allow
#   direct  default = rewrite, transport = direct
#   relay   default = rewrite, transport = relay
#   socks5  default = rewrite, transport = socks5:// microsocks (TCP), and
#           for datagrams dante (UDP ASSOCIATE; microsocks has none)
# In the rewrite modes a rule names loopback (127.0.0.0/8, ::1) with
# action = rewrite, which opens it. Every case that passes bare must pass in
# each mode, except the entries of helpers/cpython-expected.txt for that
# mode, each with its reason; an entry whose case passes is stale and fails
# the test too (one marked "~", intermittent, may pass or fail). A summary
# line per mode gives the cases passed bare, passed under egress, listed.
# helpers/cpytest.py runs the modules (a module's cases in a child
# interpreter, several modules at once, each case bounded).
# test-timeout: 280
. "$ROOT/tests/integration/lib.sh"
need_build

CPY=/usr/bin/python3.11
MODULES="test_socket test_httplib test_ftplib test_smtplib test_urllib2_localnet
test_asyncio.test_sock_lowlevel test_asyncio.test_streams"
MODES="allow direct relay socks5"
EXPECTED=$H/cpython-expected.txt

[ -x "$CPY" ] || { fail "$CPY is missing (tools/install-deps.sh --test)"; finish; }
"$CPY" -c 'import test.test_socket' 2>/dev/null ||
	{ fail "$CPY has no test package (libpython3.11-testsuite; tools/install-deps.sh --test)"; finish; }
for p in microsocks danted; do
	command -v $p >/dev/null 2>&1 || { fail "$p is not installed (tools/install-deps.sh --test)"; finish; }
done

# Under SANITIZE the preloaded libasan slows OpenSSL's handshakes (its
# malloc) so much that TLS cases of test_httplib and test_ftplib time out
# under allow as well (12 s a case was not enough): the comparison would
# measure libasan, not egress. The sanitized shim under python3 is
# t_python's, t_cache's and t_lookups' to check.
[ -z "${SANITIZE:-}" ] || skip "CPython's TLS cases outlast any bound with libasan preloaded (the plain build runs the comparison)"

# cpytest.py: each module's cases dealt out to 8 interpreters, 16 at once
# (a stuck case holds up only its eighth), a case bounded by 10 s (the
# slowest passes bare in 3), an eighth by 200 s
cpy_args="-j 16 --shards 8 --case-timeout 10 --module-timeout 200"

PS=$(free_port)
PD=$(free_port)
microsocks -i 127.0.0.1 -p "$PS" >"$T/microsocks.out" 2>&1 &
bg_record $!
dante_conf "$PD"
danted -f "$T/danted.conf" -p "$T/danted.pid" >"$T/danted.out" 2>&1 &
bg_record $!
listening() { "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1"; }
wait_for 5 listening "$PS" || fail "microsocks did not start"
wait_for 5 listening "$PD" || fail "danted did not start"

# mode_policy MODE: the policy of MODE on stdout.
mode_policy() {
	case $1 in
	allow) policy_egress default=allow private=allow ;;
	socks5)
		policy_egress default=rewrite "transport=socks5://127.0.0.1:$PS" timeout=5
		policy_rule loop-udp cidr=127.0.0.0/8,::1/128 proto=udp action=rewrite \
			"transport=socks5://127.0.0.1:$PD"
		policy_rule loop cidr=127.0.0.0/8,::1/128 action=rewrite
		;;
	*)
		policy_egress default=rewrite "transport=$1" timeout=5
		policy_rule loop cidr=127.0.0.0/8,::1/128 action=rewrite
		;;
	esac
}

# One broker per mode, all up before the runs start (lib.sh's globals are
# pointed at each in turn).
for m in $MODES; do
	POLICY=$T/$m.ini SOCK=$T/$m.sock AUDIT=$T/$m.audit.jsonl
	mode_policy "$m" | write_policy
	start_broker || finish
	eval "BPID_$m=\$BROKER_PID"
done
BROKER_PID=

started=$(date +%s)
(
	RUN_TIMEOUT=270
	run_plain bare "$CPY" "$H/cpytest.py" $cpy_args $MODULES
	echo "$RC $(($(date +%s) - started))" >"$T/bare.rc"
) &
runs=$!
for m in $MODES; do
	(
		RUN_TIMEOUT=270 SOCK=$T/$m.sock
		run_shim "$m" "$CPY" "$H/cpytest.py" $cpy_args $MODULES >/dev/null
		echo "$RC $(($(date +%s) - started))" >"$T/$m.rc"
	) &
	runs="$runs $!"
done
# shellcheck disable=SC2086 # pids
wait $runs

read -r rc secs <"$T/bare.rc"
assert_eq "$rc" 0 "bare run ended (${secs} s)"
assert_ge "$(grep -c ' pass$' "$T/bare.out")" 900 "bare: at least 900 cases pass"
for m in $MODES; do
	read -r rc secs <"$T/$m.rc"
	assert_eq "$rc" 0 "$m run ended (${secs} s)"
	assert_no_san "$T/$m.err" "$m"
	if "$PY" "$H/cpycompare.py" "$T/bare.out" "$T/$m.out" "$EXPECTED" "$m" >"$T/$m.cmp"; then
		pass "$(tail -n 1 "$T/$m.cmp")"
	else
		fail "$m: cases lost or stale entries: $(tail -n 1 "$T/$m.cmp")"
		sed '$d; s/^/         | /' "$T/$m.cmp"
	fi
done

for m in $MODES; do
	SOCK=$T/$m.sock AUDIT=$T/$m.audit.jsonl
	eval "BROKER_PID=\$BPID_$m"
	[ "$m" = allow ] || assert_audit_ge 100 "$m: the connections were rewritten" op=connect action=rewrite
	stop_broker
	assert_audit_valid
done
BROKER_PID=
finish
