#!/bin/sh
# test-all.sh: every test egress has, the way CI runs them.
#
#   sh tools/test-all.sh
#
# 1. tools/install-deps.sh --test   (installs only what is missing)
# 2. make check                      (unit suites and integration tests)
# 3. make check SANITIZE=address,undefined
# 4. a clang build with the same -Werror warnings, in a scratch copy of the
#    sources so that build/ keeps its gcc objects
# 5. a short fuzzing pass: every libFuzzer target for FUZZ_SECONDS (20)
#
# Every step runs even when an earlier one failed; exits 1 when any failed.
set -eu

top=$(cd -P -- "$(dirname -- "$0")/.." && pwd -P)
cd "$top"

jobs=$(nproc 2>/dev/null || echo 2)
failed=""

step() { # name command...
	name=$1
	shift
	printf '\n=== %s\n' "$name"
	if "$@" </dev/null; then
		printf '=== %s: ok\n' "$name"
	else
		printf '=== %s: FAILED\n' "$name"
		failed="$failed
  $name"
	fi
}

clang_build() {
	command -v clang >/dev/null 2>&1 || { echo "clang not found"; return 1; }
	d=$(mktemp -d "${TMPDIR:-/tmp}/egress-clang.XXXXXX")
	# the sources only; build/ stays out
	for f in Makefile policy shim broker tests; do
		[ ! -e "$f" ] || cp -R "$f" "$d/"
	done
	rc=0
	make -C "$d" -j"$jobs" CC=clang all build/check_egress build/check_shim || rc=$?
	rm -rf -- "$d"
	return "$rc"
}

step "dependencies" sh tools/install-deps.sh --test
step "build (gcc)" make -j"$jobs" all
step "make check" make check
step "make check SANITIZE=address,undefined" make check SANITIZE=address,undefined
step "clang -Werror build" clang_build
step "fuzz (${FUZZ_SECONDS:-20} s per target)" make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

if [ -n "$failed" ]; then
	printf '\ntest-all: FAILED:%s\n' "$failed"
	exit 1
fi
printf '\ntest-all: all steps passed\n'
