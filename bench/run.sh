#!/bin/sh
# bench/run.sh: egress's benchmark suite (issue 11). Runs every case of
# docs/BENCHMARKS.md K times, each run of a baseline interleaved with the
# runs of what it is compared to, and prints one table: per case and
# variant the median of the runs, their min-max spread, the ratio to the
# row's baseline from the same run, the target and whether it is met. A
# bench reports: it exits 0 whatever the figures, and non-zero only when it
# could not run at all.
#
#   sh bench/run.sh            (make bench builds the programs first)
#
# Environment: BENCH_RUNS=K runs per case (5); BENCH_QUICK=1 a smoke pass
# of small counts (under a minute); BENCH_STREAM_MB=M the stream of case 8
# (2048 MiB, the issue's 2 GiB); BENCH_OUT=FILE where the table goes
# (bench/results.txt), with the raw figures in FILE's name with .csv;
# BENCH_CPUS=LIST the CPUs (taskset -c) everything runs on (the last one),
# or "all".
#
# Everything runs on 127.0.0.1 (and in the network namespace that
# egress-run --isolate makes for itself); every command is bounded by
# timeout; what is started here is stopped on exit, by its pid. The peers
# (proxychains4, torsocks, microsocks, tinyproxy) are Debian packages,
# installed with apt-get when missing and run as root; a peer that cannot
# be had leaves its rows out with one line saying why.
# shellcheck disable=SC2086 # $SHIM and $IN_HOSTS are lists of words on purpose
set -u

ROOT=$(cd -P -- "$(dirname -- "$0")/.." && pwd -P)
B=$ROOT/build/bench
BROKER=$ROOT/build/egress-broker
LIB=$ROOT/build/libegress.so
RUN=$ROOT/tools/egress-run

QUICK=${BENCH_QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
K=${BENCH_RUNS:-}
[ -n "$K" ] || { [ -n "$QUICK" ] && K=3 || K=5; }
STREAM_MB=${BENCH_STREAM_MB:-}
[ -n "$STREAM_MB" ] || { [ -n "$QUICK" ] && STREAM_MB=64 || STREAM_MB=2048; }
OUT=${BENCH_OUT:-$ROOT/bench/results.txt}
case $OUT in /*) ;; *) OUT=$(pwd -P)/$OUT ;; esac
CSV=${OUT%.txt}.csv
[ "$CSV" != "$OUT" ] || CSV=$OUT.csv
mkdir -p "$(dirname -- "$OUT")" || exit 2

# One CPU for everything the suite starts (BENCH_CPUS, default the last
# CPU; "all" leaves the scheduler free). On a virtual machine a wakeup on
# another CPU can cost tens of microseconds (case 5 shows it: the floor
# across two CPUs), and where the scheduler puts a broker and its client
# changes from one run to the next: unpinned figures are bimodal, and a
# ratio then says where the processes landed rather than what egress costs.
CPUS=${BENCH_PINNED:-${BENCH_CPUS:-$(($(nproc) - 1))}}
if [ "$CPUS" != all ] && [ -z "${BENCH_PINNED:-}" ]; then
	command -v taskset >/dev/null 2>&1 ||
		{ echo "bench: taskset (util-linux) is missing; BENCH_CPUS=all runs unpinned" >&2; exit 2; }
	BENCH_PINNED=$CPUS exec taskset -c "$CPUS" sh "$0" "$@"
fi
PINNING="pinned to CPU $CPUS (BENCH_CPUS)"
[ "$CPUS" = all ] && PINNING="not pinned (BENCH_CPUS=all)"
NCPU=$(nproc --all 2>/dev/null || nproc)

# Counts per run: (full, quick).
if [ -n "$QUICK" ]; then
	N_CONN=300 N_FIRST=40 N_NAME=60 N_GAI=300 N_UDP=5000 N_FLOOR=5000
	T_CLIENTS=0.2 T_DECIDE=0.1 N_START=10 N_ISOSTART=2 N_ISOECHO=100 N_BIGRSS=1
	CLIENT_COUNTS="1 8"
else
	N_CONN=5000 N_FIRST=500 N_NAME=800 N_GAI=5000 N_UDP=100000 N_FLOOR=50000
	T_CLIENTS=1 T_DECIDE=0.5 N_START=100 N_ISOSTART=5 N_ISOECHO=2000 N_BIGRSS=3
	CLIENT_COUNTS="1 2 8 64"
fi
N_RSSCLIENTS=1000
BIG_RULES=100000

for f in "$BROKER" "$LIB" "$B/connect" "$B/decide" "$B/clients"; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "bench: $f is missing: run make bench" >&2; exit 2; }
done
for c in timeout unshare awk; do
	command -v "$c" >/dev/null 2>&1 || { echo "bench: $c is missing" >&2; exit 2; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/egress-bench.XXXXXX") || exit 2
chmod 0755 "$T"
PIDS=""
cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=""
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note() { echo "bench: $*" >&2; echo "$*" >>"$T/notes"; }
: >"$T/notes"
: >"$T/rows"
: >"$T/raw.csv"

# ------------------------------------------------------------- the peers

pkg_ok() {
	st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	case $st in *" installed") return 0 ;; *) return 1 ;; esac
}
missing=""
for p in proxychains4 torsocks microsocks tinyproxy; do
	pkg_ok "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "bench: installing the peers:$missing" >&2
		# shellcheck disable=SC2086 # a list of package names
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
			</dev/null >"$T/apt.log" 2>&1; then
			DEBIAN_FRONTEND=noninteractive apt-get update >>"$T/apt.log" 2>&1
			# shellcheck disable=SC2086
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
				</dev/null >>"$T/apt.log" 2>&1 || tail -5 "$T/apt.log" >&2
		fi
	fi
fi
have() { command -v "$1" >/dev/null 2>&1; }
PROOT=$(id -u)
HAVE_PC=0 HAVE_TS=0 HAVE_MS=0 HAVE_TP=0
if have proxychains4; then HAVE_PC=1; else note "proxychains4 is not installed: its rows are left out"; fi
if have torsocks; then HAVE_TS=1; else note "torsocks is not installed: its row is left out"; fi
# the proxies resolve the bench's names from a private /etc/hosts, bind-mounted in
# a mount namespace of their own: that needs root
if [ "$PROOT" = 0 ]; then
	if have microsocks; then HAVE_MS=1; else note "microsocks is not installed: its rows are left out"; fi
	if have tinyproxy; then HAVE_TP=1; else note "tinyproxy is not installed: its rows are left out"; fi
else
	note "not root: microsocks and tinyproxy cannot get a private /etc/hosts; their rows are left out"
fi

# ------------------------------------------------------------- servers

# bg NAME CMD...: starts CMD in the background, its output in $T/NAME.log.
bg() {
	_n=$1
	shift
	"$@" >"$T/$_n.log" 2>&1 </dev/null &
	PIDS="$PIDS $!"
	LASTPID=$!
}

# server MODE: starts bench/server MODE; prints nothing, sets PORT.
server() {
	bg "srv-$1" "$B/server" "$1" "$T/srv-$1.port"
	i=0
	while [ ! -s "$T/srv-$1.port" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	[ -s "$T/srv-$1.port" ] || { echo "bench: server $1 did not start" >&2; cat "$T/srv-$1.log" >&2; exit 2; }
	PORT=$(cat "$T/srv-$1.port")
}
server accept; P_ACC=$PORT
server echo; P_ECHO=$PORT
server discard; P_DISC=$PORT
server udp; P_UDP=$PORT
P_DENY=$("$B/server" port)

# The bench's names, known only to the proxies' /etc/hosts and the
# broker's [hosts]; never this host's /etc/hosts.
printf '127.0.0.1 localhost\n127.0.0.1 gai.bench.test pc.bench.test socks.bench.test http.bench.test\n' \
	>"$T/hosts"
chmod 0644 "$T/hosts"
for n in gai.bench.test pc.bench.test; do
	if getent hosts "$n" >/dev/null 2>&1; then
		echo "bench: $n resolves on this host; the lookup cases would be wrong" >&2
		exit 2
	fi
done
# $IN_HOSTS CMD...: CMD in a mount namespace whose /etc/hosts is $T/hosts
# (private propagation, unshare's default: the host's mounts stay as they
# are). Words, not a function, so that timeout can run it and the pid of a
# background one is CMD's own (unshare and sh exec).
# shellcheck disable=SC2016 # expanded by that sh
HOSTS_SH='mount --bind "$0" /etc/hosts && exec "$@"'
IN_HOSTS="unshare -m sh -c"

if [ "$HAVE_MS" = 1 ]; then
	P_MS=$("$B/server" port)
	bg microsocks $IN_HOSTS "$HOSTS_SH" "$T/hosts" microsocks -i 127.0.0.1 -p "$P_MS"
	"$B/server" wait "$P_MS" 5 || { note "microsocks did not start: its rows are left out"; HAVE_MS=0; }
fi
if [ "$HAVE_TP" = 1 ]; then
	P_TP=$("$B/server" port)
	cat >"$T/tinyproxy.conf" <<EOF
Port $P_TP
Listen 127.0.0.1
Timeout 30
Allow 127.0.0.1
ConnectPort $P_ECHO
ConnectPort $P_DISC
LogFile "$T/tinyproxy.log.txt"
LogLevel Warning
MaxClients 100
EOF
	bg tinyproxy $IN_HOSTS "$HOSTS_SH" "$T/hosts" tinyproxy -d -c "$T/tinyproxy.conf"
	"$B/server" wait "$P_TP" 5 || { note "tinyproxy did not start: its rows are left out"; HAVE_TP=0; }
fi

# proxychains4 and torsocks read the files their variables name.
pc_conf() { # FILE PROXYLINE [localnet]
	{
		printf 'strict_chain\nquiet_mode\nproxy_dns\nremote_dns_subnet 224\n'
		printf 'tcp_read_time_out 15000\ntcp_connect_time_out 8000\n'
		[ "${3:-}" = localnet ] && printf 'localnet 127.0.0.0/255.0.0.0\n'
		printf '[ProxyList]\n%s\n' "$2"
	} >"$1"
}
pc_conf "$T/pc-local.conf" "socks5 127.0.0.1 ${P_MS:-9}" localnet
pc_conf "$T/pc-socks.conf" "socks5 127.0.0.1 ${P_MS:-9}"
pc_conf "$T/pc-http.conf" "http 127.0.0.1 ${P_TP:-9}"
printf 'TorAddress 127.0.0.1\nTorPort %s\nAllowOutboundLocalhost 1\n' "${P_MS:-9}" >"$T/torsocks.conf"

# ------------------------------------------------------------- the broker

SOCK=$T/broker.sock
AUDIT=$T/audit.jsonl
rule() { # NAME KEY=VAL...
	printf '\n[rule "%s"]\n' "$1"
	shift
	for kv in "$@"; do printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"; done
}
{
	printf '[egress]\ndefault = deny\ncache_ttl = 60\ntimeout = 5\n'
	printf '\n[hosts]\ngai.bench.test = 127.0.0.1\ndirect.bench.test = 127.0.0.1\nrelay.bench.test = 127.0.0.1\n'
	rule gai host=gai.bench.test action=allow
	rule direct host=direct.bench.test action=rewrite transport=direct
	rule relay host=relay.bench.test action=rewrite transport=relay
	[ "$HAVE_MS" = 1 ] && rule socks host=socks.bench.test action=rewrite "transport=socks5://127.0.0.1:$P_MS"
	[ "$HAVE_TP" = 1 ] && rule http host=http.bench.test action=rewrite "transport=http://127.0.0.1:$P_TP"
	rule accept cidr=127.0.0.1/32 "port=$P_ACC" proto=tcp action=allow
	rule echo cidr=127.0.0.1/32 "port=$P_ECHO" proto=tcp action=allow
	rule udp cidr=127.0.0.1/32 "port=$P_UDP" proto=udp action=allow
} >"$T/policy.ini"
bg broker "$BROKER" --policy "$T/policy.ini" --socket "$SOCK" --audit "$AUDIT"
i=0
while [ ! -S "$SOCK" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$SOCK" ] || { echo "bench: the broker did not start:" >&2; cat "$T/broker.log" >&2; exit 2; }
SHIM="env LD_PRELOAD=$LIB EGRESS_SOCKET=$SOCK"

# ------------------------------------------------------------- recording

# row KEY CASE VARIANT UNIT BASE TARGET TEXT: a row of the table, in
# order. BASE is the key whose median the ratio is taken to ("-": none).
# TARGET is ";"-separated conditions on this row's median m, all needed:
#   le:KEY:X       m <= X * median(KEY)
#   ge:KEY:X       m >= X * median(KEY)
#   add:KEY:X:FL   m <= median(KEY) + X * median(FL)
#   lt:KEY         m <  median(KEY)
#   plus:KEY:C     m <= median(KEY) + C (in the row's unit)
#   max:C          m <= C
# or "-" (no target); TEXT says it in words.
row() { printf '%s|%s|%s|%s|%s|%s|%s\n' "$@" >>"$T/rows"; }

# field NAME: the value of NAME=... in the line on stdin.
field() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) { print a[2]; exit } } }'; }

# measure KEY RUN FIELD EXPECT LIMIT CMD...: runs CMD (at most LIMIT s),
# records FIELD of its result line as run RUN of KEY. EXPECT: ok (no
# failed operation), fail (every operation failed: a denial), - (not checked).
measure() {
	_key=$1 _run=$2 _f=$3 _exp=$4 _lim=$5
	shift 5
	_errf=$T/err-$_key
	[ "$_exp" = fail ] && _errf=/dev/null # one line per denial: not kept
	_line=$(timeout -k 5 "$_lim" "$@" 2>>"$_errf" </dev/null | tail -n 1)
	_v=$(echo "$_line" | field "$_f")
	if [ -z "$_v" ]; then
		note "$_key run $_run: no $_f figure (${_line:-no output}); see its stderr: $(tail -n 2 "$_errf" 2>/dev/null | tr '\n' ' ')"
		return 1
	fi
	_fails=$(echo "$_line" | field fails)
	_n=$(echo "$_line" | field n)
	case $_exp in
	ok) [ "${_fails:-0}" = 0 ] || note "$_key run $_run: $_fails of $_n operations failed" ;;
	fail) [ "${_fails:-0}" = "$_n" ] || note "$_key run $_run: only ${_fails:-0} of $_n operations were denied" ;;
	esac
	echo "$_key,$_run,$_v" >>"$T/raw.csv"
	printf '  %-28s run %s: %s=%s\n' "$_key" "$_run" "$_f" "$_v" >&2
}

section() { echo "bench: $*" >&2; }

# ------------------------------------------------------------- 5. the floor
# First, since other cases' targets are stated in it; measured again
# between the other cases' runs below (floor.*), for the same drift.

row floor "5 floor: SEQPACKET 64 B round trip" "two processes, same run" us - - -
[ "$NCPU" -ge 2 ] && row floor.x "5 floor: SEQPACKET 64 B round trip" "the two on different CPUs" us floor - -

# ------------------------------------------------------------- 1. connect
section "case 1: TCP socket+connect+close to 127.0.0.1"
row c1.bare "1 TCP connect+close" "bare" us - - -
row c1.egress "1 TCP connect+close" "egress allow, repeated" us c1.bare "le:c1.bare:1.15" "<= 1.15 x bare"
row c1.first.bare "1 TCP connect+close" "bare, first of a process" us - - -
row c1.first.egress "1 TCP connect+close" "egress allow, first of a process" us c1.first.bare \
	"add:c1.first.bare:1.1:floor" "<= bare first + 1.1 x floor"
row c1.deny "1 TCP connect+close" "egress deny" us floor "le:floor:1.1" "<= 1.1 x floor"
row c1.socket "1 TCP connect+close" "socket+close alone, no connect" us c1.bare - -
[ "$HAVE_PC" = 1 ] && row c1.pc "1 TCP connect+close" "proxychains4 localnet" us c1.bare - -
[ "$HAVE_TS" = 1 ] && row c1.ts "1 TCP connect+close" "torsocks AllowOutboundLocalhost" us c1.bare - -
for r in $(seq 1 "$K"); do
	measure floor "$r" p50_us ok 60 "$B/seqpacket" "$N_FLOOR"
	[ "$NCPU" -ge 2 ] && measure floor.x "$r" p50_us ok 60 "$B/seqpacket" "$N_FLOOR" 0 1
	measure c1.bare "$r" p50_us ok 60 "$B/connect" repeat 127.0.0.1 "$P_ACC" "$N_CONN"
	measure c1.egress "$r" p50_us ok 60 $SHIM "$B/connect" repeat 127.0.0.1 "$P_ACC" "$N_CONN"
	measure c1.first.bare "$r" p50_us ok 60 "$B/connect" first 127.0.0.1 "$P_ACC" "$N_FIRST"
	measure c1.first.egress "$r" p50_us ok 60 $SHIM "$B/connect" first 127.0.0.1 "$P_ACC" "$N_FIRST"
	measure c1.deny "$r" p50_us fail 60 $SHIM "$B/connect" repeat 127.0.0.1 "$P_DENY" "$N_CONN"
	measure c1.socket "$r" p50_us ok 60 "$B/connect" socket 127.0.0.1 "$P_ACC" "$N_CONN"
	[ "$HAVE_PC" = 1 ] && measure c1.pc "$r" p50_us ok 60 env PROXYCHAINS_CONF_FILE="$T/pc-local.conf" \
		proxychains4 -q "$B/connect" repeat 127.0.0.1 "$P_ACC" "$N_CONN"
	[ "$HAVE_TS" = 1 ] && measure c1.ts "$r" p50_us ok 60 env TORSOCKS_CONF_FILE="$T/torsocks.conf" \
		torsocks "$B/connect" repeat 127.0.0.1 "$P_ACC" "$N_CONN"
	: >"$AUDIT" # the broker appends; keep the file small
done

# ------------------------------------------------------------- 2. rewritten connect
section "case 2: getaddrinfo(name) + connect + close, rewritten"
PCBASE=-
[ "$HAVE_PC" = 1 ] && [ "$HAVE_MS" = 1 ] && PCBASE=c2.pc.socks
tgt() { [ "$PCBASE" = - ] && echo - || echo "$1"; }
row c2.direct "2 rewritten connect" "egress direct" us "$PCBASE" "$(tgt "le:c2.pc.socks:0.5")" \
	"<= 0.5 x proxychains4 > microsocks"
row c2.relay "2 rewritten connect" "egress relay" us "$PCBASE" - -
if [ "$HAVE_MS" = 1 ]; then
	row c2.socks "2 rewritten connect" "egress > microsocks" us "$PCBASE" "$(tgt "le:c2.pc.socks:0.8")" \
		"<= 0.8 x proxychains4 > microsocks"
fi
if [ "$HAVE_TP" = 1 ]; then
	b=-
	[ "$HAVE_PC" = 1 ] && b=c2.pc.http
	row c2.http "2 rewritten connect" "egress > tinyproxy" us "$b" "$([ "$b" = - ] && echo - || echo "le:c2.pc.http:0.8")" \
		"<= 0.8 x proxychains4 > tinyproxy"
fi
[ "$HAVE_PC" = 1 ] && [ "$HAVE_MS" = 1 ] && row c2.pc.socks "2 rewritten connect" "proxychains4 proxy_dns > microsocks" us - - -
[ "$HAVE_PC" = 1 ] && [ "$HAVE_TP" = 1 ] && row c2.pc.http "2 rewritten connect" "proxychains4 proxy_dns > tinyproxy" us - - -
for r in $(seq 1 "$K"); do
	measure c2.direct "$r" p50_us ok 60 $SHIM "$B/connect" name direct.bench.test "$P_ECHO" "$N_NAME"
	measure c2.relay "$r" p50_us ok 60 $SHIM "$B/connect" name relay.bench.test "$P_ECHO" "$N_NAME"
	[ "$HAVE_MS" = 1 ] && measure c2.socks "$r" p50_us ok 60 $SHIM "$B/connect" name socks.bench.test "$P_ECHO" "$N_NAME"
	[ "$HAVE_TP" = 1 ] && measure c2.http "$r" p50_us ok 60 $SHIM "$B/connect" name http.bench.test "$P_ECHO" "$N_NAME"
	[ "$HAVE_PC" = 1 ] && [ "$HAVE_MS" = 1 ] && measure c2.pc.socks "$r" p50_us ok 60 \
		env PROXYCHAINS_CONF_FILE="$T/pc-socks.conf" proxychains4 -q "$B/connect" name pc.bench.test "$P_ECHO" "$N_NAME"
	[ "$HAVE_PC" = 1 ] && [ "$HAVE_TP" = 1 ] && measure c2.pc.http "$r" p50_us ok 60 \
		env PROXYCHAINS_CONF_FILE="$T/pc-http.conf" proxychains4 -q "$B/connect" name pc.bench.test "$P_ECHO" "$N_NAME"
	measure floor "$r" p50_us ok 60 "$B/seqpacket" "$N_FLOOR"
	: >"$AUDIT"
done

# ------------------------------------------------------------- 3. getaddrinfo
section "case 3: getaddrinfo of an allowed name"
row c3.bare "3 getaddrinfo" "bare (name in /etc/hosts)" us - - -
if [ "$HAVE_PC" = 1 ]; then
	row c3.egress "3 getaddrinfo" "egress" us c3.bare "add:c3.bare:1.1:floor;lt:c3.pc" \
		"<= bare + 1.1 x floor, < proxychains4"
	row c3.pc "3 getaddrinfo" "proxychains4 proxy_dns" us c3.bare - -
else
	row c3.egress "3 getaddrinfo" "egress" us c3.bare "add:c3.bare:1.1:floor" "<= bare + 1.1 x floor"
fi
for r in $(seq 1 "$K"); do
	measure c3.bare "$r" p50_us ok 60 $IN_HOSTS "$HOSTS_SH" "$T/hosts" "$B/gai" gai.bench.test "$N_GAI"
	measure c3.egress "$r" p50_us ok 60 $SHIM "$B/gai" gai.bench.test "$N_GAI"
	[ "$HAVE_PC" = 1 ] && measure c3.pc "$r" p50_us ok 60 env PROXYCHAINS_CONF_FILE="$T/pc-socks.conf" \
		proxychains4 -q "$B/gai" pc.bench.test "$N_GAI"
	measure floor "$r" p50_us ok 60 "$B/seqpacket" "$N_FLOOR"
	: >"$AUDIT"
done

# ------------------------------------------------------------- 4. UDP
section "case 4: UDP sendto of 64 bytes, steady state"
row c4.bare "4 UDP sendto 64 B" "bare" us - - -
row c4.egress "4 UDP sendto 64 B" "egress" us c4.bare "le:c4.bare:1.1" "<= 1.1 x bare"
for r in $(seq 1 "$K"); do
	measure c4.bare "$r" p50_us ok 60 "$B/udp" 127.0.0.1 "$P_UDP" "$N_UDP"
	measure c4.egress "$r" p50_us ok 60 $SHIM "$B/udp" 127.0.0.1 "$P_UDP" "$N_UDP"
done

# ------------------------------------------------------------- 6. throughput
section "case 6: broker decisions per second, next to the floor with the same clients"
for c in $CLIENT_COUNTS; do
	row "c6.floor.$c" "6 requests/s" "floor, $c clients" "req/s" - - -
	row "c6.broker.$c" "6 requests/s" "broker, $c clients" "req/s" "c6.floor.$c" "ge:c6.floor.$c:0.8" ">= 0.8 x floor"
done
for r in $(seq 1 "$K"); do
	for c in $CLIENT_COUNTS; do
		measure "c6.floor.$c" "$r" rate - 60 "$B/clients" floor "$c" "$T_CLIENTS"
		measure "c6.broker.$c" "$r" rate - 60 "$B/clients" broker "$SOCK" "$c" "$T_CLIENTS" "$P_ACC" 127.0.0.1
		: >"$AUDIT"
	done
done

# ------------------------------------------------------------- 7. decision time
section "case 7: policy_decide by rule count"
row c7.10 "7 decision time" "10 rules" ns - - -
row c7.1000 "7 decision time" "1,000 rules" ns c7.10 "le:c7.10:2" "<= 2 x 10 rules"
row c7.100000 "7 decision time" "100,000 rules" ns c7.10 "le:c7.10:2" "<= 2 x 10 rules"
for r in $(seq 1 "$K"); do
	for n in 10 1000 100000; do
		measure "c7.$n" "$r" ns - 120 "$B/decide" run "$n" "$T_DECIDE"
	done
done

# ------------------------------------------------------------- 8. stream
section "case 8: one stream of $STREAM_MB MiB"
row c8.direct "8 stream $STREAM_MB MiB" "direct" "MiB/s" - - -
if [ "$HAVE_TP" = 1 ]; then
	row c8.relay "8 stream $STREAM_MB MiB" "egress relay" "MiB/s" c8.direct "ge:c8.direct:0.7;ge:c8.http:3" \
		">= 0.7 x direct, >= 3 x tinyproxy"
else
	row c8.relay "8 stream $STREAM_MB MiB" "egress relay" "MiB/s" c8.direct "ge:c8.direct:0.7" ">= 0.7 x direct"
fi
[ "$HAVE_TP" = 1 ] && row c8.http "8 stream $STREAM_MB MiB" "tinyproxy (egress http)" "MiB/s" c8.direct - -
[ "$HAVE_MS" = 1 ] && row c8.socks "8 stream $STREAM_MB MiB" "microsocks (egress socks5)" "MiB/s" c8.direct - -
SLIM=$((STREAM_MB / 10 + 60)) # at least 10 MiB/s
for r in $(seq 1 "$K"); do
	measure c8.direct "$r" mib_s - "$SLIM" "$B/stream" 127.0.0.1 "$P_DISC" "$STREAM_MB"
	measure c8.relay "$r" mib_s - "$SLIM" $SHIM "$B/stream" relay.bench.test "$P_DISC" "$STREAM_MB"
	[ "$HAVE_TP" = 1 ] && measure c8.http "$r" mib_s - "$SLIM" $SHIM "$B/stream" http.bench.test "$P_DISC" "$STREAM_MB"
	[ "$HAVE_MS" = 1 ] && measure c8.socks "$r" mib_s - "$SLIM" $SHIM "$B/stream" socks.bench.test "$P_DISC" "$STREAM_MB"
done

# ------------------------------------------------------------- 9. process start, isolation
section "case 9: process start of a no-op program; isolation's captured connect"
ISO=1
cat >"$T/iso.ini" <<EOF
[egress]
default = deny

[hosts]
echo.bench.test = 127.0.0.1

[rule "echo"]
host = echo.bench.test
port = $P_ECHO
proto = tcp
action = allow
EOF
if [ "$PROOT" != 0 ]; then
	ISO=0
	note "not root: egress-run --isolate rows are left out"
elif ! PATH=$PATH:/usr/sbin:/sbin command -v nft >/dev/null 2>&1; then
	ISO=0
	note "nft (nftables) is missing: egress-run --isolate rows are left out"
elif ! timeout -k 5 30 "$RUN" --isolate --quiet --policy "$T/iso.ini" -- true >"$T/iso-try.log" 2>&1; then
	ISO=0
	note "egress-run --isolate does not work here ($(head -n 1 "$T/iso-try.log")): its rows are left out"
fi
row c9.bare "9 process start" "bare" us - - -
row c9.shim "9 process start" "shim preloaded" us c9.bare "plus:c9.bare:200" "<= bare + 0.2 ms"
row c9.run "9 process start" "egress-run, running broker" us c9.bare - -
[ "$ISO" = 1 ] && row c9.iso "9 process start" "egress-run --isolate" us c9.bare - -
row c9e.bare "9 connect+1 B echo" "bare" us - - -
row c9e.shim "9 connect+1 B echo" "shim" us c9e.bare - -
if [ "$ISO" = 1 ]; then
	row c9e.iso.shim "9 connect+1 B echo" "--isolate, shim (broker connects)" us c9e.bare - -
	row c9e.iso.cap "9 connect+1 B echo" "--isolate, static, captured" us c9e.bare - -
fi
for r in $(seq 1 "$K"); do
	measure c9.bare "$r" p50_us ok 120 "$B/spawn" "$N_START" -- "$B/noop"
	measure c9.shim "$r" p50_us ok 120 "$B/spawn" "$N_START" "LD_PRELOAD=$LIB" "EGRESS_SOCKET=$SOCK" -- "$B/noop"
	measure c9.run "$r" p50_us ok 120 "$B/spawn" "$N_START" "EGRESS_SOCKET=$SOCK" -- "$RUN" --quiet -- "$B/noop"
	[ "$ISO" = 1 ] && measure c9.iso "$r" p50_us ok 120 "$B/spawn" "$N_ISOSTART" -- \
		"$RUN" --isolate --quiet --policy "$T/iso.ini" -- "$B/noop"
	measure c9e.bare "$r" p50_us ok 60 "$B/connect" echo 127.0.0.1 "$P_ECHO" "$N_ISOECHO"
	measure c9e.shim "$r" p50_us ok 60 $SHIM "$B/connect" echo 127.0.0.1 "$P_ECHO" "$N_ISOECHO"
	if [ "$ISO" = 1 ]; then
		measure c9e.iso.shim "$r" p50_us ok 120 "$RUN" --isolate --quiet --policy "$T/iso.ini" -- \
			"$B/connect" echo echo.bench.test "$P_ECHO" "$N_ISOECHO"
		measure c9e.iso.cap "$r" p50_us ok 120 "$RUN" --isolate --quiet --policy "$T/iso.ini" -- \
			"$B/connect-static" echo echo.bench.test "$P_ECHO" "$N_ISOECHO"
	fi
	: >"$AUDIT"
done

# ------------------------------------------------------------- 10. memory
section "case 10: resident memory"
row c10.bare "10 memory" "process, bare" KiB - - -
row c10.shim "10 memory" "process, shim preloaded" KiB c10.bare "plus:c10.bare:256" "<= bare + 256 KiB"
row c10.bare.priv "10 memory" "process, bare: private" KiB - - -
row c10.shim.priv "10 memory" "process, shim preloaded: private" KiB c10.bare.priv - -
row c10.broker.idle "10 memory" "broker, $BIG_RULES rules" KiB - - -
row c10.broker.clients "10 memory" "broker, $BIG_RULES rules, $N_RSSCLIENTS clients" KiB c10.broker.idle "max:65536" "<= 64 MiB"
for r in $(seq 1 "$K"); do
	measure c10.bare "$r" rss_kb - 30 "$B/rss" self 127.0.0.1 "$P_ACC"
	measure c10.shim "$r" rss_kb - 30 $SHIM "$B/rss" self 127.0.0.1 "$P_ACC"
	measure c10.bare.priv "$r" private_kb - 30 "$B/rss" self 127.0.0.1 "$P_ACC"
	measure c10.shim.priv "$r" private_kb - 30 $SHIM "$B/rss" self 127.0.0.1 "$P_ACC"
done
"$B/decide" gen "$BIG_RULES" "$T/big.ini" || exit 2
for r in $(seq 1 "$N_BIGRSS"); do
	rm -f "$T/big.sock"
	bg "big-broker" "$BROKER" --policy "$T/big.ini" --socket "$T/big.sock" --audit "$T/big-audit.jsonl"
	bpid=$LASTPID
	i=0
	while [ ! -S "$T/big.sock" ] && [ "$i" -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
	if [ -S "$T/big.sock" ]; then
		_line=$(timeout -k 5 60 "$B/rss" broker "$bpid" "$T/big.sock" "$N_RSSCLIENTS" "$P_ACC" 2>>"$T/err-c10")
		_i=$(echo "$_line" | field rss_idle_kb)
		_c=$(echo "$_line" | field rss_clients_kb)
		if [ -n "$_i" ] && [ -n "$_c" ]; then
			echo "c10.broker.idle,$r,$_i" >>"$T/raw.csv"
			echo "c10.broker.clients,$r,$_c" >>"$T/raw.csv"
			printf '  %-28s run %s: idle %s KiB, %s clients %s KiB\n' c10.broker "$r" "$_i" "$N_RSSCLIENTS" "$_c" >&2
		else
			note "c10.broker run $r: no figure ($_line)"
		fi
	else
		note "c10.broker run $r: the broker with $BIG_RULES rules did not start within 30 s"
	fi
	kill -TERM "$bpid" 2>/dev/null
	wait "$bpid" 2>/dev/null
	PIDS=$(echo "$PIDS" | sed "s/ $bpid\b//")
done
: >"$T/big-audit.jsonl"

# ------------------------------------------------------------- the table

MACHINE="$NCPU CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
{
	echo "case,variant,run,value,unit"
	awk -F'|' 'NR == FNR { lab[$1] = $3; un[$1] = $4; next }
		{ split($0, f, ","); print f[1] "," "\"" lab[f[1]] "\"," f[2] "," f[3] "," un[f[1]] }' \
		"$T/rows" "$T/raw.csv"
} >"$CSV.tmp" && mv "$CSV.tmp" "$CSV"

awk -F'|' -v machine="$MACHINE" -v runs="$K" -v quick="${QUICK:+ (BENCH_QUICK: small counts)}" -v pin="$PINNING" '
function med(v, n,    i, j, t) { # sorts v[1..n], returns its median
	for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function fmt(x) {
	if (x == "") return "-"
	if (x >= 10000) return sprintf("%.0f", x)
	if (x >= 100) return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
function cond(c, m,    p) { # one target condition on median m: 1, 0, or -1 (no figure)
	split(c, p, ":")
	if (p[1] == "max") { LIMIT = p[2]; return m <= LIMIT }
	if (!(p[2] in M)) return -1
	if (p[1] == "le") return m <= p[3] * M[p[2]]
	if (p[1] == "ge") return m >= p[3] * M[p[2]]
	if (p[1] == "lt") return m < M[p[2]]
	if (p[1] == "plus") { LIMIT = M[p[2]] + p[3]; return m <= LIMIT }
	if (p[1] == "add") { if (!(p[4] in M)) return -1; LIMIT = M[p[2]] + p[3] * M[p[4]]; return m <= LIMIT }
	return -1
}
NR == FNR { split($0, f, ","); n[f[1]]++; v[f[1], n[f[1]]] = f[3]; next }
{
	key[++rows] = $1; cas[rows] = $2; lab[rows] = $3; un[rows] = $4; base[rows] = $5; tg[rows] = $6; tt[rows] = $7
	if (n[$1]) {
		delete w
		lo = hi = v[$1, 1]
		for (i = 1; i <= n[$1]; i++) { w[i] = v[$1, i] + 0; if (w[i] < lo) lo = w[i]; if (w[i] > hi) hi = w[i] }
		M[$1] = med(w, n[$1]); LO[$1] = lo; HI[$1] = hi
	}
}
END {
	printf "egress benchmarks: %s runs per case, interleaved, %s%s\nmachine: %s\n\n", runs, pin, quick, machine
	hdr = sprintf("%-34s %-38s %10s %21s %-6s %7s  %-40s %s", "case", "variant", "median", "spread (min-max)", "unit", "ratio", "target", "result")
	print hdr
	gsub(/./, "-", hdr); print hdr
	met = 0; missed = 0
	for (r = 1; r <= rows; r++) {
		k = key[r]
		if (!(k in M)) { printf "%-34s %-38s %10s\n", cas[r], lab[r], "no figure"; continue }
		ratio = (base[r] != "-" && (base[r] in M) && M[base[r]] > 0) ? sprintf("%.2f", M[k] / M[base[r]]) : "-"
		res = "-"
		if (tg[r] != "-") {
			nc = split(tg[r], cs, ";"); ok = 1; LIMIT = ""
			for (c = 1; c <= nc; c++) { x = cond(cs[c], M[k]); if (x < 0) { ok = -1; break } if (!x) ok = 0 }
			res = ok < 0 ? "no baseline" : ok ? "meets" : "misses"
			if (ok == 1) met++; else if (ok == 0) missed++
			if (LIMIT != "") tt[r] = tt[r] sprintf(" (%s)", fmt(LIMIT))
		}
		printf "%-34s %-38s %10s %21s %-6s %7s  %-40s %s\n", cas[r], lab[r], fmt(M[k]), fmt(LO[k]) "-" fmt(HI[k]), un[r], ratio, (tt[r] == "-" ? "" : tt[r]), res
	}
	printf "\ntargets: %d met, %d missed\n", met, missed
	if ("c10.bare" in M && "c10.shim" in M && "c10.bare.priv" in M && "c10.shim.priv" in M)
		printf "the shim adds %.0f KiB resident (%.0f KiB of it private) to a process (differences of the medians)\n", M["c10.shim"] - M["c10.bare"], M["c10.shim.priv"] - M["c10.bare.priv"]
}' "$T/raw.csv" "$T/rows" >"$T/table"

if [ -s "$T/notes" ]; then
	{ echo; echo "notes:"; sed 's/^/  /' "$T/notes"; } >>"$T/table"
fi
echo "raw figures: $CSV" >>"$T/table"
cp "$T/table" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo
cat "$OUT"
echo "bench: table written to $OUT"
