# t_reload.sh: `egress-broker reload` and SIGHUP swap the rule set for new
# processes; a broken file is refused (exit 1, FILE:LINE), the old rules stay
# in force and status --json reports policy.last_error.
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
start_server b http 127.0.0.1
PA=$(port a) PB=$(port b)

policy_v1() {
	{
		policy_egress
		policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" action=allow
		policy_rule block-b cidr=127.0.0.1/32 "port=$PB" action=deny
	} | write_policy
}
policy_v1
start_broker || finish

reload() {
	LAST=reload
	timeout 20 env $BROKER_SAN_ENV "$BROKER_BIN" reload --socket "$SOCK" >"$T/reload.out" 2>"$T/reload.err"
	RC=$?
	cat "$T/reload.out" >>"$T/reload.err"
	assert_no_san "$T/reload.err" "egress-broker reload"
}
sha() { sha256sum "$POLICY" | cut -d' ' -f1; }
# _sha_is SHA: the broker reports SHA as the policy in force.
_sha_is() {
	"$BROKER_BIN" status --json --socket "$SOCK" >"$T/sha.json" 2>/dev/null &&
		[ "$(jget "$T/sha.json" policy.sha256)" = "$1" ]
}

echo "# v1"
pyc v1-a connect 127.0.0.1 "$PA"
assert_out v1-a ok "v1: a allowed"
pyc v1-b connect 127.0.0.1 "$PB"
assert_out v1-b "err EPERM" "v1: b denied"
broker_status st1
SHA1=$(sha)
assert_eq "$(jget "$T/st1.json" policy.sha256)" "$SHA1" "status shows v1's sha256"
assert_eq "$(jget "$T/st1.json" policy.rules)" 2 "v1 has 2 rules"

echo "# v2 by egress-broker reload"
{
	policy_egress
	policy_rule b-now-allowed cidr=127.0.0.1/32 "port=$PB" action=allow
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" action=allow
	policy_rule extra host=nothing.test action=deny
} | write_policy
SHA2=$(sha)
reload
assert_rc 0 "reload of a good file"
pyc v2-b connect 127.0.0.1 "$PB"
assert_out v2-b ok "v2: b allowed for a new process"
assert_audit 1 "v2 allow recorded with the new rule" op=connect action=allow port="$PB" rule=b-now-allowed
broker_status st2
assert_eq "$(jget "$T/st2.json" policy.sha256)" "$SHA2" "status shows v2's sha256"
assert_eq "$(jget "$T/st2.json" policy.rules)" 3 "v2 has 3 rules"
assert_eq "$(jget "$T/st2.json" policy.last_error)" null "no last_error after a good reload"
assert_eq "$(jget "$T/st2.json" pid)" "$BROKER_PID" "same broker process after reload"

echo "# broken file: refused, v2 stays"
cp "$POLICY" "$T/policy.good"
{
	policy_rule broken action=allow
	echo 'this line has no equals sign'
} >>"$POLICY"
BADLINE=$(grep -n 'no equals sign' "$POLICY" | cut -d: -f1)
reload
assert_rc 1 "reload of a broken file exits 1"
assert_contains "$T/reload.err" "policy.ini:$BADLINE" "reload's error names FILE:LINE (line $BADLINE)"
pyc v2b-b connect 127.0.0.1 "$PB"
assert_out v2b-b ok "old (v2) rules still in force: b allowed"
pyc v2b-a connect 127.0.0.1 "$PA"
assert_out v2b-a ok "old (v2) rules still in force: a allowed"
broker_status st3
err=$(jget "$T/st3.json" policy.last_error)
case $err in
null | "" | "<absent>") fail "status policy.last_error not set after a failed reload: [$err]" ;;
*policy.ini:$BADLINE*) pass "status policy.last_error names FILE:LINE ($err)" ;;
*) fail "status policy.last_error does not name policy.ini:$BADLINE: [$err]" ;;
esac
assert_eq "$(jget "$T/st3.json" policy.sha256)" "$SHA2" "status still shows v2's sha256"
assert_eq "$(jget "$T/st3.json" policy.rules)" 3 "still 3 rules"

echo "# v1 again by SIGHUP"
policy_v1
kill -HUP "$BROKER_PID"
if wait_for 5 _sha_is "$SHA1"; then pass "SIGHUP reloaded (sha256 is v1's)"; else fail "SIGHUP: status sha256 did not become v1's within 5 s"; fi
pyc v3-b connect 127.0.0.1 "$PB"
assert_out v3-b "err EPERM" "after SIGHUP: b denied again"
broker_status st4
assert_eq "$(jget "$T/st4.json" policy.last_error)" null "last_error cleared by a good reload"
assert_eq "$(jget "$T/st4.json" policy.rules)" 2 "back to 2 rules"
assert_audit 2 "b denied twice in all, both by v1's rule (first v1, after SIGHUP)" op=connect action=deny port="$PB" rule=block-b
assert_audit 2 "b allowed twice in all, by v2's rule (v2, after the failed reload)" op=connect action=allow port="$PB" rule=b-now-allowed
assert_server b 2 "b saw exactly the two connects v2 allowed"

finish
