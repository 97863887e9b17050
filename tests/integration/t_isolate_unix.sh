# t_isolate_unix.sh: the host's UNIX sockets under egress-run --isolate. A
# daemon or relay listening on a path socket (a local proxy, a container
# engine, a terminal multiplexer) would be a way out of the namespace that
# no packet filter sees: /run is covered, and every UNIX socket under /tmp,
# /var/tmp and the home directory is hidden (covered with /dev/null, so a
# connect is refused), except those the policy names in [egress] unix,
# which are shown where they were. Without --isolate all of them are
# reachable: UNIX sockets are not judged (the documented limit).
. "$ROOT/tests/integration/lib.sh"
need_build
[ "$(id -u)" = 0 ] || skip "needs root for its sockets under /run and the home directory"
command -v nft >/dev/null 2>&1 || { fail "nft is missing (Debian package nftables)"; finish; }
RUN=$ROOT/tools/egress-run

D_TMP=/tmp/egress-it-unix-$$
D_RUN=/run/egress-it-unix-$$
D_HOME=$HOME/.egress-it-unix-$$
trap 'rm -rf "$D_TMP" "$D_RUN" "$D_HOME"' EXIT
mkdir -p "$D_TMP" "$D_RUN" "$D_HOME"
chmod 0755 "$D_TMP" "$D_RUN" "$D_HOME"
SOCKS="$D_TMP/relay.sock $D_TMP/named.sock $D_RUN/relay.sock $D_RUN/named.sock $D_HOME/relay.sock"
# shellcheck disable=SC2086 # the paths hold no spaces
"$PY" "$H/unixserve.py" $SOCKS >"$T/serve.log" 2>"$T/serve.err" &
bg_record $!
wait_for 5 grep -q ready "$T/serve.log" || { fail "unixserve did not start"; show "$T/serve.err"; finish; }

{
	policy_egress
	echo "unix = $D_TMP/named.sock, $D_RUN/named*"
} | write_policy

want_all="egress-it-unix-$$/relay ok
egress-it-unix-$$/named ok
egress-it-unix-$$/relay ok
egress-it-unix-$$/named ok
.egress-it-unix-$$/relay ok"
# shellcheck disable=SC2086
run_plain plain "$PY" "$H/unixconn.py" $SOCKS
assert_out plain "$want_all" "KNOWN LIMIT without --isolate: every UNIX socket is reachable"

iso() { # TAG RUN POLICY PYTHON CLIENT [USER...]: the client under egress-run --isolate
	_tag=$1 _run=$2 _pol=$3 _py=$4 _cl=$5
	shift 5
	# shellcheck disable=SC2086
	timeout -k 5 60 "$@" "$_run" --isolate --quiet --policy "$_pol" -- "$_py" "$_cl" \
		$SOCKS >"$T/$_tag.out" 2>"$T/$_tag.err" </dev/null
	RC=$?
}
before=$(grep -c '^conn' "$T/serve.log")
iso root "$RUN" "$POLICY" "$PY" "$H/unixconn.py"
assert_out root "egress-it-unix-$$/relay err ECONNREFUSED
egress-it-unix-$$/named ok
egress-it-unix-$$/relay err ENOENT
egress-it-unix-$$/named ok
.egress-it-unix-$$/relay err ECONNREFUSED" \
	"isolated: only the sockets the policy names answer (/tmp and home hidden, /run covered)"
assert_eq "$(($(grep -c '^conn' "$T/serve.log") - before))" 2 "the servers saw exactly the two named"
assert_not_contains "$T/root.err" "egress-broker sandbox" "the sandbox said nothing"

# an ordinary user, through a user namespace: the same view (copies of
# what it runs in a directory open to all, and the system's python3)
if command -v setpriv >/dev/null 2>&1 && [ -x /usr/bin/python3 ]; then
	U=$T/unpriv
	mkdir -p "$U/tools" "$U/tmp"
	cp -a "$ROOT/build" "$U/" && cp "$RUN" "$U/tools/" && cp "$POLICY" "$U/policy.ini" &&
		cp "$H/unixconn.py" "$U/"
	chmod -R a+rX "$U" && chmod 1777 "$U/tmp" && chmod a+x "$T"
	before=$(grep -c '^conn' "$T/serve.log")
	iso user "$U/tools/egress-run" "$U/policy.ini" /usr/bin/python3 "$U/unixconn.py" \
		setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$HOME" TMPDIR="$U/tmp"
	assert_contains "$T/user.out" "egress-it-unix-$$/named ok" "as uid 65534: a named socket answers"
	assert_contains "$T/user.out" "egress-it-unix-$$/relay err ECONNREFUSED" \
		"as uid 65534: an unnamed one under /tmp is hidden"
	assert_not_contains "$T/user.out" "relay ok" "as uid 65534: no unnamed socket answers"
	assert_eq "$(($(grep -c '^conn' "$T/serve.log") - before))" 2 "the servers saw only the named two"
fi
finish
