/* dgram.c: datagrams through the relay transport and SOCKS5 proxies. A
 * datagram that a rewrite rule with `transport = relay` or `socks5://`
 * matches goes to an association of the broker's instead: a UDP socket on
 * 127.0.0.1 (the SEND verdict's port), one per process, destination and
 * rule, which sends what the program sends on from a socket of its own,
 * passes the answers back, counts both ways and holds the rule's limit.
 * The relay sends to the destination itself; through SOCKS5 the broker
 * holds a UDP ASSOCIATE (RFC 1928 7) with the proxy, over a TCP
 * connection that lives as long as the association, and each datagram
 * goes to the proxy's relay with a header naming the destination (by name
 * when the program had one: the proxy resolves it). Datagrams that come
 * while the association is being set up wait, DGRAM_PENDING of them.
 * Only the process the association is for is relayed: each sending socket
 * is checked against it, when it asks (the shim names its port) or else
 * when its datagram comes (by its socket, in /proc); any other source is
 * dropped, and the answers go to the latest of the process's sockets that
 * sent (a process that sends to one destination from two sockets at once
 * gets the answers of both on the later one). An association ends when it
 * has been idle for DGRAM_IDLE_S more than the shims may keep the verdict
 * that sends there, and its close is
 * recorded with its byte counts, as a relayed connection's. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uthash.h>

#include "broker.h"

#define DGRAM_IDLE_S 60     /* an association without traffic this long ends */
#define DGRAM_MAX 1024      /* associations at once, all processes */
#define DGRAM_READS 64      /* datagrams moved per wake-up and direction */
#define DGRAM_PENDING 16    /* datagrams held while a SOCKS5 association is set up */
#define DGRAM_SOURCES 8     /* the process's sockets an association knows by port */

enum dgram_state {
	DG_READY,       /* datagrams move */
	DG_CONNECTING,  /* SOCKS5: the control connection to the proxy */
	DG_METHOD,      /* its method reply */
	DG_AUTH,        /* its username/password reply */
	DG_ASSOCIATE,   /* its reply to UDP ASSOCIATE */
};

/* A datagram that came before the association was up. */
struct pending {
	size_t len;
	uint8_t data[];
};

struct dgram_key {
	pid_t pid;
	struct proto_addr addr;
	uint16_t port;
	char rule[PROTO_RULE_MAX + 1];
};

struct dgram {
	struct dgram_key key;
	UT_hash_handle hh;
	struct dgrams *m;
	struct watch w[4];              /* 0: the program's side (127.0.0.1), 1: the destination's
					 * (or the SOCKS5 relay's), 2: the SOCKS5 control connection,
					 * 3: the program's side on ::1 (same port; -1 without IPv6) */
	int prog_side;                  /* 0 or 3: the side prog sent on */
	enum dgram_state state;
	struct policy_transport pt;     /* a copy: a reload may free the policy's */
	long deadline_ms;               /* SOCKS5: for the association to be up */
	uint8_t hs[600];                /* its handshake's bytes read so far */
	size_t hslen;
	struct pending *pend[DGRAM_PENDING];
	int npend;
	uint16_t local_port;
	struct sockaddr_storage prog;   /* the program's socket that sent last */
	socklen_t proglen;
	uint16_t ports[DGRAM_SOURCES];  /* ports of the process's sockets, found when they asked */
	unsigned nports;                /* ports taken so far (the oldest gives way) */
	uid_t uid;
	char exe[PATH_MAX];
	char name[PROTO_NAME_MAX + 1];
	char text[64];                  /* the transport, as recorded */
	uint64_t limit, sent, received;
	long idle_ms;                   /* ends after this long without traffic */
	unsigned long dropped;          /* from sources that were not the program */
	bool limit_hit;
	long last_ms;
};

struct dgrams {
	struct loop *loop;
	struct dgram_sink sink;
	struct dgram *all;
	unsigned long active, total;
	dev_t ns_dev; /* the broker's network namespace: the programs' */
	ino_t ns_ino;
};

struct dgrams *dgrams_new(struct loop *l, const struct dgram_sink *sink)
{
	struct dgrams *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->loop = l;
	m->sink = *sink;
	if (capture_netns(getpid(), &m->ns_dev, &m->ns_ino) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

/* Records the end of g, with what it moved. */
static void record_close(struct dgrams *m, const struct dgram *g, const char *upstream)
{
	struct audit_event ev = {
		.pid = g->key.pid, .uid = g->uid, .exe = g->exe[0] ? g->exe : NULL,
		.op = AUDIT_OP_CLOSE, .name = g->name[0] ? g->name : NULL,
		.addr = g->name[0] ? NULL : &g->key.addr, .port = g->key.port, .l4 = PROTO_L4_UDP,
		.action = PROTO_REWRITE, .rule = g->key.rule, .transport = g->text,
		.upstream = upstream, .relayed = true, .limit_hit = g->limit_hit,
		.bytes_sent = g->sent, .bytes_received = g->received,
	};

	clock_gettime(CLOCK_REALTIME, &ev.time);
	m->sink.record(m->sink.ctx, &ev);
}

static void dgram_free(struct dgrams *m, struct dgram *g, const char *why)
{
	if (why)
		record_close(m, g, why);
	for (int i = 0; i < 4; i++) {
		if (g->w[i].fd < 0)
			continue;
		loop_unwatch(m->loop, &g->w[i]);
		close(g->w[i].fd);
	}
	for (int i = 0; i < g->npend; i++)
		free(g->pend[i]);
	HASH_DEL(m->all, g);
	m->active--;
	free(g);
}

/* True when n more bytes stay within g's limit; else marks it cut. */
static bool within(struct dgram *g, size_t n)
{
	if (g->limit && g->sent + g->received + n > g->limit)
		g->limit_hit = true;
	return !g->limit_hit;
}

/* Sends the program's datagram on: as it is to the destination, or with
 * the SOCKS5 header to the proxy's relay. */
static void send_on(struct dgram *g, const uint8_t *data, size_t n)
{
	uint8_t buf[65536 + 300];
	int h = 0;

	if (g->pt.kind == POLICY_SOCKS5) {
		h = upstream_socks5_udp_header(buf, sizeof buf, g->name[0] ? g->name : NULL,
					       &g->key.addr, g->key.port);
		if (h < 0 || n > sizeof buf - (size_t)h)
			return;
		memcpy(buf + h, data, n);
		data = buf;
	}
	if (send(g->w[1].fd, data, n + (size_t)h, MSG_DONTWAIT) == (ssize_t)(n + (size_t)h))
		g->sent += n;
}

/* Holds a datagram until the association is up (the oldest are kept). */
static void hold(struct dgram *g, const uint8_t *data, size_t n)
{
	struct pending *p;

	if (g->npend == DGRAM_PENDING || !(p = malloc(sizeof *p + n)))
		return;
	p->len = n;
	memcpy(p->data, data, n);
	g->pend[g->npend++] = p;
}

/* True when port is one the association knows a socket of the process by. */
static bool known_port(const struct dgram *g, uint16_t port)
{
	for (unsigned i = 0; i < g->nports && i < DGRAM_SOURCES; i++)
		if (g->ports[i] == port)
			return true;
	return false;
}

/* True when src is one of the process's sockets the association knows by
 * its port (a loopback address: where the shim's datagrams come from). */
static bool known_source(const struct dgram *g, const struct sockaddr_storage *src)
{
	struct proto_addr a;
	uint16_t port;

	return proto_addr_from_sockaddr((const struct sockaddr *)src, src->ss_family, &a, &port) ==
		       0 &&
	       ask_addr_loopback(&a) && known_port(g, port);
}

/* The process's socket of port asked for a datagram here: once it is found
 * to be the process's (in /proc, while the shim holds it), its datagrams
 * are taken by the port alone, so that one sent from a socket closed at
 * once (a fire-and-forget sender) is not lost to a late lookup. */
static void admit_source(struct dgram *g, uint16_t port)
{
	/* bound to loopback, or (found next) to the wildcard address */
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	if (known_port(g, port))
		return;
	if (capture_holds(g->key.pid, g->m->ns_dev, g->m->ns_ino, (struct sockaddr *)&lo) ||
	    capture_holds(g->key.pid, g->m->ns_dev, g->m->ns_ino, (struct sockaddr *)&lo6))
		g->ports[g->nports++ % DGRAM_SOURCES] = port;
}

/* The program's side (side 0, or 3 for ::1): what it sends goes to the
 * destination. */
static void from_program_side(struct dgram *g, int side)
{
	uint8_t buf[65536];

	for (int i = 0; i < DGRAM_READS; i++) {
		struct sockaddr_storage src;
		socklen_t sl = sizeof src;
		ssize_t n = recvfrom(g->w[side].fd, buf, sizeof buf, MSG_DONTWAIT,
				     (struct sockaddr *)&src, &sl);

		if (n < 0)
			return;
		if (!g->proglen || sl != g->proglen || memcmp(&src, &g->prog, sl) != 0) {
			/* a new sender must be a socket of the process this is
			 * for; the latest one gets the answers */
			if (!known_source(g, &src) &&
			    !capture_holds(g->key.pid, g->m->ns_dev, g->m->ns_ino,
					   (struct sockaddr *)&src)) {
				g->dropped++;
				continue;
			}
			g->prog = src;
			g->proglen = sl;
			g->prog_side = side;
		}
		g->last_ms = proto_now_ms();
		if (!within(g, (size_t)n))
			continue; /* past the limit: dropped, as a relayed connection is cut */
		if (g->state == DG_READY)
			send_on(g, buf, (size_t)n);
		else
			hold(g, buf, (size_t)n);
	}
}

static void from_program(void *ctx, uint32_t events)
{
	(void)events;
	from_program_side(ctx, 0);
}

static void from_program6(void *ctx, uint32_t events)
{
	(void)events;
	from_program_side(ctx, 3);
}

/* The destination's side: its answers go back to the program. */
static void from_destination(void *ctx, uint32_t events)
{
	struct dgram *g = ctx;
	uint8_t buf[65536];

	(void)events;
	for (int i = 0; i < DGRAM_READS; i++) {
		ssize_t n = recv(g->w[1].fd, buf, sizeof buf, MSG_DONTWAIT);
		int h = 0;

		if (n < 0 && errno == ECONNREFUSED)
			continue; /* the destination's port is closed: a datagram was lost */
		if (n < 0)
			return;
		if (g->pt.kind == POLICY_SOCKS5 && (h = upstream_socks5_udp_data(buf, (size_t)n)) < 0)
			continue; /* a fragment, or not from the relay */
		n -= h;
		g->last_ms = proto_now_ms();
		if (!g->proglen || !within(g, (size_t)n))
			continue;
		if (sendto(g->w[g->prog_side].fd, buf + h, (size_t)n, MSG_DONTWAIT,
			   (struct sockaddr *)&g->prog, g->proglen) == n)
			g->received += (uint64_t)n;
	}
}

/* -------------------------------------------------------------- SOCKS5 */

/* True for 0.0.0.0 and ::. */
static bool addr_any(const struct proto_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->bytes, zero, a->family == 4 ? 4 : 16) == 0;
}

/* The association could not be set up, or the proxy ended it: recorded
 * with why, and gone (the program's next datagrams find the port closed,
 * and its next verdict makes a new one). */
static void socks_fail(struct dgram *g, const char *why)
{
	char text[200];

	snprintf(text, sizeof text, "SOCKS5 UDP ASSOCIATE: %s", why);
	dgram_free(g->m, g, text);
}

/* Sends a handshake message on the control connection and waits for the
 * answer of state. Returns 0, or -1 (g is gone). */
static int socks_send(struct dgram *g, const uint8_t *msg, int n, enum dgram_state next)
{
	if (n < 0 || send(g->w[2].fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
		socks_fail(g, "cannot send to the proxy");
		return -1;
	}
	g->state = next;
	g->hslen = 0;
	loop_watch(g->m->loop, &g->w[2], EPOLLIN);
	return 0;
}

/* The association is up at the relay's address: the held datagrams go. */
static void socks_ready(struct dgram *g)
{
	struct proto_addr relay;
	struct sockaddr_storage ss;
	uint16_t port;
	socklen_t sl;

	if (upstream_socks5_bound(g->hs, g->hslen, &relay, &port) < 0) {
		socks_fail(g, "the proxy named no relay address");
		return;
	}
	if (addr_any(&relay)) /* "the proxy's own address" */
		policy_addr_parse(g->pt.host, &relay);
	sl = proto_addr_to_sockaddr(&relay, port, false, &ss);
	g->w[1].fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g->w[1].fd < 0 || connect(g->w[1].fd, (struct sockaddr *)&ss, sl) < 0 ||
	    loop_watch(g->m->loop, &g->w[1], EPOLLIN) < 0) {
		socks_fail(g, strerror(errno));
		return;
	}
	g->state = DG_READY;
	for (int i = 0; i < g->npend; i++) {
		send_on(g, g->pend[i]->data, g->pend[i]->len);
		free(g->pend[i]);
	}
	g->npend = 0;
}

/* The control connection: its handshake, then only its end. */
static void from_control(void *ctx, uint32_t events)
{
	struct dgram *g = ctx;
	uint8_t msg[600];
	int err = 0, v, n;
	size_t need;
	socklen_t el = sizeof err;
	ssize_t got;

	if (g->state == DG_CONNECTING) {
		if (getsockopt(g->w[2].fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
			socks_fail(g, strerror(err ? err : errno));
			return;
		}
		socks_send(g, msg, upstream_socks5_greeting(msg, sizeof msg, &g->pt), DG_METHOD);
		return;
	}
	got = recv(g->w[2].fd, g->hs + g->hslen, sizeof g->hs - g->hslen, MSG_DONTWAIT);
	if (got == 0 || (got < 0 && errno != EAGAIN) || (events & (EPOLLERR | EPOLLHUP)) ||
	    g->state == DG_READY) {
		/* the association lives as long as this connection (RFC 1928 7) */
		if (got > 0 && g->state == DG_READY)
			return; /* nothing more is said on it; ignored */
		socks_fail(g, got == 0 || (events & EPOLLHUP) ? "the proxy closed the connection"
							       : strerror(errno));
		return;
	}
	if (got < 0)
		return;
	g->hslen += (size_t)got;
	switch (g->state) {
	case DG_METHOD:
		if ((n = upstream_socks5_method_reply(g->hs, g->hslen, &v)) <= 0) {
			if (n < 0)
				socks_fail(g, "not a SOCKS5 answer");
			return;
		}
		if (v == 2 && g->pt.auth)
			socks_send(g, msg, upstream_socks5_auth(msg, sizeof msg, &g->pt), DG_AUTH);
		else if (v == 0)
			socks_send(g, msg, upstream_socks5_udp_associate(msg, sizeof msg),
				   DG_ASSOCIATE);
		else
			socks_fail(g, "no acceptable authentication method");
		return;
	case DG_AUTH:
		if ((n = upstream_socks5_auth_reply(g->hs, g->hslen, &v)) <= 0) {
			if (n < 0)
				socks_fail(g, "not a SOCKS5 answer");
			return;
		}
		if (v != 0)
			socks_fail(g, "the proxy refused the credentials");
		else
			socks_send(g, msg, upstream_socks5_udp_associate(msg, sizeof msg),
				   DG_ASSOCIATE);
		return;
	case DG_ASSOCIATE:
		if ((n = upstream_socks5_connect_reply(g->hs, g->hslen, &v, &need)) <= 0) {
			if (n < 0)
				socks_fail(g, "not a SOCKS5 answer");
			return;
		}
		if (v != 0)
			socks_fail(g, upstream_socks5_reply_text(v));
		else
			socks_ready(g);
		return;
	default:
		return;
	}
}

/* Starts the control connection to the proxy (given by its address).
 * Returns 0 or -1. */
static int socks_start(struct dgram *g, uint32_t timeout_ms)
{
	struct proto_addr proxy;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	if (policy_addr_parse(g->pt.host, &proxy) < 0) {
		errno = EHOSTUNREACH; /* datagrams go to a proxy given by its address only */
		return -1;
	}
	sl = proto_addr_to_sockaddr(&proxy, g->pt.port, false, &ss);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	g->w[2].fd = fd;
	if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) ||
	    loop_watch(g->m->loop, &g->w[2], EPOLLOUT) < 0)
		return -1;
	g->state = DG_CONNECTING;
	g->deadline_ms = proto_now_ms() + (long)timeout_ms;
	return 0;
}

/* A UDP socket connected to a:port. */
static int destination_socket(const struct proto_addr *a, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl = proto_addr_to_sockaddr(a, port, false, &ss);
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

bool dgrams_answer(const struct dgrams *m, const struct dgram_request *r)
{
	struct sockaddr_storage ss;
	struct proto_addr peer;
	uint16_t peer_port;

	if (!r->src_port || !ask_addr_loopback(&r->addr) ||
	    capture_udp_peer(r->pid, &r->addr, r->port, false, &peer, &peer_port) < 0 ||
	    peer_port != r->src_port || !ask_addr_loopback(&peer))
		return false;
	proto_addr_to_sockaddr(&peer, peer_port, false, &ss);
	return capture_holds(r->pid, m->ns_dev, m->ns_ino, (struct sockaddr *)&ss);
}

uint16_t dgrams_open(struct dgrams *m, const struct dgram_request *r, bool *v6)
{
	struct dgram_key k;
	struct dgram *g;

	memset(&k, 0, sizeof k);
	k.pid = r->pid;
	k.addr = r->addr;
	k.port = r->port;
	snprintf(k.rule, sizeof k.rule, "%s", r->rule);
	HASH_FIND(hh, m->all, &k, sizeof k, g);
	if (g) {
		if (r->src_port)
			admit_source(g, r->src_port);
		*v6 = g->w[3].fd >= 0;
		return g->local_port;
	}
	if (m->active >= DGRAM_MAX) {
		errno = EAGAIN;
		return 0;
	}
	g = calloc(1, sizeof *g);
	if (!g)
		return 0;
	g->key = k;
	g->m = m;
	g->uid = r->uid;
	g->limit = r->limit;
	/* outlives the shims' cached verdicts that send here */
	g->idle_ms = DGRAM_IDLE_S * 1000L + (long)r->ttl_ms;
	g->last_ms = proto_now_ms();
	snprintf(g->exe, sizeof g->exe, "%s", r->exe ? r->exe : "");
	snprintf(g->name, sizeof g->name, "%s", r->name ? r->name : "");
	g->pt = *r->transport;
	policy_transport_text(r->transport, g->text, sizeof g->text);
	watch_init(&g->w[0], loop_socket(AF_INET, SOCK_DGRAM, &g->local_port), from_program, g);
	watch_init(&g->w[1], -1, from_destination, g);
	watch_init(&g->w[2], -1, from_control, g);
	watch_init(&g->w[3], -1, from_program6, g);
	if (g->w[0].fd >= 0) { /* an IPv6 socket bound to ::1 sends only to ::1: the same port there */
		uint16_t p6 = g->local_port;

		g->w[3].fd = loop_socket(AF_INET6, SOCK_DGRAM, &p6);
		if (g->w[3].fd >= 0 && loop_watch(m->loop, &g->w[3], EPOLLIN) < 0) {
			close(g->w[3].fd);
			g->w[3].fd = -1;
		}
	}
	HASH_ADD(hh, m->all, key, sizeof g->key, g);
	m->active++;
	m->total++;
	if (g->pt.kind != POLICY_SOCKS5)
		g->w[1].fd = destination_socket(&r->addr, r->port);
	if (g->w[0].fd < 0 || loop_watch(m->loop, &g->w[0], EPOLLIN) < 0 ||
	    (g->pt.kind == POLICY_SOCKS5
		     ? socks_start(g, r->timeout_ms)
		     : g->w[1].fd < 0 || loop_watch(m->loop, &g->w[1], EPOLLIN) < 0)) {
		int err = errno;

		dgram_free(m, g, NULL);
		errno = err;
		return 0;
	}
	if (r->src_port)
		admit_source(g, r->src_port);
	*v6 = g->w[3].fd >= 0;
	return g->local_port;
}

void dgrams_tick(struct dgrams *m)
{
	struct dgram *g, *tmp;
	long now = proto_now_ms();

	HASH_ITER(hh, m->all, g, tmp) {
		if (g->state != DG_READY && now >= g->deadline_ms)
			socks_fail(g, "no answer from the proxy in time");
		else if (now - g->last_ms >= g->idle_ms)
			dgram_free(m, g, "datagram relay");
	}
}

void dgrams_counts(const struct dgrams *m, unsigned long *active, unsigned long *total)
{
	*active = m ? m->active : 0;
	*total = m ? m->total : 0;
}

void dgrams_free(struct dgrams *m)
{
	struct dgram *g, *tmp;

	if (!m)
		return;
	HASH_ITER(hh, m->all, g, tmp)
		dgram_free(m, g, "datagram relay");
	free(m);
}
