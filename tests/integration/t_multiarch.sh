# t_multiarch.sh: 32-bit programs stay mediated. A client built with -m32
# runs under tools/egress-run, which preloads build/$LIB/libegress.so so
# that its loader picks the i386 shim: the denied server gets nothing, the
# allowed one its request, a denied name fails, and the audit log has each
# decision with the 32-bit program as exe; a 64-bit shell's 32-bit child too.
# The same binary with only the 64-bit library (the old layout) shows the
# escape: its loader skips the library ("wrong ELF class") and it reaches
# the denied server. egress-run refuses it (exit 126) when it has no
# library for it: the old single library, a layout without the 32-bit
# shim, an x32 program.
#
# Under SANITIZE the libraries are the plain build's (build/$LIB, from plain
# `make`, which integration runs first), like curl's (see run.sh); the
# broker is the sanitized one.
. "$ROOT/tests/integration/lib.sh"
need_build
ER=$ROOT/tools/egress-run
[ "$(uname -m)" = x86_64 ] || skip "i386 programs are an x86_64 host's matter"

PLAIN=$ROOT/build
# shellcheck disable=SC2016 # the loader's token, literal
LIBT=$PLAIN/'$LIB'/libegress.so
for f in "$PLAIN/libegress.so" "$PLAIN/lib32/libegress.so" "$PLAIN/lib/i386-linux-gnu/libegress.so"; do
	[ -e "$f" ] || { fail "$f missing: make builds the i386 shim (needs gcc-multilib, libc6-dev-i386)"; finish; }
done

NC32=$T/netclient32
if gcc -m32 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$NC32" "$H/netclient.c" 2>"$T/gcc32.err"; then
	pass "netclient built with -m32"
else
	fail "cannot build helpers/netclient.c with -m32 (gcc-multilib, libc6-dev-i386)"
	show "$T/gcc32.err"
	finish
fi
assert_eq "$(od -An -tx1 -j4 -N1 "$NC32" | tr -d ' ')" 01 "the client is a 32-bit ELF program"

start_server a http 127.0.0.1
start_server b http 127.0.0.1
PA=$(port a) PB=$(port b)

{
	policy_egress
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" action=deny
	policy_rule no-name host=denied.egress.test action=deny
} | write_policy

# er TAG LIB ARGS...: tools/egress-run ARGS with EGRESS_LIB=LIB, bounded.
er() {
	LAST=$1
	_erlib=$2
	shift 2
	timeout -k 5 "$RUN_TIMEOUT" env -u EGRESS_SOCKET EGRESS_LIB="$_erlib" EGRESS_BROKER="$BROKER_BIN" \
		$BROKER_SAN_ENV "$ER" "$@" >"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
	RC=$?
	assert_no_san "$T/$LAST.err" "egress-run $LAST"
}

AUDIT=$T/er-audit.jsonl
OPS="get 127.0.0.1 $PA /m32-a get 127.0.0.1 $PB /m32-b resolve denied.egress.test 80"

echo "# a 32-bit program under egress-run: mediated through \$LIB"
# shellcheck disable=SC2086 # $OPS is the client's argument list
er m32 "$LIBT" --policy "$POLICY" --audit "$AUDIT" -- "$NC32" $OPS
assert_rc 1 "the client's status: two of its three operations were refused"
assert_out m32 "egress-it /m32-a
connect 127.0.0.1:$PB errno EPERM
resolve denied.egress.test EAI_NONAME" "allowed GET answered, denied connect EPERM, denied name EAI_NONAME"
assert_not_contains "$T/m32.err" "wrong ELF class" "the loader took the i386 library"
assert_not_contains "$T/m32.err" "cannot be preloaded" "no loader warning at all"
assert_server a 1 "the allowed server got the 32-bit program's request"
assert_server b 0 "the denied server got nothing"
assert_audit 1 "allow with the 32-bit exe" op=connect action=allow "port=$PA" rule=srv-a "exe=$NC32"
assert_audit 1 "deny with the 32-bit exe" op=connect action=deny "port=$PB" rule=block-b errno=EPERM "exe=$NC32"
assert_audit 1 "denied lookup with the 32-bit exe" op=resolve action=deny name=denied.egress.test rule=no-name "exe=$NC32"
assert_contains "$T/m32.err" "egress: 1 allowed, 2 denied" "the summary counts the 32-bit program's attempts"

echo "# a 64-bit shell's 32-bit child: each loader picks its own library"
er mixed "$LIBT" --policy "$POLICY" --audit "$AUDIT" -- sh -c \
	"$NC32 get 127.0.0.1 $PA /m32-child-a; $NC32 get 127.0.0.1 $PB /m32-child-b; exit 0"
assert_rc 0 "sh ran both children"
assert_out mixed "egress-it /m32-child-a
connect 127.0.0.1:$PB errno EPERM" "the child's allowed GET answered, its denied connect EPERM"
assert_not_contains "$T/mixed.err" "cannot be preloaded" "neither loader warned"
assert_server a 2 "the allowed server got the child's request"
assert_server b 0 "the denied server still got nothing"
assert_audit 2 "deny with the 32-bit exe (the child)" op=connect action=deny "port=$PB" "exe=$NC32"

echo "# the escape: the 64-bit library alone (the old layout)"
RUN_OPS="get 127.0.0.1 $PB /m32-escape"
AUDIT=$T/audit.jsonl
start_broker || finish
# shellcheck disable=SC2086
run_plain escape env LD_PRELOAD="$PLAIN/libegress.so" EGRESS_SOCKET="$SOCK" "$NC32" $RUN_OPS
assert_rc 0 "the 32-bit program ran anyway"
assert_contains "$T/escape.err" "wrong ELF class" "its loader skipped the 64-bit library"
assert_out escape "egress-it /m32-escape" "it reached the denied server"
assert_server b 1 "the denied server got the unmediated request"
assert_audit 0 "the broker never heard of it" "exe=$NC32"
# shellcheck disable=SC2086
run_plain fixed env LD_PRELOAD="$LIBT" EGRESS_SOCKET="$SOCK" "$NC32" $RUN_OPS
assert_out fixed "connect 127.0.0.1:$PB errno EPERM" "with \$LIB in LD_PRELOAD (README's line) it is denied"
assert_server b 1 "and the denied server got nothing more"
assert_audit 1 "the broker decided it" op=connect action=deny "port=$PB" "exe=$NC32"

echo "# egress-run refuses what it cannot mediate (exit 126)"
# shellcheck disable=SC2086
er old "$PLAIN/libegress.so" --policy "$POLICY" -- "$NC32" $RUN_OPS
assert_rc 126 "one 64-bit library (EGRESS_LIB without \$LIB): refused"
assert_contains "$T/old.err" "is an i386 program but $PLAIN/libegress.so is built for x86_64" "the reason"
assert_out old "" "the program did not run"

mkdir -p "$T/layout64/lib/x86_64-linux-gnu"
cp "$PLAIN/libegress.so" "$T/layout64/lib/x86_64-linux-gnu/"
# shellcheck disable=SC2086,SC2016
er no32 "$T/layout64/\$LIB/libegress.so" --policy "$POLICY" -- "$NC32" $RUN_OPS
assert_rc 126 "a layout without the i386 shim: refused"
assert_contains "$T/no32.err" "is an i386 program and $T/layout64/lib32/libegress.so is missing" "names the missing library"
assert_contains "$T/no32.err" "gcc-multilib and libc6-dev-i386" "says how to build it"
assert_out no32 "" "the program did not run"
# shellcheck disable=SC2016
er no32-64 "$T/layout64/\$LIB/libegress.so" --policy "$POLICY" -- "$CURL" -sS --max-time 10 "http://127.0.0.1:$PA/layout64"
assert_rc 0 "the same layout still runs a 64-bit program"

printf '#!%s\n' "$NC32" >"$T/script32"
chmod +x "$T/script32"
er script "$T/layout64/\$LIB/libegress.so" --policy "$POLICY" -- "$T/script32" get 127.0.0.1 "$PB" /m32-script
assert_rc 126 "a #! script whose interpreter is i386, without the i386 shim: refused"
assert_contains "$T/script.err" "(the interpreter $NC32)" "names the interpreter"

if gcc -mx32 -std=c11 -D_GNU_SOURCE -o "$T/netclientx32" "$H/netclient.c" 2>"$T/gccx32.err"; then
	# shellcheck disable=SC2086
	er x32 "$LIBT" --policy "$POLICY" -- "$T/netclientx32" $RUN_OPS
	assert_rc 126 "an x32 program: refused"
	assert_contains "$T/x32.err" "is an x32 program; egress has no libegress.so for it" "the reason"
else
	echo "  (no x32 toolchain; the x32 refusal is not tested)"
fi
assert_server b 1 "the denied server got nothing from the refused runs"

finish
