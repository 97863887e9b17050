# t_node.sh: node (libuv) under the shim: http.get and fetch, dgram sends
# (libuv's sendmsg/sendmmsg path), dns.lookup (getaddrinfo in the threadpool).
# Run isolated too (ISOLATE=1, see lib.sh): what then differs is said at
# each check (lo_err, assert_audit_lo, not_isolated).
. "$ROOT/tests/integration/lib.sh"
need_build
[ -x "$NODE" ] || skip "no node at $NODE"

start_server a http 127.0.0.1
start_server b http 127.0.0.1
start_server c http 127.0.0.1
start_server ua udp 127.0.0.1
start_server ub udp 127.0.0.1
PA=$(port a) PB=$(port b) PC=$(port c) PUA=$(port ua) PUB=$(port ub)

{
	policy_egress cache_ttl=300
	policy_hosts myservice.test=127.0.0.1
	policy_rule svc-name host=myservice.test "port=$PA" proto=tcp action=allow
	policy_rule srv-a cidr=127.0.0.1/32 "port=$PA" proto=tcp action=allow
	policy_rule block-b cidr=127.0.0.1/32 "port=$PB" proto=tcp action=deny
	policy_rule refuse-c cidr=127.0.0.1/32 "port=$PC" proto=tcp action=deny errno=ECONNREFUSED
	policy_rule udp-ok cidr=127.0.0.1/32 "port=$PUA" proto=udp action=allow
	policy_rule udp-block cidr=127.0.0.1/32 "port=$PUB" proto=udp action=deny
	policy_rule no-evil host=evil.test action=deny
} | write_policy
start_broker || finish

nodec() {
	_tag=$1
	shift
	run_shim "$_tag" "$NODE" "$H/nodeclient.js" "$@"
}

echo "# http.get"
nodec h-a http "http://127.0.0.1:$PA/node-a"
assert_rc 0 "node http.get (allowed)"
assert_out h-a "ok 200 egress-it /node-a" "node got the allowed body"
assert_audit 1 "allowed connect recorded with node's exe" op=connect action=allow port="$PA" rule=srv-a exe="$(readlink -f "$NODE")"
nodec h-b http "http://127.0.0.1:$PB/node-b"
assert_out h-b "err $(lo_err EPERM)" "node http.get to the denied server: $(lo_err EPERM)"
not_isolated "a denied connect to 127.0.0.1 is refused by the namespace's own loopback, not the shim: no egress line" &&
	assert_contains "$T/h-b.err" "egress: denied connect to 127.0.0.1:$PB (rule block-b)" "egress line on node's stderr"
nodec h-c http "http://127.0.0.1:$PC/node-c"
assert_out h-c "err ECONNREFUSED" "node http.get under an errno=ECONNREFUSED rule: ECONNREFUSED"
assert_server b 0 "denied server saw no connection"
assert_server c 0 "ECONNREFUSED-rule server saw no connection"
assert_audit_lo 1 "deny recorded" op=connect action=deny port="$PB" rule=block-b errno=EPERM
assert_audit_lo 1 "deny recorded with the rule's errno" op=connect action=deny port="$PC" rule=refuse-c errno=ECONNREFUSED

echo "# http.get by name ([hosts])"
nodec h-n http "http://myservice.test:$PA/node-name"
assert_out h-n "ok 200 egress-it /node-name" "node resolved myservice.test and connected"
assert_audit 1 "connect attributed to the name" op=connect action=allow name=myservice.test port="$PA" rule=svc-name

echo "# fetch"
nodec f-a fetch "http://127.0.0.1:$PA/fetch-a"
assert_out f-a "ok 200 egress-it /fetch-a" "fetch to the allowed server"
nodec f-b fetch "http://127.0.0.1:$PB/fetch-b"
assert_out f-b "err $(lo_err EPERM)" "fetch to the denied server: cause $(lo_err EPERM)"
assert_server a 3 "allowed server saw http.get, by-name and fetch connections"
assert_server b 0 "denied server still saw nothing"

echo "# dgram"
nodec d-a udp 127.0.0.1 "$PUA" 50 nd
assert_out d-a "sent 50 errors none" "node sent 50 datagrams to the allowed receiver"
not_isolated "datagrams do not leave the namespace: 127.0.0.1 is its own loopback, not the receiver's" &&
	assert_server ua 50 "allowed receiver got all 50"
assert_audit_lo 1 "one send decision for 50 datagrams" op=send action=allow port="$PUA" proto=udp rule=udp-ok
nodec d-b udp 127.0.0.1 "$PUB" 50 nd
if isolated; then
	assert_out d-b "sent 50 errors none" "node's 50 sends to the denied receiver went to the namespace's loopback"
	assert_audit_lo 1 "one send decision for 50 datagrams" op=send action=deny port="$PUB" proto=udp rule=udp-block
else
	assert_out d-b "sent 0 errors EPERM:50" "node's 50 sends to the denied receiver failed with EPERM"
	assert_audit_ge 1 "deny send recorded" op=send action=deny port="$PUB" proto=udp rule=udp-block
fi
assert_server ub 0 "denied receiver got nothing"

echo "# dns.lookup"
nodec l-ok lookup myservice.test
assert_out l-ok "ok 127.0.0.1" "dns.lookup of a [hosts] name"
nodec l-evil lookup evil.test
assert_out l-evil "err ENOTFOUND" "dns.lookup of a denied name fails (EAI_NONAME is ENOTFOUND in node)"
assert_contains "$T/l-evil.err" "egress: denied resolve of evil.test (rule no-evil)" "egress line for the denied lookup"
assert_audit_ge 1 "deny resolve recorded" op=resolve action=deny name=evil.test errno=EAI_NONAME

broker_status st
assert_status_matches_audit st

finish
