# t_faults.sh: faults under load. (1) The broker is killed with SIGKILL while
# 50 long-lived programs under the shim and 50 protocol clients are busy:
# they are denied (EPERM, one line each), never hung, never answered wrong,
# and the restarted broker serves the same processes again. (2) Reloads
# with a good and with a broken file while clients keep asking: no answer
# ever mixes two rule sets, the broken file changes nothing and status says
# why. (3) The audit log's disk fills up, then frees; the log file is
# removed: the broker keeps deciding (a denial stays a denial), reports it
# in status and resumes logging.
. "$ROOT/tests/integration/lib.sh"
need_build
ADV=$ROOT/$BUILD/advclient
[ -x "$ADV" ] || { fail "missing $ADV (make $BUILD/advclient)"; finish; }

start_server a http 127.0.0.1
PA=$(port a)
mk_policy() { # VARIANT: the 10,000-rule load policy plus a rule for server a
	"$ADV" policy 10000 "$1"
	policy_rule srv cidr=127.0.0.1/32 "port=$PA" action=allow
}
mk_policy plain >"$POLICY"
start_broker || finish

# ---- (1) SIGKILL under load
MARK=$T/restarted
i=0
while [ $i -lt 50 ]; do
	timeout -k 5 40 env LD_PRELOAD="$PRELOAD" EGRESS_SOCKET="$SOCK" EGRESS_TIMEOUT_MS=2000 $SAN_ENV \
		"$PY" "$H/connloop.py" 127.0.0.1 "$PA" 8 "$MARK" >"$T/loop-$i.out" 2>"$T/loop-$i.err" &
	echo $! >>"$T/loops"
	i=$((i + 1))
done
timeout -k 5 60 "$ADV" "$SOCK" storm 5 10 8 >"$T/storm-kill.out" 2>&1 &
STORM=$!
sleep 2
kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null
BROKER_PID=
sleep 2
start_broker || finish
touch "$MARK"
rc=0
for p in $(cat "$T/loops"); do wait "$p" || rc=$?; done
wait $STORM
storm_rc=$?
sed 's/^/    /' "$T/storm-kill.out"
assert_eq "$rc" 0 "all 50 programs under the shim finished on time (none hung)"
cat "$T"/loop-*.out >"$T/loops.out"
assert_lines "$T/loops.out" "before ok=" 50 "all 50 programs reported"
assert_lines "$T/loops.out" "other=0 after" 50 "before the restart: only successes and EPERM denials"
assert_lines "$T/loops.out" "other=0 slowest" 50 "after the restart: only successes and EPERM denials"
denied=$(grep -c 'before ok=[0-9]* eperm=[1-9]' "$T/loops.out")
assert_ge "$denied" 1 "programs were denied while the broker was dead ($denied of 50)"
assert_lines "$T/loops.out" "after ok=0 " 0 "every program was served again by the restarted broker"
for f in "$T"/loop-*.err; do
	n=$(grep -c "egress: broker unreachable at $SOCK" "$f")
	[ "$n" -le 1 ] || { fail "$(basename "$f"): $n unreachable lines, one at most"; show "$f"; }
done
pass "at most one 'broker unreachable' line per process"
assert_eq "$storm_rc" 0 "protocol clients: no wrong answer and no hang across the kill"

# ---- (2) reloads while clients ask
mk_policy flipped >"$T/flipped.ini"
mk_policy plain >"$T/plain.ini"
mk_policy broken >"$T/broken.ini"
timeout -k 5 60 "$ADV" "$SOCK" storm 5 10 10 >"$T/storm-reload.out" 2>&1 &
STORM=$!
ok_reloads=0
broken_refused=0
hup_took=0
broken_kept=0
in_force() { # the sha256 of the rule set the broker has in force
	env $BROKER_SAN_ENV "$BROKER_BIN" status --json --socket "$SOCK" >"$T/st-loop.json" 2>/dev/null
	jget "$T/st-loop.json" policy.sha256
}
sha_flipped=$(sha256sum <"$T/flipped.ini" | cut -d' ' -f1)
sha_plain=$(sha256sum <"$T/plain.ini" | cut -d' ' -f1)
flipped_in_force() { [ "$(in_force)" = "$sha_flipped" ]; }
n=0
while [ $n -lt 6 ]; do
	cp "$T/flipped.ini" "$POLICY"
	kill -HUP "$BROKER_PID"
	wait_for 5 flipped_in_force && hup_took=$((hup_took + 1))
	sleep 0.3
	cp "$T/broken.ini" "$POLICY"
	if "$BROKER_BIN" reload --socket "$SOCK" >"$T/reload-broken.out" 2>&1; then :; else
		broken_refused=$((broken_refused + 1))
	fi
	[ "$(in_force)" = "$sha_flipped" ] && broken_kept=$((broken_kept + 1))
	sleep 0.3
	cp "$T/plain.ini" "$POLICY"
	"$BROKER_BIN" reload --socket "$SOCK" >>"$T/reload-good.out" 2>&1 && ok_reloads=$((ok_reloads + 1))
	sleep 0.5
	n=$((n + 1))
done
wait $STORM
storm_rc=$?
sed 's/^/    /' "$T/storm-reload.out"
assert_eq "$storm_rc" 0 "no answer mixed two rule sets, none hung, across 18 reloads"
assert_contains "$T/storm-reload.out" " 0 wrong, 0 lost, 0 hung" "every client's every question was answered"
assert_eq "$hup_took" 6 "every SIGHUP put the flipped rule set in force (status sha256)"
assert_eq "$ok_reloads" 6 "good reloads through egress-broker reload succeeded"
assert_eq "$broken_refused" 6 "broken reloads were refused"
assert_eq "$broken_kept" 6 "after each broken reload the flipped set was still in force"
twin=$(sed -n 's/.*hung; \([0-9]*\) of the right from the flipped twin$/\1/p' "$T/storm-reload.out")
right=$(sed -n 's/.* \([0-9]*\) right, .*/\1/p' "$T/storm-reload.out")
assert_ge "${twin:-0}" 1 "clients got answers from the flipped set during the storm ($twin)"
assert_ge "$((${right:-0} - ${twin:-0}))" 1 "and from the plain set ($((${right:-0} - ${twin:-0})))"
assert_contains "$T/reload-broken.out" "unknown key bogus" "the refusal names the error"
cp "$T/broken.ini" "$POLICY"
"$BROKER_BIN" reload --socket "$SOCK" >/dev/null 2>&1
broker_status st
assert_contains "$T/st.json" "unknown key bogus" "status reports the failed reload"
assert_eq "$(jget "$T/st.json" policy.sha256)" "$sha_plain" "the last good rule set is in force"
LAST=probe
timeout 20 "$ADV" "$SOCK" probe >"$T/probe.out" 2>&1
RC=$?
assert_rc 0 "decisions go on after the broken reload"
stop_broker
cp "$T/plain.ini" "$POLICY"

# ---- (3) the audit log's disk fills, frees; the log is removed
if ! command -v nsenter >/dev/null 2>&1; then
	fail "nsenter missing (util-linux)"
	finish
fi
mkdir -p "$T/fs"
{
	policy_egress
	policy_rule srv cidr=127.0.0.1/32 "port=$PA" action=allow
} >"$T/small.ini"
SOCK=$T/fs-broker.sock
unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs '$T/fs' && exec env $BROKER_SAN_ENV '$BROKER_BIN' --policy '$T/small.ini' --socket '$SOCK' --audit '$T/fs/audit.jsonl'" \
	>"$T/broker.out" 2>>"$T/broker.err" &
BROKER_PID=$!
bg_record $BROKER_PID
wait_for 5 test -S "$SOCK" || { fail "the tmpfs broker did not start"; show "$T/broker.err"; finish; }
inside() { nsenter -t "$BROKER_PID" -m "$@"; }
audit_lines() { inside sh -c "cat '$T/fs/audit.jsonl' 2>/dev/null" | grep -c "$1"; }

# fill the disk before the first event: the log's first page cannot be had
inside sh -c "cat /dev/zero > '$T/fs/fill' 2>/dev/null"
run_shim full-allow "$PY" "$H/pyclient.py" connect 127.0.0.1 "$PA"
assert_contains "$T/full-allow.out" "ok" "the disk is full: an allowed connect still works"
run_shim full-deny "$PY" "$H/pyclient.py" connect 127.0.0.1 9
assert_contains "$T/full-deny.out" "err EPERM" "the disk is full: a denied connect is still denied"
broker_status full
assert_eq "$(jget "$T/full.json" audit.error)" "No space left on device" "status reports the full disk"
assert_ge "$(jget "$T/full.json" audit.failures)" 2 "status counts the events it could not write"

inside rm -f "$T/fs/fill"
run_shim freed "$PY" "$H/pyclient.py" connect 127.0.0.1 9
assert_contains "$T/freed.out" "err EPERM" "denied after the disk freed up"
assert_ge "$(audit_lines '"port":9,')" 1 "logging resumed once there was room"
broker_status freed
assert_eq "$(jget "$T/freed.json" audit.error)" null "status: the audit error cleared"

inside rm -f "$T/fs/audit.jsonl"
recreated() { [ "$(jget "$T/re.json" audit.reopened 2>/dev/null)" = 1 ] || { "$BROKER_BIN" status --json --socket "$SOCK" >"$T/re.json" 2>/dev/null; false; }; }
wait_for 5 recreated
assert_eq "$(jget "$T/re.json" audit.reopened)" 1 "the removed log was noticed and recreated"
run_shim after-rm "$PY" "$H/pyclient.py" connect 127.0.0.1 "$PA"
assert_eq "$(audit_lines '"action":"allow"')" 1 "the next event went to the new file"

finish
