/* control.c: the daemon's side of the control channel, shaped as
 * OpenNTPD's: where the socket is, the hardened listening socket (stale
 * socket probe included), CONTROL requests (status, reload) and how STATUS
 * reads, as text and as JSON. The client side is ctl.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"

#define CONTROL_TOP 10            /* destinations in "top denied" */
#define CONTROL_BACKLOG 128

static mode_t control_mode = 0660; /* the listening socket's mode (--socket-mode) */

int control_socket_path(const char *opt, char *out, size_t cap)
{
	struct sockaddr_un sun;
	const char *p = opt;

	if (!p || !*p)
		p = getenv("EGRESS_SOCKET");
	if (!p || !*p)
		p = PROTO_DEFAULT_SOCKET;
	if (strlen(p) >= sizeof sun.sun_path || strlen(p) >= cap) {
		log_error("socket path too long: %s", p);
		return -1;
	}
	strcpy(out, p);
	return 0;
}

/* ------------------------------------------------------- listening socket */

int control_socket_mode(const char *arg, char *err, size_t errlen)
{
	char *end;
	unsigned long m;

	errno = 0;
	m = strtoul(arg, &end, 8);
	if (!*arg || *end || errno || m > 0777 || (m & 0600) != 0600) {
		snprintf(err, errlen,
			 "--socket-mode %s: give an octal mode from 0600 to 0777 (the owner "
			 "must keep read and write)", arg);
		return -1;
	}
	control_mode = (mode_t)m;
	return 0;
}

/* Creates the directories above path (mode 0755) that are missing. Returns
 * 0, or -1 with the reason in err. */
static int control_mkdir_parent(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;

	snprintf(dir, sizeof dir, "%s", path);
	for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	/* The last component's directory must now be a directory. */
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s is not a directory", dir);
			return -1;
		}
	}
	return 0;
}

/* Clears a stale socket at path: only a socket on which nothing answers is
 * removed. Returns 0 (path free), or -1 with the reason in err. */
static int control_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc, e;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		snprintf(err, errlen, "another broker is running at %s", path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		snprintf(err, errlen, "%s: %s; not removing it", path, strerror(e));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The socket appears at its path only once it accepts connections:
 * parent directory created if missing (0755), stale socket cleared (a live
 * broker there is refused), then umask, bind to PATH.tmp-<pid>, chmod 0660
 * (or the --socket-mode), listen, and rename() onto PATH. The same uid can
 * always connect; group members (and others, with a mode such as 0666) too
 * when the directory lets them. Control requests stay limited to root and
 * the broker's uid whatever the mode (control_handle).
 */
int control_listen(const char *path, struct listener *ln, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, n;

	ln->fd = -1;
	if (snprintf(ln->path, sizeof ln->path, "%s", path) >= (int)sizeof ln->path) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	n = snprintf(sun.sun_path, sizeof sun.sun_path, "%s.tmp-%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof sun.sun_path) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	if (control_mkdir_parent(path, err, errlen) < 0 || control_clear_stale(path, err, errlen) < 0)
		return -1;
	unlink(sun.sun_path); /* left by a crashed broker with our pid */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0117);
	n = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (n < 0) {
		snprintf(err, errlen, "bind %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(sun.sun_path, control_mode) < 0 || listen(fd, CONTROL_BACKLOG) < 0 ||
	    rename(sun.sun_path, path) < 0 || lstat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(sun.sun_path);
		close(fd);
		return -1;
	}
	ln->fd = fd;
	ln->dev = st.st_dev;
	ln->ino = st.st_ino;
	return 0;
}

void control_unlisten(struct listener *ln)
{
	struct stat st;

	if (ln->fd < 0)
		return;
	close(ln->fd);
	ln->fd = -1;
	if (lstat(ln->path, &st) == 0 && st.st_dev == ln->dev && st.st_ino == ln->ino)
		unlink(ln->path);
}

/* ---------------------------------------------------------------- requests */

void control_handle(struct server *s, uid_t uid, int what, struct proto_msg *ans)
{
	struct proto_text *t = &ans->u.text;
	struct control_info ci;
	size_t len = 0;

	if (uid != geteuid() && uid != 0) {
		ans->type = PROTO_ERROR;
		ans->u.error = PROTO_E_DENIED;
		return;
	}
	ans->type = PROTO_TEXT;
	t->status = 0;
	switch (what) {
	case PROTO_CTL_STATUS:
		server_info(s, &ci);
		len = control_status_text(&ci, t->text, sizeof t->text);
		break;
	case PROTO_CTL_STATUS_JSON:
		server_info(s, &ci);
		len = control_status_json(&ci, t->text, sizeof t->text);
		break;
	case PROTO_CTL_RELOAD:
		t->status = server_reload(s, t->text, sizeof t->text) < 0 ? 1 : 0;
		len = strlen(t->text);
		break;
	}
	t->len = (uint32_t)len;
}

/* Formats seconds as 45s, 3m12s, 2h03m12s or 4d02h03m. */
static void control_uptime(struct buf *b, long s)
{
	if (s < 60)
		buf_printf(b, "%lds", s);
	else if (s < 3600)
		buf_printf(b, "%ldm%02lds", s / 60, s % 60);
	else if (s < 86400)
		buf_printf(b, "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
	else
		buf_printf(b, "%ldd%02ldh%02ldm", s / 86400, s / 3600 % 24, s / 60 % 60);
}

/* The relay counters of ci; zero when it has none. */
static const struct transport_stats *relay_of(const struct control_info *ci)
{
	static const struct transport_stats none;

	return ci->relay ? ci->relay : &none;
}

size_t control_status_text(const struct control_info *ci, char *out, size_t cap)
{
	const struct stats *st = ci->stats;
	struct stats_top top[CONTROL_TOP];
	size_t ntop = stats_top_denied(st, top, CONTROL_TOP);
	int width = 0;
	struct buf b;

	buf_init(&b, out, cap);
	buf_printf(&b, "egress-broker %s, pid %ld, up ", BROKER_VERSION, (long)ci->pid);
	control_uptime(&b, ci->uptime_s);
	buf_printf(&b, "\nsocket:   %s\n", ci->socket ? ci->socket : "none");
	buf_printf(&b, "policy:   %s (%u rules, sha256 %s, loaded ", ci->policy_path, ci->rules,
		   ci->sha256);
	buf_time(&b, &ci->loaded_at, false);
	buf_printf(&b, ")\nlast reload error: ");
	if (ci->last_error) {
		buf_printf(&b, "%s (at ", ci->last_error);
		buf_time(&b, &ci->last_error_at, false);
		buf_printf(&b, ")\n");
	} else {
		buf_printf(&b, "none\n");
	}
	if (!ci->audit_path)
		buf_printf(&b, "audit:    none\n");
	else if (ci->audit_error)
		buf_printf(&b, "audit:    %s (error: %s, %lu events not written)\n", ci->audit_path,
			   ci->audit_error, ci->audit_failures);
	else if (ci->audit_failures)
		buf_printf(&b, "audit:    %s (ok, %lu events not written earlier)\n", ci->audit_path,
			   ci->audit_failures);
	else
		buf_printf(&b, "audit:    %s (ok)\n", ci->audit_path);
	if (ci->audit_path && ci->audit_reopened)
		buf_printf(&b, "          recreated %lu time(s) after it was removed\n",
			   ci->audit_reopened);
	buf_printf(&b, "clients:  %lu connected, %lu total\n", st->clients_now, st->clients_total);
	buf_printf(&b,
		   "decisions: %lu allow, %lu deny, %lu rewrite (%lu resolve, %lu connect, %lu send); "
		   "%lu malformed messages\n",
		   st->allow, st->deny, st->rewrite, st->resolve, st->connect, st->send,
		   st->malformed);
	buf_printf(&b, "          %lu connects applied from the shims' cached verdicts\n",
		   st->cached);
	buf_printf(&b, "transport: %s; relay: %lu active, %lu total, %llu bytes sent, %llu received\n",
		   ci->transport ? ci->transport : "direct", relay_of(ci)->active,
		   relay_of(ci)->total, (unsigned long long)relay_of(ci)->sent,
		   (unsigned long long)relay_of(ci)->received);
	for (size_t i = 0; i < ci->nconns; i++) {
		const struct transport_conn *k = &ci->conns[i];

		buf_printf(&b, "  relaying %s (pid %ld, rule %s) for ", k->dest, (long)k->pid, k->rule);
		control_uptime(&b, k->age_s);
		buf_printf(&b, ": %llu bytes sent, %llu received\n", (unsigned long long)k->sent,
			   (unsigned long long)k->received);
	}
	if (ci->nconns < relay_of(ci)->active)
		buf_printf(&b, "  and %lu more\n", relay_of(ci)->active - ci->nconns);
	buf_printf(&b, "resolver: %lu lookups; %zu synthetic addresses mapped; ", ci->lookups,
		   ci->synthetic);
	if (ci->stub_port)
		buf_printf(&b, "lookup stub on 127.0.0.1:%u, %lu queries\n", ci->stub_port,
			   ci->stub_queries);
	else
		buf_printf(&b, "no lookup stub\n");
	buf_printf(&b, "datagram relays: %lu active, %lu total\n", ci->dgram_active,
		   ci->dgram_total);
	buf_printf(&b,
		   "dropped datagrams: %lu in isolated namespaces (%lu lost before they were read, "
		   "%lu not itemised in the audit log); %lu malformed NFLOG messages\n",
		   st->dropped.dropped, st->dropped.lost, st->dropped.unitemised,
		   st->dropped.malformed);
	if (!ci->isolate)
		buf_printf(&b, "isolation: off (not started with --isolate)\n");
	else
		buf_printf(&b, "isolation: %zu sandbox%s capturing, %lu since start\n",
			   ci->sandboxes_active, ci->sandboxes_active == 1 ? "" : "es",
			   ci->sandboxes_total);
	for (size_t i = 0; i < ci->nsandboxes; i++)
		buf_printf(&b, "  sandbox pid %ld: %lu connections, %lu queries captured\n",
			   (long)ci->sandboxes[i].pid, ci->sandboxes[i].connections,
			   ci->sandboxes[i].queries);
	if (ci->nsandboxes < ci->sandboxes_active)
		buf_printf(&b, "  and %zu more\n", ci->sandboxes_active - ci->nsandboxes);
	buf_printf(&b, "top denied:%s\n", ntop ? "" : " none");
	for (size_t i = 0; i < ntop; i++) {
		int w = (int)(strlen(top[i].dest) + 1 + strlen(proto_l4_name(top[i].l4)));
		if (w > width)
			width = w;
	}
	for (size_t i = 0; i < ntop; i++) {
		int w = (int)(strlen(top[i].dest) + 1 + strlen(proto_l4_name(top[i].l4)));
		buf_printf(&b, "  %s %s%*s %lu\n", top[i].dest, proto_l4_name(top[i].l4), width - w,
			   "", top[i].count);
	}
	return b.len;
}

size_t control_status_json(const struct control_info *ci, char *out, size_t cap)
{
	const struct stats *st = ci->stats;
	struct stats_top top[CONTROL_TOP];
	size_t ntop = stats_top_denied(st, top, CONTROL_TOP);
	struct buf b;

	buf_init(&b, out, cap);
	buf_printf(&b, "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%ld,\"socket\":", BROKER_VERSION,
		   (long)ci->pid, ci->uptime_s);
	buf_json_str(&b, ci->socket);
	buf_printf(&b, ",\"isolate\":%s,\"policy\":{\"path\":", ci->isolate ? "true" : "false");
	buf_json_str(&b, ci->policy_path);
	buf_printf(&b, ",\"sha256\":");
	buf_json_str(&b, ci->sha256);
	buf_printf(&b, ",\"rules\":%u,\"loaded_at\":\"", ci->rules);
	buf_time(&b, &ci->loaded_at, false);
	buf_printf(&b, "\",\"last_error\":");
	buf_json_str(&b, ci->last_error);
	buf_printf(&b, "},\"audit\":{\"path\":");
	buf_json_str(&b, ci->audit_path);
	buf_printf(&b, ",\"error\":");
	buf_json_str(&b, ci->audit_error);
	buf_printf(&b, ",\"failures\":%lu,\"reopened\":%lu", ci->audit_failures,
		   ci->audit_reopened);
	buf_printf(&b,
		   "},\"clients\":{\"connected\":%lu,\"total\":%lu},\"decisions\":{\"allow\":%lu,"
		   "\"deny\":%lu,\"rewrite\":%lu,\"resolve\":%lu,\"connect\":%lu,\"send\":%lu,"
		   "\"cached\":%lu,\"malformed\":%lu},\"transport\":",
		   st->clients_now, st->clients_total, st->allow, st->deny, st->rewrite, st->resolve,
		   st->connect, st->send, st->cached, st->malformed);
	buf_json_str(&b, ci->transport ? ci->transport : "direct");
	buf_printf(&b,
		   ",\"relay\":{\"active\":%lu,\"total\":%lu,\"bytes_sent\":%llu,"
		   "\"bytes_received\":%llu,\"connections\":[",
		   relay_of(ci)->active, relay_of(ci)->total, (unsigned long long)relay_of(ci)->sent,
		   (unsigned long long)relay_of(ci)->received);
	for (size_t i = 0; i < ci->nconns; i++) {
		const struct transport_conn *k = &ci->conns[i];

		buf_printf(&b, "%s{\"destination\":", i ? "," : "");
		buf_json_str(&b, k->dest);
		buf_printf(&b, ",\"pid\":%ld,\"rule\":", (long)k->pid);
		buf_json_str(&b, k->rule);
		buf_printf(&b, ",\"age_s\":%ld,\"bytes_sent\":%llu,\"bytes_received\":%llu}",
			   k->age_s, (unsigned long long)k->sent, (unsigned long long)k->received);
	}
	buf_printf(&b, "]},\"resolver\":{\"lookups\":%lu,\"synthetic\":%zu,\"stub_port\":%u,"
		   "\"stub_queries\":%lu},\"datagram_relays\":{\"active\":%lu,\"total\":%lu},"
		   "\"dropped\":{\"datagrams\":%lu,"
		   "\"lost\":%lu,\"unitemised\":%lu,\"malformed\":%lu}",
		   ci->lookups, ci->synthetic, ci->stub_port, ci->stub_queries, ci->dgram_active,
		   ci->dgram_total, st->dropped.dropped,
		   st->dropped.lost, st->dropped.unitemised, st->dropped.malformed);
	buf_printf(&b, ",\"sandboxes\":{\"active\":%zu,\"total\":%lu,\"list\":[",
		   ci->sandboxes_active, ci->sandboxes_total);
	for (size_t i = 0; i < ci->nsandboxes; i++)
		buf_printf(&b, "%s{\"pid\":%ld,\"connections\":%lu,\"queries\":%lu}", i ? "," : "",
			   (long)ci->sandboxes[i].pid, ci->sandboxes[i].connections,
			   ci->sandboxes[i].queries);
	buf_printf(&b, "]},\"top_denied\":[");
	for (size_t i = 0; i < ntop; i++) {
		buf_printf(&b, "%s{\"destination\":", i ? "," : "");
		buf_json_str(&b, top[i].dest);
		buf_printf(&b, ",\"proto\":\"%s\",\"count\":%lu}", proto_l4_name(top[i].l4),
			   top[i].count);
	}
	buf_printf(&b, "]}\n");
	return b.len;
}

