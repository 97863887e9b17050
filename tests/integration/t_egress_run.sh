# t_egress_run.sh: tools/egress-run starts a private broker, runs curl under
# the shim, passes CMD's exit status through, prints a summary on stderr
# (none with --quiet) and refuses a setuid binary with exit 126. Run as
# root, a command that drops to another user (setpriv to uid 65534) stays
# mediated: its curls reach the private broker, which records uid 65534 and
# still refuses it control requests.
. "$ROOT/tests/integration/lib.sh"
need_build
ER=$ROOT/tools/egress-run
[ -x "$ER" ] || { fail "tools/egress-run missing or not executable"; finish; }

start_server a http 127.0.0.1
start_server b http 127.0.0.1
PA=$(port a) PB=$(port b)

{
	policy_egress
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" action=deny
} | write_policy

# egress-run finds the library and broker through EGRESS_LIB/EGRESS_BROKER.
# Every command here is curl (or sh), so under SANITIZE egress-run gets the
# plain library curl needs (see lib.sh) and the sanitized broker.

# er TAG ARGS...: tools/egress-run ARGS, bounded, unset EGRESS_SOCKET.
er() {
	LAST=$1
	shift
	timeout -k 5 "$RUN_TIMEOUT" env -u EGRESS_SOCKET EGRESS_LIB="${CURL_PRELOAD##* }" EGRESS_BROKER="$BROKER_BIN" \
		"$ER" "$@" >"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
	RC=$?
	assert_no_san "$T/$LAST.err" "egress-run $LAST"
}

echo "# allowed"
er ok --policy "$POLICY" --audit "$T/er-audit.jsonl" -- "$CURL" -sS --max-time 10 "http://127.0.0.1:$PA/er-a"
assert_rc 0 "egress-run curl (allowed): curl's status"
assert_out ok "egress-it /er-a" "curl's body on stdout"
assert_contains "$T/ok.err" "egress: 1 allowed, 0 denied" "summary on stderr"
assert_server a 1 "allowed server got the request"
AUDIT=$T/er-audit.jsonl
assert_audit 1 "egress-run's --audit file has the allow" op=connect action=allow port="$PA" rule=srv-a exe="$CURL"

echo "# denied"
er no --policy "$POLICY" --audit "$T/er-audit.jsonl" -- "$CURL" -sS --max-time 10 "http://127.0.0.1:$PB/er-b"
assert_rc 7 "egress-run curl (denied): curl's exit status 7"
assert_contains "$T/no.err" "egress: denied connect to 127.0.0.1:$PB (rule block-b)" "the shim's denial line"
assert_contains "$T/no.err" "egress: 0 allowed, 1 denied" "summary counts this run only (audit appended)"
assert_contains "$T/no.err" "127.0.0.1:$PB (rule block-b)" "summary names the denied destination and rule"
assert_server b 0 "denied server saw nothing"
assert_audit 1 "deny in the audit file" op=connect action=deny port="$PB" rule=block-b errno=EPERM

echo "# --quiet"
er quiet --policy "$POLICY" --quiet -- "$CURL" -sS --max-time 10 "http://127.0.0.1:$PB/er-q"
assert_rc 7 "egress-run --quiet curl (denied)"
assert_not_contains "$T/quiet.err" "allowed," "no summary with --quiet"
assert_contains "$T/quiet.err" "egress: denied connect to 127.0.0.1:$PB" "the shim's line is still there"

echo "# exit status passes through"
er st3 --policy "$POLICY" -- sh -c 'exit 3'
assert_rc 3 "CMD's exit status 3"
er nf --policy "$POLICY" -- /nonexistent/prog
assert_rc 127 "missing command: 127"

echo "# setuid binary refused"
cp "$CURL" "$T/suidcurl"
chmod u+s "$T/suidcurl"
er suid --policy "$POLICY" -- "$T/suidcurl" -sS "http://127.0.0.1:$PA/suid"
assert_rc 126 "setuid binary: exit 126"
assert_contains "$T/suid.err" "setuid" "message says setuid"
assert_out suid "" "the setuid binary did not run"
cd "$T" || exit 1
er suid-rel --policy "$POLICY" -- ./suidcurl -sS "http://127.0.0.1:$PA/suid"
cd "$ROOT" || exit 1
assert_rc 126 "setuid binary named by a relative path (./suidcurl): exit 126"
assert_server a 1 "no request from the setuid copy"

echo "# children that change user stay mediated"
if [ "$(id -u)" != 0 ]; then
	echo "  (not root: the user-change checks need root)"
elif ! command -v setpriv >/dev/null 2>&1; then
	fail "setpriv (util-linux) not found"
else
	AUDIT=$T/drop-audit.jsonl
	DROP="setpriv --reuid=65534 --regid=65534 --clear-groups"
	# What uid 65534 loads or runs must be reachable by it wherever the
	# checkout is (under /root its loader could not open the library and
	# would run curl unmediated): copies in a directory open to all.
	U=$(mktemp -d /tmp/egress-it-user.XXXXXX)
	chmod 0755 "$U"
	cp "${CURL_PRELOAD##* }" "$U/libegress.so"
	cp "$BROKER_BIN" "$ER" "$POLICY" "$U/"
	chmod 0644 "$U/policy.ini" "$U/libegress.so"
	eru() { # TAG ARGS...: er with the copies
		LAST=$1
		shift
		timeout -k 5 "$RUN_TIMEOUT" env -u EGRESS_SOCKET EGRESS_LIB="$U/libegress.so" \
			EGRESS_BROKER="$U/egress-broker" "$U/egress-run" "$@" >"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
		RC=$?
		assert_no_san "$T/$LAST.err" "egress-run $LAST"
	}
	eru drop --policy "$POLICY" --audit "$AUDIT" -- $DROP sh -c '
		id -u
		"$1" -sS --max-time 10 "http://127.0.0.1:$2/drop-a"
		"$1" -sS --max-time 10 "http://127.0.0.1:$3/drop-b" && echo "b answered"
		env -u LD_PRELOAD "$4" status --socket "$EGRESS_SOCKET" 2>&1 >/dev/null |
			grep -o "refused: permission denied"
		exit 0' sh "$CURL" "$PA" "$PB" "$U/egress-broker"
	assert_rc 0 "egress-run of a command that drops to uid 65534"
	assert_out drop "65534
egress-it /drop-a
refused: permission denied" "uid 65534: the allowed curl answered, the denied one did not, status was refused (control stays root's and the broker's uid's)"
	assert_contains "$T/drop.err" "egress: denied connect to 127.0.0.1:$PB (rule block-b)" "the shim's denial line, not 'broker unreachable'"
	assert_not_contains "$T/drop.err" "broker unreachable" "uid 65534 reached the private broker"
	assert_contains "$T/drop.err" "egress: 1 allowed, 1 denied" "the summary has both"
	assert_server a 2 "the allowed server got uid 65534's request"
	assert_server b 0 "the denied server got nothing"
	assert_audit 1 "allow recorded with uid 65534" op=connect action=allow "port=$PA" rule=srv-a uid=65534 "exe=$CURL"
	assert_audit 1 "deny recorded with uid 65534" op=connect action=deny "port=$PB" rule=block-b uid=65534 errno=EPERM

	# Not root, nothing CMD runs can change user with LD_PRELOAD kept: the
	# private socket's directory stays 0700, the socket 0660.
	LAST=user
	timeout -k 5 "$RUN_TIMEOUT" $DROP env -u EGRESS_SOCKET TMPDIR=/tmp EGRESS_LIB="$U/libegress.so" \
		EGRESS_BROKER="$U/egress-broker" "$U/egress-run" --policy "$U/policy.ini" -- \
		sh -c 'stat -c %a "$(dirname "$EGRESS_SOCKET")" "$EGRESS_SOCKET"' >"$T/user.out" 2>"$T/user.err" </dev/null
	RC=$?
	assert_rc 0 "egress-run as uid 65534"
	assert_out user "700
660" "a non-root egress-run keeps its socket private (directory 0700, socket 0660)"
	rm -rf -- "$U"
fi

echo "# a shared broker: egress-run uses the one answering at EGRESS_SOCKET"
AUDIT=$T/shared-audit.jsonl
start_broker || finish
ers() { # TAG ARGS...: egress-run with the shared broker's socket
	LAST=$1
	shift
	timeout -k 5 "$RUN_TIMEOUT" env EGRESS_SOCKET="$SOCK" EGRESS_LIB="${CURL_PRELOAD##* }" \
		EGRESS_BROKER="$BROKER_BIN" "$ER" "$@" >"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
	RC=$?
	assert_no_san "$T/$LAST.err" "egress-run $LAST"
}
ers shared-a --audit "$AUDIT" -- "$CURL" -sS --max-time 10 "http://127.0.0.1:$PA/shared-a"
assert_rc 0 "curl through the shared broker"
assert_contains "$T/shared-a.err" "egress: 1 allowed, 0 denied" "the summary counts this run's lines of the shared log"
assert_audit 1 "the shared broker decided it" op=connect action=allow "port=$PA" rule=srv-a
ers shared-b -- "$CURL" -sS --max-time 10 "http://127.0.0.1:$PB/shared-b"
assert_rc 7 "a denied curl through the shared broker"
assert_contains "$T/shared-b.err" "egress: no summary: the broker at $SOCK keeps its own audit log" \
	"without --audit it says why there is no summary"
assert_audit 1 "the shared broker denied it" op=connect action=deny "port=$PB" rule=block-b

finish
