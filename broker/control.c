/* control.c: the control channel: where the socket is, how STATUS reads
 * (text and JSON), and the client side used by `status` and `reload`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"

#define CONTROL_TOP 10            /* destinations in "top denied" */
#define CONTROL_TIMEOUT_S 30      /* a reload of a large policy may take a while */

int control_socket_path(const char *opt, char *out, size_t cap)
{
	struct sockaddr_un sun;
	const char *p = opt;

	if (!p || !*p)
		p = getenv("EGRESS_SOCKET");
	if (!p || !*p)
		p = BROKER_DEFAULT_SOCKET;
	if (strlen(p) >= sizeof sun.sun_path || strlen(p) >= cap) {
		log_error("socket path too long: %s", p);
		return -1;
	}
	strcpy(out, p);
	return 0;
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
	buf_printf(&b, "resolver: %lu lookups; %zu synthetic addresses mapped\n", ci->lookups,
		   ci->synthetic);
	buf_printf(&b, "top denied:%s\n", ntop ? "" : " none");
	for (size_t i = 0; i < ntop; i++) {
		int w = (int)(strlen(top[i].dest) + 1 + strlen(audit_l4_name(top[i].l4)));
		if (w > width)
			width = w;
	}
	for (size_t i = 0; i < ntop; i++) {
		int w = (int)(strlen(top[i].dest) + 1 + strlen(audit_l4_name(top[i].l4)));
		buf_printf(&b, "  %s %s%*s %lu\n", top[i].dest, audit_l4_name(top[i].l4), width - w,
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
	buf_printf(&b, ",\"policy\":{\"path\":");
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
		   "\"malformed\":%lu},\"transport\":",
		   st->clients_now, st->clients_total, st->allow, st->deny, st->rewrite, st->resolve,
		   st->connect, st->send, st->malformed);
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
	buf_printf(&b, "]},\"resolver\":{\"lookups\":%lu,\"synthetic\":%zu},\"top_denied\":[",
		   ci->lookups, ci->synthetic);
	for (size_t i = 0; i < ntop; i++) {
		buf_printf(&b, "%s{\"destination\":", i ? "," : "");
		buf_json_str(&b, top[i].dest);
		buf_printf(&b, ",\"proto\":\"%s\",\"count\":%lu}", audit_l4_name(top[i].l4),
			   top[i].count);
	}
	buf_printf(&b, "]}\n");
	return b.len;
}

int control_request(const char *path, int what, int *status, char *text, size_t cap, char *err,
		    size_t errlen)
{
	uint8_t *buf = NULL;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CONTROL_TIMEOUT_S };
	struct proto_msg *m;
	ssize_t n;
	int fd, e;

	err[0] = 0;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	m = calloc(1, sizeof *m);
	buf = malloc(PROTO_MSG_MAX);
	if (!m || !buf) {
		free(m);
		free(buf);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->type = PROTO_CONTROL;
	m->id = 1;
	m->u.control.what = (uint8_t)what;
	n = proto_encode(m, buf, PROTO_MSG_MAX);
	if (n < 0 || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
		snprintf(err, errlen, "cannot send to broker at %s: %s", path, strerror(errno));
		goto fail;
	}
	do
		n = recv(fd, buf, PROTO_MSG_MAX, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		snprintf(err, errlen, "no answer from broker at %s: %s", path,
			 n < 0 ? strerror(errno) : "connection closed");
		goto fail;
	}
	if (proto_decode(buf, (size_t)n, m) != 0 || m->id != 1 ||
	    (m->type != PROTO_TEXT && m->type != PROTO_ERROR)) {
		snprintf(err, errlen, "malformed answer from broker at %s", path);
		goto fail;
	}
	if (m->type == PROTO_ERROR) {
		snprintf(err, errlen, "broker at %s refused: %s", path,
			 m->u.error == PROTO_E_DENIED ? "permission denied"
			 : m->u.error == PROTO_E_VERSION ? "protocol version mismatch"
							 : "request not understood");
		goto fail;
	}
	*status = m->u.text.status;
	snprintf(text, cap, "%s", m->u.text.text);
	free(buf);
	free(m);
	close(fd);
	return 0;
fail:
	free(buf);
	free(m);
	close(fd);
	return -1;
}
