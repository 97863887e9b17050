#!/bin/sh
# demo.sh: one command that shows egress at work, on loopback only.
#
#   sh tools/demo.sh
#
# Installs what is missing (tools/install-deps.sh), builds (make), starts
# two HTTP servers on 127.0.0.1, a broker whose policy allows the first and
# denies everything else, and runs curl against both through egress-run.
# Exits non-zero if the allowed request failed or the denied one got through.
# shellcheck disable=SC2317 # cleanup runs from a trap
set -eu

top=$(cd -P -- "$(dirname -- "$0")/.." && pwd -P)
cd "$top"

say() { printf '\n== %s\n' "$*"; }

say "dependencies and build"
sh tools/install-deps.sh
make -s -j2 all || { echo "demo: make failed" >&2; exit 1; }

broker=$top/build/egress-broker
tmp=$(mktemp -d "${TMPDIR:-/tmp}/egress-demo.XXXXXX")
s1="" s2="" bpid=""

cleanup() {
	for p in $s1 $s2 $bpid; do
		kill -TERM "$p" 2>/dev/null || :
	done
	for p in $s1 $s2 $bpid; do
		wait "$p" 2>/dev/null || :
	done
	rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# curl must go straight to the servers, not to a proxy from the environment.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
unset no_proxy NO_PROXY

# Starts an HTTP server on a free loopback port serving dir; sets $spid and
# $sport.
serve() { # dir
	python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$1" \
		>"$1.log" 2>&1 </dev/null &
	spid=$!
	sport=""
	i=0
	while [ -z "$sport" ]; do
		sport=$(sed -n 's/^Serving HTTP on [^ ]* port \([0-9][0-9]*\).*/\1/p' "$1.log")
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then
			echo "demo: the HTTP server did not start:" >&2
			cat "$1.log" >&2
			exit 1
		fi
		[ -n "$sport" ] || sleep 0.1
	done
}

mkdir "$tmp/www1" "$tmp/www2"
echo "hello from server 1" >"$tmp/www1/index.html"
echo "hello from server 2" >"$tmp/www2/index.html"
serve "$tmp/www1"
s1=$spid p1=$sport
serve "$tmp/www2"
s2=$spid p2=$sport

policy=$tmp/policy.ini
cat >"$policy" <<EOF
; egress demo policy: one loopback server allowed, everything else denied.
[egress]
default = deny
private = deny
transport = direct

[rule "demo-server"]
cidr = 127.0.0.1/32
port = $p1
proto = tcp
action = allow
EOF

say "policy ($policy)"
cat "$policy"

say "broker"
audit=$tmp/audit.jsonl
export EGRESS_SOCKET="$tmp/broker.sock"
echo "\$ egress-broker --policy $policy --socket $EGRESS_SOCKET --audit $audit &"
"$broker" --policy "$policy" --socket "$EGRESS_SOCKET" --audit "$audit" \
	</dev/null 2>"$tmp/broker.err" &
bpid=$!
i=0
while [ ! -S "$EGRESS_SOCKET" ]; do
	i=$((i + 1))
	if ! kill -0 "$bpid" 2>/dev/null || [ "$i" -gt 50 ]; then
		echo "demo: the broker did not start:" >&2
		cat "$tmp/broker.err" >&2
		exit 1
	fi
	sleep 0.1
done
echo "listening on $EGRESS_SOCKET"

fail=0

say "allowed: curl http://127.0.0.1:$p1/ (rule demo-server)"
echo "\$ tools/egress-run --audit $audit -- curl -sS http://127.0.0.1:$p1/"
if out=$(tools/egress-run --audit "$audit" -- \
	curl -sS --max-time 10 "http://127.0.0.1:$p1/"); then
	printf '%s\n' "$out"
	case $out in
	*"hello from server 1"*) ;;
	*) echo "demo: FAIL: unexpected answer from server 1" >&2; fail=1 ;;
	esac
else
	printf '%s\n' "$out"
	echo "demo: FAIL: the allowed request failed" >&2
	fail=1
fi

say "denied: curl http://127.0.0.1:$p2/ (no rule: default deny)"
echo "\$ tools/egress-run --audit $audit -- curl -sS http://127.0.0.1:$p2/"
if out=$(tools/egress-run --audit "$audit" -- \
	curl -sS --max-time 10 "http://127.0.0.1:$p2/" 2>"$tmp/curl2.err"); then
	cat "$tmp/curl2.err" >&2
	printf '%s\n' "$out"
	echo "demo: FAIL: the denied request got through" >&2
	fail=1
else
	cat "$tmp/curl2.err" >&2
	[ -z "$out" ] || printf '%s\n' "$out"
	if ! grep -q "egress: denied connect to 127.0.0.1:$p2" "$tmp/curl2.err"; then
		echo "demo: note: no 'egress: denied' line from the shim" >&2
	fi
fi

say "audit log ($audit)"
cat "$audit" 2>/dev/null || echo "(empty)"

say "egress-broker status"
echo "\$ egress-broker status"
"$broker" status --socket "$EGRESS_SOCKET" || fail=1

if [ -s "$tmp/broker.err" ]; then
	say "broker stderr"
	cat "$tmp/broker.err"
fi

say "result"
if [ "$fail" = 0 ]; then
	echo "demo: OK: port $p1 allowed, port $p2 denied"
else
	echo "demo: FAILED" >&2
fi
exit "$fail"
