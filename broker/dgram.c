/* dgram.c: datagrams through the relay transport. A datagram that a
 * rewrite rule with `transport = relay` matches goes to an association of
 * the broker's instead: a UDP socket on 127.0.0.1 (the SEND verdict's
 * port), one per process, destination and rule, which sends what the
 * program sends to the destination from a socket of its own, passes the
 * destination's answers back, counts both ways and holds the rule's limit.
 * Only the process the association is for is relayed: the first sender is
 * checked against it (by its socket, in /proc), and any other source is
 * dropped. An association ends when it has been idle for DGRAM_IDLE_S more
 * than the shims may keep the verdict that sends there, and its close is
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
	struct watch w[2];              /* 0: the program's side (loopback), 1: the destination's */
	uint16_t local_port;
	struct sockaddr_storage prog;   /* the program's socket, once it has sent */
	socklen_t proglen;
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
static void record_close(struct dgrams *m, const struct dgram *g)
{
	struct audit_event ev = {
		.pid = g->key.pid, .uid = g->uid, .exe = g->exe[0] ? g->exe : NULL,
		.op = AUDIT_OP_CLOSE, .name = g->name[0] ? g->name : NULL,
		.addr = g->name[0] ? NULL : &g->key.addr, .port = g->key.port, .l4 = PROTO_L4_UDP,
		.action = PROTO_REWRITE, .rule = g->key.rule, .transport = g->text,
		.upstream = "datagram relay", .relayed = true, .limit_hit = g->limit_hit,
		.bytes_sent = g->sent, .bytes_received = g->received,
	};

	clock_gettime(CLOCK_REALTIME, &ev.time);
	m->sink.record(m->sink.ctx, &ev);
}

static void dgram_free(struct dgrams *m, struct dgram *g, bool record)
{
	if (record)
		record_close(m, g);
	for (int i = 0; i < 2; i++) {
		if (g->w[i].fd < 0)
			continue;
		loop_unwatch(m->loop, &g->w[i]);
		close(g->w[i].fd);
	}
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

/* The program's side: what it sends goes to the destination. */
static void from_program(void *ctx, uint32_t events)
{
	struct dgram *g = ctx;
	uint8_t buf[65536];

	(void)events;
	for (int i = 0; i < DGRAM_READS; i++) {
		struct sockaddr_storage src;
		socklen_t sl = sizeof src;
		ssize_t n = recvfrom(g->w[0].fd, buf, sizeof buf, MSG_DONTWAIT,
				     (struct sockaddr *)&src, &sl);

		if (n < 0)
			return;
		if (!g->proglen) {
			char exe[PATH_MAX];

			/* the first sender must be the process this is for */
			if (capture_owner(getpid(), g->m->ns_dev, g->m->ns_ino, (struct sockaddr *)&src,
					  false, exe, sizeof exe) != g->key.pid) {
				g->dropped++;
				continue;
			}
			g->prog = src;
			g->proglen = sl;
		} else if (sl != g->proglen || memcmp(&src, &g->prog, sl) != 0) {
			g->dropped++;
			continue;
		}
		g->last_ms = proto_now_ms();
		if (!within(g, (size_t)n))
			continue; /* past the limit: dropped, as a relayed connection is cut */
		if (send(g->w[1].fd, buf, (size_t)n, MSG_DONTWAIT) == n)
			g->sent += (uint64_t)n;
	}
}

/* The destination's side: its answers go back to the program. */
static void from_destination(void *ctx, uint32_t events)
{
	struct dgram *g = ctx;
	uint8_t buf[65536];

	(void)events;
	for (int i = 0; i < DGRAM_READS; i++) {
		ssize_t n = recv(g->w[1].fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n < 0 && errno == ECONNREFUSED)
			continue; /* the destination's port is closed: a datagram was lost */
		if (n < 0)
			return;
		g->last_ms = proto_now_ms();
		if (!g->proglen || !within(g, (size_t)n))
			continue;
		if (sendto(g->w[0].fd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&g->prog,
			   g->proglen) == n)
			g->received += (uint64_t)n;
	}
}

/* A UDP socket bound to 127.0.0.1, any port; its port in *port. */
static int loopback_socket(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
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

uint16_t dgrams_open(struct dgrams *m, const struct dgram_request *r)
{
	struct dgram_key k;
	struct dgram *g;

	memset(&k, 0, sizeof k);
	k.pid = r->pid;
	k.addr = r->addr;
	k.port = r->port;
	snprintf(k.rule, sizeof k.rule, "%s", r->rule);
	HASH_FIND(hh, m->all, &k, sizeof k, g);
	if (g)
		return g->local_port;
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
	policy_transport_text(r->transport, g->text, sizeof g->text);
	watch_init(&g->w[0], loopback_socket(&g->local_port), from_program, g);
	watch_init(&g->w[1], destination_socket(&r->addr, r->port), from_destination, g);
	HASH_ADD(hh, m->all, key, sizeof g->key, g);
	m->active++;
	m->total++;
	if (g->w[0].fd < 0 || g->w[1].fd < 0 || loop_watch(m->loop, &g->w[0], EPOLLIN) < 0 ||
	    loop_watch(m->loop, &g->w[1], EPOLLIN) < 0) {
		int err = errno;

		dgram_free(m, g, false);
		errno = err;
		return 0;
	}
	return g->local_port;
}

void dgrams_tick(struct dgrams *m)
{
	struct dgram *g, *tmp;
	long now = proto_now_ms();

	HASH_ITER(hh, m->all, g, tmp)
		if (now - g->last_ms >= g->idle_ms)
			dgram_free(m, g, true);
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
		dgram_free(m, g, true);
	free(m);
}
