/* transport.c: the mediated transport. A rewritten connect becomes a
 * conduit: the broker resolves the destination (direct, relay) or the
 * proxy (http, socks5), connects without blocking, speaks the proxy's
 * handshake, and then either hands the connected socket to the program
 * (SCM_RIGHTS, through the server's answer) or keeps it and relays bytes
 * between it and a loopback connection it handed over instead (transport
 * relay, a limit, and a nonblocking connect through a proxy: the program's
 * connect returns at once and the relay catches up with the upstream, so
 * its event loop never waits on the network). A nonblocking direct connect
 * is handed over while still in progress. A proxy that has been used keeps
 * one connection of ours waiting, its greeting done (a spare), so that the
 * next connect through it starts at its request. All of it runs in the broker's loop; the
 * transport is made with what it needs (the loop, the resolver, the policy
 * in force) and gives back only answers and records, through its sink. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uthash.h>

#include "broker.h"

#define PIPE_BYTES 65536 /* at most this much in flight per direction */
#define SPARES 4          /* proxies with a connection kept ready, at most */
#define SPARE_IDLE_MS 10000 /* a spare unused this long is closed (dante ends an
			     * unfinished negotiation after 30 s) */
#define HOLD_MAX (4u << 20) /* a receive buffer past this is not filled to hold a connect */

enum state {
	ST_RESOLVING,  /* waiting for the resolver */
	ST_CONNECTING, /* nonblocking connect to a candidate in progress */
	ST_SENDING,    /* handshake bytes going to the proxy */
	ST_RECEIVING,  /* waiting for the proxy's answer */
	ST_RELAYING,   /* upstream ready, bytes moving */
};

enum step { STEP_HTTP, STEP_SOCKS_METHOD, STEP_SOCKS_AUTH, STEP_SOCKS_CONNECT };

/* One direction of a relay: src -> pipe -> dst. */
struct flow {
	int pipe[2];
	size_t pending; /* bytes in the pipe */
	bool eof;       /* src said EOF */
	bool shut;      /* dst shut down for writing */
	size_t skip;    /* bytes of src to drop first: the filler of a held connect */
};

struct conduit;

/* A proxy's handshake: begin builds and sends the first message, read
 * takes the proxy's answers until the tunnel is up (established) or not
 * (fail). NULL for direct and relay, which have none. */
struct proxy {
	int (*begin)(struct transport *t, struct conduit *c); /* 0, or -1: cannot be asked */
	void (*read)(struct transport *t, struct conduit *c);
};

struct conduit {
	uint64_t id;
	UT_hash_handle hh;
	struct transport *t;
	struct transport_request r;            /* pointers in it point into this struct */
	char name[PROTO_NAME_MAX + 1];         /* destination name, "" for an address */
	char rule[PROTO_RULE_MAX + 1];
	char exe[PATH_MAX];
	char text[300];                        /* the transport, without credentials */
	struct policy_transport pt;            /* a copy: a reload may free the policy's */
	enum state state;
	enum step step;
	long deadline_ms;
	const struct proxy *proxy;             /* the handshake, NULL: none */
	int up;                                /* upstream socket, -1 none */
	int relay;                             /* our end of the program's loopback, -1 none */
	struct watch w[2];                     /* up, relay in the loop */
	int handover;                          /* the program's end, until it is sent, or
						* while its connect is held (proto.h) */
	bool held;                             /* the program's connect is held in progress */
	size_t filler;                         /* bytes queued on the program's end to hold it */
	struct proto_addr cand[RESOLVER_RAW_MAX];
	int ncand, icand;
	uint16_t cport;                        /* port of the candidates */
	bool from_hosts;
	int last_err;                          /* of the last candidate tried */
	uint8_t buf[UPSTREAM_HTTP_MAX];        /* handshake bytes out, then in */
	size_t len, off;
	char upstream[sizeof(((struct policy_transport *)0)->host) + 96];     /* what the upstream answered, for the audit */
	struct flow out, in;                   /* program -> upstream, upstream -> program */
	uint64_t sent, received;
	bool limit_hit;
	long relay_since_ms;                   /* when relaying began */
	bool dropped[2];                       /* up, relay: out of the epoll set after a hang-up */
	bool warm;                             /* no program's: makes a spare (answers, records nothing) */
	bool spared;                           /* its up was a spare: a reset retries afresh */
};

/* A connection to a proxy that waits for its next request: connected, and
 * for SOCKS5 greeted (and authenticated), so that a connect through it
 * costs the request alone. */
struct spare {
	struct policy_transport pt; /* the proxy, as the policy named it */
	bool inet6;                 /* an AF_INET6 socket, for a program's of that family */
	int fd;                     /* -1: none (warming: see warming) */
	bool warming;               /* a warm conduit is making it */
	long since_ms;
};

struct transport {
	struct loop *loop;
	struct resolver *resolver;
	struct policy *const *policy;          /* the policy in force, wherever it is */
	struct transport_sink sink;
	struct conduit *conduits;
	uint64_t next_id;
	struct transport_stats stats;
	struct spare spares[SPARES];
};

struct transport *transport_new(struct loop *l, struct resolver *res, struct policy *const *policy,
				const struct transport_sink *sink)
{
	struct transport *t = calloc(1, sizeof *t);

	if (t) {
		t->loop = l;
		t->resolver = res;
		t->policy = policy;
		t->sink = *sink;
		t->next_id = 1;
		for (int i = 0; i < SPARES; i++)
			t->spares[i].fd = -1;
	}
	return t;
}

/* Watches fd (side 0 upstream, 1 relay) for events, adding it to the loop
 * when it is not there (even for no events: hang-ups and errors are always
 * reported); an fd relay_watch took out of the loop comes back only once
 * something is wanted of it. */
static void watch(struct transport *t, struct conduit *c, int fd, int side, uint32_t events)
{
	if (c->dropped[side] && !events)
		return;
	c->w[side].fd = fd;
	loop_watch(t->loop, &c->w[side], events);
	c->dropped[side] = false;
}

/* Closes the fd of side (0 upstream, 1 relay), with a reset when asked. */
static void close_side(struct transport *t, struct conduit *c, int side, bool reset)
{
	int *fd = side ? &c->relay : &c->up;

	if (*fd < 0)
		return;
	if (reset) { /* an RST, so the program sees the failure rather than a clean EOF */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	loop_unwatch(t->loop, &c->w[side]);
	close(*fd);
	*fd = -1;
}

static void flow_close(struct flow *f)
{
	for (int i = 0; i < 2; i++)
		if (f->pipe[i] >= 0)
			close(f->pipe[i]);
	f->pipe[0] = f->pipe[1] = -1;
}

/* Writes the audit event of c: its outcome (op connect) or, for a relayed
 * connection, its close with the byte counts. The address asked for is
 * recorded unless it is a name's synthetic one, which says nothing more. */
static void record(struct transport *t, struct conduit *c, int op, int err)
{
	bool named = c->name[0] && synth_is(&c->r.addr);
	struct audit_event ev = {
		.pid = c->r.pid, .uid = c->r.uid, .exe = c->exe[0] ? c->exe : NULL, .op = op,
		.name = c->name[0] ? c->name : NULL, .addr = named ? NULL : &c->r.addr,
		.port = c->r.port, .l4 = PROTO_L4_TCP, .action = c->r.action ? c->r.action : PROTO_REWRITE,
		.rule = c->rule, .captured = c->r.captured,
		.err = err ? policy_errno_name(err) : NULL, .transport = c->text,
		.upstream = c->upstream, .relayed = op == AUDIT_OP_CLOSE, .limit_hit = c->limit_hit,
		.bytes_sent = c->sent, .bytes_received = c->received,
	};

	clock_gettime(CLOCK_REALTIME, &ev.time);
	t->sink.record(t->sink.ctx, &ev);
}

static void conduit_free(struct transport *t, struct conduit *c, bool reset)
{
	if (c->state == ST_RELAYING) {
		t->stats.active--;
		record(t, c, AUDIT_OP_CLOSE, 0);
	}
	close_side(t, c, 0, reset);
	close_side(t, c, 1, reset);
	if (c->handover >= 0)
		close(c->handover);
	flow_close(&c->out);
	flow_close(&c->in);
	HASH_DEL(t->conduits, c);
	free(c);
}

/* Answers the program waiting on c, if one still does. Returns 0 when it
 * got the answer. */
static int answer(struct transport *t, struct conduit *c, int action, int err, int fd)
{
	struct reply rp = {
		.client = c->r.client, .msgid = c->r.msgid, .action = action, .err = err,
		.ttl_ms = action == PROTO_PENDING ? c->r.timeout_ms : 0, .rule = c->rule,
		.name = c->name, .fd = fd,
	};
	int rc;

	if (!c->r.client)
		return -1;
	rc = t->sink.answer(t->sink.ctx, &rp);
	if (action != PROTO_PENDING)
		c->r.client = 0;
	return rc;
}

/* ---------------------------------------------------------------- hold */

/* Holds the program's nonblocking connect in progress (proto.h): its end
 * theirs gets filler past what ours, which reads none until the upstream
 * is up, can ever take (its receive buffer, not grown without reads), so
 * that some stays unsent whatever window ours opens meanwhile, and then
 * PROTO_HOLD_LOWAT. *filler is set to the bytes written, which the relay
 * drops. Returns true when the end is held; false when it could not be
 * (its connect then completes at once, as before). */
static bool hold(int ours, int theirs, size_t *filler)
{
	static const char zero[16384];
	int rcvbuf = 0, lowat = PROTO_HOLD_LOWAT, unsent = 0;
	socklen_t rl = sizeof rcvbuf;
	size_t want;

	*filler = 0;
	if (getsockopt(ours, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rl) < 0 || rcvbuf <= 0 ||
	    (size_t)rcvbuf > HOLD_MAX)
		return false;
	want = (size_t)rcvbuf + sizeof zero;
	while (*filler < want) {
		size_t left = want - *filler;
		ssize_t n = send(theirs, zero, left < sizeof zero ? left : sizeof zero,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		*filler += (size_t)n;
	}
	if (setsockopt(theirs, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) == 0 &&
	    ioctl(theirs, SIOCOUTQNSD, &unsent) == 0 && unsent > 0)
		return true;
	lowat = 0;
	setsockopt(theirs, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
	return false;
}

/* Ends the hold of c's program end: err 0, it turns writable (connected);
 * else the shim will report err (the caller resets the end next). */
static void release(struct conduit *c, int err)
{
	int lowat = err ? PROTO_FAILED_LOWAT | err : 0;

	if (!c->held)
		return;
	setsockopt(c->handover, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
	close(c->handover);
	c->handover = -1;
	c->held = false;
}

/* The upstream failed: the program learns err (a waiting connect) or sees
 * its relayed connection reset; the audit says why. */
static void resolve(struct transport *t, struct conduit *c, const char *target);
static int conduit_start(struct transport *t, const struct transport_request *r, bool warm);
static struct spare *spare_of(struct transport *t, const struct policy_transport *pt, bool inet6);

static void fail(struct transport *t, struct conduit *c, int err, const char *why)
{
	if (c->warm) { /* no spare this time */
		struct spare *sp = spare_of(t, &c->pt, c->r.inet6);

		if (sp)
			sp->warming = false;
		conduit_free(t, c, true);
		return;
	}
	if (c->spared && err == ECONNRESET && c->state != ST_RELAYING) {
		/* the proxy closed the spare as it was taken: a connection of
		 * its own, as if there had been none */
		c->spared = false;
		close_side(t, c, 0, false);
		c->len = 0;
		c->upstream[0] = 0;
		c->state = ST_RESOLVING;
		resolve(t, c, c->pt.host);
		return;
	}
	if (why)
		snprintf(c->upstream, sizeof c->upstream, "%s", why);
	record(t, c, PROTO_OP_CONNECT, err);
	answer(t, c, PROTO_FAIL, err, -1);
	release(c, err > 0 && err < 4096 ? err : ECONNREFUSED);
	conduit_free(t, c, true);
}

/* A new TCP socket of family (nonblocking when asked); an AF_INET6 one
 * also reaches IPv4 addresses, in their mapped form. Returns it or -1. */
static int tcp_socket(int family, bool nonblock)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	int off = 0;

	if (fd >= 0 && family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connected TCP pair on loopback: *ours (nonblocking) and *theirs, of
 * the program's family (v6): over ::1 when six is set (the program asked
 * for an IPv6 address, so its socket shows ::1 as its own, as one
 * connected to ::1 would), else over 127.0.0.1 (an IPv6 socket in its
 * mapped form). The listener lives only for this, and the accepted peer
 * must be the socket we connected, so no other process can slip in.
 * Returns 0 or -1. */
static int loopback_pair(bool v6, bool six, int *ours, int *theirs)
{
	static const struct proto_addr lo4 = { .family = 4, .bytes = { 127, 0, 0, 1 } };
	static const struct proto_addr lo6 = { .family = 6, .bytes = { [15] = 1 } };
	const struct proto_addr *lo = six ? &lo6 : &lo4;
	struct sockaddr_storage a, to, mine, peer;
	socklen_t al = sizeof a, ml = sizeof mine, pl = sizeof peer, tl;
	int l = tcp_socket(six ? AF_INET6 : AF_INET, false), c = -1, s = -1;
	struct proto_addr pa;
	uint16_t port, mine_port, peer_port;

	if (l < 0)
		return -1;
	tl = proto_addr_to_sockaddr(lo, 0, six, &a);
	if (bind(l, (struct sockaddr *)&a, tl) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0 ||
	    proto_addr_from_sockaddr((struct sockaddr *)&a, a.ss_family, &pa, &port) < 0)
		goto fail;
	tl = proto_addr_to_sockaddr(lo, port, v6, &to);
	c = tcp_socket(v6 ? AF_INET6 : AF_INET, false);
	if (c < 0 || connect(c, (struct sockaddr *)&to, tl) < 0 ||
	    getsockname(c, (struct sockaddr *)&mine, &ml) < 0 ||
	    proto_addr_from_sockaddr((struct sockaddr *)&mine, mine.ss_family, &pa, &mine_port) < 0)
		goto fail;
	s = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0 ||
	    proto_addr_from_sockaddr((struct sockaddr *)&peer, peer.ss_family, &pa, &peer_port) < 0 ||
	    peer_port != mine_port || memcmp(&pa, lo, sizeof pa) != 0)
		goto fail;
	close(l);
	*ours = s;
	*theirs = c;
	return 0;
fail:
	close(l);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	if (six) /* no IPv6 loopback here: the mapped IPv4 one */
		return loopback_pair(v6, false, ours, theirs);
	return -1;
}

/* --------------------------------------------------------------- relay */

static int flow_open(struct flow *f)
{
	f->pending = 0;
	f->eof = f->shut = false;
	return pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC);
}

/* Moves what it can from src to dst through f. Returns 0, or -1 when the
 * connection is broken or over its limit. */
static int pump(struct conduit *c, struct flow *f, int src, int dst, uint64_t *count)
{
	for (;;) {
		ssize_t n;

		if (f->skip > 0) { /* the filler: dropped, not relayed or counted */
			n = recv(src, NULL, f->skip, MSG_TRUNC | MSG_DONTWAIT);
			if (n > 0) {
				f->skip -= (size_t)n;
				continue;
			}
			if (n == 0)
				return -1; /* gone before its filler was through: reset */
			return errno == EAGAIN ? 0 : -1;
		}
		if (f->pending == 0 && !f->eof) {
			size_t want = PIPE_BYTES;
			uint64_t used = c->sent + c->received + c->out.pending + c->in.pending;

			/* Under a limit, take no more than is left, so that exactly
			 * the limit gets through; one byte past it is the cut. */
			if (c->r.limit) {
				uint64_t left = used < c->r.limit ? c->r.limit - used : 0;

				if (left < want)
					want = left ? (size_t)left : 1;
			}
			n = splice(src, NULL, f->pipe[1], NULL, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n == 0)
				f->eof = true;
			else if (n > 0)
				f->pending = (size_t)n;
			else if (errno != EAGAIN)
				return -1;
			if (n > 0 && c->r.limit && used + (uint64_t)n > c->r.limit) {
				c->limit_hit = true;
				return -1;
			}
		}
		if (f->pending > 0) {
			n = splice(f->pipe[0], NULL, dst, NULL, f->pending,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n < 0)
				return errno == EAGAIN ? 0 : -1;
			f->pending -= (size_t)n;
			*count += (uint64_t)n;
			if (f->pending > 0)
				return 0; /* dst is full: wait for it */
			continue;
		}
		if (f->eof && !f->shut) {
			shutdown(dst, SHUT_WR);
			f->shut = true;
		}
		return 0;
	}
}

/* Watches both ends for what the flows can use next. hup (bit 0 upstream,
 * bit 1 relay) names an end that reported EPOLLHUP: epoll reports that
 * until the fd is closed, whatever it was asked for, so an end that has
 * nothing to do is taken out of the set instead, or the loop would spin. */
static void relay_watch(struct transport *t, struct conduit *c, unsigned hup)
{
	uint32_t ev[2] = {
		(c->in.pending == 0 && !c->in.eof ? EPOLLIN : 0) | (c->out.pending ? EPOLLOUT : 0),
		(c->out.pending == 0 && !c->out.eof ? EPOLLIN : 0) | (c->in.pending ? EPOLLOUT : 0),
	};
	int fd[2] = { c->up, c->relay };

	for (int side = 0; side < 2; side++) {
		if ((hup & (1u << side)) && !ev[side]) {
			loop_unwatch(t->loop, &c->w[side]);
			c->dropped[side] = true;
		} else
			watch(t, c, fd[side], side, ev[side]);
	}
}

/* Moves bytes both ways after events on end side (0 upstream, 1 relay; 0
 * events when called to start). An error on either end, or a hang-up of an
 * end we have not shut down ourselves (its peer reset it: a hang-up needs
 * both directions shut), ends the connection with a reset of the other:
 * there is nobody left to relay to. */
static void relay(struct transport *t, struct conduit *c, int side, uint32_t events)
{
	uint64_t s0 = c->sent, r0 = c->received;
	bool we_shut = side ? c->in.shut : c->out.shut;
	int rc = 0;

	if ((events & EPOLLERR) || ((events & EPOLLHUP) && !we_shut)) {
		/* what the failed end sent before it failed goes on first, as a
		 * direct connection would deliver it before the reset */
		if (side)
			pump(c, &c->out, c->relay, c->up, &c->sent);
		else
			pump(c, &c->in, c->up, c->relay, &c->received);
		rc = -1;
	}
	if (rc == 0)
		rc = pump(c, &c->out, c->relay, c->up, &c->sent);
	if (rc == 0)
		rc = pump(c, &c->in, c->up, c->relay, &c->received);
	t->stats.sent += c->sent - s0;
	t->stats.received += c->received - r0;
	if (rc < 0 || (c->out.shut && c->in.shut)) {
		conduit_free(t, c, rc < 0);
		return;
	}
	relay_watch(t, c, events & EPOLLHUP ? 1u << side : 0);
}

/* ---------------------------------------------------------- upstream up */

/* The upstream is connected (and through the proxy): hand it over, or
 * start relaying to the loopback end the program has. */
static void established(struct transport *t, struct conduit *c)
{
	record(t, c, PROTO_OP_CONNECT, 0);
	if (c->relay < 0) {
		answer(t, c, PROTO_REWRITE, 0, c->up);
		conduit_free(t, c, false);
		return;
	}
	if (flow_open(&c->out) < 0 || flow_open(&c->in) < 0) {
		fail(t, c, ENOMEM, "relay: out of pipes");
		return;
	}
	c->out.skip = c->filler;
	if (c->held) {
		release(c, 0);
	} else if (c->handover >= 0) {
		answer(t, c, PROTO_REWRITE, 0, c->handover);
		close(c->handover);
		c->handover = -1;
	}
	c->state = ST_RELAYING;
	c->relay_since_ms = proto_now_ms();
	t->stats.active++;
	t->stats.total++;
	relay(t, c, 0, 0);
}

/* ---------------------------------------------------------------- spares */

static bool same_transport(const struct policy_transport *a, const struct policy_transport *b)
{
	return a->kind == b->kind && a->port == b->port && a->auth == b->auth &&
	       strcmp(a->host, b->host) == 0 && strcmp(a->user, b->user) == 0 &&
	       strcmp(a->pass, b->pass) == 0;
}

/* The spare slot of the proxy pt for sockets of the family inet6 says,
 * NULL when it has none. */
static struct spare *spare_of(struct transport *t, const struct policy_transport *pt, bool inet6)
{
	for (int i = 0; i < SPARES; i++)
		if ((t->spares[i].fd >= 0 || t->spares[i].warming) && t->spares[i].inet6 == inet6 &&
		    same_transport(&t->spares[i].pt, pt))
			return &t->spares[i];
	return NULL;
}

static void spare_close(struct spare *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	sp->warming = false;
}

/* Takes the spare of the proxy pt and family inet6, if it has one still
 * open (no EOF, no error, nothing unasked-for from the proxy). Returns it,
 * or -1. */
static int spare_take(struct transport *t, const struct policy_transport *pt, bool inet6)
{
	struct spare *sp = spare_of(t, pt, inet6);
	char byte;
	int fd;

	if (!sp || sp->fd < 0)
		return -1;
	fd = sp->fd;
	sp->fd = -1;
	if (recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN)
		return fd;
	close(fd);
	return -1;
}

/* The warm conduit c has its spare: parked for the next connect. */
static void spare_park(struct transport *t, struct conduit *c)
{
	struct spare *sp = spare_of(t, &c->pt, c->r.inet6);

	if (sp && sp->warming && sp->fd < 0) {
		loop_unwatch(t->loop, &c->w[0]);
		sp->fd = c->up;
		sp->warming = false;
		sp->since_ms = proto_now_ms();
		c->up = -1;
	}
	conduit_free(t, c, false);
}

/* Starts making a spare for the proxy pt and family inet6, when there is
 * none and none is being made: a conduit of no program's that stops where
 * the next request would begin. The slot of the oldest spare makes room. */
static void spare_warm(struct transport *t, const struct policy_transport *pt, bool inet6,
		       uint32_t timeout_ms)
{
	struct spare *sp = spare_of(t, pt, inet6), *old = &t->spares[0];
	struct transport_request r = { .transport = pt, .timeout_ms = timeout_ms, .inet6 = inet6 };

	if (sp)
		return;
	for (int i = 0; i < SPARES; i++) {
		sp = &t->spares[i];
		if (sp->fd < 0 && !sp->warming)
			break;
		if (!sp->warming && sp->since_ms < old->since_ms)
			old = sp;
		sp = NULL;
	}
	if (!sp) {
		if (old->warming)
			return;
		sp = old;
		spare_close(sp);
	}
	sp->pt = *pt;
	sp->inet6 = inet6;
	sp->warming = true;
	if (conduit_start(t, &r, true) < 0)
		sp->warming = false;
}

/* ------------------------------------------------------------ handshakes */

/* Sends c->buf (c->len bytes) to the proxy as the handshake's next step. */
static void handshake_send(struct transport *t, struct conduit *c, enum step step)
{
	c->step = step;
	c->state = ST_SENDING;
	c->off = 0;
	watch(t, c, c->up, 0, EPOLLOUT);
}

static void handshake_write(struct transport *t, struct conduit *c)
{
	ssize_t n = send(c->up, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0) {
		if (errno != EAGAIN)
			fail(t, c, ECONNRESET, "proxy closed the connection");
		return;
	}
	c->off += (size_t)n;
	if (c->off < c->len)
		return;
	c->state = ST_RECEIVING;
	c->len = 0;
	watch(t, c, c->up, 0, EPOLLIN);
}

/* The destination as the proxy gets it: its name, else its address. */
static const char *proxy_target(const struct conduit *c, char *buf, size_t cap)
{
	if (c->name[0])
		return c->name;
	policy_addr_format(&c->r.addr, buf, cap);
	return buf;
}

/* HTTP CONNECT: one request, one answer header. */
static int http_begin(struct transport *t, struct conduit *c)
{
	char host[INET6_ADDRSTRLEN];
	int n = upstream_http_request((char *)c->buf, sizeof c->buf,
				      proxy_target(c, host, sizeof host), c->r.port, &c->pt);

	if (n < 0)
		return -1;
	c->len = (size_t)n;
	handshake_send(t, c, STEP_HTTP);
	return 0;
}

/* Reads the proxy's answer header and consumes exactly it, so that what
 * the destination sends first (an SSH or SMTP banner) stays for the
 * program. Bytes are peeked past what is already taken (c->len, all of it
 * header), and then taken only up to the header's end; what is peeked of
 * an unfinished header is taken too, or the socket would stay readable and
 * the loop spin until the rest came. */
static void http_read(struct transport *t, struct conduit *c)
{
	char reason[64];
	ssize_t n;
	int status, used, err;

	if (c->len >= sizeof c->buf) {
		fail(t, c, EPROTO, "proxy answer header too long");
		return;
	}
	n = recv(c->up, c->buf + c->len, sizeof c->buf - c->len, MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			fail(t, c, ECONNRESET, "proxy closed the connection before answering");
		return;
	}
	used = upstream_http_response((char *)c->buf, c->len + (size_t)n, &status, reason,
				      sizeof reason);
	if (used < 0) {
		fail(t, c, EPROTO, "proxy answer is not HTTP");
		return;
	}
	if (used == 0) { /* more to come */
		(void)!recv(c->up, c->buf + c->len, (size_t)n, MSG_DONTWAIT);
		c->len += (size_t)n;
		return;
	}
	(void)!recv(c->up, c->buf + c->len, (size_t)used - c->len, MSG_DONTWAIT);
	snprintf(c->upstream, sizeof c->upstream, "HTTP %d %s", status, reason);
	err = upstream_http_errno(status);
	if (err)
		fail(t, c, err, NULL);
	else
		established(t, c);
}

/* SOCKS5: greeting, then credentials when the proxy asks, then CONNECT. */
static int socks5_begin(struct transport *t, struct conduit *c)
{
	int n = upstream_socks5_greeting(c->buf, sizeof c->buf, &c->pt);

	if (n < 0)
		return -1;
	c->len = (size_t)n;
	handshake_send(t, c, STEP_SOCKS_METHOD);
	return 0;
}

/* Reads one SOCKS5 reply whole, taking only what the parser says is still
 * missing. Returns its first field (method, status or reply code), or -1
 * when it is incomplete (wait for more) or the conduit failed. */
static int socks5_reply(struct transport *t, struct conduit *c)
{
	for (;;) {
		size_t need = 2;
		ssize_t n;
		int used, rep;

		if (c->step == STEP_SOCKS_METHOD)
			used = upstream_socks5_method_reply(c->buf, c->len, &rep);
		else if (c->step == STEP_SOCKS_AUTH)
			used = upstream_socks5_auth_reply(c->buf, c->len, &rep);
		else
			used = upstream_socks5_connect_reply(c->buf, c->len, &rep, &need);
		if (used < 0) {
			fail(t, c, EPROTO, "proxy answer is not SOCKS5");
			return -1;
		}
		if (used > 0)
			return rep;
		n = recv(c->up, c->buf + c->len, need - c->len, MSG_DONTWAIT);
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN)
				fail(t, c, ECONNRESET, "proxy closed the connection before answering");
			return -1;
		}
		c->len += (size_t)n;
	}
}

static void socks5_request(struct transport *t, struct conduit *c);

static void socks5_read(struct transport *t, struct conduit *c)
{
	int rep = socks5_reply(t, c), err;

	if (rep < 0)
		return;
	switch (c->step) {
	case STEP_SOCKS_METHOD:
		if (rep == 0x02 && c->pt.auth) {
			c->len = (size_t)upstream_socks5_auth(c->buf, sizeof c->buf, &c->pt);
			handshake_send(t, c, STEP_SOCKS_AUTH);
			return;
		}
		if (rep != 0x00) {
			fail(t, c, EACCES, "SOCKS5 proxy accepts none of our methods");
			return;
		}
		break;
	case STEP_SOCKS_AUTH:
		if (rep != 0x00) {
			fail(t, c, EACCES, "SOCKS5 proxy refused the credentials");
			return;
		}
		break;
	default:
		snprintf(c->upstream, sizeof c->upstream, "SOCKS5 reply %d (%s)", rep,
			 upstream_socks5_reply_text(rep));
		err = upstream_socks5_errno(rep);
		if (err)
			fail(t, c, err, NULL);
		else
			established(t, c);
		return;
	}
	if (c->warm) {
		spare_park(t, c);
		return;
	}
	socks5_request(t, c);
}

/* SOCKS5 CONNECT, on a greeted connection. */
static void socks5_request(struct transport *t, struct conduit *c)
{
	int n = upstream_socks5_connect(c->buf, sizeof c->buf, c->name[0] ? c->name : NULL, &c->r.addr,
				    c->r.port);
	if (n < 0) {
		fail(t, c, EINVAL, "destination cannot be sent to the proxy");
		return;
	}
	c->len = (size_t)n;
	handshake_send(t, c, STEP_SOCKS_CONNECT);
}

static const struct proxy proxy_http = { http_begin, http_read };
static const struct proxy proxy_socks5 = { socks5_begin, socks5_read };

/* ----------------------------------------------------------- connecting */

/* True when c's socket goes to the program as soon as its connect has
 * begun: a nonblocking connect that nothing needs to relay (the direct
 * transport, no limit). Its first candidate is then its only one, as for a
 * program connecting to one address. */
static bool early(const struct conduit *c)
{
	return c->r.nonblock && !c->r.captured && !c->proxy && c->relay < 0;
}

/* Tries the candidates from c->icand on. */
static void connect_next(struct transport *t, struct conduit *c)
{
	close_side(t, c, 0, false);
	for (; c->icand < c->ncand; c->icand++) {
		const struct proto_addr *a = &c->cand[c->icand];
		struct sockaddr_storage ss;
		socklen_t sl;
		int fd;

		/* the destination's own addresses face the policy, as a connect would */
		if (!c->proxy && c->name[0] &&
		    !ask_upstream_ok(*t->policy, c->name, a, c->r.port, c->r.exe, c->from_hosts)) {
			c->last_err = EPERM;
			snprintf(c->upstream, sizeof c->upstream,
				 "%s resolves to an address the policy denies", c->name);
			continue;
		}
		/* a socket handed to the program has the family of its own */
		sl = proto_addr_to_sockaddr(a, c->cport, c->r.inet6 && c->relay < 0, &ss);
		fd = tcp_socket(ss.ss_family, true);
		if (fd < 0) {
			c->last_err = errno;
			continue;
		}
		if (connect(fd, (struct sockaddr *)&ss, sl) == 0 || errno == EINPROGRESS) {
			if (early(c)) {
				/* the program's poll and SO_ERROR see the outcome */
				snprintf(c->upstream, sizeof c->upstream, "handed over connecting");
				record(t, c, PROTO_OP_CONNECT, 0);
				answer(t, c, PROTO_REWRITE, 0, fd);
				close(fd);
				conduit_free(t, c, false);
				return;
			}
			c->up = fd;
			c->state = ST_CONNECTING;
			watch(t, c, fd, 0, EPOLLOUT);
			c->icand++;
			return;
		}
		c->last_err = errno;
		close(fd);
	}
	if (!c->upstream[0] || c->last_err != EPERM)
		snprintf(c->upstream, sizeof c->upstream, "connect%s: %s",
			 c->proxy ? " to the proxy" : "",
			 strerror(c->last_err ? c->last_err : EHOSTUNREACH));
	fail(t, c, c->last_err ? c->last_err : EHOSTUNREACH, NULL);
}

static void connected(struct transport *t, struct conduit *c)
{
	int err = 0;
	socklen_t el = sizeof err;

	if (getsockopt(c->up, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		err = errno;
	if (err) {
		c->last_err = err;
		connect_next(t, c);
		return;
	}
	if (c->warm && c->proxy == &proxy_http) {
		spare_park(t, c); /* an HTTP proxy has no greeting */
		return;
	}
	if (c->proxy) {
		if (c->proxy->begin(t, c) < 0)
			fail(t, c, EINVAL, "destination cannot be sent to the proxy");
		return;
	}
	snprintf(c->upstream, sizeof c->upstream, "connected");
	established(t, c);
}

/* The candidates are known (n of them in c->cand), or the lookup failed. */
static void candidates(struct transport *t, struct conduit *c, int eai, int n)
{
	if (eai || n <= 0) {
		snprintf(c->upstream, sizeof c->upstream, "cannot resolve %s",
			 c->proxy ? c->pt.host : c->name);
		fail(t, c, EHOSTUNREACH, NULL);
		return;
	}
	c->ncand = n < RESOLVER_RAW_MAX ? n : RESOLVER_RAW_MAX;
	c->icand = 0;
	connect_next(t, c);
}

/* The resolver's answer for the conduit of id job->key, if it still waits. */
static void looked_up(void *owner, struct resolver_job *job)
{
	struct transport *t = owner;
	struct conduit *c;

	HASH_FIND(hh, t->conduits, &job->key, sizeof job->key, c);
	if (!c || c->state != ST_RESOLVING)
		return;
	memcpy(c->cand, job->addrs, (size_t)job->naddr * sizeof *job->addrs);
	candidates(t, c, job->eai, job->naddr);
}

/* Finds the candidates for target: a numeric address, the policy's
 * [hosts] (for the destination's own name, never a proxy's), or a lookup
 * whose answer comes to looked_up(). */
static void resolve(struct transport *t, struct conduit *c, const char *target)
{
	struct resolver_job *job;
	int n;

	if (policy_addr_parse(target, &c->cand[0]) == 0) {
		candidates(t, c, 0, 1);
		return;
	}
	n = c->proxy ? 0 : policy_hosts_lookup(*t->policy, target, c->cand, RESOLVER_RAW_MAX);
	if (n > 0) {
		for (int i = 0; i < n; i++)
			policy_addr_canonical(&c->cand[i]);
		c->from_hosts = true;
		candidates(t, c, 0, n);
		return;
	}
	job = calloc(1, sizeof *job);
	if (job) {
		job->done = looked_up;
		job->owner = t;
		job->key = c->id;
		job->holder = (uint64_t)c->r.pid;
	}
	if (!job || snprintf(job->name, sizeof job->name, "%s", target) >= (int)sizeof job->name ||
	    resolver_submit(t->resolver, job) < 0) {
		resolver_job_free(job);
		candidates(t, c, EAI_AGAIN, 0);
	}
}

/* ---------------------------------------------------------------- entry */

/* The handler of both ends of a conduit: what is wanted depends on its
 * state. */
static void conduit_event(struct conduit *c, int side, uint32_t events)
{
	struct transport *t = c->t;

	switch (c->state) {
	case ST_CONNECTING:
		connected(t, c);
		break;
	case ST_SENDING:
		handshake_write(t, c);
		break;
	case ST_RECEIVING:
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			c->proxy->read(t, c);
		break;
	case ST_RELAYING:
		relay(t, c, side, events);
		break;
	case ST_RESOLVING:
		break;
	}
}

static void up_event(void *ctx, uint32_t events)
{
	conduit_event(ctx, 0, events);
}

static void relay_event(void *ctx, uint32_t events)
{
	conduit_event(ctx, 1, events);
}

/* A conduit for r; warm: a spare's, for no program. */
static int conduit_start(struct transport *t, const struct transport_request *r, bool warm)
{
	struct conduit *c = calloc(1, sizeof *c);
	int fd;

	if (!c)
		return -1;
	c->r = *r;
	c->t = t;
	c->warm = warm;
	c->id = t->next_id++;
	c->up = c->relay = c->handover = -1;
	watch_init(&c->w[0], -1, up_event, c);
	watch_init(&c->w[1], -1, relay_event, c);
	c->out.pipe[0] = c->out.pipe[1] = c->in.pipe[0] = c->in.pipe[1] = -1;
	snprintf(c->name, sizeof c->name, "%s", r->name ? r->name : "");
	snprintf(c->rule, sizeof c->rule, "%s", r->rule);
	snprintf(c->exe, sizeof c->exe, "%s", r->exe ? r->exe : "");
	c->pt = *r->transport;
	c->r.transport = &c->pt;
	c->r.name = c->name[0] ? c->name : NULL;
	c->r.rule = c->rule;
	c->r.exe = c->exe[0] ? c->exe : NULL;
	c->proxy = c->pt.kind == POLICY_HTTP ? &proxy_http
		   : c->pt.kind == POLICY_SOCKS5 ? &proxy_socks5 : NULL;
	policy_transport_text(&c->pt, c->text, sizeof c->text);
	c->deadline_ms = proto_now_ms() + (long)r->timeout_ms;
	HASH_ADD(hh, t->conduits, id, sizeof c->id, c);

	/* The broker relays what it must count: the relay transport, a
	 * limited connection whatever its transport (a socket handed over
	 * could not be cut), and a nonblocking connect, which goes on before
	 * the upstream is there. */
	if (r->captured) {
		c->relay = r->captured_fd; /* a captured connection: it is the program's end */
	} else if ((c->pt.kind == POLICY_RELAY || r->limit || (r->nonblock && c->proxy)) &&
		   loopback_pair(r->inet6, r->inet6 && r->addr.family == 6, &c->relay, &c->handover) < 0) {
		fail(t, c, errno, "relay: cannot make a loopback connection");
		return 0;
	}
	if (r->captured) {
		/* nobody waits for an answer: the program's connect has completed */
	} else if (r->nonblock && c->relay >= 0) {
		/* the program goes on at once, its connect held in progress
		 * until the relay has caught up */
		c->held = hold(c->relay, c->handover, &c->filler);
		answer(t, c, PROTO_REWRITE, 0, c->handover);
		if (!c->held) {
			close(c->handover);
			c->handover = -1;
		}
	} else {
		answer(t, c, PROTO_PENDING, 0, -1);
	}

	c->state = ST_RESOLVING;
	c->cport = c->proxy ? c->pt.port : r->port;
	if (c->proxy && !warm && (fd = spare_take(t, &c->pt, r->inet6)) >= 0) {
		c->up = fd;
		c->spared = true;
		if (c->proxy == &proxy_socks5)
			socks5_request(t, c);
		else if (http_begin(t, c) < 0)
			fail(t, c, EINVAL, "destination cannot be sent to the proxy");
	} else if (!c->proxy && !c->name[0]) { /* an address the policy already judged */
		c->cand[0] = r->addr;
		candidates(t, c, 0, 1);
	} else {
		resolve(t, c, c->proxy ? c->pt.host : c->name);
	}
	/* once this one is on its way (c may be gone): one for the next */
	if (r->transport->kind != POLICY_DIRECT && r->transport->kind != POLICY_RELAY && !warm)
		spare_warm(t, r->transport, r->inet6, r->timeout_ms);
	return 0;
}

int transport_start(struct transport *t, const struct transport_request *r)
{
	return conduit_start(t, r, false);
}

void transport_tick(struct transport *t)
{
	struct conduit *c, *tmp;
	long now = proto_now_ms();

	for (int i = 0; i < SPARES; i++)
		if (t->spares[i].fd >= 0 && now - t->spares[i].since_ms >= SPARE_IDLE_MS)
			spare_close(&t->spares[i]);
	HASH_ITER(hh, t->conduits, c, tmp) {
		if (c->state != ST_RELAYING && now >= c->deadline_ms) {
			snprintf(c->upstream, sizeof c->upstream, "timeout");
			fail(t, c, ETIMEDOUT, NULL);
		}
	}
}

void transport_client_gone(struct transport *t, uint64_t client)
{
	struct conduit *c, *tmp;

	HASH_ITER(hh, t->conduits, c, tmp)
		if (c->r.client == client && c->state != ST_RELAYING)
			conduit_free(t, c, true); /* nobody to hand it to */
}

const struct transport_stats *transport_stats(const struct transport *t)
{
	return &t->stats;
}

size_t transport_connections(const struct transport *t, struct transport_conn *out, size_t max)
{
	const struct conduit *c, *tmp;
	long now = proto_now_ms();
	size_t n = 0;

	HASH_ITER(hh, t->conduits, c, tmp) {
		struct transport_conn *o;

		if (n == max)
			break;
		if (c->state != ST_RELAYING)
			continue;
		o = &out[n];
		proto_dest_format(c->name, &c->r.addr, c->r.port, o->dest, sizeof o->dest);
		snprintf(o->rule, sizeof o->rule, "%s", c->rule);
		o->pid = c->r.pid;
		o->age_s = (now - c->relay_since_ms) / 1000;
		o->sent = c->sent;
		o->received = c->received;
		n++;
	}
	return n;
}

void transport_free(struct transport *t)
{
	struct conduit *c, *tmp;

	if (!t)
		return;
	HASH_ITER(hh, t->conduits, c, tmp)
		conduit_free(t, c, true);
	for (int i = 0; i < SPARES; i++)
		spare_close(&t->spares[i]);
	free(t);
}
