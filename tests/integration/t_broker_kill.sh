# t_broker_kill.sh: one long-lived python process under the shim while the
# broker is SIGKILLed, restarted on the same socket, and SIGSTOPped: attempts
# fail closed without hanging, stderr carries ONE "broker unreachable" line
# for the whole process, and the same process works again once a broker
# answers. A stopped broker still takes the note of a connect its kept
# verdict allows (recorded when it runs again); what it must answer fails.
# The python program takes one step per line on a FIFO.
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
start_server b http 127.0.0.1
start_server c http 127.0.0.1
start_server d http 127.0.0.1
PA=$(port a) PB=$(port b) PC=$(port c) PD=$(port d)

{
	policy_egress
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" action=allow
	policy_rule srv-c cidr=127.0.0.1/32 "port=$PC" action=allow
} | write_policy
start_broker || finish

mkfifo "$T/steps"
timeout -k 5 90 env LD_PRELOAD="$PRELOAD" EGRESS_SOCKET="$SOCK" EGRESS_TIMEOUT_MS=1000 $SAN_ENV \
	"$PY" "$H/pyclient.py" loop <"$T/steps" >"$T/loop.out" 2>"$T/loop.err" &
LOOP_PID=$!
bg_record "$LOOP_PID"
exec 3>"$T/steps"
wait_for 10 grep -q '^ready' "$T/loop.out" || fail "python loop did not start"
PYPID=$(sed -n 's/^ready //p' "$T/loop.out")

# step NAME PORT: one connect by the long-lived process; waits (<= 25 s) for
# its result and prints it.
step() {
	echo "connect 127.0.0.1 $2 $1" >&3
	if wait_for 25 grep -q "^$1 " "$T/loop.out"; then
		sed -n "s/^$1 //p" "$T/loop.out"
	else
		echo "no-answer"
	fi
}

assert_eq "$(step s1 "$PA")" ok "s1: connect with the broker up"
assert_audit 1 "s1 recorded" op=connect action=allow pid="$PYPID" port="$PA"
broker_status st1
assert_ge "$(jget "$T/st1.json" clients.connected)" 2 "status clients.connected counts the live python (and the status query)"

echo "# SIGKILL the broker"
kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null
BROKER_PID=
r=$(step s2 "$PA")
case $r in
err\ *) pass "s2: connect fails closed with the broker gone ($r)" ;;
*) fail "s2: expected a failure with the broker gone, got [$r]" ;;
esac
assert_lines "$T/loop.err" "broker unreachable" 1 "one 'broker unreachable' line"
assert_contains "$T/loop.err" "$SOCK" "the line names the socket path"
r=$(step s3 "$PA")
case $r in err\ *) pass "s3: still fails ($r)" ;; *) fail "s3: expected a failure, got [$r]" ;; esac
assert_lines "$T/loop.err" "broker unreachable" 1 "still one 'broker unreachable' line per process"
assert_server a 1 "server saw only s1"

echo "# restart on the same (stale) socket path"
start_broker
assert_eq "$(step s4 "$PA")" ok "s4: the same process connects again through the new broker"
assert_audit 2 "s1 and s4 recorded (audit appended across restarts)" op=connect action=allow pid="$PYPID" port="$PA"
assert_eq "$(step s5 "$PB")" "err EPERM" "s5: a denial from the new broker"

echo "# SIGSTOP the broker: no answer within EGRESS_TIMEOUT_MS"
kill -STOP "$BROKER_PID"
# s4's verdict is kept: the connect goes, its note waits in the socket
assert_eq "$(step s6a "$PA")" ok "s6a: a connect the cache holds goes while the broker is stopped"
r=$(step s6 "$PC")
case $r in err\ *) pass "s6: a connect the broker must answer fails instead of hanging on a stopped broker ($r)" ;; *) fail "s6: expected a failure, got [$r]" ;; esac
kill -CONT "$BROKER_PID"
assert_audit 1 "s6a recorded once the broker runs again" op=connect action=allow pid="$PYPID" port="$PA" cached=true
# The late answer to s6 (an allow) must not be taken for s7's (a deny).
assert_eq "$(step s7 "$PD")" "err EPERM" "s7: denied; the stale answer to s6 was not used"
assert_eq "$(step s8 "$PA")" ok "s8: allowed again"
assert_lines "$T/loop.err" "broker unreachable" 1 "one 'broker unreachable' line for the whole process"
assert_server a 4 "server a saw s1, s4, s6a and s8 only"
assert_server c 0 "c saw nothing: s6 was never answered"
assert_server b 0 "denied server saw nothing"
assert_server d 0 "denied server saw nothing"

echo quit >&3
exec 3>&-
wait_for 10 _dead "$LOOP_PID"
wait "$LOOP_PID"
RC=$?
assert_rc 0 "python loop exited normally"
assert_contains "$T/loop.out" "bye" "python loop finished"
assert_no_san "$T/loop.err" "python loop"

finish
