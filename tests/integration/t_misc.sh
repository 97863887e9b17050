# t_misc.sh: AF_UNIX passes untouched, EGRESS_LOG=off/all, exe rules with
# real programs, broker unreachable, malformed messages, `egress-broker
# check` answers and exit codes, bad policy files refused with FILE:LINE.
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
start_server b http 127.0.0.1
start_server c http 127.0.0.1
start_server x http 127.0.0.1
start_server y http 127.0.0.1
start_server ua udp 127.0.0.1
start_server u unix "$T/unix.sock"
PA=$(port a) PB=$(port b) PC=$(port c) PX=$(port x) PY_=$(port y) PUA=$(port ua)

{
	policy_egress cache_ttl=60
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" proto=tcp action=deny
	policy_rule refuse-c cidr=127.0.0.1/32 "port=$PC" proto=tcp action=deny errno=ECONNREFUSED
	policy_rule curl-only cidr=127.0.0.1/32 "port=$PX" proto=tcp exe=curl action=allow
	policy_rule python-only cidr=127.0.0.1/32 "port=$PY_" proto=tcp 'exe=python3*' action=allow
	policy_rule udp-ok cidr=127.0.0.1/32 "port=$PUA" proto=udp action=allow
	policy_rule public-api host=api.example.com port=443 action=allow
} | write_policy
start_broker || finish

echo "# AF_UNIX passes untouched"
pyc unix unix "$T/unix.sock"
assert_out unix "ok pong" "python AF_UNIX connect under a default-deny policy works"
assert_empty "$T/unix.err" "no egress line for AF_UNIX"
assert_audit 0 "no audit event at all for AF_UNIX" op!=none

echo "# EGRESS_LOG"
run_shim log-off EGRESS_LOG=off "$PY" "$H/pyclient.py" connect 127.0.0.1 "$PB"
assert_out log-off "err EPERM" "EGRESS_LOG=off: still denied"
assert_empty "$T/log-off.err" "EGRESS_LOG=off: nothing on stderr"
run_shim log-def "$PY" "$H/pyclient.py" connect 127.0.0.1 "$PA"
assert_out log-def ok "allowed connect"
assert_empty "$T/log-def.err" "default EGRESS_LOG: allows are silent"
run_shim log-all EGRESS_LOG=all "$PY" "$H/pyclient.py" connect 127.0.0.1 "$PA"
assert_out log-all ok "EGRESS_LOG=all: allowed connect"
assert_contains "$T/log-all.err" "egress: " "EGRESS_LOG=all prints the allow"
assert_contains "$T/log-all.err" "127.0.0.1:$PA" "the allow line names the destination"
assert_contains "$T/log-all.err" "srv-a" "the allow line names the rule"

echo "# exe rules"
run_shim curl-x "$CURL" -sS --max-time 10 "http://127.0.0.1:$PX/x"
assert_rc 0 "curl allowed by exe = curl"
assert_out curl-x "egress-it /x" "curl got the body"
pyc py-x connect 127.0.0.1 "$PX"
assert_out py-x "err EPERM" "python denied by the curl-only rule"
pyc py-y connect 127.0.0.1 "$PY_"
assert_out py-y ok "python allowed by exe = python3* (basename $(basename "$PY"))"
run_shim curl-y "$CURL" -sS --max-time 10 "http://127.0.0.1:$PY_/y"
assert_rc 7 "curl denied by the python-only rule"
assert_audit 1 "exe recorded for curl's allow" op=connect action=allow port="$PX" rule=curl-only exe="$CURL"
assert_audit 1 "exe recorded for python's allow" op=connect action=allow port="$PY_" rule=python-only exe="$PY"
assert_server x 1 "x saw only curl"
assert_server y 1 "y saw only python"

echo "# broker unreachable"
run_shim unreach EGRESS_SOCKET="$T/nobroker.sock" "$PY" "$H/pyclient.py" threads 127.0.0.1 "$PA" 127.0.0.1 "$PB" 1 3
assert_rc 0 "python with no broker ran to the end"
assert_not_contains "$T/unreach.out" "A ok" "no connect succeeded without a broker"
assert_lines "$T/unreach.out" "A err " 1 "allowed destination failed (fail closed)"
assert_lines "$T/unreach.err" "broker unreachable" 1 "exactly one 'broker unreachable' line for 6 attempts"
assert_contains "$T/unreach.err" "$T/nobroker.sock" "the line names the socket path"
run_shim unreach-udp EGRESS_SOCKET="$T/nobroker.sock" "$PY" "$H/pyclient.py" sendto 127.0.0.1 "$PUA" 5 nb
assert_not_contains "$T/unreach-udp.out" "sent 5" "datagrams fail closed without a broker"
assert_server ua 0 "receiver got nothing without a broker"
assert_server a 2 "a saw only the two allowed connects (log-def, log-all)"

echo "# malformed messages close that client only"
run_plain bad "$PY" "$H/badmsg.py" "$SOCK"
assert_out bad "closed
closed" "broker closed both malformed connections"
pyc after-bad connect 127.0.0.1 "$PA"
assert_out after-bad ok "broker still serves other clients"
broker_status st
assert_eq "$(jget "$T/st.json" decisions.malformed)" 2 "status decisions.malformed counts both"
assert_status_matches_audit st

echo "# egress-broker check"
chk() {
	LAST=$1
	shift
	timeout 20 env $BROKER_SAN_ENV "$BROKER_BIN" check "$@" >"$T/$LAST.out" 2>"$T/$LAST.err"
	RC=$?
	assert_no_san "$T/$LAST.err" "egress-broker check"
}
chk ck-a --policy "$POLICY" "127.0.0.1:$PA"
assert_rc 0 "check allowed: exit 0"
assert_out ck-a "allow (rule srv-a)" "check prints the allow"
chk ck-b --policy "$POLICY" "127.0.0.1:$PB"
assert_rc 1 "check denied: exit 1"
assert_out ck-b "deny EPERM (rule block-b)" "check prints the deny with errno"
chk ck-c --policy "$POLICY" "127.0.0.1:$PC"
assert_rc 1 "check denied with errno: exit 1"
assert_out ck-c "deny ECONNREFUSED (rule refuse-c)" "check prints the rule's errno"
chk ck-u --policy "$POLICY" "127.0.0.1:$PUA" --udp
assert_rc 0 "check --udp allowed"
assert_out ck-u "allow (rule udp-ok)" "check --udp names the udp rule"
chk ck-ut --policy "$POLICY" "127.0.0.1:$PUA"
assert_rc 1 "check (tcp) of the udp-only rule's port: denied"
chk ck-ex --policy "$POLICY" "127.0.0.1:$PX" --exe "$CURL"
assert_rc 0 "check --exe /usr/bin/curl matches exe = curl"
assert_out ck-ex "allow (rule curl-only)" "check --exe names the rule"
chk ck-ex2 --policy "$POLICY" "127.0.0.1:$PX" --exe /usr/bin/wget
assert_rc 1 "check --exe of another program: denied"
chk ck-pub --policy "$POLICY" "api.example.com:443"
assert_rc 0 "check of an allowed name (no lookup needed)"
assert_out ck-pub "allow (rule public-api)" "check names the host rule"
assert_contains "$T/ck-pub.err" "judged by name alone" "and says that its addresses are judged at connect"
chk ck-priv --policy "$POLICY" "10.1.2.3:443"
assert_rc 1 "check of a private address with no rule: denied"
chk ck-nofile --policy "$T/missing.ini" "127.0.0.1:$PA"
assert_rc 2 "check with a missing policy file: exit 2"
chk ck-noarg --policy "$POLICY"
assert_rc 0 "check without a destination checks the file: exit 0"
assert_contains "$T/ck-noarg.out" "policy OK" "and says that the file is good"
printf '[egress]\ndefault = maybe\n' >"$T/broken.ini"
chk ck-badfile --policy "$T/broken.ini"
assert_rc 2 "check of a broken file alone: exit 2"
assert_contains "$T/ck-badfile.err" "broken.ini:2" "and names the file and line"
chk ck-url --policy "$POLICY" "https://api.example.com/v1/models"
assert_rc 0 "check of a URL: the scheme gives the port"
assert_out ck-url "allow (rule public-api)" "check of a URL names the rule"
chk ck-two --policy "$POLICY" a.test b.test
assert_rc 2 "check with two destinations: exit 2"

echo "# check: rule matching (wildcards, lists, ranges, cidr, exe paths)"
{
	policy_egress
	policy_rule wild 'host=*.example.org, example.org' 'port=443, 8000-8010' action=allow
	policy_rule v6net cidr=2001:db8::/32 proto=udp action=allow
	policy_rule v4net cidr=198.51.100.0/24 action=deny errno=ECONNREFUSED
	policy_rule exe-path 'exe=/opt/tools/*' host=tools.example.net action=allow
} >"$T/match.ini"
while read -r want dest extra; do
	# shellcheck disable=SC2086 # $extra is zero or more words
	chk ck-m --policy "$T/match.ini" "$dest" $extra
	assert_eq "$(cat "$T/ck-m.out")" "$(echo "$want" | tr '~' ' ')" "check $dest $extra"
done <<'EOF2'
allow~(rule~wild) a.example.org:443
allow~(rule~wild) deep.b.example.org:8005
allow~(rule~wild) example.org:8010
deny~EAI_NONAME~(rule~default) example.org:8011
deny~EAI_NONAME~(rule~default) badexample.org:443
deny~EAI_NONAME~(rule~default) example.org.evil.test:443
allow~(rule~wild)~on~ports~443,~8000-8010~only example.org
allow~(rule~v6net) [2001:db8::5]:123 --udp
deny~EPERM~(rule~default) [2001:db8::5]:123
rewrite~via~the~lookup~stub~(rule~dns:~a~DNS~query;~the~name~it~asks~for~is~judged) [2001:db8::5]:53 --udp
deny~EPERM~(rule~default) [2001:db8::5]:53
deny~ECONNREFUSED~(rule~v4net) 198.51.100.77:80
deny~EPERM~(rule~default) 198.51.101.1:80
allow~(rule~exe-path) tools.example.net:443 --exe /opt/tools/fetch
deny~EAI_NONAME~(rule~default) tools.example.net:443 --exe /usr/bin/fetch
EOF2

echo "# private ranges: default = allow and name rules do not open loopback"
{
	policy_egress default=allow
	policy_rule by-name host=localhost action=allow
} >"$T/open.ini"
chk ck-open --policy "$T/open.ini" "127.0.0.1:$PA"
assert_rc 1 "default = allow does not open 127.0.0.1"
case $(cat "$T/ck-open.out") in "deny EPERM (rule private)") pass "denied by rule private" ;; *) fail "expected 'deny EPERM (rule private)', got [$(cat "$T/ck-open.out")]" ;; esac
chk ck-open6 --policy "$T/open.ini" "[::1]:$PA"
assert_rc 1 "default = allow does not open [::1]"
chk ck-meta --policy "$T/open.ini" "169.254.169.254:80"
assert_rc 1 "default = allow does not open the metadata address"
chk ck-pubip --policy "$T/open.ini" "192.0.2.10:80"
assert_rc 0 "default = allow opens a public address"

echo "# bad policy files: broker refuses to start, FILE:LINE"
n=0
for bad in 'action = maybe' 'cidr = 300.1.2.3/8' 'errno = ENOTANERRNO' 'port = 70000' 'frobnicate = yes' 'no equals sign here'; do
	n=$((n + 1))
	f=$T/bad$n.ini
	{
		policy_egress
		policy_rule r host=a.test
		printf '%s\n' "$bad"
	} >"$f"
	LAST=bad$n
	timeout 10 env $BROKER_SAN_ENV "$BROKER_BIN" --policy "$f" --socket "$T/bad$n.sock" --audit "$T/bad$n.jsonl" \
		>"$T/bad$n.out" 2>"$T/bad$n.err" </dev/null
	RC=$?
	assert_no_san "$T/bad$n.err" "broker on bad$n.ini"
	if [ "$RC" = 124 ]; then
		fail "bad policy [$bad]: broker started anyway (killed by timeout)"
	else
		assert_rc_nonzero "bad policy [$bad]: broker exits non-zero"
		assert_contains "$T/bad$n.err" "bad$n.ini:6" "error names FILE:LINE for [$bad]"
	fi
	if [ -e "$T/bad$n.sock" ]; then fail "bad policy [$bad]: socket was created"; else pass "no socket for a bad policy"; fi
	chk ck-bad$n --policy "$f" "127.0.0.1:80"
	assert_rc 2 "check with bad policy [$bad]: exit 2"
done
timeout 10 "$BROKER_BIN" --policy "$T/missing.ini" --socket "$T/m.sock" >"$T/missing.out" 2>"$T/missing.err" </dev/null
RC=$?
LAST=missing
if [ "$RC" = 124 ]; then fail "missing policy: broker started anyway"; else assert_rc_nonzero "missing policy file: broker exits non-zero"; fi
assert_contains "$T/missing.err" "missing.ini" "error names the missing file"

echo "# [egress] audit = PATH when --audit is not given"
{
	policy_egress "audit=$T/from-policy.jsonl"
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" action=allow
} >"$T/pa.ini"
env $BROKER_SAN_ENV "$BROKER_BIN" --policy "$T/pa.ini" --socket "$T/pa.sock" >"$T/pa-broker.out" 2>"$T/pa-broker.err" &
PA_BROKER=$!
bg_record "$PA_BROKER"
if wait_for 5 test -S "$T/pa.sock"; then
	pass "second broker (audit from the policy) started"
	run_shim pa EGRESS_SOCKET="$T/pa.sock" "$PY" "$H/pyclient.py" connect 127.0.0.1 "$PA"
	assert_out pa ok "connect through the second broker"
	SAVED_AUDIT=$AUDIT
	AUDIT=$T/from-policy.jsonl
	assert_audit 1 "event written to the policy's audit path" op=connect action=allow port="$PA" rule=srv-a
	assert_audit_valid
	AUDIT=$SAVED_AUDIT
	"$BROKER_BIN" status --json --socket "$T/pa.sock" >"$T/pa-st.json" 2>/dev/null
	assert_eq "$(jget "$T/pa-st.json" audit.path)" "$T/from-policy.jsonl" "status audit.path is the policy's"
else
	fail "second broker did not start"
	show "$T/pa-broker.err"
fi
stop_pid "$PA_BROKER"
assert_no_san "$T/pa-broker.err" "second broker"
if [ -e "$T/pa.sock" ]; then fail "second broker left its socket"; else pass "second broker removed its socket"; fi

finish
