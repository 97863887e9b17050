/* proto.c: encoder and decoder of the wire protocol, every length checked,
 * and the helpers both of its sides need (names, addresses, the clock). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto.h"

#define ASK_FIXED 26     /* op l4 family namelen port(2) addr(17) flags src_port(2) */
#define VERDICT_FIXED 18 /* action naddr rulelen namelen err(4) ttl(4) port(2) gen(4) */
#define ADDR_LEN 17      /* family + 16 bytes */

/* ---------------------------------------------------------------- bytes */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static int addr_valid(const struct proto_addr *a)
{
	return a->family == 4 || a->family == 6;
}

static void put_addr(uint8_t *p, const struct proto_addr *a)
{
	p[0] = a->family;
	memcpy(p + 1, a->bytes, 16);
}

static void get_addr(const uint8_t *p, struct proto_addr *a)
{
	a->family = p[0];
	memcpy(a->bytes, p + 1, 16);
}

/* ---------------------------------------------------------------- encode */

/* The body length of an ASK, or -1 when a field is out of bounds. */
static ssize_t ask_len(const struct proto_ask *a)
{
	size_t n = strnlen(a->name, sizeof a->name);

	return proto_ask_check(a, n) < 0 ? -1 : ASK_FIXED + (ssize_t)n;
}

/* A NOTE tells of a connect, allowed or denied. */
static bool note_ok(const struct proto_ask *a, uint8_t action)
{
	return a->op == PROTO_OP_CONNECT && (action == PROTO_ALLOW || action == PROTO_DENY);
}

/* Writes the header of a message of type and id with a body of blen. */
static void put_header(uint8_t *p, uint16_t type, uint32_t id, size_t blen)
{
	p[0] = PROTO_MAGIC;
	p[1] = PROTO_VERSION;
	put16(p + 2, type);
	put32(p + 4, id);
	put32(p + 8, (uint32_t)blen);
}

/* Writes an ASK's body of blen bytes (from ask_len). */
static void put_ask(uint8_t *p, const struct proto_ask *a, size_t blen)
{
	size_t n = blen - ASK_FIXED;

	p[0] = a->op;
	p[1] = a->l4;
	p[2] = a->family;
	p[3] = (uint8_t)n;
	put16(p + 4, a->port);
	put_addr(p + 6, &a->addr);
	p[23] = a->flags;
	put16(p + 24, a->src_port);
	memcpy(p + ASK_FIXED, a->name, n);
}

/* Returns the body length of m, or -1 when a field is out of bounds. */
static ssize_t body_len(const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_ASK:
		return ask_len(&m->u.ask);
	case PROTO_NOTE:
		return note_ok(&m->u.note.ask, m->u.note.action) ? ask_len(&m->u.note.ask) + 1 : -1;
	case PROTO_VERDICT: {
		const struct proto_verdict *v = &m->u.verdict;
		size_t n = strnlen(v->rule, sizeof v->rule);
		size_t nn = strnlen(v->name, sizeof v->name);
		if (v->action < PROTO_ALLOW || v->action > PROTO_FAIL || n > PROTO_RULE_MAX ||
		    nn > PROTO_NAME_MAX || v->naddr > PROTO_ADDRS_MAX)
			return -1;
		for (int i = 0; i < v->naddr; i++)
			if (!addr_valid(&v->addrs[i]))
				return -1;
		return VERDICT_FIXED + (ssize_t)(n + nn) + ADDR_LEN * v->naddr;
	}
	case PROTO_CONTROL:
		if (m->u.control.what < PROTO_CTL_STATUS || m->u.control.what > PROTO_CTL_CAPTURE)
			return -1;
		return 1;
	case PROTO_TEXT:
		if (m->u.text.len > PROTO_TEXT_MAX)
			return -1;
		return 4 + (ssize_t)m->u.text.len;
	case PROTO_ERROR:
		return 4;
	case PROTO_RING:
		return 0;
	}
	return -1;
}

ssize_t proto_encode(const struct proto_msg *m, void *buf, size_t cap)
{
	ssize_t blen = body_len(m);
	uint8_t *p = buf;

	if (blen < 0 || (size_t)blen + PROTO_HDR_LEN > cap)
		return -1;
	put_header(p, m->type, m->id, (size_t)blen);
	p += PROTO_HDR_LEN;

	switch (m->type) {
	case PROTO_ASK:
		put_ask(p, &m->u.ask, (size_t)blen);
		break;
	case PROTO_NOTE:
		put_ask(p, &m->u.note.ask, (size_t)blen - 1);
		p[blen - 1] = m->u.note.action;
		break;
	case PROTO_VERDICT: {
		const struct proto_verdict *v = &m->u.verdict;
		size_t n = strnlen(v->rule, sizeof v->rule);
		size_t nn = strnlen(v->name, sizeof v->name);
		p[0] = v->action;
		p[1] = v->naddr;
		p[2] = (uint8_t)n;
		p[3] = (uint8_t)nn;
		put32(p + 4, (uint32_t)v->err);
		put32(p + 8, v->ttl_ms);
		put16(p + 12, v->port);
		put32(p + 14, v->gen);
		memcpy(p + VERDICT_FIXED, v->rule, n);
		memcpy(p + VERDICT_FIXED + n, v->name, nn);
		for (int i = 0; i < v->naddr; i++)
			put_addr(p + VERDICT_FIXED + n + nn + ADDR_LEN * i, &v->addrs[i]);
		break;
	}
	case PROTO_CONTROL:
		p[0] = m->u.control.what;
		break;
	case PROTO_TEXT:
		put32(p, (uint32_t)m->u.text.status);
		memcpy(p + 4, m->u.text.text, m->u.text.len);
		break;
	case PROTO_ERROR:
		put32(p, (uint32_t)m->u.error);
		break;
	}
	return PROTO_HDR_LEN + blen;
}

ssize_t proto_encode_ask(uint16_t type, uint32_t id, const struct proto_ask *a, uint8_t action,
			 void *buf, size_t cap)
{
	ssize_t alen = ask_len(a), blen = alen + (type == PROTO_NOTE);
	uint8_t *p = buf;

	if (alen < 0 || (type != PROTO_ASK && type != PROTO_NOTE) ||
	    (type == PROTO_NOTE && !note_ok(a, action)) || (size_t)blen + PROTO_HDR_LEN > cap)
		return -1;
	put_header(p, type, id, (size_t)blen);
	put_ask(p + PROTO_HDR_LEN, a, (size_t)alen);
	if (type == PROTO_NOTE)
		p[PROTO_HDR_LEN + alen] = action;
	return PROTO_HDR_LEN + blen;
}

/* ---------------------------------------------------------------- decode */

static int decode_ask(const uint8_t *p, size_t len, struct proto_ask *a)
{
	size_t n;

	if (len < ASK_FIXED)
		return PROTO_BAD_MSG;
	n = p[3];
	if (len != ASK_FIXED + n || n > PROTO_NAME_MAX)
		return PROTO_BAD_MSG;
	memset(a, 0, sizeof *a);
	a->op = p[0];
	a->l4 = p[1];
	a->family = p[2];
	a->port = get16(p + 4);
	get_addr(p + 6, &a->addr);
	a->flags = p[23];
	a->src_port = get16(p + 24);
	memcpy(a->name, p + ASK_FIXED, n);
	if (memchr(a->name, 0, n) || proto_ask_check(a, n) < 0)
		return PROTO_BAD_MSG;
	return 0;
}

static int decode_verdict(const uint8_t *p, size_t len, struct proto_verdict *v)
{
	size_t n, nn;

	if (len < VERDICT_FIXED)
		return PROTO_BAD_MSG;
	n = p[2];
	nn = p[3];
	if (n > PROTO_RULE_MAX || nn > PROTO_NAME_MAX || p[1] > PROTO_ADDRS_MAX ||
	    len != VERDICT_FIXED + n + nn + (size_t)ADDR_LEN * p[1])
		return PROTO_BAD_MSG;
	memset(v, 0, sizeof *v);
	v->action = p[0];
	v->naddr = p[1];
	v->err = (int32_t)get32(p + 4);
	v->ttl_ms = get32(p + 8);
	v->port = get16(p + 12);
	v->gen = get32(p + 14);
	memcpy(v->rule, p + VERDICT_FIXED, n);
	memcpy(v->name, p + VERDICT_FIXED + n, nn);
	if (memchr(v->rule, 0, n) || memchr(v->name, 0, nn) || v->action < PROTO_ALLOW ||
	    v->action > PROTO_FAIL)
		return PROTO_BAD_MSG;
	for (int i = 0; i < v->naddr; i++) {
		get_addr(p + VERDICT_FIXED + n + nn + ADDR_LEN * i, &v->addrs[i]);
		if (!addr_valid(&v->addrs[i]))
			return PROTO_BAD_MSG;
	}
	return 0;
}

static int decode_error(const uint8_t *p, size_t len, int32_t *error)
{
	if (len != 4)
		return PROTO_BAD_MSG;
	*error = (int32_t)get32(p);
	return 0;
}

/* Reads the header of the len bytes at p into *type, *id and *blen.
 * Returns 0, PROTO_BAD_VERSION or PROTO_BAD_MSG. */
static int get_header(const uint8_t *p, size_t len, uint16_t *type, uint32_t *id, size_t *blen)
{
	if (len < PROTO_HDR_LEN || p[0] != PROTO_MAGIC)
		return PROTO_BAD_MSG;
	*type = get16(p + 2);
	*id = get32(p + 4);
	*blen = get32(p + 8);
	if (*blen != len - PROTO_HDR_LEN)
		return PROTO_BAD_MSG;
	return p[1] == PROTO_VERSION ? 0 : PROTO_BAD_VERSION;
}

ssize_t proto_encode_ring(void *buf, size_t cap)
{
	if (cap < PROTO_HDR_LEN)
		return -1;
	put_header(buf, PROTO_RING, 0, 0);
	return PROTO_HDR_LEN;
}

int proto_decode_answer(const void *buf, size_t len, uint16_t *type, uint32_t *id,
			struct proto_verdict *v, int32_t *error)
{
	const uint8_t *p = buf;
	size_t blen;
	int rc = get_header(p, len, type, id, &blen);

	if (rc != 0)
		return rc;
	p += PROTO_HDR_LEN;
	if (*type == PROTO_VERDICT)
		return decode_verdict(p, blen, v);
	return *type == PROTO_ERROR ? decode_error(p, blen, error) : PROTO_BAD_TYPE;
}

int proto_decode(const void *buf, size_t len, struct proto_msg *m)
{
	const uint8_t *p = buf;
	size_t blen;
	int rc = get_header(p, len, &m->type, &m->id, &blen);

	if (rc != 0)
		return rc;
	p += PROTO_HDR_LEN;

	switch (m->type) {
	case PROTO_ASK:
		return decode_ask(p, blen, &m->u.ask);
	case PROTO_NOTE:
		if (blen < 1 || decode_ask(p, blen - 1, &m->u.note.ask) != 0)
			return PROTO_BAD_MSG;
		m->u.note.action = p[blen - 1];
		return note_ok(&m->u.note.ask, m->u.note.action) ? 0 : PROTO_BAD_MSG;
	case PROTO_ERROR:
		return decode_error(p, blen, &m->u.error);
	case PROTO_RING:
		return blen == 0 ? 0 : PROTO_BAD_MSG;
	case PROTO_VERDICT:
		return decode_verdict(p, blen, &m->u.verdict);
	case PROTO_CONTROL:
		if (blen != 1 || p[0] < PROTO_CTL_STATUS || p[0] > PROTO_CTL_CAPTURE)
			return PROTO_BAD_MSG;
		m->u.control.what = p[0];
		return 0;
	case PROTO_TEXT:
		if (blen < 4 || blen - 4 > PROTO_TEXT_MAX)
			return PROTO_BAD_MSG;
		m->u.text.status = (int32_t)get32(p);
		m->u.text.len = (uint32_t)(blen - 4);
		memcpy(m->u.text.text, p + 4, blen - 4);
		m->u.text.text[blen - 4] = 0;
		return 0;
	}
	return PROTO_BAD_TYPE;
}

/* --------------------------- shared helpers: linked by the shim and the broker */

int proto_ask_check(const struct proto_ask *a, size_t namelen)
{
	if (a->op < PROTO_OP_RESOLVE || a->op > PROTO_OP_SEND || a->l4 > PROTO_L4_UDP ||
	    (a->flags & ~PROTO_ASK_FLAGS))
		return -1;
	if ((a->src_port && a->op != PROTO_OP_SEND) ||
	    ((a->flags & PROTO_ASK_SOURCE) && (a->op != PROTO_OP_SEND || !a->src_port)))
		return -1;
	if (a->op == PROTO_OP_RESOLVE) {
		if (namelen == 0 || namelen > PROTO_NAME_MAX || a->addr.family != 0 ||
		    (a->family != 0 && a->family != 4 && a->family != 6))
			return -1;
	} else if (namelen != 0 || a->family != 0 || !addr_valid(&a->addr)) {
		return -1;
	}
	return 0;
}

const char *proto_op_name(int op)
{
	switch (op) {
	case PROTO_OP_RESOLVE: return "resolve";
	case PROTO_OP_CONNECT: return "connect";
	case PROTO_OP_SEND: return "send";
	}
	return "?";
}

const char *proto_l4_name(int l4)
{
	switch (l4) {
	case PROTO_L4_TCP: return "tcp";
	case PROTO_L4_UDP: return "udp";
	case PROTO_L4_ANY: return "any";
	}
	return "?";
}

const char *proto_action_name(int action)
{
	switch (action) {
	case PROTO_ALLOW: return "allow";
	case PROTO_DENY: return "deny";
	case PROTO_REWRITE: return "rewrite";
	case PROTO_PENDING: return "pending";
	case PROTO_FAIL: return "fail";
	}
	return "?";
}

static const uint8_t mapped_prefix[12] = { [10] = 0xff, [11] = 0xff }; /* ::ffff:0:0/96 */

bool proto_addr_unmap(struct proto_addr *a)
{
	if (a->family != 6 || memcmp(a->bytes, mapped_prefix, sizeof mapped_prefix) != 0)
		return false;
	a->family = 4;
	memmove(a->bytes, a->bytes + 12, 4);
	memset(a->bytes + 4, 0, 12);
	return true;
}

int proto_addr_from_sockaddr(const struct sockaddr *sa, int family, struct proto_addr *a,
			     uint16_t *port)
{
	const uint8_t *b = (const uint8_t *)sa;
	uint16_t netport;

	if (family == AF_INET) {
		memset(a, 0, sizeof *a);
		a->family = 4;
		memcpy(a->bytes, b + offsetof(struct sockaddr_in, sin_addr), 4);
		memcpy(&netport, b + offsetof(struct sockaddr_in, sin_port), sizeof netport);
	} else if (family == AF_INET6) {
		memset(a, 0, sizeof *a);
		a->family = 6;
		memcpy(a->bytes, b + offsetof(struct sockaddr_in6, sin6_addr), 16);
		memcpy(&netport, b + offsetof(struct sockaddr_in6, sin6_port), sizeof netport);
		proto_addr_unmap(a);
	} else {
		return -1;
	}
	*port = ntohs(netport);
	return 0;
}

socklen_t proto_addr_to_sockaddr(const struct proto_addr *a, uint16_t port, bool v6,
				 struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (a->family == 4 && !v6) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, a->bytes, 4);
		return sizeof *in;
	}
	if (a->family == 4 || a->family == 6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (a->family == 4) {
			memcpy(in6->sin6_addr.s6_addr, mapped_prefix, sizeof mapped_prefix);
			memcpy(in6->sin6_addr.s6_addr + 12, a->bytes, 4);
		} else {
			memcpy(in6->sin6_addr.s6_addr, a->bytes, 16);
		}
		return sizeof *in6;
	}
	return 0;
}

void proto_dest_format(const char *name, const struct proto_addr *addr, uint16_t port, char *out,
		       size_t cap)
{
	char text[INET6_ADDRSTRLEN];

	if (cap == 0)
		return;
	if (name != NULL && name[0]) {
		snprintf(out, cap, "%s:%u", name, port);
		for (char *p = out; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
	} else if (addr != NULL && (addr->family == 4 || addr->family == 6) &&
		   inet_ntop(addr->family == 4 ? AF_INET : AF_INET6, addr->bytes, text,
			     sizeof text) != NULL) {
		snprintf(out, cap, addr->family == 6 ? "[%s]:%u" : "%s:%u", text, port);
	} else {
		snprintf(out, cap, "?:%u", port);
	}
}

long proto_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

ssize_t proto_send_fd(int sock, const void *buf, size_t len, int fd, int flags)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.space;
		mh.msg_controllen = sizeof ctl.space;
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	return sendmsg(sock, &mh, flags);
}
