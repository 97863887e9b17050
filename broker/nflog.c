/* nflog.c: the packets an isolated namespace drops, read from the kernel's
 * NFLOG. The sandbox's nftables rules drop every packet that leaves the
 * namespace's loopback without being captured (UDP but DNS, UDP-lite, any
 * other IP protocol) and log it to NFLOG_GROUP; the sandbox opens that
 * group's netlink socket (nflog_open) and hands it to the broker with the
 * capture sockets. Here the broker reads it: each packet message is parsed
 * with every length checked (nflog_parse), each packet counted (gaps in
 * the group's sequence numbers are packets lost before they were read),
 * and the packets of one socket to one destination recorded once, with the
 * repeats of the next second in one more event with their count, so that a
 * flood neither floods the audit log nor spins the broker. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include "broker.h"

#define NFLOG_RCVBUF (4 << 20) /* the socket's receive buffer: a flood's worth */
#define NFLOG_NLBUFSIZ 15360   /* the kernel batches packets in datagrams this big (with its
				* overhead, a 16 KB allocation each) */
#define NFLOG_QTHRESH 64       /* or this many */
#define NFLOG_TIMEOUT 1        /* or for this long (1/100 s): soon enough to find the sender */
#define NFLOG_BUF 65536        /* one received datagram */
#define NFLOG_WINDOW_MS 1000   /* repeats within it make one event */
#define NFLOG_EXTHDRS 8        /* IPv6 extension headers followed */
#define NFLOG_TAIL_MS 20       /* at the end, how long to wait for the kernel's last batch */
#define NFLOG_TAILS 3          /* and for how many batches at most */

/* ------------------------------------------------------------- opening */

/* Appends attribute type with len bytes of data at *off in buf, which has
 * room for it. */
static void nflog_attr(uint8_t *buf, size_t *off, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type };

	memcpy(buf + *off, &a, sizeof a);
	memcpy(buf + *off + NLA_HDRLEN, data, len);
	memset(buf + *off + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	*off += NLA_HDRLEN + NLA_ALIGN(len);
}

int nflog_open(uint16_t group, char *err, size_t errlen)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode = { .copy_range = htonl(NFLOG_COPY),
					       .copy_mode = NFULNL_COPY_PACKET };
	uint32_t nlbufsiz = htonl(NFLOG_NLBUFSIZ), qthresh = htonl(NFLOG_QTHRESH),
		 timeout = htonl(NFLOG_TIMEOUT);
	uint16_t flags = htons(NFULNL_CFG_F_SEQ);
	struct nlmsghdr h = { .nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
			      .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK, .nlmsg_seq = 1 };
	struct nfgenmsg g = { .nfgen_family = AF_UNSPEC, .version = NFNETLINK_V0,
			      .res_id = htons(group) };
	union {
		struct nlmsghdr align;
		uint8_t b[256];
	} msg, ans;
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof g);
	int fd, rcv = NFLOG_RCVBUF;
	const char *what;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	what = "socket(NETLINK_NETFILTER)";
	if (fd < 0)
		goto fail;
	/* connected to the kernel: no process can send to it (sending to
	 * another socket's port takes CAP_NET_ADMIN, which CMD lacks; this
	 * refuses, ECONNREFUSED, even one that has it) */
	what = "binding the NFLOG socket";
	if (bind(fd, (struct sockaddr *)&kernel, sizeof kernel) < 0 ||
	    connect(fd, (struct sockaddr *)&kernel, sizeof kernel) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv); /* capped by rmem_max */
	memset(&msg, 0, sizeof msg);
	memcpy(msg.b + NLMSG_HDRLEN, &g, sizeof g);
	nflog_attr(msg.b, &off, NFULA_CFG_CMD, &cmd, sizeof cmd);
	nflog_attr(msg.b, &off, NFULA_CFG_MODE, &mode, sizeof mode);
	nflog_attr(msg.b, &off, NFULA_CFG_NLBUFSIZ, &nlbufsiz, sizeof nlbufsiz);
	nflog_attr(msg.b, &off, NFULA_CFG_QTHRESH, &qthresh, sizeof qthresh);
	nflog_attr(msg.b, &off, NFULA_CFG_TIMEOUT, &timeout, sizeof timeout);
	nflog_attr(msg.b, &off, NFULA_CFG_FLAGS, &flags, sizeof flags);
	h.nlmsg_len = (uint32_t)off;
	memcpy(msg.b, &h, sizeof h);
	what = "configuring NFLOG";
	if (send(fd, msg.b, off, 0) != (ssize_t)off)
		goto fail;
	do
		n = recv(fd, ans.b, sizeof ans.b, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		goto fail;
	if ((size_t)n >= NLMSG_HDRLEN + sizeof(struct nlmsgerr) && ans.align.nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr e;

		memcpy(&e, ans.b + NLMSG_HDRLEN, sizeof e);
		if (e.error == 0)
			return fd;
		errno = -e.error;
	} else {
		errno = EPROTO;
	}
fail:
	snprintf(err, errlen, "%s (group %u): %s", what, group, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ------------------------------------------------------------- parsing */

/* True when IP protocol proto starts its header with the two ports. */
static bool nflog_has_ports(int proto)
{
	return proto == IPPROTO_UDP || proto == IPPROTO_TCP || proto == IPPROTO_UDPLITE ||
	       proto == IPPROTO_SCTP || proto == IPPROTO_DCCP;
}

/* Reads the IP header of payload (plen bytes, as copied) of a packet of
 * nfgen family af into p: addresses, protocol and, when not cut off and not
 * a later fragment, the ports. Leaves p->family 0 when it is no IPv4 or
 * IPv6 header of that family. */
static void nflog_ip(const uint8_t *b, size_t plen, int af, struct nflog_packet *p)
{
	size_t off;
	bool ports = true;
	int nh;

	if (af == AF_INET && plen >= 20 && b[0] >> 4 == 4) {
		off = (size_t)(b[0] & 15) * 4;
		if (off < 20)
			return;
		p->family = 4;
		memcpy(p->src.bytes, b + 12, 4);
		memcpy(p->dst.bytes, b + 16, 4);
		nh = b[9];
		ports = ((b[6] & 0x1f) << 8 | b[7]) == 0; /* the first fragment */
	} else if (af == AF_INET6 && plen >= 40 && b[0] >> 4 == 6) {
		p->family = 6;
		memcpy(p->src.bytes, b + 8, 16);
		memcpy(p->dst.bytes, b + 24, 16);
		nh = b[6];
		off = 40;
		for (int i = 0; i < NFLOG_EXTHDRS; i++) {
			size_t hl;

			if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
				if (plen - off < 2)
					break;
				hl = ((size_t)b[off + 1] + 1) * 8;
			} else if (nh == IPPROTO_AH) {
				if (plen - off < 2)
					break;
				hl = ((size_t)b[off + 1] + 2) * 4;
			} else if (nh == IPPROTO_FRAGMENT) {
				if (plen - off < 8)
					break;
				hl = 8;
				ports = ports && ((b[off + 2] << 8 | b[off + 3]) & 0xfff8) == 0;
			} else {
				break;
			}
			nh = b[off];
			if (hl > plen - off) {
				off = plen; /* cut off: no ports */
				break;
			}
			off += hl;
		}
	} else {
		return;
	}
	p->src.family = p->dst.family = (uint8_t)p->family;
	p->ipproto = nh;
	if (ports && nflog_has_ports(nh) && off <= plen && plen - off >= 4) {
		p->sport = (uint16_t)(b[off] << 8 | b[off + 1]);
		p->dport = (uint16_t)(b[off + 2] << 8 | b[off + 3]);
	}
}

/* Reads the body (blen bytes after the netlink header) of one packet
 * message into p. Returns 0, or -1 when it is malformed: too short for its
 * nfgenmsg, an attribute whose length does not fit, a fixed-size attribute
 * of another size, or one given twice. */
static int nflog_message(const uint8_t *body, size_t blen, struct nflog_packet *p)
{
	const uint8_t *payload = NULL;
	size_t off, plen = 0;
	uint32_t seen = 0;
	struct nfgenmsg g;

	memset(p, 0, sizeof *p);
	if (blen < sizeof g)
		return -1;
	memcpy(&g, body, sizeof g);
	/* each attribute takes at least NLA_HDRLEN bytes: at most blen / 4 of them */
	for (off = NLMSG_ALIGN(sizeof g); off < blen && blen - off >= NLA_HDRLEN;) {
		struct nlattr a;
		uint16_t type;
		size_t dlen, step;
		uint32_t v;

		memcpy(&a, body + off, sizeof a);
		if (a.nla_len < NLA_HDRLEN || a.nla_len > blen - off)
			return -1;
		type = a.nla_type & NLA_TYPE_MASK;
		dlen = a.nla_len - NLA_HDRLEN;
		if (type < 32) {
			if (seen & (1u << type))
				return -1;
			seen |= 1u << type;
		}
		switch (type) {
		case NFULA_PAYLOAD:
			payload = body + off + NLA_HDRLEN;
			plen = dlen;
			break;
		case NFULA_UID:
		case NFULA_SEQ:
			if (dlen != sizeof v)
				return -1;
			memcpy(&v, body + off + NLA_HDRLEN, sizeof v);
			if (type == NFULA_UID)
				p->has_uid = true, p->uid = ntohl(v);
			else
				p->has_seq = true, p->seq = ntohl(v);
			break;
		default:
			break;
		}
		step = (size_t)NLA_ALIGN(a.nla_len);
		off += step < blen - off ? step : blen - off;
	}
	if (off != blen)
		return -1; /* bytes left that are no attribute */
	if (payload)
		nflog_ip(payload, plen, g.nfgen_family, p);
	return 0;
}

int nflog_parse(const void *buf, size_t len, nflog_packet_fn fn, void *ctx, unsigned *malformed)
{
	const uint8_t *b = buf;
	size_t off = 0;
	int n = 0;

	*malformed = 0;
	/* each message takes at least NLMSG_HDRLEN bytes */
	while (off < len) {
		struct nlmsghdr h;
		struct nflog_packet p;

		if (len - off < NLMSG_HDRLEN) {
			(*malformed)++;
			break;
		}
		memcpy(&h, b + off, sizeof h);
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) {
			(*malformed)++; /* the rest cannot be framed */
			break;
		}
		if (h.nlmsg_type == ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) {
			if (nflog_message(b + off + NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN, &p) == 0) {
				fn(ctx, &p);
				n++;
			} else {
				(*malformed)++;
			}
		} else if (h.nlmsg_type == NLMSG_ERROR) {
			int32_t err = -1; /* too short to say: as an error */

			if (h.nlmsg_len - NLMSG_HDRLEN >= sizeof err)
				memcpy(&err, b + off + NLMSG_HDRLEN, sizeof err);
			if (err != 0)
				(*malformed)++; /* only an ack (0) is expected */
		} else if (h.nlmsg_type != NLMSG_DONE && h.nlmsg_type != NLMSG_NOOP) {
			(*malformed)++;
		}
		off += NLMSG_ALIGN(h.nlmsg_len) < len - off ? NLMSG_ALIGN(h.nlmsg_len) : len - off;
	}
	return n;
}

/* ------------------------------------------------------------- reading */

/* One sender's socket and destination seen in the last second. */
struct nflog_entry {
	bool used;
	int ipproto;
	struct proto_addr src, dst;
	uint16_t sport, dport;
	uint32_t kuid;           /* the packet's uid, as the kernel gave it */
	bool has_uid;
	unsigned long repeats;   /* seen since its last event */
	long last_ms;            /* its last event */
	pid_t pid;               /* attributed once, when first seen */
	uid_t uid;
	char exe[PATH_MAX];      /* last: an entry is cleared up to it */
};

struct nflog {
	struct loop *loop;
	struct nflog_sink sink;
	struct watch w;              /* the NFLOG socket */
	struct watch timer_w;        /* once a second: the repeats' events */
	uint32_t next_seq;           /* the sequence number expected next */
	bool warned_unitemised;      /* said once that some are in no event */
	bool warned_error;           /* said once that the socket failed */
	struct nflog_counts pending; /* counts not given to the sink yet */
	struct nflog_entry e[NFLOG_KEYS];
	uint8_t buf[NFLOG_BUF];
};

/* Records entry e as one event standing for count packets. */
static void nflog_record(struct nflog *n, const struct nflog_entry *e, unsigned long count)
{
	struct audit_event ev = {
		.pid = e->pid, .uid = e->uid, .exe = e->exe[0] ? e->exe : NULL,
		.op = e->ipproto == IPPROTO_TCP ? PROTO_OP_CONNECT : PROTO_OP_SEND,
		.addr = &e->dst, .port = e->dport,
		.l4 = e->ipproto == IPPROTO_UDP   ? PROTO_L4_UDP
		      : e->ipproto == IPPROTO_TCP ? PROTO_L4_TCP
						  : PROTO_L4_ANY,
		.action = PROTO_DENY, .rule = "isolated", .err = "EPERM", .captured = true,
		.count = count, .ipproto = e->ipproto,
	};

	clock_gettime(CLOCK_REALTIME, &ev.time);
	n->sink.record(n->sink.ctx, &ev);
}

static bool nflog_same(const struct nflog_entry *e, const struct nflog_packet *p)
{
	return e->used && e->ipproto == p->ipproto && e->sport == p->sport && e->dport == p->dport &&
	       e->has_uid == p->has_uid && e->kuid == p->uid &&
	       memcmp(&e->src, &p->src, sizeof e->src) == 0 &&
	       memcmp(&e->dst, &p->dst, sizeof e->dst) == 0;
}

/* The parser's callback: counts p (and the packets lost before it) and
 * records it, or adds it to the repeats of its entry. */
static void nflog_packet(void *ctx, const struct nflog_packet *p)
{
	struct nflog *n = ctx;
	struct nflog_entry *e = NULL, *sib = NULL;

	if (p->has_seq) {
		uint32_t gap = p->seq - n->next_seq;

		if (gap < 0x80000000u) { /* else an old number: nothing lost */
			n->pending.dropped += gap;
			n->pending.lost += gap;
			n->next_seq = p->seq + 1;
		}
	}
	n->pending.dropped++;
	if (!p->family) {
		n->pending.unitemised++;
		return;
	}
	for (int i = 0; i < NFLOG_KEYS; i++) {
		if (nflog_same(&n->e[i], p)) {
			n->e[i].repeats++;
			return;
		}
		if (!n->e[i].used && !e)
			e = &n->e[i];
		else if (n->e[i].used && n->e[i].ipproto == p->ipproto && n->e[i].sport == p->sport &&
			 memcmp(&n->e[i].src, &p->src, sizeof p->src) == 0)
			sib = &n->e[i]; /* the same socket, another destination */
	}
	if (!e) {
		n->pending.unitemised++;
		if (!n->warned_unitemised) {
			n->warned_unitemised = true;
			log_warn("isolated namespace: more than %d senders x destinations of dropped "
				 "packets a second; the others are counted, not itemised (status)",
				 NFLOG_KEYS);
		}
		return;
	}
	memset(e, 0, offsetof(struct nflog_entry, exe));
	e->used = true;
	e->ipproto = p->ipproto;
	e->src = p->src;
	e->dst = p->dst;
	e->sport = p->sport;
	e->dport = p->dport;
	e->kuid = p->uid;
	e->has_uid = p->has_uid;
	e->uid = p->has_uid ? p->uid : (uid_t)-1;
	e->exe[0] = 0;
	if (sib) {
		e->pid = sib->pid;
		e->uid = sib->uid;
		memcpy(e->exe, sib->exe, sizeof e->exe);
	} else {
		e->pid = n->sink.owner(n->sink.ctx, p, &e->uid, e->exe, sizeof e->exe);
	}
	e->last_ms = proto_now_ms();
	nflog_record(n, e, 1);
}

/* Gives the pending counts to the sink. */
static void nflog_flush_counts(struct nflog *n)
{
	static const struct nflog_counts zero;

	if (memcmp(&n->pending, &zero, sizeof zero) == 0)
		return;
	n->sink.count(n->sink.ctx, &n->pending);
	n->pending = zero;
}

/* The socket's handler: reads at most NFLOG_READS datagrams from the
 * kernel, the rest waiting for the next turn of the loop. */
static void nflog_readable(void *ctx, uint32_t events)
{
	struct nflog *n = ctx;

	(void)events;
	/* only the kernel can send here: the socket is connected to it */
	for (int i = 0; i < NFLOG_READS; i++) {
		unsigned bad = 0;
		ssize_t len = recv(n->w.fd, n->buf, sizeof n->buf, MSG_DONTWAIT);

		if (len < 0) {
			if (errno == ENOBUFS)
				continue; /* the kernel dropped some: the next sequence number tells */
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && !n->warned_error) {
				n->warned_error = true;
				log_error("isolated namespace: reading NFLOG: %s", strerror(errno));
			}
			break;
		}
		/* a datagram longer than NFLOG_BUF (none is: NFLOG_NLBUFSIZ) would
		 * be cut, and its last message counted malformed */
		nflog_parse(n->buf, (size_t)len, nflog_packet, n, &bad);
		n->pending.malformed += bad;
	}
	nflog_flush_counts(n);
}

/* Records every entry's repeats, and forgets the entries with none that
 * were recorded at least a window ago. */
static void nflog_repeats(struct nflog *n, bool all)
{
	long now = proto_now_ms();

	for (int i = 0; i < NFLOG_KEYS; i++) {
		struct nflog_entry *e = &n->e[i];

		if (!e->used)
			continue;
		if (e->repeats) {
			nflog_record(n, e, e->repeats);
			e->repeats = 0;
			e->last_ms = now;
		} else if (all || now - e->last_ms >= NFLOG_WINDOW_MS) {
			e->used = false;
		}
	}
}

static void nflog_tick(void *ctx, uint32_t events)
{
	struct nflog *n = ctx;
	uint64_t expirations;

	(void)events;
	if (read(n->timer_w.fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
		return;
	nflog_repeats(n, false);
	nflog_flush_counts(n);
}

struct nflog *nflog_new(struct loop *l, int fd, const struct nflog_sink *sink)
{
	struct itimerspec its = { .it_interval = { .tv_sec = 1 }, .it_value = { .tv_sec = 1 } };
	struct nflog *n = calloc(1, sizeof *n);
	int tfd = -1;

	if (!n || (tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    timerfd_settime(tfd, 0, &its, NULL) < 0) {
		log_error("isolated namespace: NFLOG reader: %s", strerror(errno));
		if (tfd >= 0)
			close(tfd);
		free(n);
		close(fd);
		return NULL;
	}
	n->loop = l;
	n->sink = *sink;
	watch_init(&n->w, fd, nflog_readable, n);
	watch_init(&n->timer_w, tfd, nflog_tick, n);
	if (loop_watch(l, &n->w, EPOLLIN) < 0 || loop_watch(l, &n->timer_w, EPOLLIN) < 0) {
		log_error("isolated namespace: NFLOG reader: %s", strerror(errno));
		loop_unwatch(l, &n->w);
		close(fd);
		close(tfd);
		free(n);
		return NULL;
	}
	return n;
}

void nflog_free(struct nflog *n)
{
	struct pollfd pfd;

	if (!n)
		return;
	/* The namespace's last packets (a program that sent and exited) may
	 * still be in a batch the kernel sends within NFLOG_TIMEOUT: wait for
	 * it, briefly and a bounded number of times. */
	pfd.fd = n->w.fd;
	pfd.events = POLLIN;
	for (int i = 0; i < NFLOG_TAILS && poll(&pfd, 1, NFLOG_TAIL_MS) > 0; i++)
		nflog_readable(n, EPOLLIN);
	nflog_repeats(n, true);
	nflog_flush_counts(n);
	loop_unwatch(n->loop, &n->w);
	loop_unwatch(n->loop, &n->timer_w);
	close(n->w.fd);
	close(n->timer_w.fd);
	free(n);
}
