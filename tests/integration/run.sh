#!/bin/sh
# run.sh: runs every tests/integration/t_*.sh in turn, each in a fresh temp
# dir with its own broker, socket, audit log and loopback servers; prints
# "ok NAME" / "FAIL NAME" (with the failed checks) per test and ends with
# exactly one line "N passed, M failed"; exits 1 when M > 0.
#
#   BUILD=build SANITIZE= sh tests/integration/run.sh [t_name | t_name[isolate] ...]
#
# Environment: BUILD (build or build/san), SANITIZE (non-empty: the library
# is instrumented, preloaded programs get the sanitizer runtimes first in
# LD_PRELOAD, see lib.sh), KEEP=1 keeps the temp dirs, VERBOSE=1 prints every
# check. Each test is bounded by TEST_TIMEOUT seconds (default 180), or by
# the N of a line "# test-timeout: N" in the test file when that is larger,
# each program it runs by 20 s. A test that exits 77 is printed as "skip NAME"
# and counted in neither number.
#
# Isolated mode: each suite of ISOLATE_TESTS (default t_curl t_python
# t_node t_rewrite t_rewrite_proxies) runs a second time, right after its
# plain run, with ISOLATE=1 (lib.sh): its broker is started with --isolate
# and every program it drives runs through `egress-run --isolate` on that
# broker, in namespaces of its own. It is printed as "ok NAME[isolate]" and
# counted like any test; each check that cannot hold under isolation is
# printed as "n/a" with its reason (VERBOSE=1) and counted at the end of
# the test's log. "t_name[isolate]" runs that variant alone. It runs as root
# only, and in the plain build only: egress-run puts libegress.so first in
# LD_PRELOAD, where the sanitizer runtimes must come first, and preloads
# the plain build's $LIB layout, which build/san does not have; so under
# SANITIZE the variant prints "skip" (and as non-root too), and
# ISOLATE_TESTS= leaves it out.
#
# Sanitizer notes: with SANITIZE set, curl, python3 and node all run with
# LD_PRELOAD="libasan.so libubsan.so libegress.so" and
# ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0; the broker runs with
# leak detection on, and a sanitizer report on its stderr (or any preloaded
# program's) fails the test.
# Exception: curl. Debian's curl with GCC 12's libasan preloaded hangs in
# its second setlocale() call (futex on __libc_setlocale_lock) before doing
# anything else, with or without libegress.so:
#   LD_PRELOAD=$(gcc -print-file-name=libasan.so) curl --version   # hangs
# so under SANITIZE curl (also through egress-run) runs with the plain
# build/libegress.so from `make`, against the sanitized broker. python3 and
# node run with the sanitized library as above.

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
SANITIZE=${SANITIZE:-}
TEST_TIMEOUT=${TEST_TIMEOUT:-180}
# The real interpreter, not a wrapper script (pyenv shims are bash scripts
# that would run under the shim too).
EGRESS_IT_PY=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
export ROOT BUILD SANITIZE EGRESS_IT_PY

cd "$ROOT" || exit 2

ISOLATE_TESTS=${ISOLATE_TESTS-t_curl t_python t_node t_rewrite t_rewrite_proxies}

# What to run: FILE for a plain run, FILE+isolate for an isolated one; a
# suite of ISOLATE_TESTS named plainly (or by default) runs isolated too,
# right after.
if [ $# -gt 0 ]; then
	tests=
	for n in "$@"; do
		case $n in
		*"[isolate]") n=${n%"[isolate]"}; iso=+isolate ;;
		*) iso= ;;
		esac
		n=${n%.sh}
		tests="$tests tests/integration/${n#tests/integration/}.sh$iso"
		case " $ISOLATE_TESTS " in *" ${n##*/} "*) [ -n "$iso" ] || tests="$tests tests/integration/${n##*/}.sh+isolate" ;; esac
	done
else
	tests=
	for t in tests/integration/t_*.sh; do
		tests="$tests $t"
		case " $ISOLATE_TESTS " in *" $(basename "$t" .sh) "*) tests="$tests $t+isolate" ;; esac
	done
fi

passed=0
failed=0
for t in $tests; do
	case $t in
	*+isolate) t=${t%+isolate}; ISOLATE=1; name="$(basename "$t" .sh)[isolate]" ;;
	*) ISOLATE=; name=$(basename "$t" .sh) ;;
	esac
	export ISOLATE
	T=$(mktemp -d /tmp/egress-it.XXXXXX)
	export T
	: >"$T/pids"
	limit=$(sed -n 's/^# test-timeout: *\([0-9][0-9]*\)$/\1/p' "$t" | head -n 1)
	[ -n "$limit" ] && [ "$limit" -gt "$TEST_TIMEOUT" ] || limit=$TEST_TIMEOUT
	timeout -k 10 "$limit" sh "$t" >"$T/test.log" 2>&1
	rc=$?
	# Anything the test left running (it was killed, or forgot): by pid.
	for p in $(cat "$T/pids"); do
		kill -KILL "$p" 2>/dev/null
	done
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "ok $name"
		[ -n "${VERBOSE:-}" ] && sed 's/^/    /' "$T/test.log"
	elif [ "$rc" = 77 ]; then
		echo "skip $name: $(grep -m1 'SKIP' "$T/test.log" | sed 's/^ *SKIP //')"
	else
		failed=$((failed + 1))
		[ "$rc" = 124 ] && echo "  (test timed out after ${limit}s)" >>"$T/test.log"
		echo "FAIL $name (temp dir $T)"
		if [ -n "${VERBOSE:-}" ]; then
			sed 's/^/    /' "$T/test.log"
		else
			grep -v '^  ok ' "$T/test.log" | sed 's/^/    /'
		fi
	fi
	if [ -z "${KEEP:-}" ] && { [ "$rc" = 0 ] || [ "$rc" = 77 ]; }; then
		rm -rf "$T"
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
