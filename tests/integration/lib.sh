# lib.sh: shared helpers for the integration tests, sourced by each t_*.sh.
# run.sh exports ROOT (repo root), BUILD (build or build/san), SANITIZE,
# T (this test's fresh temp dir), EGRESS_IT_PY (the real python3 binary)
# and, for a suite's isolated run, ISOLATE=1 (see "isolation" below).
# Every background process is recorded in $T/pids; run.sh kills leftovers.
# Waits are bounded polls (never a fixed sleep that an assertion relies on).

set -u

IT=$ROOT/tests/integration
H=$IT/helpers
BROKER_BIN=$ROOT/$BUILD/egress-broker
LIB=$ROOT/$BUILD/libegress.so
PY=${EGRESS_IT_PY:-python3}
NODE=${NODE:-/usr/bin/node}
CURL=${CURL:-/usr/bin/curl}
SOCK=$T/broker.sock
AUDIT=$T/audit.jsonl
POLICY=$T/policy.ini
RUN_TIMEOUT=${RUN_TIMEOUT:-20}
FAILS=0
CHECKS=0
BROKER_PID=
RC=0

# ------------------------------------------------------------- sanitizers

# Preloaded programs: the shim is instrumented, so the sanitizer runtimes
# must come first in LD_PRELOAD; leaks are the program's business, not ours.
PRELOAD=$LIB
SAN_ENV=
BROKER_SAN_ENV=
if [ -n "${SANITIZE:-}" ]; then
	PRELOAD=
	case $SANITIZE in *address*) PRELOAD="$(gcc -print-file-name=libasan.so)" ;; esac
	case $SANITIZE in *undefined*) PRELOAD="$PRELOAD $(gcc -print-file-name=libubsan.so)" ;; esac
	PRELOAD="${PRELOAD# } $LIB"
	SAN_ENV="ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 UBSAN_OPTIONS=print_stacktrace=1"
	# The broker is an ASan binary: leak detection stays on for it.
	BROKER_SAN_ENV="ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1"
fi
# curl cannot run with a preloaded GCC 12 libasan: it deadlocks in its
# second setlocale() call before main does anything else, with or without
# libegress.so (see run.sh). Under SANITIZE, curl therefore runs with the
# plain build/libegress.so (built by plain `make`), still against the
# sanitized broker.
CURL_PRELOAD=$PRELOAD
CURL_SAN_ENV=$SAN_ENV
[ -n "${SANITIZE:-}" ] && { CURL_PRELOAD=$ROOT/build/libegress.so; CURL_SAN_ENV=; }

SAN_PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer|AddressSanitizer:DEADLYSIGNAL'

# ------------------------------------------------------------- isolation

# ISOLATE=1 runs a suite in isolated mode: start_broker starts the suite's
# broker with --isolate, and run_shim runs each command through
# `tools/egress-run --isolate --quiet` with EGRESS_SOCKET=$SOCK, so that each
# command runs in namespaces of its own whose capture that one broker takes,
# and the suite's audit log and status are the ones asserted on. The
# suite's servers stay on the host's loopback, which a command reaches only
# through the broker. Root only, plain build only (run.sh says why).
ISOLATE=${ISOLATE:-}
NA=0
ISO_RUNS=0

# isolated: true in isolated mode.
isolated() { [ -n "$ISOLATE" ]; }

# not_isolated REASON: in isolated mode prints "  n/a  REASON" and returns 1,
# so that `not_isolated "why" && assert_...` (or an if) leaves out a check
# that cannot hold under isolation, saying why; otherwise returns 0. The
# reason says what isolation does instead.
not_isolated() {
	isolated || return 0
	NA=$((NA + 1))
	echo "  n/a  isolated: $*"
	return 1
}

# What isolation does with an attempt on the host's loopback (where the
# suites' servers are) that the policy does not let the broker make for the
# program: the attempt stays in the namespace, whose own loopback is empty.
# A connect the policy denies there is allowed (rule "namespace") and
# refused by that loopback; a datagram is sent there, allowed or not.

# lo_err ERRNO: what a program sees for a connect the policy denies to the
# host's loopback: ERRNO, the rule's, or in isolated mode ECONNREFUSED.
lo_err() {
	if isolated; then echo ECONNREFUSED; else echo "$1"; fi
}

# assert_audit_lo N MSG FILTERS...: assert_audit of a denied connect, or of
# any send, to the host's loopback; in isolated mode the same N events
# (FILTERS without their action, rule and errno) as the namespace records
# them: action=allow rule=namespace errno=null.
assert_audit_lo() {
	_n=$1
	_m=$2
	shift 2
	if isolated; then
		_k=$#
		for _a in "$@"; do
			case $_a in action=* | rule=* | errno=*) ;; *) set -- "$@" "$_a" ;; esac
		done
		shift "$_k"
		assert_audit "$_n" "$_m (isolated: on the namespace's own loopback)" "$@" action=allow \
			rule=namespace errno=null
	else
		assert_audit "$_n" "$_m" "$@"
	fi
}

# ------------------------------------------------------------- assertions

# pass/fail MSG: record one check; failures go to stdout (run.sh shows them).
pass() { CHECKS=$((CHECKS + 1)); echo "  ok   $*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "  FAIL $*"; }

# show FILE: indents a file's content (at most 40 lines) under a failure.
show() {
	if [ -s "$1" ]; then
		sed -n '1,40s/^/         | /p' "$1"
	else
		echo "         | ($1 is empty or missing)"
	fi
}

# assert_eq ACTUAL EXPECTED MSG
assert_eq() {
	if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: expected [$2], got [$1]"; fi
}

# assert_ne ACTUAL UNEXPECTED MSG
assert_ne() {
	if [ "$1" != "$2" ]; then pass "$3"; else fail "$3: got [$1], expected something else"; fi
}

# assert_ge ACTUAL MIN MSG (integers)
assert_ge() {
	if [ "$1" -ge "$2" ] 2>/dev/null; then pass "$3"; else fail "$3: expected >= $2, got [$1]"; fi
}
# assert_le ACTUAL MAX MSG (integers)
assert_le() {
	if [ "$1" -le "$2" ] 2>/dev/null; then pass "$3"; else fail "$3: expected <= $2, got [$1]"; fi
}

# assert_rc EXPECTED MSG: checks $RC from the last run_*.
assert_rc() {
	if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
		fail "$2: timed out (rc $RC)"
	elif [ "$RC" = "$1" ]; then
		pass "$2 (exit $RC)"
	else
		fail "$2: expected exit $1, got $RC"
		[ -n "${LAST:-}" ] && { echo "         stdout:"; show "$T/$LAST.out"; echo "         stderr:"; show "$T/$LAST.err"; }
	fi
}

# assert_rc_nonzero MSG
assert_rc_nonzero() {
	if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
		fail "$1: timed out (rc $RC)"
	elif [ "$RC" != 0 ]; then pass "$1 (exit $RC)"; else fail "$1: expected failure, got exit 0"; fi
}

# assert_contains FILE STRING MSG: fixed-string search.
assert_contains() {
	if grep -qF -- "$2" "$1" 2>/dev/null; then
		pass "$3"
	else
		fail "$3: [$2] not in $(basename "$1")"
		show "$1"
	fi
}

# assert_not_contains FILE STRING MSG
assert_not_contains() {
	if grep -qF -- "$2" "$1" 2>/dev/null; then
		fail "$3: [$2] unexpectedly in $(basename "$1")"
		show "$1"
	else
		pass "$3"
	fi
}

# assert_lines FILE STRING N MSG: exactly N lines of FILE contain STRING.
assert_lines() {
	_n=$(grep -cF -- "$2" "$1" 2>/dev/null)
	_n=${_n:-0}
	if [ "$_n" = "$3" ]; then
		pass "$4"
	else
		fail "$4: expected $3 line(s) with [$2], got $_n"
		show "$1"
	fi
}

# assert_empty FILE MSG
assert_empty() {
	if [ -s "$1" ]; then fail "$2: $(basename "$1") not empty"; show "$1"; else pass "$2"; fi
}

# assert_out TAG EXPECTED MSG: the last run's stdout is exactly EXPECTED.
assert_out() {
	_got=$(cat "$T/$1.out" 2>/dev/null)
	if [ "$_got" = "$2" ]; then
		pass "$3"
	else
		fail "$3: stdout expected [$2], got [$_got]"
		echo "         stderr:"
		show "$T/$1.err"
	fi
}

# assert_no_san FILE WHO: no sanitizer report in FILE.
assert_no_san() {
	if grep -qE "$SAN_PATTERN" "$1" 2>/dev/null; then
		fail "$2: sanitizer report in $(basename "$1")"
		grep -E -A 12 "$SAN_PATTERN" "$1" | sed -n '1,40s/^/         | /p'
	fi
}

# ------------------------------------------------------------- waiting

# wait_for SECONDS CMD...: polls CMD every 50 ms; 0 once it succeeds, 1 after
# SECONDS.
wait_for() {
	_limit=$(($1 * 20))
	shift
	_i=0
	while [ "$_i" -lt "$_limit" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
		_i=$((_i + 1))
	done
	return 1
}

# bg_record PID: remember a background process for cleanup.
bg_record() { echo "$1" >>"$T/pids"; }

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL. Sets STOP_RC.
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_for 5 _dead "$1"; then
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	STOP_RC=$?
}
_dead() { ! kill -0 "$1" 2>/dev/null; }

# ------------------------------------------------------------- broker

# write_policy: the policy from stdin becomes $POLICY.
write_policy() { cat >"$POLICY"; }

# Policy text on stdout, for the sections every test writes; a test composes
# its file from them and pipes it into write_policy (or redirects it):
#
#	{
#		policy_egress cache_ttl=60
#		policy_hosts myservice.test=127.0.0.1
#		policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
#	} | write_policy
#
# Every KEY=VAL becomes the line "KEY = VAL", in the order given; VAL is
# what follows the first '=' and may hold spaces, commas and '='. Sections
# after the first start with a blank line, so the file reads as one written
# by hand. An argument without '=' is reported on stderr and written as it
# is, a line the broker refuses.

# policy_egress [KEY=VAL...]: the [egress] section: "default = deny" (unless
# a default=... is among the arguments), then the arguments.
policy_egress() {
	echo '[egress]'
	_pd='default = deny'
	for _kv in "$@"; do
		case $_kv in default=*) _pd= ;; esac
	done
	[ -n "$_pd" ] && echo "$_pd"
	_policy_keys "$@"
}

# policy_hosts NAME=ADDR...: a blank line and the [hosts] section.
policy_hosts() {
	printf '\n[hosts]\n'
	_policy_keys "$@"
}

# policy_rule NAME [KEY=VAL...]: a blank line and the section [rule "NAME"].
policy_rule() {
	printf '\n[rule "%s"]\n' "$1"
	shift
	_policy_keys "$@"
}

_policy_keys() {
	for _kv in "$@"; do
		case $_kv in
		*=*) printf '%s = %s\n' "${_kv%%=*}" "${_kv#*=}" ;;
		*)
			echo "lib.sh: policy line [$_kv] is not KEY=VAL" >&2
			printf '%s\n' "$_kv"
			;;
		esac
	done
}

# start_broker [ARGS...]: starts the broker on $POLICY/$SOCK/$AUDIT (with
# --isolate in isolated mode) and waits (<= 5 s) for the socket to appear;
# when a stale socket file is already there, waits until `status` answers
# instead. Returns 1 (and records a failure) when the broker did not come up.
start_broker() {
	_stale=0
	[ -e "$SOCK" ] && _stale=1
	isolated && set -- --isolate "$@"
	env $BROKER_SAN_ENV "$BROKER_BIN" --policy "$POLICY" --socket "$SOCK" --audit "$AUDIT" "$@" \
		>>"$T/broker.out" 2>>"$T/broker.err" &
	BROKER_PID=$!
	bg_record "$BROKER_PID"
	_until=_broker_ready
	[ "$_stale" = 1 ] && _until=_broker_answers
	if wait_for 5 "$_until" && kill -0 "$BROKER_PID" 2>/dev/null; then
		pass "broker started (pid $BROKER_PID)"
		return 0
	fi
	fail "broker did not come up within 5 s on $SOCK"
	echo "         broker stderr:"
	show "$T/broker.err"
	return 1
}
_broker_ready() {
	kill -0 "$BROKER_PID" 2>/dev/null || return 0 # died: stop polling
	[ -S "$SOCK" ]
}
_broker_answers() { "$BROKER_BIN" status --socket "$SOCK" >/dev/null 2>&1; }

# stop_broker: SIGTERM; the broker must exit, remove its socket and have
# printed no sanitizer report.
stop_broker() {
	[ -n "$BROKER_PID" ] || return 0
	stop_pid "$BROKER_PID"
	BROKER_PID=
	if [ -e "$SOCK" ]; then
		fail "broker left its socket $SOCK after SIGTERM"
		rm -f "$SOCK"
	else
		pass "broker removed its socket on SIGTERM (exit $STOP_RC)"
	fi
	assert_no_san "$T/broker.err" "broker"
}

# broker_status TAG: `egress-broker status --json` into $T/TAG.json, checked
# to be one JSON object.
broker_status() {
	env $BROKER_SAN_ENV "$BROKER_BIN" status --json --socket "$SOCK" >"$T/$1.json" 2>"$T/$1.err"
	RC=$?
	assert_no_san "$T/$1.err" "egress-broker status"
	if [ "$RC" = 0 ] && "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, dict)' "$T/$1.json" 2>/dev/null; then
		pass "status --json answers one JSON object"
	else
		fail "status --json (exit $RC) did not give a JSON object"
		show "$T/$1.json"
		show "$T/$1.err"
	fi
}

# jget FILE PATH: a value from a JSON file (strings raw, else JSON text).
jget() { "$PY" "$H/ej.py" get "$1" "$2"; }

# ------------------------------------------------------------- audit

# audit_count [FILTERS...]: events of $AUDIT matching KEY=VAL / KEY!=VAL.
audit_count() { "$PY" "$H/ej.py" count "$AUDIT" "$@"; }

# audit_values KEY [FILTERS...]: KEY of each matching event, one a line.
audit_values() { "$PY" "$H/ej.py" values "$AUDIT" "$@"; }

# assert_audit N MSG FILTERS...: waits (<= 5 s) until at least N events match,
# then requires exactly N.
assert_audit() {
	_want=$1
	_msg=$2
	shift 2
	wait_for 5 _audit_at_least "$_want" "$@"
	_got=$(audit_count "$@")
	if [ "$_got" = "$_want" ]; then
		pass "audit: $_msg ($_want x $*)"
	else
		fail "audit: $_msg: expected $_want event(s) with [$*], got $_got"
		echo "         audit log ($AUDIT):"
		show "$AUDIT"
	fi
}
_audit_at_least() {
	_w=$1
	shift
	[ "$(audit_count "$@")" -ge "$_w" ]
}

# assert_audit_ge N MSG FILTERS...
assert_audit_ge() {
	_want=$1
	_msg=$2
	shift 2
	wait_for 5 _audit_at_least "$_want" "$@"
	_got=$(audit_count "$@")
	if [ "$_got" -ge "$_want" ]; then
		pass "audit: $_msg (>= $_want x $*: $_got)"
	else
		fail "audit: $_msg: expected >= $_want event(s) with [$*], got $_got"
		show "$AUDIT"
	fi
}

# assert_audit_valid: every audit line is an event of the contract.
assert_audit_valid() {
	if "$PY" "$H/ej.py" validate "$AUDIT" >"$T/audit.invalid"; then
		pass "audit log: every line is a well-formed event ($(wc -l <"$AUDIT" 2>/dev/null || echo 0) lines)"
	else
		fail "audit log has malformed lines"
		show "$T/audit.invalid"
	fi
}

# assert_status_matches_audit TAG: the decision counters of status --json
# ($T/TAG.json) equal what the audit log recorded (a relayed connection's
# close is an event, not a decision).
assert_status_matches_audit() {
	for _k in allow deny resolve connect send; do
		case $_k in
		allow | deny) _f=action=$_k ;;
		*) _f=op=$_k ;;
		esac
		assert_eq "$(jget "$T/$1.json" "decisions.$_k")" "$(audit_count "$_f" op!=close)" "status decisions.$_k equals audit events with $_f"
	done
}

# ------------------------------------------------------------- programs

# run_shim TAG [VAR=VAL...] CMD ARGS...: runs CMD under the shim with
# EGRESS_SOCKET=$SOCK, bounded by $RUN_TIMEOUT; stdout/stderr go to
# $T/TAG.out and $T/TAG.err, the exit status to RC.
run_shim() {
	LAST=$1
	shift
	_pre=$PRELOAD
	_san=$SAN_ENV
	for _a in "$@"; do
		case $_a in
		*=*) ;;
		*curl) _pre=$CURL_PRELOAD; _san=$CURL_SAN_ENV; break ;;
		*) break ;;
		esac
	done
	if [ ! -e "${_pre##* }" ]; then
		fail "$LAST: ${_pre##* } is missing (under SANITIZE, curl needs the plain build: run make)"
		RC=1
		return
	fi
	if isolated; then
		_isolated_args "$@"
		shift $#
		eval "set -- $_ISO_ARGS"
		ISO_RUNS=$((ISO_RUNS + 1))
		timeout -k 5 "$RUN_TIMEOUT" env EGRESS_SOCKET="$SOCK" EGRESS_BROKER="$BROKER_BIN" "$@" \
			>"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
		RC=$?
		return
	fi
	timeout -k 5 "$RUN_TIMEOUT" env LD_PRELOAD="$_pre" EGRESS_SOCKET="$SOCK" $_san "$@" \
		>"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
	RC=$?
	assert_no_san "$T/$LAST.err" "$LAST"
}

# _isolated_args [VAR=VAL...] CMD ARGS...: sets _ISO_ARGS to the same words,
# quoted for eval, with `tools/egress-run --isolate --quiet --` before CMD.
_isolated_args() {
	_ISO_ARGS=
	_cmd=0
	for _a in "$@"; do
		if [ "$_cmd" = 0 ]; then
			case $_a in
			*=*) ;;
			*) _cmd=1; _ISO_ARGS="$_ISO_ARGS '$ROOT/tools/egress-run' --isolate --quiet --" ;;
			esac
		fi
		_ISO_ARGS="$_ISO_ARGS '$(printf '%s' "$_a" | sed "s/'/'\\\\''/g")'"
	done
}

# run_plain TAG CMD ARGS...: the same without the shim.
run_plain() {
	LAST=$1
	shift
	timeout -k 5 "$RUN_TIMEOUT" "$@" >"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
	RC=$?
}

# pyc TAG ARGS...: helpers/pyclient.py under the shim.
pyc() {
	_tag=$1
	shift
	run_shim "$_tag" "$PY" "$H/pyclient.py" "$@"
}

# ------------------------------------------------------------- servers

# start_server NAME http|udp BIND: a loopback peer (not preloaded); waits
# (<= 5 s) for its port. Its port is then $(port NAME).
start_server() {
	"$PY" "$H/server.py" "$2" "$3" "$T/srv-$1.port" "$T/srv-$1.log" 2>"$T/srv-$1.err" &
	bg_record $!
	echo "$2 $3" >"$T/srv-$1.kind"
	: >"$T/srv-$1.probes"
	if ! wait_for 5 test -s "$T/srv-$1.port"; then
		fail "server $1 ($2 on $3) did not start"
		show "$T/srv-$1.err"
		return 1
	fi
}

# free_port: a TCP port of 127.0.0.1 that is free now.
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# dante_conf PORT: $T/danted.conf for Debian's dante-server on
# 127.0.0.1:PORT, relaying UDP ASSOCIATE (and CONNECT) for loopback
# clients without authentication, logging to $T/danted.log. It sends from
# 127.0.0.1 and ::1, to any destination of either family ("0/0": dante
# reads 0.0.0.0/0 as IPv4 only), and passes back replies from loopback of
# either family (a udpreply rule's "from" is the reply's sender). With
# 127.0.0.1 its only external address, it refused every datagram to an
# IPv6 destination ("no IPv6 address configured for our usage on the
# external interface").
dante_conf() {
	cat >"$T/danted.conf" <<EOF
logoutput: $T/danted.log
internal: 127.0.0.1 port = $1
external: 127.0.0.1
external: ::1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0/0 command: udpassociate udpreply }
socks pass { from: ::1/128 to: 0/0 command: udpreply }
EOF
}

# port NAME: the port server NAME listens on.
port() { cat "$T/srv-$1.port"; }

# server_count NAME: sends an unpreloaded probe through server NAME, waits
# for it to be logged (so every earlier attempt has been), and prints the
# number of connections (http) or datagrams (udp) other than probes.
server_count() {
	read -r _kind _bind <"$T/srv-$1.kind"
	_tag=$(($(wc -l <"$T/srv-$1.probes") + 1))
	echo "$_tag" >>"$T/srv-$1.probes"
	timeout 10 "$PY" "$H/probe.py" "$_kind" "$_bind" "$(port "$1")" "$1-$_tag" >/dev/null 2>&1 ||
		echo "  (probe of server $1 failed)" >&2
	if [ "$_kind" = udp ]; then
		wait_for 5 grep -qF "dgram __probe__$1-$_tag" "$T/srv-$1.log"
		_all=$(grep -c '^dgram ' "$T/srv-$1.log")
	else
		wait_for 5 grep -qF "req /__probe__$1-$_tag" "$T/srv-$1.log"
		_all=$(grep -c '^conn ' "$T/srv-$1.log")
	fi
	echo $((_all - _tag))
}

# assert_server NAME N MSG: server NAME saw exactly N connections/datagrams.
assert_server() {
	_c=$(server_count "$1")
	if [ "$_c" = "$2" ]; then
		pass "server $1 saw $2: $3"
	else
		fail "server $1: $3: expected $2, saw $_c"
		show "$T/srv-$1.log"
	fi
}

# ------------------------------------------------------------- the end

# finish: stops the broker, checks the audit log's shape, exits 0 when every
# check passed. In isolated mode, first: every command run_shim ran was a
# sandbox of the suite's broker, and none is left.
finish() {
	if isolated && [ -n "$BROKER_PID" ]; then
		broker_status iso-end
		assert_ge "$(jget "$T/iso-end.json" sandboxes.total)" "$ISO_RUNS" \
			"isolated: each of the $ISO_RUNS commands handed its capture to the suite's broker"
		assert_eq "$(jget "$T/iso-end.json" sandboxes.active)" 0 "isolated: no sandbox is left"
	fi
	stop_broker
	[ -e "$AUDIT" ] && assert_audit_valid
	if isolated; then
		echo "  $CHECKS checks, $FAILS failed, $NA left out under isolation"
	else
		echo "  $CHECKS checks, $FAILS failed"
	fi
	[ "$FAILS" = 0 ]
	exit $?
}

# need_build: skip-free guard; the binaries must exist.
need_build() {
	for _f in "$BROKER_BIN" "$LIB"; do
		if [ ! -e "$_f" ]; then
			fail "missing $_f (run make)"
			exit 1
		fi
	done
}

# build_helper NAME [GCC ARGS...]: compiles helpers/NAME.c into $T/NAME
# with the tests' warnings as errors and the extra arguments (-static,
# -lresolv, ...); a failure ends the test with the compiler's messages.
# far_netns TAG NET [CLEANUP]: a network namespace of the test's own,
# reached from the host over a veth pair: the host is NET.N.1, the far side
# NET.N.2 (FARIP; N from the test's pid), its name in FAR. It and the pair
# go when the test exits, with CLEANUP (a command) run too.
far_netns() {
	_n=$(($$ % 200 + 20))
	FAR=eg$1-far-$$
	_hif=eg$1h$$
	ip netns add "$FAR" || { fail "ip netns add"; finish; }
	# shellcheck disable=SC2064 # expanded now, on purpose
	trap "ip netns del '$FAR' 2>/dev/null; ip link del '$_hif' 2>/dev/null; ${3:-:}" EXIT
	ip link add "$_hif" type veth peer name "eg$1f$$" netns "$FAR"
	ip addr add "$2.$_n.1/30" dev "$_hif"
	ip link set "$_hif" up
	ip -n "$FAR" addr add "$2.$_n.2/30" dev "eg$1f$$"
	ip -n "$FAR" link set "eg$1f$$" up
	ip -n "$FAR" link set lo up
	FARIP=$2.$_n.2
}

build_helper() {
	_name=$1
	shift
	if ! gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -o "$T/$_name" "$H/$_name.c" \
		"$@" 2>"$T/gcc-$_name.err"; then
		fail "cannot build helpers/$_name.c"
		show "$T/gcc-$_name.err"
		finish
	fi
}

# skip REASON: ends the test as skipped (run.sh prints "skip").
skip() {
	echo "  SKIP $*"
	exit 77
}

if isolated; then
	[ -z "${SANITIZE:-}" ] || skip "isolated mode runs in the plain build only (see run.sh)"
	[ "$(id -u)" = 0 ] || skip "isolated mode needs root"
	for _t in nft ip unshare setpriv; do
		command -v "$_t" >/dev/null 2>&1 || skip "isolated mode needs $_t"
	done
fi
