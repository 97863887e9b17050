# t_isolate.sh: egress-run --isolate. The command runs in new network,
# mount and PID namespaces where the broker is the only way out: programs
# that bypass libc (a static binary making its own system calls, busybox,
# python's raw syscall(SYS_connect)) are caught and judged by the same
# policy, by name where the namespace's DNS stub gave the address; programs
# that use libc are mediated by the shim as without --isolate, their
# allowed connects made by the broker. The destinations live in a network
# namespace of this test's own ("far"), reached from the host over a veth
# pair, so that nothing of the host's loopback is in play. Last, the same
# through a shared broker started with --isolate, which takes the capture
# of several runs at once.
. "$ROOT/tests/integration/lib.sh"
need_build
[ "$(id -u)" = 0 ] || skip "needs root for the test's own network namespace"
command -v nft >/dev/null 2>&1 || { fail "nft is missing (Debian package nftables)"; finish; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || { fail "busybox is missing (Debian package busybox-static)"; finish; }
RUN=$ROOT/tools/egress-run

build_helper rawconn -static -O2
RAW=$T/rawconn

# ---- the far side: a namespace with two web servers, 10.77.N.2:PA (allowed) and :PD (denied)
far_netns i 10.77 "rm -f /run/egress-it-$$.sock"
far_server() { # NAME
	ip netns exec "$FAR" "$PY" "$H/server.py" http "$FARIP" "$T/srv-$1.port" "$T/srv-$1.log" \
		2>"$T/srv-$1.err" &
	bg_record $!
	echo "http $FARIP" >"$T/srv-$1.kind"
	: >"$T/srv-$1.probes"
	wait_for 5 test -s "$T/srv-$1.port" || fail "far server $1 did not start"
}
far_server a
far_server d
PA=$(port a) PD=$(port d)
# server_count probes from the host: the far side is reachable from here
far_count() { wc -l <"$T/srv-$1.log" | tr -d ' '; }
conns() { grep -c '^conn' "$T/srv-$1.log" 2>/dev/null || echo 0; }

{
	policy_egress
	policy_hosts "web.test=$FARIP"
	policy_rule web host=web.test "port=$PA" proto=tcp action=allow
	policy_rule closed host=web.test port=9 proto=tcp action=allow # nothing listens there
} | write_policy
iso() { # TAG ARGS...: egress-run --isolate with the test's policy and audit log
	_tag=$1
	shift
	timeout -k 5 60 "$RUN" --isolate --quiet --policy "$POLICY" --audit "$AUDIT" -- "$@" \
		>"$T/$_tag.out" 2>"$T/$_tag.err" </dev/null
	RC=$?
}

# ---- without --isolate: the documented limit
run_shim lim-raw "$RAW" "$FARIP" "$PD"
assert_out lim-raw "ok" "KNOWN LIMIT without --isolate: a static binary reaches a denied server"
run_shim lim-bb "$BUSYBOX" wget -q -O - "http://$FARIP:$PD/bb"
assert_contains "$T/lim-bb.out" "egress-it /bb" "KNOWN LIMIT without --isolate: busybox wget reaches it too"
run_shim lim-py "$PY" "$H/rawsys.py" "$FARIP" "$PD"
assert_out lim-py "ok" "KNOWN LIMIT without --isolate: python's raw syscall(SYS_connect) reaches it too"
before_d=$(conns d)
assert_eq "$before_d" 3 "the denied server saw those three"
assert_eq "$(audit_count op=connect "port=$PD")" 0 "and the broker heard of none"

# ---- with --isolate: caught, judged, by name
iso raw-d "$RAW" "$FARIP" "$PD"
assert_out raw-d "reset" "isolated: the static binary's connect to the denied port is cut"
iso bb-a "$BUSYBOX" wget -q -O - "http://web.test:$PA/bb"
assert_contains "$T/bb-a.out" "egress-it /bb" "isolated: busybox wget reaches the allowed server by name"
assert_audit_ge 1 "busybox's own DNS query was judged by the stub" op=resolve name=web.test \
	captured=true action=allow
assert_audit 1 "and its captured connect, by name and executable" op=connect name=web.test \
	"port=$PA" "exe=$BUSYBOX" captured=true action=allow
iso bb-d "$BUSYBOX" wget -q -O - "http://$FARIP:$PD/bb"
assert_not_contains "$T/bb-d.out" "egress-it" "isolated: busybox wget to the denied port gets nothing"
iso py-a "$PY" "$H/rawsys.py" web.test "$PA"
assert_out py-a "ok" "isolated: python's raw syscall to an allowed name's address is relayed"
assert_audit 1 "attributed to the name python resolved" op=connect name=web.test "port=$PA" \
	"exe=$PY" captured=true action=allow
iso py-d "$PY" "$H/rawsys.py" "$FARIP" "$PD"
assert_out py-d "reset" "isolated: python's raw syscall to the denied port is cut"
assert_eq "$(conns d)" "$before_d" "the denied server saw nothing of the isolated runs"
# the owner is found among the namespace's own processes, however many,
# wherever in its tree: an orphan (its parent gone) among 60 others, and
# the child of a second thread
raw_d=$(audit_count op=connect "port=$PD" captured=true action=deny "exe=$RAW")
iso crowd sh -c 'i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i + 1)); done
r=$( ( "$0" "$1" "$2" & ) ); echo "$r"; kill $(jobs -p)' "$RAW" "$FARIP" "$PD"
assert_out crowd "reset" "isolated: an orphan among 60 processes is cut"
raw_d=$((raw_d + 1))
assert_audit "$raw_d" "and recorded with its own executable" op=connect "port=$PD" captured=true \
	action=deny "exe=$RAW"
iso thread "$PY" -c 'import subprocess, sys, threading
t = threading.Thread(target=lambda: subprocess.run(sys.argv[1:])); t.start(); t.join()' \
	"$RAW" "$FARIP" "$PD"
assert_out thread "reset" "isolated: the child of a second thread is cut"
raw_d=$((raw_d + 1))
assert_audit "$raw_d" "and recorded with its own executable, not its parent's" op=connect \
	"port=$PD" captured=true action=deny "exe=$RAW"
assert_audit_ge 3 "each denial is recorded, caught" op=connect "port=$PD" action=deny captured=true

# ---- programs that use libc: the shim as before, connects made by the broker
iso curl-a "$CURL" -sS -m 10 "http://web.test:$PA/curl"
assert_contains "$T/curl-a.out" "egress-it /curl" "isolated: curl reaches the allowed server by name"
assert_audit 1 "through the shim, the connect made by the broker" op=connect name=web.test \
	"port=$PA" "exe=$CURL" action=allow transport=direct
iso curl-d "$CURL" -sS -m 10 "http://$FARIP:$PD/curl"
assert_not_contains "$T/curl-d.out" "egress-it" "isolated: curl to the denied port gets nothing"
iso self "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); print("self ok")'
assert_out self "self ok" "isolated: a program serves on the namespace's loopback and connects to itself"
# a nonblocking connect gets the broker's socket while it is still
# connecting: the program's own poll and SO_ERROR see the outcome
iso nb-a "$PY" "$H/rwclient.py" nonblock web.test "$PA" /nb
assert_contains "$T/nb-a.out" "returned EINPROGRESS" "isolated: a nonblocking connect is in progress"
assert_contains "$T/nb-a.out" "ok egress-it /nb" "and completes, the exchange through the broker's socket"
iso nb-r "$PY" "$H/rwclient.py" nonblock web.test 9 /nb
assert_contains "$T/nb-r.out" "returned EINPROGRESS" "isolated: a nonblocking connect to a closed port"
assert_contains "$T/nb-r.out" "err ECONNREFUSED" "is refused as it would be directly (SO_ERROR)"
assert_audit 1 "recorded as handed over connecting" op=connect name=web.test port=9 \
	"upstream=handed over connecting"

# ---- a daemon's UNIX socket on the host (under /run, where they live) is
# no way out: /run is an empty directory inside
USOCK=/run/egress-it-$$.sock
"$PY" "$H/server.py" unix "$USOCK" "$T/srv-u.port" "$T/srv-u.log" 2>"$T/srv-u.err" &
bg_record $!
wait_for 5 test -S "$USOCK" || fail "the UNIX server did not start"
unixtry='import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); s.sendall(b"ping"); print("reached", s.recv(10).decode().strip())
except OSError as e:
    print("refused", e.errno)'
run_plain unix-host "$PY" -c "$unixtry" "$USOCK"
assert_out unix-host "reached pong" "without --isolate the host's UNIX socket answers"
iso unix-iso "$PY" -c "$unixtry" "$USOCK"
assert_contains "$T/unix-iso.out" "refused" "isolated: the host's UNIX socket under /run is not there"

# ---- the broker and the policy are out of reach
iso kill "$PY" -c 'import os, signal, sys
pid = int(sys.argv[1])
try:
    os.kill(pid, signal.SIGTERM); print("killed")
except ProcessLookupError:
    print("no such process")' "$$"
assert_out kill "no such process" "isolated: the broker (any host pid) cannot be signalled"
iso wpol sh -c 'echo "[egress]" >>"$1" && echo written || echo refused' sh "$POLICY"
assert_out wpol "refused" "isolated: the policy file cannot be written"
iso ctl "$BROKER_BIN" status
assert_rc_nonzero "isolated: egress-broker status is refused"
iso nft sh -c 'nft flush ruleset 2>/dev/null && echo flushed || echo refused'
assert_out nft "refused" "isolated: the capture rules cannot be flushed (no CAP_NET_ADMIN)"

# ---- the same as an ordinary user, through a user namespace: copies of
# what it runs in a directory open to all, wherever the checkout is
if command -v setpriv >/dev/null 2>&1; then
	U=$T/unpriv
	mkdir -p "$U/tools" "$U/tmp"
	cp -a "$ROOT/build" "$U/" && cp "$RUN" "$U/tools/" && cp "$POLICY" "$U/policy.ini" &&
		cp "$RAW" "$U/rawconn"
	chmod -R a+rX "$U" && chmod 1777 "$U/tmp" && chmod a+x "$T"
	run_plain user setpriv --reuid=65534 --regid=65534 --clear-groups env TMPDIR="$U/tmp" \
		"$U/tools/egress-run" --isolate --quiet --policy "$U/policy.ini" -- sh -c \
		"$CURL -sS -m 10 http://web.test:$PA/user; $U/rawconn $FARIP $PD"
	assert_contains "$T/user.out" "egress-it /user" "as uid 65534: curl reaches the allowed server by name"
	assert_contains "$T/user.out" "reset" "as uid 65534: the static binary's denied connect is cut"
	assert_eq "$(conns d)" "$before_d" "as uid 65534: the denied server saw nothing"
	# a root CMD's child that changes user stays mediated inside
	if [ -x /usr/bin/python3 ]; then
		timeout -k 5 60 "$U/tools/egress-run" --isolate --quiet --policy "$U/policy.ini" \
			--audit "$AUDIT" -- /usr/bin/python3 -c 'import os, socket, sys
os.setgid(65534); os.setuid(65534)
c = socket.create_connection(("web.test", int(sys.argv[1])), timeout=10)
c.sendall(b"GET /setuid HTTP/1.0\r\n\r\n"); print(c.recv(100).split(b"\r\n")[0].decode())' "$PA" \
			>"$T/setuid.out" 2>"$T/setuid.err" </dev/null
		assert_contains "$T/setuid.out" "200" "isolated: a child that drops to uid 65534 still reaches the allowed server"
		assert_audit 1 "and is audited with its new uid" op=connect name=web.test "port=$PA" uid=65534 \
			action=allow
	fi
fi

# ---- nothing is left behind, even when egress-run is killed
cp "$(command -v sleep)" "$T/isosleep"
"$RUN" --isolate --quiet --policy "$POLICY" -- "$T/isosleep" 300 </dev/null >/dev/null 2>&1 &
rpid=$!
bg_record "$rpid"
if wait_for 10 pgrep -x isosleep; then
	pass "the isolated command runs"
else
	fail "the isolated command did not start"
fi
kill -KILL "$rpid"
if wait_for 10 sh -c '! pgrep -x isosleep'; then
	pass "SIGKILL of egress-run: the isolated command is gone"
else
	fail "SIGKILL of egress-run left the isolated command running"
	pkill -KILL -x isosleep
fi
# (the patterns' brackets keep pgrep from finding the sh that runs it)
if wait_for 10 sh -c "! pgrep -f '[s]andbox --socket.*isosleep' && ! pgrep -f '[e]gress-broker --policy $POLICY'"; then
	pass "and the sandbox and its broker are gone"
else
	fail "the sandbox or its broker outlived a killed egress-run"
fi

# ---- a shared broker started with --isolate: egress-run uses it (no
# --policy, $EGRESS_SOCKET answers), and it takes the capture of many runs
# at once, each judged with its own namespace's maps. Its socket has a
# directory of its own, apart from the policy and its audit log, so that
# what is read-only inside is shown to be so for each of them.
assert_audit_valid # the private runs' log, before the shared broker's
SH=$T/shared
mkdir -p "$SH"
SOCK=$SH/broker.sock
AUDIT=$T/shared-audit.jsonl
start_broker --isolate || finish
ish() { # TAG ARGS...: egress-run --isolate on the shared broker
	_tag=$1
	shift
	timeout -k 5 60 env EGRESS_SOCKET="$SOCK" "$RUN" --isolate --quiet -- "$@" \
		>"$T/$_tag.out" 2>"$T/$_tag.err" </dev/null
	RC=$?
}
sandboxes() { # active sandboxes in the shared broker's status
	"$BROKER_BIN" status --json --socket "$SOCK" >"$T/sh-st.json" 2>/dev/null &&
		jget "$T/sh-st.json" sandboxes.active
}
ish sh-curl "$CURL" -sS -m 10 "http://web.test:$PA/shared-curl"
assert_contains "$T/sh-curl.out" "egress-it /shared-curl" "shared: curl reaches the allowed server by name"
assert_audit 1 "in the shared broker's log, the connect made by it" op=connect name=web.test \
	"port=$PA" "exe=$CURL" action=allow transport=direct
ish sh-raw "$RAW" "$FARIP" "$PD"
assert_out sh-raw "reset" "shared: the static binary's connect to the denied port is cut"
assert_audit 1 "and recorded, caught" op=connect "port=$PD" action=deny captured=true "exe=$RAW"

# two runs held open at once; a third may not use the synthetic address the
# first was given, but gets its own by asking
held() { # TAG: a run that asks the stub for web.test, then waits for $T/release
	env EGRESS_SOCKET="$SOCK" "$RUN" --isolate --quiet -- sh -c "$BUSYBOX nslookup web.test >/dev/null 2>&1; "'while [ ! -e "$1" ]; do sleep 0.1; done' \
		sh "$T/release" >"$T/$1.out" 2>"$T/$1.err" </dev/null &
	bg_record $!
}
held sh-held1
HELD1=$!
held sh-held2
HELD2=$!
two() { [ "$(sandboxes)" = 2 ]; }
if wait_for 10 two; then
	pass "shared: status shows the two runs' sandboxes at once"
else
	fail "shared: status did not show two sandboxes: [$(sandboxes)]"
	show "$T/sh-st.json"
fi
wait_for 5 _audit_at_least 2 op=resolve name=web.test captured=true addr!=null
"$PY" - "$T/sh-st.json" >"$T/sh-list.out" <<'PYEOF'
import json, sys
l = json.load(open(sys.argv[1]))["sandboxes"]["list"]
print(len(l), len(set(s["pid"] for s in l)))
PYEOF
assert_out sh-list "2 2" "shared: they are listed with two pids"
"$BROKER_BIN" status --socket "$SOCK" >"$T/sh-st.txt" 2>&1
assert_contains "$T/sh-st.txt" "isolation: 2 sandboxes capturing" "shared: the text status says so"
SYN=$(audit_values addr op=resolve name=web.test captured=true addr!=null | tail -n 1)
case $SYN in 198.1[89].*) pass "shared: the held run was given web.test's synthetic address $SYN" ;;
*) fail "shared: no synthetic address for web.test in the held runs' queries: [$SYN]" ;; esac
ish sh-syn "$RAW" "$SYN" "$PA"
assert_out sh-syn "reset" "shared: another run's connect to that address, never given to it, is cut"
assert_audit 1 "recorded as a synthetic address it was not given" op=connect "addr=$SYN" "port=$PA" \
	rule=synthetic action=deny captured=true "exe=$RAW"
ish sh-own "$BUSYBOX" wget -q -O - "http://web.test:$PA/shared-own"
assert_contains "$T/sh-own.out" "egress-it /shared-own" "shared: the run that asks for the name itself reaches it"
touch "$T/release"
wait "$HELD1" "$HELD2"
none() { [ "$(sandboxes)" = 0 ]; }
if wait_for 10 none; then
	pass "shared: each capture ended with its run"
else
	fail "shared: sandboxes left after the runs ended: [$(sandboxes)]"
fi
assert_ge "$(jget "$T/sh-st.json" sandboxes.total)" 6 "shared: status counts every run's sandbox"

# what the namespace must not change or reach, with the shared broker
ish sh-wpol sh -c 'echo "[egress]" >>"$1" && echo written || echo refused' sh "$POLICY"
assert_out sh-wpol "refused" "shared: its policy file (from its status) cannot be written"
ish sh-waud sh -c 'echo "{}" >>"$1" && echo written || echo refused' sh "$AUDIT"
assert_out sh-waud "refused" "shared: its audit log (from its status) cannot be written"
ish sh-wdir sh -c 'touch "$1/x" 2>/dev/null && echo written || echo refused' sh "$SH"
assert_out sh-wdir "refused" "shared: its socket's directory is read-only"
ish sh-ctl "$BROKER_BIN" status
assert_rc_nonzero "shared: egress-broker status is refused from inside"
# nor from a network namespace made inside (a user namespace needs no
# capability), which no capture holds
cat >"$T/nested.sh" <<'EOF'
outer=$(readlink /proc/self/ns/net)
exec unshare -Un sh -c '[ "$(readlink /proc/self/ns/net)" != "$1" ] && echo nested
env -u LD_PRELOAD "$2" status --socket "$3" >/dev/null 2>&1 && echo answered || echo refused' \
	sh "$outer" "$1" "$2"
EOF
ish sh-nested sh "$T/nested.sh" "$BROKER_BIN" "$SOCK"
assert_out sh-nested "nested
refused" "shared: a network namespace made inside a sandbox is refused status too"
ish sh-unix "$PY" -c "$unixtry" "$USOCK"
assert_contains "$T/sh-unix.out" "refused" "shared: the host's UNIX socket under /run is not there"

# killed with SIGKILL, the run leaves nothing: the shared broker stays
cp "$(command -v sleep)" "$T/shsleep"
env EGRESS_SOCKET="$SOCK" "$RUN" --isolate --quiet -- "$T/shsleep" 300 </dev/null >/dev/null 2>&1 &
rpid=$!
bg_record "$rpid"
wait_for 10 pgrep -x shsleep || fail "shared: the held command did not start"
kill -KILL "$rpid"
if wait_for 10 sh -c '! pgrep -x shsleep'; then
	pass "shared: SIGKILL of egress-run: the isolated command is gone"
else
	fail "shared: SIGKILL of egress-run left the isolated command running"
	pkill -KILL -x shsleep
fi
if wait_for 10 none && kill -0 "$BROKER_PID"; then
	pass "shared: its capture ended, the shared broker runs on"
else
	fail "shared: after SIGKILL of egress-run: sandboxes [$(sandboxes)], broker alive: $(kill -0 "$BROKER_PID" && echo yes || echo no)"
fi
stop_broker

# a shared broker without --isolate cannot take the capture: egress-run
# says so and runs CMD with a private one ($EGRESS_POLICY)
assert_audit_valid
SOCK=$SH/plain.sock
AUDIT=$T/plain-audit.jsonl
start_broker || finish
timeout -k 5 60 env EGRESS_SOCKET="$SOCK" EGRESS_POLICY="$POLICY" "$RUN" --isolate -- \
	"$CURL" -sS -m 10 "http://web.test:$PA/plain" >"$T/sh-plain.out" 2>"$T/sh-plain.err" </dev/null
RC=$?
assert_lines "$T/sh-plain.err" "egress-run: the broker at $SOCK was not started with --isolate and cannot take this run's capture; starting a private one" 1 \
	"without --isolate, the shared broker is passed over, in one line"
assert_contains "$T/sh-plain.out" "egress-it /plain" "and the private broker's run reaches the allowed server"
assert_contains "$T/sh-plain.err" "egress: 1 allowed, 0 denied" "its summary is the private broker's"
assert_audit 0 "the shared broker heard nothing of it" op=connect

finish
