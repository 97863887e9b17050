# t_sendmmsg.sh: a small C program's sendmmsg(2) under the shim (python has
# none): a batch to an allowed receiver arrives whole with one decision, a
# batch to a denied one fails with EPERM and nothing arrives, a mixed batch
# never delivers the denied message, a connected socket is judged at connect.
. "$ROOT/tests/integration/lib.sh"
need_build

MMSG=$T/mmsg
if ! gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$MMSG" "$H/mmsg.c" 2>"$T/gcc.err"; then
	fail "cannot build helpers/mmsg.c"
	show "$T/gcc.err"
	finish
fi

start_server ua udp 127.0.0.1
start_server ub udp 127.0.0.1
PUA=$(port ua) PUB=$(port ub)

{
	policy_egress cache_ttl=300
	policy_rule udp-ok cidr=127.0.0.1/32 "port=$PUA" proto=udp action=allow
	policy_rule udp-block cidr=127.0.0.1/32 "port=$PUB" proto=udp action=deny
} | write_policy
start_broker || finish

run_shim m-a "$MMSG" mmsg 127.0.0.1 "$PUA" 20 mm
assert_out m-a "ret 20 errno -" "sendmmsg of 20 to the allowed receiver sends 20"
assert_server ua 20 "allowed receiver got all 20"
assert_audit 1 "one send decision for the batch" op=send action=allow port="$PUA" proto=udp rule=udp-ok

run_shim m-b "$MMSG" mmsg 127.0.0.1 "$PUB" 20 mm
assert_out m-b "ret -1 errno EPERM" "sendmmsg to the denied receiver fails with EPERM"
assert_contains "$T/m-b.err" "egress: denied send to 127.0.0.1:$PUB (rule udp-block)" "egress line for the denied batch"
assert_server ub 0 "denied receiver got nothing"
assert_audit 1 "one deny decision for the batch" op=send action=deny port="$PUB" proto=udp errno=EPERM

echo "# mixed batch: allowed first, denied second"
run_shim m-ab "$MMSG" mmsg2 127.0.0.1 "$PUA" 127.0.0.1 "$PUB" mix
r=$(cat "$T/m-ab.out")
case $r in
"ret 1 errno -" | "ret -1 errno EPERM") pass "mixed batch stops at the denied message ($r)" ;;
*) fail "mixed batch: expected 'ret 1' (partial) or 'ret -1 errno EPERM', got [$r]" ;;
esac
assert_server ub 0 "the denied message of the mixed batch never arrived"
n=$(server_count ua)
case $r in
"ret 1 errno -") assert_eq "$n" 21 "partial send: the allowed first message arrived" ;;
*) assert_eq "$n" 20 "failed batch: nothing arrived" ;;
esac

echo "# mixed batch: denied first"
run_shim m-ba "$MMSG" mmsg2 127.0.0.1 "$PUB" 127.0.0.1 "$PUA" mix2
assert_out m-ba "ret -1 errno EPERM" "a batch whose first message is denied fails with EPERM"
assert_server ub 0 "denied receiver got nothing"
assert_eq "$(server_count ua)" "$n" "nothing of that batch arrived at the allowed receiver either"

echo "# connected socket"
run_shim mc-b "$MMSG" mmsgc 127.0.0.1 "$PUB" 5 mc
assert_out mc-b "connect errno EPERM" "connect() of the UDP socket to the denied receiver fails"
run_shim mc-a "$MMSG" mmsgc 127.0.0.1 "$PUA" 5 mc
assert_out mc-a "ret 5 errno -" "sendmmsg on a socket connected to the allowed receiver"
assert_eq "$(server_count ua)" $((n + 5)) "the 5 connected datagrams arrived"
assert_server ub 0 "denied receiver still got nothing"

broker_status st
assert_status_matches_audit st
finish
