# t_cache.sh: the shim's verdict cache is exactly as strict as asking. One
# python3 process connects again and again (helpers/cachecheck.py) while the
# test reloads the policy under it, changes which name an address stands
# for, forks, and kills the broker; every connect is recorded, those applied
# from the cache with "cached":true, each by the process that made it, and
# the program cannot write the broker's generation page.
. "$ROOT/tests/integration/lib.sh"
need_build

start_server a http 127.0.0.1
start_server b http 127.0.0.1
PA=$(port a) PB=$(port b)

# v1: a allowed (a private address, opened by its cidr), b denied; two
# names of a's address, one that the policy denies on a's port.
policy_v1() {
	policy_egress cache_ttl=60
	policy_hosts good.test=127.0.0.1 evil.test=127.0.0.1
	policy_rule no-evil host=evil.test "port=$PA" proto=tcp action=deny
	policy_rule names host=good.test,evil.test action=allow
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" proto=tcp action=deny
}
policy_v1 | write_policy
policy_v1 >"$T/v1.ini"
# v2: a denied; v3: a's cidr rule gone, so the private range closes it
{
	policy_egress cache_ttl=60
	policy_rule now-denied cidr=127.0.0.1/32 "port=$PA" proto=tcp action=deny
} >"$T/v2.ini"
{
	policy_egress default=allow cache_ttl=60
} >"$T/v3.ini"
start_broker || finish

cc() {
	_tag=$1
	shift
	run_shim "$_tag" "$PY" "$H/cachecheck.py" "$@"
}
# pid_of TAG STEP: the pid a step printed.
pid_of() { awk -v t="$2" '$1 == t && $2 == "pid" { print $3 }' "$T/$1.out"; }

echo "# repeated connects: asked once, then applied from the cache and noted"
cc rep pid:p connect:127.0.0.1:$PA:a1 connect:127.0.0.1:$PA:a2 connect:127.0.0.1:$PA:a3 \
	connect:127.0.0.1:$PA:a4 connect:127.0.0.1:$PB:b1 connect:127.0.0.1:$PB:b2 \
	connect:127.0.0.1:$PB:b3
for s in a1 a2 a3 a4; do assert_contains "$T/rep.out" "$s ok" "repeated connect $s allowed"; done
for s in b1 b2 b3; do assert_contains "$T/rep.out" "$s err EPERM" "repeated connect $s denied"; done
assert_eq "$(grep -c 'denied connect to 127.0.0.1:'"$PB" "$T/rep.err")" 3 \
	"each denial has its line, cached or not"
P=$(pid_of rep p)
assert_audit 1 "the first allowed connect asked" pid="$P" op=connect port="$PA" action=allow cached=\<absent\>
assert_audit 3 "the next three applied from the cache, each recorded" pid="$P" op=connect port="$PA" action=allow rule=srv-a cached=true
assert_audit 1 "the first denial asked" pid="$P" op=connect port="$PB" action=deny cached=\<absent\>
assert_audit 2 "the next two from the cache, recorded" pid="$P" op=connect port="$PB" action=deny rule=block-b errno=EPERM cached=true
assert_server a 4 "all four allowed connects reached a"
assert_server b 0 "b saw nothing"
broker_status st1
assert_eq "$(jget "$T/st1.json" decisions.cached)" 5 "status counts the five connects applied from the cache"

echo "# runs of cached connects go through the note ring: every one recorded, once"
# 4 threads at once, 300 each; 600 from the main thread (more than the
# ring holds between two reads); then, once a lookup has made the broker
# read the main thread's ring (a question comes after the NOTEs before
# it), the program writes over that ring and connects again
cc burst pid:p burst:127.0.0.1:$PA:300:4:four burst:127.0.0.1:$PA:600:0:one \
	resolve:nosuch.test:r spoil:sp burst:127.0.0.1:$PA:50:0:after
assert_contains "$T/burst.out" "one ok 600" "600 connects from one thread went"
assert_contains "$T/burst.out" "four ok 1200" "1,200 from four threads went"
assert_contains "$T/burst.out" "sp spoilt 1" "the program wrote over its ring"
assert_contains "$T/burst.out" "after ok 50" "and connected 50 more"
P=$(pid_of burst p)
assert_audit 1850 "each of the 1,850 connects is recorded, none twice" pid="$P" port="$PA" action=allow
assert_audit 5 "the five threads asked once each, the rest came from the cache" pid="$P" port="$PA" cached=\<absent\>
assert_contains "$T/broker.err" "note ring was written over; let go" "the broker said it let the spoilt ring go"

echo "# a reload flips a cached allow within the same process, before it is reported done"
cc flip pid:p connect:127.0.0.1:$PA:before1 connect:127.0.0.1:$PA:before2 \
	"reload:$BROKER_BIN:$SOCK:$T/v2.ini:$POLICY:r" connect:127.0.0.1:$PA:after \
	"reload:$BROKER_BIN:$SOCK:$T/v3.ini:$POLICY:r3" connect:127.0.0.1:$PA:private \
	"reload:$BROKER_BIN:$SOCK:$T/v1.ini:$POLICY:r1" connect:127.0.0.1:$PA:again
assert_contains "$T/flip.out" "before2 ok" "allowed (from the cache) before the reload"
assert_contains "$T/flip.out" "r rc 0" "the reload to v2 succeeded"
assert_contains "$T/flip.out" "after err EPERM" "denied at once after the reload"
assert_contains "$T/flip.out" "private err EPERM" "v3: the private range closes a again"
assert_contains "$T/flip.out" "again ok" "v1 again: allowed"
P=$(pid_of flip p)
assert_audit 1 "the denial after the reload was asked, with v2's rule" pid="$P" port="$PA" action=deny rule=now-denied cached=\<absent\>
assert_audit 1 "v3's denial: the private range" pid="$P" port="$PA" action=deny rule=private cached=\<absent\>
assert_audit 0 "no connect was applied from a verdict of an older policy" pid="$P" port="$PA" rule=cached

echo "# an address that comes to stand for another name is judged anew"
cc name pid:p resolve:good.test:g connect:127.0.0.1:$PA:g1 connect:127.0.0.1:$PA:g2 \
	resolve:evil.test:e connect:127.0.0.1:$PA:e1 connect:127.0.0.1:$PA:e2
assert_contains "$T/name.out" "g2 ok" "good.test's address: allowed, from the cache"
assert_contains "$T/name.out" "e ok 127.0.0.1" "evil.test resolves (its rule has a port)"
assert_contains "$T/name.out" "e1 err EPERM" "the same address, now evil.test's: denied at once"
assert_contains "$T/name.out" "e2 err EPERM" "and again, from the cache"
P=$(pid_of name p)
assert_audit 1 "evil.test's connect asked, by its name" pid="$P" name=evil.test action=deny rule=no-evil cached=\<absent\>
assert_audit 1 "then from the cache, by its name" pid="$P" name=evil.test action=deny rule=no-evil cached=true

echo "# a fork child's attempts are its own, recorded with its pid"
cc fork pid:p connect:127.0.0.1:$PA:p1 connect:127.0.0.1:$PA:p2 fork:127.0.0.1:$PA:3:c \
	connect:127.0.0.1:$PA:p3
assert_contains "$T/fork.out" "c ok ok ok" "the child's three connects went"
P=$(pid_of fork p) C=$(pid_of fork c)
assert_ne "$C" "$P" "the child has its own pid"
assert_audit 3 "the parent's: one asked, two from the cache" pid="$P" port="$PA" action=allow
assert_audit 2 "the parent's cached ones" pid="$P" port="$PA" cached=true
assert_audit 3 "the child's three, under its own pid" pid="$C" port="$PA" action=allow
assert_audit 1 "the child asked for its first: a fork starts with no cache" pid="$C" port="$PA" cached=\<absent\>

echo "# an exe rule: a verdict kept by one program is not another's"
{
	policy_egress cache_ttl=60
	policy_rule py-only cidr=127.0.0.1/32 "port=$PA" "exe=$EGRESS_IT_PY" action=allow
} | write_policy
"$BROKER_BIN" reload --socket "$SOCK" >/dev/null 2>&1
cc exe connect:127.0.0.1:$PA:x1 connect:127.0.0.1:$PA:x2
assert_contains "$T/exe.out" "x2 ok" "python3, named by the rule: allowed twice"
run_shim exe-curl curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PA/"
assert_rc_nonzero "curl, not named by the rule, is denied after python3's allow was cached"
assert_audit_ge 1 "curl's denial recorded" op=connect port="$PA" action=deny exe=/usr/bin/curl
policy_v1 | write_policy
"$BROKER_BIN" reload --socket "$SOCK" >/dev/null 2>&1

echo "# the program cannot write the generation page"
cc page connect:127.0.0.1:$PA:w "page:$BROKER_PID:pg" connect:127.0.0.1:$PB:after
assert_contains "$T/page.out" "pg mapped=yes" "the page is mapped in the program"
assert_not_contains "$T/page.out" "mprotect=ok" "its mapping cannot be made writable"
assert_not_contains "$T/page.out" "write=ok" "the broker's descriptor cannot be written"
assert_not_contains "$T/page.out" "mmap=ok" "nor mapped shared and writable"
assert_contains "$T/page.out" "after err EPERM" "decisions still come from the broker"

echo "# a broker killed: once its loop thread has ended, no kept verdict is applied"
# (its lock word on the page says so, before its descriptors close: a note
# sent then would be lost with it)
cc gone connect:127.0.0.1:$PA:g1 connect:127.0.0.1:$PA:g2 "kill:$BROKER_PID:k" \
	connect:127.0.0.1:$PA:g3
assert_contains "$T/gone.out" "g2 ok" "allowed from the cache while the broker runs"
assert_contains "$T/gone.out" "g3 err EPERM" "denied once the broker has gone"
assert_contains "$T/gone.err" "broker unreachable" "one line says why"
assert_server a 1870 "a saw exactly the allowed connects, and nothing more"
BROKER_PID=
finish
