# t_curl.sh: curl under the shim against loopback HTTP servers: an allowed
# server gets the request, a denied one sees no connection; names from
# [hosts] are judged by their name rule; the audit log and status --json
# agree with what curl saw. Run isolated too (ISOLATE=1, see lib.sh): a
# denied connect to 127.0.0.1 then reaches the namespace's own loopback,
# where nothing listens.
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
start_server b http 127.0.0.1
PA=$(port a)
PB=$(port b)

{
	echo '; t_curl: a allowed by address, b denied by an explicit rule'
	policy_egress cache_ttl=60
	policy_hosts myservice.test=127.0.0.1
	policy_rule svc-name host=myservice.test "port=$PA" action=allow
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" action=deny
	policy_rule no-blocked host=blocked.test action=deny
} | write_policy
start_broker || finish

echo "# allowed by address"
run_shim allowed "$CURL" -sS --max-time 10 "http://127.0.0.1:$PA/hello-a"
assert_rc 0 "curl to allowed server"
assert_out allowed "egress-it /hello-a" "curl got the allowed server's body"
assert_not_contains "$T/allowed.err" "egress:" "no egress line for an allowed connect (EGRESS_LOG default)"
assert_server a 1 "allowed server got exactly curl's connection"
assert_contains "$T/srv-a.log" "req /hello-a" "allowed server got the request path"
assert_audit 1 "allow connect recorded" op=connect action=allow addr=127.0.0.1 port="$PA" proto=tcp rule=srv-a errno=null exe="$CURL" uid="$(id -u)"

echo "# denied by rule block-b"
run_shim denied "$CURL" -sS --max-time 10 "http://127.0.0.1:$PB/hello-b"
assert_rc 7 "curl to denied server fails to connect"
assert_out denied "" "curl printed no body"
if not_isolated "a denied connect to 127.0.0.1 is refused by the namespace's own loopback, not the shim: no egress line"; then
	assert_contains "$T/denied.err" "egress: denied connect to 127.0.0.1:$PB (rule block-b)" "stderr has the egress denial line"
	assert_lines "$T/denied.err" "egress: denied connect" 1 "one denial line for one attempt"
fi
assert_server b 0 "denied server saw no connection"
assert_audit_lo 1 "deny connect recorded" op=connect action=deny addr=127.0.0.1 port="$PB" proto=tcp rule=block-b errno=EPERM name=null exe="$CURL"

echo "# [hosts] name, judged by its name rule"
run_shim byname "$CURL" -sS --max-time 10 "http://myservice.test:$PA/by-name"
assert_rc 0 "curl to myservice.test ([hosts] name)"
assert_out byname "egress-it /by-name" "curl got the body through the name"
assert_audit_ge 1 "allow resolve of myservice.test" op=resolve action=allow name=myservice.test rule=svc-name
assert_audit 1 "connect attributed to the name" op=connect action=allow name=myservice.test addr=127.0.0.1 port="$PA" rule=svc-name

echo "# denied name"
run_shim badname "$CURL" -sS --max-time 10 "http://blocked.test:$PA/never"
assert_rc 6 "curl cannot resolve a denied name"
assert_contains "$T/badname.err" "egress: denied resolve of blocked.test (rule no-blocked)" "stderr has the resolve denial line"
assert_audit_ge 1 "deny resolve recorded" op=resolve action=deny name=blocked.test rule=no-blocked errno=EAI_NONAME
assert_audit 0 "no connect after a denied resolve" op=connect name=blocked.test

echo "# numeric hosts are never looked up"
assert_audit 0 "no resolve events for numeric hosts" op=resolve name=127.0.0.1

echo "# a second denied attempt, then status --json"
run_shim denied2 "$CURL" -sS --max-time 10 "http://127.0.0.1:$PB/again"
assert_rc 7 "second curl to denied server fails"
assert_server b 0 "denied server still saw no connection"
assert_audit_lo 2 "two deny connects" op=connect action=deny port="$PB"
assert_server a 2 "allowed server saw exactly the two allowed connections"

broker_status st
assert_status_matches_audit st
assert_eq "$(jget "$T/st.json" pid)" "$BROKER_PID" "status pid is the broker's"
assert_eq "$(jget "$T/st.json" socket)" "$SOCK" "status socket"
assert_eq "$(jget "$T/st.json" policy.path)" "$POLICY" "status policy.path"
assert_eq "$(jget "$T/st.json" policy.sha256)" "$(sha256sum "$POLICY" | cut -d' ' -f1)" "status policy.sha256 is the file's"
assert_eq "$(jget "$T/st.json" policy.rules)" 4 "status policy.rules"
assert_eq "$(jget "$T/st.json" policy.last_error)" null "status policy.last_error is null"
assert_eq "$(jget "$T/st.json" audit.path)" "$AUDIT" "status audit.path"
assert_eq "$(jget "$T/st.json" audit.error)" null "status audit.error is null"
assert_ge "$(jget "$T/st.json" clients.total)" 4 "status clients.total counts the four curls"
assert_eq "$(jget "$T/st.json" decisions.malformed)" 0 "status decisions.malformed"
assert_eq "$(jget "$T/st.json" decisions.rewrite)" 0 "status decisions.rewrite"
for k in version uptime_s loaded_at; do
	case $k in loaded_at) p=policy.loaded_at ;; *) p=$k ;; esac
	assert_ne "$(jget "$T/st.json" $p)" "<absent>" "status has $p"
done
if isolated; then
	assert_eq "$("$PY" "$H/ej.py" top "$T/st.json" "$PB" tcp)" 0 "top_denied has no 127.0.0.1:$PB/tcp: nothing was denied"
else
	assert_eq "$("$PY" "$H/ej.py" top "$T/st.json" "$PB" tcp)" 2 "top_denied counts 2 for 127.0.0.1:$PB/tcp"
fi

finish
