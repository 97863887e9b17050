# t_apt.sh: children of CMD that change user stay mediated, with and
# without --isolate, as root and as an ordinary user. apt-get update and
# apt-get install --download-only against a small Debian repository served
# on loopback (a .deb of nothing, a flat repository with Packages and
# Release, python's http.server): apt's http method drops to the _apt user,
# and each of its attempts is judged, recorded with _apt's uid and the
# method's executable; a source the policy denies fails in apt's output and
# its server sees nothing. As an ordinary user (uid 65534), --isolate maps
# the user's subordinate ids into its user namespace, so that apt's drop to
# _apt and python's setgid()/setuid() to 1000 work and stay mediated; without
# subordinate ids egress-run says once that children cannot change user.
# The subordinate ids are the test's own: files bound over /etc/subuid and
# /etc/subgid in a mount namespace of the test's own. apt touches nothing
# of the host's: its configuration, lists, cache and status are under $T.
. "$ROOT/tests/integration/lib.sh"
need_build
[ "$(id -u)" = 0 ] || skip "needs root (apt's drop to _apt, the test's own mount namespace)"
for c in apt-get:apt dpkg-deb:dpkg dpkg-scanpackages:dpkg-dev setpriv:util-linux unshare:util-linux; do
	command -v "${c%%:*}" >/dev/null 2>&1 ||
		{ fail "${c%%:*} is missing (Debian package ${c#*:})"; finish; }
done
APT_UID=$(id -u _apt 2>/dev/null) || { fail "there is no _apt user (Debian package apt)"; finish; }
METHOD=$(readlink -f /usr/lib/apt/methods/http)
[ -x "$METHOD" ] || { fail "apt's http method is missing"; finish; }
PKG=egress-apt-test

# What _apt, uid 65534 and the subordinate ids run or reach must be open to
# them wherever the checkout is: copies of the build and egress-run in a
# directory open to all, and $T passable.
chmod a+x "$T"
U=$T/u
mkdir -p "$U/build" "$U/tools" "$U/tmp"
cp -a "$ROOT/build/egress-broker" "$ROOT/build/libegress.so" "$ROOT/build/lib" "$U/build/" &&
	{ [ ! -d "$ROOT/build/lib32" ] || cp -a "$ROOT/build/lib32" "$U/build/"; } &&
	cp "$ROOT/tools/egress-run" "$U/tools/" || { fail "cannot copy the build to $U"; finish; }
chmod -R a+rX "$U" && chmod 1777 "$U/tmp"
RUN=$U/tools/egress-run

# ---- the repository: one package that installs nothing, a flat repository
mkdir -p "$T/pkg/DEBIAN" "$T/repo"
cat >"$T/pkg/DEBIAN/control" <<EOF
Package: $PKG
Version: 1.0
Architecture: all
Maintainer: egress tests <egress@test.invalid>
Description: a package that installs nothing (egress t_apt)
EOF
DEB=$T/repo/${PKG}_1.0_all.deb
if ! dpkg-deb --root-owner-group --build "$T/pkg" "$DEB" >"$T/deb.err" 2>&1 ||
	! (cd "$T/repo" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>>"$T/deb.err" &&
		gzip -9nk Packages); then
	fail "cannot build the repository"
	show "$T/deb.err"
	finish
fi
{
	echo "Origin: egress-test"
	echo "Label: egress-test"
	echo "Suite: test"
	echo "Codename: test"
	echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
	echo "SHA256:"
	for f in Packages Packages.gz; do
		printf ' %s %s %s\n' "$(sha256sum <"$T/repo/$f" | cut -d' ' -f1)" "$(wc -c <"$T/repo/$f" | tr -d ' ')" "$f"
	done
} >"$T/repo/Release"
chmod -R a+rX "$T/repo"

# repo_server NAME: the repository served on 127.0.0.1 (never preloaded);
# its port is then $(port NAME), its log $T/srv-NAME.log.
repo_server() {
	"$PY" "$H/server.py" files 127.0.0.1 "$T/srv-$1.port" "$T/srv-$1.log" "$T/repo" 2>"$T/srv-$1.err" &
	bg_record $!
	echo "http 127.0.0.1" >"$T/srv-$1.kind"
	: >"$T/srv-$1.probes"
	wait_for 5 test -s "$T/srv-$1.port" || { fail "repository server $1 did not start"; show "$T/srv-$1.err"; finish; }
}
repo_server a # the repository, deb.test
repo_server b # the same, blocked.test: the policy denies it
PA=$(port a) PB=$(port b)
conns() { grep -c '^conn' "$T/srv-$1.log" 2>/dev/null || echo 0; }
mark() { wc -l <"$T/srv-$1.log" | tr -d ' '; }
since() { tail -n "+$(($2 + 1))" "$T/srv-$1.log"; } # NAME MARK: its log after MARK

# Under --isolate the host's loopback is reached only where a rule names it:
# here deb.test, a name of [hosts], on the repository's port.
{
	policy_egress
	policy_hosts deb.test=127.0.0.1 blocked.test=127.0.0.1
	policy_rule repo host=deb.test "port=$PA" proto=tcp action=allow
	policy_rule blocked host=blocked.test action=deny
} | write_policy
cp "$POLICY" "$U/policy.ini"
chmod a+r "$U/policy.ini"

# apt's own configuration, none of the host's (no apt.conf.d: no proxies,
# no hooks, no extra index targets); each run has its lists, cache and status.
A=$T/apt
mkdir -p "$A/etc/apt.conf.d" "$A/etc/sources.list.d" "$A/etc/preferences.d" "$A/etc/trusted.gpg.d"
printf 'deb [trusted=yes] http://deb.test:%s/ ./\ndeb [trusted=yes] http://blocked.test:%s/ ./\n' \
	"$PA" "$PB" >"$A/etc/sources.list"
chmod -R a+rX "$A"
# apt_dirs TAG OWNER: $T/TAG with apt's state directories and apt.conf
apt_dirs() {
	_r=$T/$1
	mkdir -p "$_r/lists" "$_r/cache" "$_r/state" "$_r/log"
	: >"$_r/state/status"
	cat >"$_r/apt.conf" <<EOF
Dir::Etc "$A/etc/";
Dir::Etc::Parts "$A/etc/apt.conf.d/";
Dir::Etc::Main "$A/etc/apt.conf";
Dir::State "$_r/state/";
Dir::State::Lists "$_r/lists/";
Dir::State::status "$_r/state/status";
Dir::Cache "$_r/cache/";
Dir::Log "$_r/log/";
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Proxy "DIRECT";
APT::Sandbox::User "_apt";
EOF
	chown -R "$2" "$_r"
	chmod -R a+rX "$_r"
	: >"$T/audit-$1.jsonl"
	chown "$2" "$T/audit-$1.jsonl"
}

# as_user TAG SUBUID SUBGID CMD...: CMD as uid 65534 (no other groups) in a
# mount namespace of the test's own where /etc/subuid and /etc/subgid hold
# the lines SUBUID and SUBGID; stdout/stderr in $T/TAG.out, .err, RC.
as_user() {
	LAST=$1
	printf '%s' "$2" >"$T/$1.subuid"
	printf '%s' "$3" >"$T/$1.subgid"
	chmod a+r "$T/$1.subuid" "$T/$1.subgid"
	shift 3
	timeout -k 5 90 unshare -m sh -c 'mount --bind "$1" /etc/subuid && mount --bind "$2" /etc/subgid ||
		exit 125; shift 2; exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"' sh \
		"$T/$LAST.subuid" "$T/$LAST.subgid" env -u EGRESS_SOCKET TMPDIR="$U/tmp" "$@" \
		>"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
	RC=$?
}

# apt_get TAG ARGS...: apt-get ARGS through egress-run $_how, as $_who,
# with the apt.conf of run $_t and the audit log $AUDIT; output in
# $T/TAG.out and .err, the exit status in RC. (No proxy from the
# environment either.)
apt_get() {
	LAST=$1
	shift
	# shellcheck disable=SC2086 # $_how is --isolate or nothing
	set -- env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY APT_CONFIG="$T/$_t/apt.conf" \
		"$RUN" $_how --quiet --policy "$U/policy.ini" --audit "$AUDIT" -- apt-get "$@"
	if [ "$_who" = user ]; then
		as_user "$LAST" "$SUBID" "$SUBID" "$@"
	else
		timeout -k 5 90 env -u EGRESS_SOCKET "$@" >"$T/$LAST.out" 2>"$T/$LAST.err" </dev/null
		RC=$?
	fi
}

# apt_checks TAG root|user [--isolate]: apt-get update, then apt-get
# install --download-only, through egress-run as root or (user) as uid
# 65534 with the subordinate ids $SUBID, and what they did.
apt_checks() {
	_t=$1 _who=$2 _how=${3:-}
	_auid=$APT_UID
	_owner=root
	if [ "$_who" = user ]; then
		_auid=$((SUBBASE + APT_UID - 1)) # _apt inside is uid APT_UID, SUBBASE+APT_UID-1 outside
		_owner=65534:65534
	fi
	_what="$_who${_how:+ $_how}"
	apt_dirs "$_t" "$_owner"
	AUDIT=$T/audit-$_t.jsonl
	_ma=$(mark a) _cb=$(conns b)
	apt_get "$_t-update" update
	assert_rc 0 "$_what: apt-get update"
	assert_contains "$T/$_t/lists/deb.test:${PA}_._Packages" "Package: $PKG" \
		"$_what: the allowed source's Packages list arrived, with the package"
	since a "$_ma" >"$T/$_t-srv-a.log"
	assert_contains "$T/$_t-srv-a.log" "req /./Release 200" "$_what: the repository served Release"
	assert_contains "$T/$_t-srv-a.log" "req /./Packages.gz 200" "$_what: and Packages"
	assert_audit_ge 1 "$_what: the http method's connects, as _apt" op=connect name=deb.test "port=$PA" \
		action=allow "uid=$_auid" "exe=$METHOD"
	assert_audit 0 "$_what: no connect to the repository by anyone but _apt" op=connect "port=$PA" "uid!=$_auid"
	assert_contains "$T/$LAST.out" "Could not resolve 'blocked.test'" "$_what: the denied source fails in apt's output"
	assert_eq "$(find "$T/$_t/lists" -name 'blocked.test*' | wc -l | tr -d ' ')" 0 \
		"$_what: and left no list"
	assert_audit_ge 1 "$_what: its lookup is denied, for _apt" op=resolve name=blocked.test action=deny \
		rule=blocked "uid=$_auid" "exe=$METHOD"
	assert_eq "$(conns b)" "$_cb" "$_what: the denied source's server saw nothing"

	_ma=$(mark a)
	_n=$(audit_count op=connect "port=$PA" action=allow "uid=$_auid")
	apt_get "$_t-download" install -y --download-only "$PKG"
	assert_rc 0 "$_what: apt-get install --download-only $PKG"
	if cmp -s "$DEB" "$T/$_t/cache/archives/${PKG}_1.0_all.deb"; then
		pass "$_what: the .deb is in the run's own archives, as served"
	else
		fail "$_what: the .deb is not in $T/$_t/cache/archives"
		show "$T/$LAST.out"
	fi
	since a "$_ma" >"$T/$_t-srv-a2.log"
	assert_contains "$T/$_t-srv-a2.log" "req /./${PKG}_1.0_all.deb 200" "$_what: the repository served it"
	assert_audit $((_n + 1)) "$_what: one more connect, by _apt" op=connect "port=$PA" action=allow "uid=$_auid"
}

echo "# as root, without --isolate"
apt_checks root-plain root
echo "# as root, with --isolate"
apt_checks root-iso root --isolate

# ---- as an ordinary user: subordinate ids of the test's own
SUBBASE=400000
SUBID="nobody:$SUBBASE:65536
"
if [ ! -f /etc/subuid ] || [ ! -f /etc/subgid ]; then
	echo "  (no /etc/subuid or /etc/subgid to bind a file over: the ordinary user's checks are left out)"
elif [ -z "$(command -v newuidmap)" ] || [ -z "$(command -v newgidmap)" ]; then
	fail "newuidmap/newgidmap are missing (Debian package uidmap; sh tools/install-deps.sh)"
else
	sum_before=$(cat /etc/subuid /etc/subgid | sha256sum)
	echo "# as uid 65534, with --isolate and subordinate ids"
	apt_checks user-iso user --isolate

	PYU=/usr/bin/python3 # the system's: uid 65534 may not reach $PY (pyenv under /root)
	[ -x "$PYU" ] || { fail "$PYU is missing (Debian package python3)"; finish; }
	setuid_py='import errno, os, socket, sys
try:
    os.setgroups([]); os.setgid(1000); os.setuid(1000)
except OSError as e:
    print("cannot change user:", errno.errorcode[e.errno])
print("uid", os.getuid(), os.getgid())
c = socket.create_connection(("deb.test", int(sys.argv[1])), timeout=10)
c.sendall(b"GET /Release HTTP/1.0\r\n\r\n"); print(c.recv(100).split(b"\r\n")[0].decode())
try:
    socket.create_connection(("blocked.test", int(sys.argv[2])), timeout=10); print("blocked.test reached")
except OSError:
    print("blocked.test refused")'
	AUDIT=$T/audit-py.jsonl
	: >"$AUDIT"
	chown 65534 "$AUDIT"
	cb=$(conns b)
	as_user py "$SUBID" "$SUBID" "$RUN" --isolate --policy "$U/policy.ini" --audit "$AUDIT" -- \
		"$PYU" -c "$setuid_py" "$PA" "$PB"
	assert_rc 0 "as uid 65534: a python child that changes to uid 1000"
	assert_out py "uid 1000 1000
HTTP/1.0 200 OK
blocked.test refused" "uid 1000 inside: the allowed server answers by name, the denied name is refused"
	assert_not_contains "$T/py.err" "cannot change user" "no line about children that cannot change user"
	assert_audit 1 "its connect, recorded with its uid as the host sees it ($SUBBASE+1000-1)" op=connect \
		name=deb.test "port=$PA" action=allow "uid=$((SUBBASE + 999))" transport=direct
	assert_audit_ge 1 "its denied lookup, with the same uid" op=resolve name=blocked.test action=deny \
		"uid=$((SUBBASE + 999))"
	assert_eq "$(conns b)" "$cb" "the denied server saw nothing"

	echo "# as uid 65534, with --isolate and no subordinate ids"
	AUDIT=$T/audit-nosub.jsonl
	: >"$AUDIT"
	chown 65534 "$AUDIT"
	as_user nosub "" "" "$RUN" --isolate --policy "$U/policy.ini" --audit "$AUDIT" -- \
		"$PYU" -c "$setuid_py" "$PA" "$PB"
	assert_rc 0 "without subordinate ids"
	assert_lines "$T/nosub.err" "egress-run: --isolate: only uid 0 is mapped in the user namespace, so CMD's children cannot change user: nobody has no subordinate uids in /etc/subuid" 1 \
		"egress-run says once that children cannot change user, and why"
	assert_out nosub "cannot change user: EPERM
uid 0 0
HTTP/1.0 200 OK
blocked.test refused" "the child cannot change user (setgroups: EPERM); as uid 0 inside it is still mediated"
	assert_audit 1 "recorded with the user's own uid" op=connect name=deb.test "port=$PA" action=allow uid=65534
	as_user nosubgid "$SUBID" "" "$RUN" --isolate --policy "$U/policy.ini" -- true
	assert_contains "$T/nosubgid.err" "cannot change user: nobody has no subordinate gids in /etc/subgid" \
		"subordinate uids without gids: the line names /etc/subgid"
	as_user nosubq "" "" "$RUN" --isolate --quiet --policy "$U/policy.ini" -- true
	assert_rc 0 "--quiet without subordinate ids"
	assert_empty "$T/nosubq.err" "with --quiet, no line"
	as_user badsub "nobody:4294967000:65536
" "$SUBID" "$RUN" --isolate --policy "$U/policy.ini" -- true
	assert_rc 0 "subordinate uids that newuidmap refuses (past the last uid): the run goes on"
	assert_contains "$T/badsub.err" "cannot change user: the subordinate ids in /etc/subuid and /etc/subgid could not be mapped (newuidmap: " \
		"and the line gives newuidmap's refusal"

	assert_eq "$(cat /etc/subuid /etc/subgid | sha256sum)" "$sum_before" "the host's /etc/subuid and /etc/subgid are as they were"
fi

# ---- nothing of the host's apt state was used
assert_eq "$(find /var/lib/apt/lists -name 'deb.test*' -o -name 'blocked.test*' 2>/dev/null | wc -l | tr -d ' ')" 0 \
	"the host's apt lists have nothing of these runs"
assert_eq "$(find /var/cache/apt -name "${PKG}_*" 2>/dev/null | wc -l | tr -d ' ')" 0 \
	"the host's apt cache has nothing of these runs"
assert_server b 0 "the denied source's server saw nothing in all"

finish
