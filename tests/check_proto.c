/* check_proto.c: unit tests of the wire codec: round trips of every message
 * type, every truncation, bad headers and bodies, and encoder bounds; and of
 * the shared helpers beside it (ASK check, names, addresses, clock). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "suites.h"

static struct proto_msg *msg_new(void)
{
	struct proto_msg *m = calloc(1, sizeof *m);

	ck_assert_ptr_nonnull(m);
	return m;
}

static struct proto_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct proto_addr x = { .family = 4, .bytes = { a, b, c, d } };

	return x;
}

static struct proto_addr addr6(uint8_t last)
{
	struct proto_addr x = { .family = 6, .bytes = { 0x20, 0x01, 0x0d, 0xb8, [15] = last } };

	return x;
}

/* Fills m with valid message number i of the table below. Returns false
 * past its end. */
static bool sample(int i, struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->id = 0x01020304u + (uint32_t)i;
	switch (i) {
	case 0: /* resolve, any family, no port */
		m->type = PROTO_ASK;
		m->u.ask.op = PROTO_OP_RESOLVE;
		strcpy(m->u.ask.name, "api.example.com");
		return true;
	case 1: /* resolve, v6, with port and l4; longest name */
		m->type = PROTO_ASK;
		m->u.ask.op = PROTO_OP_RESOLVE;
		m->u.ask.l4 = PROTO_L4_TCP;
		m->u.ask.family = 6;
		m->u.ask.port = 443;
		memset(m->u.ask.name, 'a', PROTO_NAME_MAX);
		return true;
	case 2: /* connect v4 */
		m->type = PROTO_ASK;
		m->u.ask.op = PROTO_OP_CONNECT;
		m->u.ask.l4 = PROTO_L4_TCP;
		m->u.ask.port = 65535;
		m->u.ask.addr = addr4(93, 184, 216, 34);
		return true;
	case 3: /* send v6 */
		m->type = PROTO_ASK;
		m->u.ask.op = PROTO_OP_SEND;
		m->u.ask.l4 = PROTO_L4_UDP;
		m->u.ask.port = 53;
		m->u.ask.src_port = 0xbeef;
		m->u.ask.addr = addr6(1);
		return true;
	case 4: /* verdict allow, nothing else */
		m->type = PROTO_VERDICT;
		m->u.verdict.action = PROTO_ALLOW;
		return true;
	case 5: /* verdict deny with errno, rule, name, ttl */
		m->type = PROTO_VERDICT;
		m->u.verdict.action = PROTO_DENY;
		m->u.verdict.err = 111;
		m->u.verdict.ttl_ms = 10000;
		m->u.verdict.port = 0xfedc;
		strcpy(m->u.verdict.rule, "no-metadata");
		strcpy(m->u.verdict.name, "metadata.google.internal");
		return true;
	case 6: /* verdict with the most addresses, longest rule and name */
		m->type = PROTO_VERDICT;
		m->u.verdict.action = PROTO_REWRITE;
		m->u.verdict.err = -2;
		m->u.verdict.ttl_ms = 0xffffffffu;
		memset(m->u.verdict.rule, 'r', PROTO_RULE_MAX);
		memset(m->u.verdict.name, 'n', PROTO_NAME_MAX);
		m->u.verdict.naddr = PROTO_ADDRS_MAX;
		for (int k = 0; k < PROTO_ADDRS_MAX; k++)
			m->u.verdict.addrs[k] = k % 2 ? addr6((uint8_t)k) : addr4(10, 0, 0, (uint8_t)k);
		return true;
	case 7:
	case 8:
	case 9:
		m->type = PROTO_CONTROL;
		m->u.control.what = (uint8_t)(PROTO_CTL_STATUS + i - 7);
		return true;
	case 10: /* empty text */
		m->type = PROTO_TEXT;
		return true;
	case 11:
		m->type = PROTO_TEXT;
		m->u.text.status = -1;
		strcpy(m->u.text.text, "policy.ini:3: unknown key foo in [egress]");
		m->u.text.len = (uint32_t)strlen(m->u.text.text);
		return true;
	case 12: /* longest text */
		m->type = PROTO_TEXT;
		m->u.text.len = PROTO_TEXT_MAX;
		for (int k = 0; k < PROTO_TEXT_MAX; k++)
			m->u.text.text[k] = (char)('a' + k % 26);
		return true;
	case 13:
	case 14:
	case 15:
		m->type = PROTO_ERROR;
		m->u.error = PROTO_E_VERSION + i - 13;
		return true;
	case 16: /* a connect applied from the cache, allowed */
	case 17: /* and denied, IPv6 */
		m->type = PROTO_NOTE;
		m->u.note.ask.op = PROTO_OP_CONNECT;
		m->u.note.ask.l4 = PROTO_L4_TCP;
		m->u.note.ask.port = 443;
		m->u.note.ask.addr = i == 16 ? addr4(192, 0, 2, 1) : addr6(9);
		m->u.note.action = i == 16 ? PROTO_ALLOW : PROTO_DENY;
		return true;
	case 18: /* a verdict of a generation */
		m->type = PROTO_VERDICT;
		m->u.verdict.action = PROTO_ALLOW;
		m->u.verdict.ttl_ms = 5000;
		m->u.verdict.gen = 0xdeadbeefu;
		return true;
	}
	return false;
}

#define NSAMPLES 19

/* Asserts that b, decoded, equals a. */
static void assert_same(const struct proto_msg *a, const struct proto_msg *b)
{
	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->id, b->id);
	switch (a->type) {
	case PROTO_ASK:
		ck_assert_uint_eq(a->u.ask.op, b->u.ask.op);
		ck_assert_uint_eq(a->u.ask.l4, b->u.ask.l4);
		ck_assert_uint_eq(a->u.ask.family, b->u.ask.family);
		ck_assert_uint_eq(a->u.ask.port, b->u.ask.port);
		ck_assert_mem_eq(&a->u.ask.addr, &b->u.ask.addr, sizeof a->u.ask.addr);
		ck_assert_uint_eq(a->u.ask.src_port, b->u.ask.src_port);
		ck_assert_str_eq(a->u.ask.name, b->u.ask.name);
		break;
	case PROTO_VERDICT:
		ck_assert_uint_eq(a->u.verdict.action, b->u.verdict.action);
		ck_assert_int_eq(a->u.verdict.err, b->u.verdict.err);
		ck_assert_uint_eq(a->u.verdict.ttl_ms, b->u.verdict.ttl_ms);
		ck_assert_uint_eq(a->u.verdict.gen, b->u.verdict.gen);
		ck_assert_uint_eq(a->u.verdict.port, b->u.verdict.port);
		ck_assert_str_eq(a->u.verdict.rule, b->u.verdict.rule);
		ck_assert_str_eq(a->u.verdict.name, b->u.verdict.name);
		ck_assert_uint_eq(a->u.verdict.naddr, b->u.verdict.naddr);
		ck_assert_mem_eq(a->u.verdict.addrs, b->u.verdict.addrs,
				 a->u.verdict.naddr * sizeof a->u.verdict.addrs[0]);
		break;
	case PROTO_NOTE:
		ck_assert_uint_eq(a->u.note.ask.op, b->u.note.ask.op);
		ck_assert_uint_eq(a->u.note.ask.port, b->u.note.ask.port);
		ck_assert_mem_eq(&a->u.note.ask.addr, &b->u.note.ask.addr, sizeof a->u.note.ask.addr);
		ck_assert_uint_eq(a->u.note.action, b->u.note.action);
		break;
	case PROTO_CONTROL:
		ck_assert_uint_eq(a->u.control.what, b->u.control.what);
		break;
	case PROTO_TEXT:
		ck_assert_int_eq(a->u.text.status, b->u.text.status);
		ck_assert_uint_eq(a->u.text.len, b->u.text.len);
		ck_assert_mem_eq(a->u.text.text, b->u.text.text, a->u.text.len);
		ck_assert_int_eq(b->u.text.text[b->u.text.len], 0);
		break;
	case PROTO_ERROR:
		ck_assert_int_eq(a->u.error, b->u.error);
		break;
	default:
		ck_abort_msg("bad type %u", a->type);
	}
}

/* Encodes sample i into a new buffer. Returns it; its length in *len. */
static uint8_t *encode_sample(int i, struct proto_msg *m, size_t *len)
{
	uint8_t *buf = malloc(PROTO_MSG_MAX);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	ck_assert(sample(i, m));
	n = proto_encode(m, buf, PROTO_MSG_MAX);
	ck_assert_msg(n >= PROTO_HDR_LEN, "sample %d: encode %zd", i, n);
	*len = (size_t)n;
	return buf;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------ round trip */

START_TEST(test_proto_decode_round_trip)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);

	ck_assert_int_eq(buf[0], PROTO_MAGIC);
	ck_assert_int_eq(buf[1], PROTO_VERSION);
	ck_assert_int_eq(proto_decode(buf, len, d), 0);
	assert_same(m, d);

	/* Encoding the decoded message gives the same bytes. */
	{
		uint8_t *again = malloc(PROTO_MSG_MAX);

		ck_assert_int_eq(proto_encode(d, again, PROTO_MSG_MAX), (ssize_t)len);
		ck_assert_mem_eq(buf, again, len);
		free(again);
	}
	free(buf);
	free(m);
	free(d);
}
END_TEST

START_TEST(test_proto_encode_layout)
{
	struct proto_msg *m = msg_new();
	uint8_t buf[64];
	static const uint8_t want[] = {
		'E', PROTO_VERSION, 1, 0, 0x04, 0x03, 0x02, 0x01, 26, 0, 0, 0, /* header */
		PROTO_OP_CONNECT, PROTO_L4_TCP, 0, 0, 0xbb, 0x01, /* op l4 family namelen port */
		4, 93, 184, 216, 34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* addr */
		PROTO_ASK_NONBLOCK, 0, 0, /* flags src_port */
	};

	m->type = PROTO_ASK;
	m->id = 0x01020304;
	m->u.ask.op = PROTO_OP_CONNECT;
	m->u.ask.l4 = PROTO_L4_TCP;
	m->u.ask.port = 443;
	m->u.ask.addr = addr4(93, 184, 216, 34);
	m->u.ask.flags = 0x80; /* unknown flag: refused */
	ck_assert_int_eq(proto_encode(m, buf, sizeof buf), -1);
	m->u.ask.flags = PROTO_ASK_NONBLOCK;
	/* a connect carries no name: refused */
	strcpy(m->u.ask.name, "x");
	ck_assert_int_eq(proto_encode(m, buf, sizeof buf), -1);
	m->u.ask.name[0] = 0;
	/* nor a source port: only a SEND names its socket's */
	m->u.ask.src_port = 5353;
	ck_assert_int_eq(proto_encode(m, buf, sizeof buf), -1);
	m->u.ask.src_port = 0;
	ck_assert_int_eq(proto_encode(m, buf, sizeof buf), (ssize_t)sizeof want);
	ck_assert_mem_eq(buf, want, sizeof want);
	free(m);
}
END_TEST

/* ------------------------------------------------------------ truncation */

/* Every prefix of a valid message is refused as it stands. */
START_TEST(test_proto_decode_truncated)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);

	for (size_t n = 0; n < len; n++) {
		/* An exact-size copy, so that ASan sees overreads (the 65 KB text
		 * is decoded in place: copying every prefix would take long). */
		uint8_t *copy = n <= 4096 ? malloc(n ? n : 1) : NULL;

		if (copy)
			memcpy(copy, buf, n);
		ck_assert_msg(proto_decode(copy ? copy : buf, n, d) == PROTO_BAD_MSG,
			      "sample %d, %zu of %zu", _i, n, len);
		free(copy);
	}
	free(buf);
	free(m);
	free(d);
}
END_TEST

/* Every shortened body is refused even when the header's length agrees,
 * except a shorter TEXT, which is another valid text. */
START_TEST(test_proto_decode_truncated_consistent)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);

	for (size_t n = PROTO_HDR_LEN; n < len; n += n < 4096 ? 1 : 1021) {
		uint8_t *copy = malloc(n);
		int rc;

		memcpy(copy, buf, n);
		put32(copy + 8, (uint32_t)(n - PROTO_HDR_LEN));
		rc = proto_decode(copy, n, d);
		if (m->type == PROTO_TEXT && n >= PROTO_HDR_LEN + 4)
			ck_assert_int_eq(rc, 0);
		else
			ck_assert_msg(rc == PROTO_BAD_MSG, "sample %d, %zu of %zu: %d", _i, n, len,
				      rc);
		free(copy);
	}
	free(buf);
	free(m);
	free(d);
}
END_TEST

/* A trailing byte, counted or not, is refused. */
START_TEST(test_proto_decode_length_mismatch)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);
	uint32_t blen = (uint32_t)(len - PROTO_HDR_LEN);

	if (m->type == PROTO_TEXT && m->u.text.len == PROTO_TEXT_MAX) {
		/* one more byte of text is over the maximum */
		buf = realloc(buf, len + 1);
		buf[len] = 'z';
		put32(buf + 8, blen + 1);
		ck_assert_int_eq(proto_decode(buf, len + 1, d), PROTO_BAD_MSG);
	}
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	ck_assert_int_eq(proto_decode(buf, len + 1, d), PROTO_BAD_MSG);
	put32(buf + 8, blen + 1);
	ck_assert_int_eq(proto_decode(buf, len, d), PROTO_BAD_MSG);
	if (m->type != PROTO_TEXT) /* a longer TEXT is another valid text */
		ck_assert_int_eq(proto_decode(buf, len + 1, d), PROTO_BAD_MSG);
	put32(buf + 8, blen - 1);
	ck_assert_int_eq(proto_decode(buf, len, d), PROTO_BAD_MSG);
	put32(buf + 8, 0xffffffffu);
	ck_assert_int_eq(proto_decode(buf, len, d), PROTO_BAD_MSG);
	put32(buf + 8, blen);
	ck_assert_int_eq(proto_decode(buf, len, d), 0);
	free(buf);
	free(m);
	free(d);
}
END_TEST

/* --------------------------------------------------------------- headers */

START_TEST(test_proto_decode_bad_magic)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);

	buf[0] = 'e';
	ck_assert_int_eq(proto_decode(buf, len, d), PROTO_BAD_MSG);
	buf[0] = 0;
	ck_assert_int_eq(proto_decode(buf, len, d), PROTO_BAD_MSG);
	free(buf);
	free(m);
	free(d);
}
END_TEST

START_TEST(test_proto_decode_bad_version)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);
	static const uint8_t versions[] = { 0, PROTO_VERSION + 1, 255 };

	for (size_t k = 0; k < sizeof versions; k++) {
		buf[1] = versions[k];
		memset(d, 0, sizeof *d);
		ck_assert_int_eq(proto_decode(buf, len, d), PROTO_BAD_VERSION);
		ck_assert_uint_eq(d->id, m->id);
		ck_assert_uint_eq(d->type, m->type);
	}
	free(buf);
	free(m);
	free(d);
}
END_TEST

START_TEST(test_proto_decode_bad_type)
{
	static const uint16_t types[] = { 0, 8, 9, 0x100, 0xffff };
	uint8_t buf[PROTO_HDR_LEN + 4] = { PROTO_MAGIC, PROTO_VERSION, 0, 0, 9, 8, 7, 6, 4 };
	struct proto_msg *d = msg_new();

	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		buf[2] = (uint8_t)types[k];
		buf[3] = (uint8_t)(types[k] >> 8);
		memset(d, 0, sizeof *d);
		ck_assert_int_eq(proto_decode(buf, sizeof buf, d), PROTO_BAD_TYPE);
		ck_assert_uint_eq(d->type, types[k]);
		ck_assert_uint_eq(d->id, 0x06070809u);
	}
	/* ... unless the length is wrong, which is malformed whatever the type. */
	ck_assert_int_eq(proto_decode(buf, sizeof buf - 1, d), PROTO_BAD_MSG);
	free(d);
}
END_TEST

/* ----------------------------------------------------------------- bodies */

/* Builds a raw message: header, then body bytes. Returns its length. */
static size_t raw(uint8_t *out, uint16_t type, const uint8_t *body, size_t blen)
{
	out[0] = PROTO_MAGIC;
	out[1] = PROTO_VERSION;
	out[2] = (uint8_t)type;
	out[3] = (uint8_t)(type >> 8);
	put32(out + 4, 77);
	put32(out + 8, (uint32_t)blen);
	memcpy(out + PROTO_HDR_LEN, body, blen);
	return PROTO_HDR_LEN + blen;
}

/* An ASK body: op l4 family namelen port(2) addr(17) flags src_port(2) name. */
static size_t ask_body(uint8_t *b, uint8_t op, uint8_t l4, uint8_t family, uint8_t addr_family,
		       const char *name, size_t namelen)
{
	memset(b, 0, 26);
	b[0] = op;
	b[1] = l4;
	b[2] = family;
	b[3] = (uint8_t)namelen;
	b[4] = 0xbb;
	b[5] = 0x01;
	b[6] = addr_family;
	b[7] = 10;
	memcpy(b + 26, name, namelen);
	return 26 + namelen;
}

START_TEST(test_proto_decode_bad_ask)
{
	uint8_t body[512], msg[600];
	char longname[300];
	struct proto_msg *d = msg_new();
	size_t n;

	memset(longname, 'a', sizeof longname);
	/* the valid forms, for reference */
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, "a.b", 3);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), 0);
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, longname, PROTO_NAME_MAX);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), 0);
	ck_assert_uint_eq(strlen(d->u.ask.name), PROTO_NAME_MAX);
	n = ask_body(body, PROTO_OP_CONNECT, PROTO_L4_TCP, 0, 4, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), 0);

	/* name with a NUL */
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, "a\0b", 3);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, "ab\0", 3);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	/* over-long names */
	for (size_t len = PROTO_NAME_MAX + 1; len <= 255; len++) {
		n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, longname, len);
		ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	}
	/* empty name on resolve, name on connect */
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_CONNECT, 0, 0, 4, "a", 1);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	/* bad op, l4, family, address family */
	n = ask_body(body, 0, 0, 0, 0, "a", 1);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_SEND + 1, 0, 0, 4, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_RESOLVE, PROTO_L4_UDP + 1, 0, 0, "a", 1);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 5, 0, "a", 1);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 4, "a", 1);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_CONNECT, 0, 0, 0, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_CONNECT, 0, 0, 5, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	n = ask_body(body, PROTO_OP_CONNECT, 0, 4, 4, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	/* unknown flag */
	n = ask_body(body, PROTO_OP_CONNECT, 0, 0, 4, "", 0);
	body[23] = PROTO_ASK_FLAGS + 1;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	/* namelen byte disagrees with the body */
	n = ask_body(body, PROTO_OP_RESOLVE, 0, 0, 0, "abc", 3);
	body[3] = 2;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	body[3] = 4;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ASK, body, n), d), PROTO_BAD_MSG);
	free(d);
}
END_TEST

/* A VERDICT body: action naddr rulelen namelen err(4) ttl(4) port(2) gen(4)
 * rule name addrs. */
#define VFIXED 18
static size_t verdict_body(uint8_t *b, uint8_t action, unsigned naddr, const char *rule,
			   size_t rlen, const char *name, size_t nlen)
{
	size_t n = VFIXED;

	memset(b, 0, VFIXED);
	b[0] = action;
	b[1] = (uint8_t)naddr;
	b[2] = (uint8_t)rlen;
	b[3] = (uint8_t)nlen;
	memcpy(b + n, rule, rlen);
	n += rlen;
	memcpy(b + n, name, nlen);
	n += nlen;
	for (unsigned i = 0; i < naddr; i++, n += 17) {
		memset(b + n, 0, 17);
		b[n] = 4;
		b[n + 1] = 10;
	}
	return n;
}

START_TEST(test_proto_decode_bad_verdict)
{
	uint8_t body[2048], msg[2100];
	char longs[300];
	struct proto_msg *d = msg_new();
	size_t n;

	memset(longs, 'x', sizeof longs);
	n = verdict_body(body, PROTO_ALLOW, PROTO_ADDRS_MAX, longs, PROTO_RULE_MAX, longs,
			 PROTO_NAME_MAX);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), 0);
	ck_assert_uint_eq(d->u.verdict.naddr, PROTO_ADDRS_MAX);

	/* naddr over the maximum, consistent length or not */
	for (unsigned k = PROTO_ADDRS_MAX + 1; k <= 40; k++) {
		n = verdict_body(body, PROTO_ALLOW, k, "r", 1, "", 0);
		ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d),
				 PROTO_BAD_MSG);
	}
	n = verdict_body(body, PROTO_ALLOW, 0, "r", 1, "", 0);
	body[1] = 255;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, VFIXED + 1), d), PROTO_BAD_MSG);
	/* over-long rule and name */
	n = verdict_body(body, PROTO_ALLOW, 0, longs, PROTO_RULE_MAX + 1, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	n = verdict_body(body, PROTO_ALLOW, 0, "", 0, longs, 255);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	n = verdict_body(body, PROTO_ALLOW, 0, "", 0, longs, PROTO_NAME_MAX + 1);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	/* NUL in rule or name */
	n = verdict_body(body, PROTO_DENY, 0, "a\0b", 3, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	n = verdict_body(body, PROTO_DENY, 0, "ab", 2, "x\0", 2);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	/* bad action */
	n = verdict_body(body, 0, 0, "", 0, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	n = verdict_body(body, PROTO_FAIL + 1, 0, "", 0, "", 0);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	/* bad address family in the list */
	n = verdict_body(body, PROTO_ALLOW, 3, "", 0, "", 0);
	body[VFIXED + 17 * 2] = 5;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_VERDICT, body, n), d), PROTO_BAD_MSG);
	free(d);
}
END_TEST

START_TEST(test_proto_decode_bad_control_text_error)
{
	uint8_t body[8] = { 0 }, msg[64], *big;
	struct proto_msg *d = msg_new();

	body[0] = 0;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_CONTROL, body, 1), d), PROTO_BAD_MSG);
	body[0] = PROTO_CTL_CAPTURE + 1;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_CONTROL, body, 1), d), PROTO_BAD_MSG);
	body[0] = PROTO_CTL_STATUS;
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_CONTROL, body, 2), d), PROTO_BAD_MSG);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_CONTROL, body, 0), d), PROTO_BAD_MSG);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_TEXT, body, 3), d), PROTO_BAD_MSG);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ERROR, body, 3), d), PROTO_BAD_MSG);
	ck_assert_int_eq(proto_decode(msg, raw(msg, PROTO_ERROR, body, 5), d), PROTO_BAD_MSG);

	/* a text over PROTO_TEXT_MAX */
	big = calloc(1, PROTO_HDR_LEN + 4 + PROTO_TEXT_MAX + 1);
	ck_assert_ptr_nonnull(big);
	big[0] = PROTO_MAGIC;
	big[1] = PROTO_VERSION;
	big[2] = PROTO_TEXT;
	put32(big + 8, 4 + PROTO_TEXT_MAX + 1);
	ck_assert_int_eq(proto_decode(big, PROTO_HDR_LEN + 4 + PROTO_TEXT_MAX + 1, d),
			 PROTO_BAD_MSG);
	free(big);
	free(d);
}
END_TEST

/* ----------------------------------------------------------------- encode */

/* Each mutation makes a valid sample out of bounds. */
static void mut_ask_op0(struct proto_msg *m) { sample(0, m); m->u.ask.op = 0; }
static void mut_ask_op4(struct proto_msg *m) { sample(0, m); m->u.ask.op = PROTO_OP_SEND + 1; }
static void mut_ask_l4(struct proto_msg *m) { sample(0, m); m->u.ask.l4 = PROTO_L4_UDP + 1; }
static void mut_ask_family(struct proto_msg *m) { sample(0, m); m->u.ask.family = 5; }
static void mut_ask_empty(struct proto_msg *m) { sample(0, m); m->u.ask.name[0] = 0; }
static void mut_ask_long(struct proto_msg *m)
{
	sample(0, m);
	memset(m->u.ask.name, 'a', sizeof m->u.ask.name); /* no NUL at all */
}
static void mut_ask_resolve_addr(struct proto_msg *m) { sample(0, m); m->u.ask.addr.family = 4; }
static void mut_ask_connect_name(struct proto_msg *m) { sample(2, m); strcpy(m->u.ask.name, "a"); }
static void mut_ask_connect_family(struct proto_msg *m) { sample(2, m); m->u.ask.family = 4; }
static void mut_ask_connect_noaddr(struct proto_msg *m) { sample(2, m); m->u.ask.addr.family = 0; }
static void mut_ask_send_addr(struct proto_msg *m) { sample(3, m); m->u.ask.addr.family = 5; }
static void mut_ask_flags(struct proto_msg *m) { sample(2, m); m->u.ask.flags = PROTO_ASK_PASSIVE << 1; }

/* The ASK mutations: one bad field each, refused by proto_ask_check. */
static void (*const bad_asks[])(struct proto_msg *) = {
	mut_ask_op0,          mut_ask_op4,          mut_ask_l4,
	mut_ask_family,       mut_ask_empty,        mut_ask_long,
	mut_ask_resolve_addr, mut_ask_connect_name, mut_ask_connect_family,
	mut_ask_connect_noaddr, mut_ask_send_addr,  mut_ask_flags,
};

static void mut_verdict_action0(struct proto_msg *m) { sample(5, m); m->u.verdict.action = 0; }
static void mut_verdict_action_high(struct proto_msg *m) { sample(5, m); m->u.verdict.action = 6; }
static void mut_verdict_naddr(struct proto_msg *m)
{
	sample(6, m);
	m->u.verdict.naddr = PROTO_ADDRS_MAX + 1;
}
static void mut_verdict_addr(struct proto_msg *m) { sample(6, m); m->u.verdict.addrs[7].family = 0; }
static void mut_verdict_rule(struct proto_msg *m)
{
	sample(5, m);
	memset(m->u.verdict.rule, 'r', sizeof m->u.verdict.rule);
}
static void mut_verdict_name(struct proto_msg *m)
{
	sample(5, m);
	memset(m->u.verdict.name, 'n', sizeof m->u.verdict.name);
}
static void mut_control0(struct proto_msg *m) { sample(7, m); m->u.control.what = 0; }
static void mut_control5(struct proto_msg *m) { sample(7, m); m->u.control.what = PROTO_CTL_CAPTURE + 1; }
static void mut_text_len(struct proto_msg *m) { sample(11, m); m->u.text.len = PROTO_TEXT_MAX + 1; }
static void mut_type0(struct proto_msg *m) { sample(13, m); m->type = 0; }
static void mut_type6(struct proto_msg *m) { sample(13, m); m->type = 6; }

/* The other types' mutations (ASKs: bad_asks, tested through proto_ask_check). */
static void (*const bad_mutations[])(struct proto_msg *) = {
	mut_verdict_action0, mut_verdict_action_high, mut_verdict_naddr,
	mut_verdict_addr,    mut_verdict_rule,        mut_verdict_name,
	mut_control0,        mut_control5,            mut_text_len,
	mut_type0,           mut_type6,
};

/* Asserts that the message mutate makes is refused by the encoder, and an
 * ASK by proto_ask_check too. */
static void assert_refused(void (*mutate)(struct proto_msg *))
{
	struct proto_msg *m = msg_new();
	uint8_t *buf = malloc(PROTO_MSG_MAX);

	mutate(m);
	if (m->type == PROTO_ASK)
		ck_assert_int_eq(
			proto_ask_check(&m->u.ask, strnlen(m->u.ask.name, sizeof m->u.ask.name)), -1);
	ck_assert_int_eq(proto_encode(m, buf, PROTO_MSG_MAX), -1);
	free(buf);
	free(m);
}

START_TEST(test_proto_encode_out_of_bounds)
{
	assert_refused(bad_mutations[_i]);
}
END_TEST

/* A buffer one byte short is refused, and nothing is written past it. */
START_TEST(test_proto_encode_small_buffer)
{
	struct proto_msg *m = msg_new();
	size_t len;
	uint8_t *buf = encode_sample(_i, m, &len);

	for (size_t cap = 0; cap < len; cap += cap < 40 ? 1 : 97) {
		uint8_t *small = malloc(cap ? cap : 1);

		ck_assert_int_eq(proto_encode(m, small, cap), -1);
		free(small);
	}
	{
		uint8_t *exact = malloc(len);

		ck_assert_int_eq(proto_encode(m, exact, len), (ssize_t)len);
		ck_assert_mem_eq(exact, buf, len);
		free(exact);
	}
	free(buf);
	free(m);
}
END_TEST

/* ------------------------------------------------------- shared helpers */

#define NASK_SAMPLES 4 /* samples 0 to 3 are ASKs */

/* The ASK samples, and each with every flag it may have, pass the check;
 * PROTO_ASK_SOURCE only on a SEND that names its port. */
START_TEST(test_proto_ask_check_valid)
{
	struct proto_msg *m = msg_new();
	bool source = false;

	sample(_i, m);
	ck_assert_int_eq(m->type, PROTO_ASK);
	ck_assert_int_eq(proto_ask_check(&m->u.ask, strlen(m->u.ask.name)), 0);
	source = m->u.ask.op == PROTO_OP_SEND && m->u.ask.src_port;
	m->u.ask.flags = PROTO_ASK_FLAGS;
	ck_assert_int_eq(proto_ask_check(&m->u.ask, strlen(m->u.ask.name)), source ? 0 : -1);
	m->u.ask.flags = PROTO_ASK_FLAGS & ~PROTO_ASK_SOURCE;
	ck_assert_int_eq(proto_ask_check(&m->u.ask, strlen(m->u.ask.name)), 0);
	if (source) {
		m->u.ask.flags = PROTO_ASK_SOURCE;
		m->u.ask.src_port = 0; /* naming no port */
		ck_assert_int_eq(proto_ask_check(&m->u.ask, strlen(m->u.ask.name)), -1);
	}
	free(m);
}
END_TEST

/* Each bad field is refused by the check, and so by the encoder. */
START_TEST(test_proto_ask_check_bad_field)
{
	assert_refused(bad_asks[_i]);
}
END_TEST

/* namelen is what is checked, not the name's NUL. */
START_TEST(test_proto_ask_check_namelen)
{
	struct proto_msg *m = msg_new();

	sample(0, m); /* a resolve */
	ck_assert_int_eq(proto_ask_check(&m->u.ask, 1), 0);
	ck_assert_int_eq(proto_ask_check(&m->u.ask, PROTO_NAME_MAX), 0);
	ck_assert_int_eq(proto_ask_check(&m->u.ask, 0), -1);
	ck_assert_int_eq(proto_ask_check(&m->u.ask, PROTO_NAME_MAX + 1), -1);
	sample(2, m); /* a connect */
	ck_assert_int_eq(proto_ask_check(&m->u.ask, 0), 0);
	ck_assert_int_eq(proto_ask_check(&m->u.ask, 1), -1);
	free(m);
}
END_TEST

static const struct {
	const char *(*fn)(int);
	int value;
	const char *want;
} names[] = {
	{ proto_op_name, PROTO_OP_RESOLVE, "resolve" },
	{ proto_op_name, PROTO_OP_CONNECT, "connect" },
	{ proto_op_name, PROTO_OP_SEND, "send" },
	{ proto_op_name, 0, "?" },
	{ proto_op_name, PROTO_OP_SEND + 1, "?" },
	{ proto_op_name, -1, "?" },
	{ proto_l4_name, PROTO_L4_ANY, "any" },
	{ proto_l4_name, PROTO_L4_TCP, "tcp" },
	{ proto_l4_name, PROTO_L4_UDP, "udp" },
	{ proto_l4_name, PROTO_L4_UDP + 1, "?" },
	{ proto_l4_name, -1, "?" },
	{ proto_action_name, PROTO_ALLOW, "allow" },
	{ proto_action_name, PROTO_DENY, "deny" },
	{ proto_action_name, PROTO_REWRITE, "rewrite" },
	{ proto_action_name, PROTO_PENDING, "pending" },
	{ proto_action_name, PROTO_FAIL, "fail" },
	{ proto_action_name, 0, "?" },
	{ proto_action_name, PROTO_FAIL + 1, "?" },
	{ proto_action_name, 256 + PROTO_ALLOW, "?" }, /* no truncation to a byte */
};

START_TEST(test_proto_names)
{
	ck_assert_str_eq(names[_i].fn(names[_i].value), names[_i].want);
}
END_TEST

/* The numeric address text, which must parse. */
static struct proto_addr paddr(const char *text)
{
	struct proto_addr a;

	memset(&a, 0, sizeof a);
	a.family = strchr(text, ':') ? 6 : 4;
	ck_assert_int_eq(inet_pton(a.family == 4 ? AF_INET : AF_INET6, text, a.bytes), 1);
	return a;
}

static const struct {
	const char *in;
	bool mapped;
	const char *out; /* the address afterwards */
} unmaps[] = {
	{ "::ffff:192.0.2.1", true, "192.0.2.1" },
	{ "::ffff:0.0.0.0", true, "0.0.0.0" },
	{ "::ffff:255.255.255.255", true, "255.255.255.255" },
	{ "192.0.2.1", false, "192.0.2.1" },
	{ "::192.0.2.1", false, "::192.0.2.1" },           /* compatible, not mapped */
	{ "::1", false, "::1" },
	{ "::", false, "::" },
	{ "::fffe:192.0.2.1", false, "::fffe:192.0.2.1" },
	{ "::1:ffff:192.0.2.1", false, "::1:ffff:192.0.2.1" }, /* byte 9 set */
	{ "100::ffff:192.0.2.1", false, "100::ffff:192.0.2.1" }, /* byte 0 set */
	{ "2001:db8::ffff:c000:201", false, "2001:db8::ffff:c000:201" },
	{ "::ffff:0:192.0.2.1", false, "::ffff:0:192.0.2.1" },   /* SIIT's, not mapped */
};

START_TEST(test_proto_addr_unmap)
{
	struct proto_addr a = paddr(unmaps[_i].in), want = paddr(unmaps[_i].out);

	ck_assert_int_eq(proto_addr_unmap(&a), unmaps[_i].mapped);
	ck_assert_int_eq(a.family, want.family);
	ck_assert_mem_eq(a.bytes, want.bytes, 16); /* an unmapped one's other bytes zeroed */
}
END_TEST

/* An IPv4 address is never unmapped, whatever its unused bytes hold. */
START_TEST(test_proto_addr_unmap_ipv4_bytes)
{
	struct proto_addr a = { .family = 4, .bytes = { 1, 2, 3, 4, [10] = 0xff, [11] = 0xff } };
	struct proto_addr before = a;

	ck_assert(!proto_addr_unmap(&a));
	ck_assert_mem_eq(&a, &before, sizeof a);
}
END_TEST

static const struct from_case {
	int family;      /* ss_family written */
	int read_as;     /* the family argument */
	const char *in;  /* the address written */
	uint16_t port;
	int rc;
	const char *out; /* what a holds afterwards */
} from_sockaddrs[] = {
	{ AF_INET, AF_INET, "192.0.2.1", 80, 0, "192.0.2.1" },
	{ AF_INET6, AF_INET6, "2001:db8::1", 443, 0, "2001:db8::1" },
	{ AF_INET6, AF_INET6, "::ffff:127.0.0.1", 9, 0, "127.0.0.1" },
	{ AF_INET6, AF_INET6, "::192.0.2.1", 1, 0, "::192.0.2.1" },
	{ AF_INET6, AF_INET6, "::", 0, 0, "::" },
	{ AF_UNSPEC, AF_INET, "192.0.2.7", 53, 0, "192.0.2.7" },    /* read as the caller says */
	{ AF_UNSPEC, AF_INET6, "2001:db8::7", 53, 0, "2001:db8::7" },
	{ AF_INET6, AF_INET, "192.0.2.8", 65535, 0, "192.0.2.8" },  /* family is the argument */
	{ AF_UNSPEC, AF_UNSPEC, "192.0.2.1", 80, -1, NULL },
	{ AF_UNIX, AF_UNIX, "192.0.2.1", 80, -1, NULL },
	{ AF_INET, AF_INET6 + 1, "192.0.2.1", 80, -1, NULL },
};

/* Read from a buffer exactly the shortest length long (16, or 24 without a
 * scope id: ASan sees a byte past it) at an odd address. */
START_TEST(test_proto_addr_from_sockaddr)
{
	const struct from_case *t = &from_sockaddrs[_i];
	struct proto_addr in = paddr(t->in), a, untouched;
	size_t len = t->read_as == AF_INET6 ? 24 : 16;
	uint8_t *buf = malloc(len + 1), *p = buf + 1;
	sa_family_t fam = (sa_family_t)t->family;
	uint16_t nport = htons(t->port), port = 7;

	memset(buf, 0xee, len + 1);
	memcpy(p, &fam, sizeof fam);
	if (t->read_as == AF_INET6) {
		memcpy(p + offsetof(struct sockaddr_in6, sin6_port), &nport, 2);
		memcpy(p + offsetof(struct sockaddr_in6, sin6_addr), in.bytes, 16);
	} else {
		memcpy(p + offsetof(struct sockaddr_in, sin_port), &nport, 2);
		memcpy(p + offsetof(struct sockaddr_in, sin_addr), in.bytes, 4);
	}
	memset(&a, 0x5a, sizeof a);
	untouched = a;
	ck_assert_int_eq(proto_addr_from_sockaddr((const struct sockaddr *)p, t->read_as, &a, &port),
			 t->rc);
	if (t->rc == 0) {
		struct proto_addr want = paddr(t->out);
		ck_assert_mem_eq(&a, &want, sizeof a);
		ck_assert_int_eq(port, t->port);
	} else {
		ck_assert_mem_eq(&a, &untouched, sizeof a);
		ck_assert_int_eq(port, 7);
	}
	free(buf);
}
END_TEST

static const struct to_case {
	const char *in;
	uint16_t port;
	bool v6;
	int family;      /* of the result */
	const char *out; /* the address in it */
} to_sockaddrs[] = {
	{ "192.0.2.1", 80, false, AF_INET, "192.0.2.1" },
	{ "192.0.2.1", 80, true, AF_INET6, "::ffff:192.0.2.1" },
	{ "0.0.0.0", 0, true, AF_INET6, "::ffff:0.0.0.0" },
	{ "2001:db8::1", 443, false, AF_INET6, "2001:db8::1" },
	{ "2001:db8::1", 443, true, AF_INET6, "2001:db8::1" },
	{ "::ffff:192.0.2.1", 65535, false, AF_INET6, "::ffff:192.0.2.1" }, /* not unmapped */
};

START_TEST(test_proto_addr_to_sockaddr)
{
	const struct to_case *t = &to_sockaddrs[_i];
	struct proto_addr a = paddr(t->in), back;
	struct sockaddr_storage ss, want;
	uint16_t port;
	socklen_t len;

	memset(&ss, 0x5a, sizeof ss);
	memset(&want, 0, sizeof want); /* every byte but the address's zero */
	if (t->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&want;
		in->sin_family = AF_INET;
		in->sin_port = htons(t->port);
		ck_assert_int_eq(inet_pton(AF_INET, t->out, &in->sin_addr), 1);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&want;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(t->port);
		ck_assert_int_eq(inet_pton(AF_INET6, t->out, &in6->sin6_addr), 1);
	}
	len = proto_addr_to_sockaddr(&a, t->port, t->v6, &ss);
	ck_assert_uint_eq(len, t->family == AF_INET ? sizeof(struct sockaddr_in)
						    : sizeof(struct sockaddr_in6));
	ck_assert_mem_eq(&ss, &want, sizeof ss);

	/* and back: the same address, IPv4 again when it went out mapped */
	ck_assert_int_eq(proto_addr_from_sockaddr((struct sockaddr *)&ss, ss.ss_family, &back, &port),
			 0);
	proto_addr_unmap(&a);
	ck_assert_mem_eq(&back, &a, sizeof a);
	ck_assert_int_eq(port, t->port);
}
END_TEST

START_TEST(test_proto_addr_to_sockaddr_bad_family)
{
	struct proto_addr a = { .family = 0, .bytes = { 1, 2, 3, 4 } };
	struct sockaddr_storage ss, zero;

	memset(&ss, 0x5a, sizeof ss);
	memset(&zero, 0, sizeof zero);
	ck_assert_uint_eq(proto_addr_to_sockaddr(&a, 80, false, &ss), 0);
	ck_assert_mem_eq(&ss, &zero, sizeof ss);
	a.family = 5;
	ck_assert_uint_eq(proto_addr_to_sockaddr(&a, 80, true, &ss), 0);
}
END_TEST

static const struct {
	const char *name;
	const char *addr; /* NULL: no address; "" an address of family 0 */
	uint16_t port;
	const char *want;
} dests[] = {
	{ "api.example.com", "192.0.2.1", 443, "api.example.com:443" },
	{ "api.example.com", NULL, 0, "api.example.com:0" },
	{ "", "192.0.2.1", 80, "192.0.2.1:80" },
	{ NULL, "192.0.2.1", 65535, "192.0.2.1:65535" },
	{ NULL, "2001:db8::1", 53, "[2001:db8::1]:53" },
	{ "", "::ffff:192.0.2.1", 1, "[::ffff:192.0.2.1]:1" },
	{ "bad\nname\x7f\x80", "192.0.2.1", 9, "bad?name??:9" }, /* no control bytes in a log */
	{ NULL, NULL, 7, "?:7" },
	{ "", "", 7, "?:7" },
};

START_TEST(test_proto_dest_format)
{
	struct proto_addr a = { .family = 0 };
	char out[PROTO_DEST_MAX];

	if (dests[_i].addr != NULL && dests[_i].addr[0])
		a = paddr(dests[_i].addr);
	proto_dest_format(dests[_i].name, dests[_i].addr ? &a : NULL, dests[_i].port, out, sizeof out);
	ck_assert_str_eq(out, dests[_i].want);
}
END_TEST

/* PROTO_DEST_MAX holds the longest of each kind; a smaller buffer gets a
 * NUL-terminated prefix, an empty one nothing. */
START_TEST(test_proto_dest_format_bounds)
{
	struct proto_addr a = paddr("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
	char name[PROTO_NAME_MAX + 1], out[PROTO_DEST_MAX], want[PROTO_DEST_MAX + 8];

	memset(name, 'a', PROTO_NAME_MAX);
	name[PROTO_NAME_MAX] = 0;
	proto_dest_format(name, &a, 65535, out, sizeof out);
	snprintf(want, sizeof want, "%s:65535", name);
	ck_assert_str_eq(out, want);
	proto_dest_format(NULL, &a, 65535, out, sizeof out);
	ck_assert_str_eq(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

	proto_dest_format("api.example.com", &a, 443, out, 5);
	ck_assert_str_eq(out, "api.");
	out[0] = 'x';
	proto_dest_format("api.example.com", &a, 443, out, 0);
	ck_assert_int_eq(out[0], 'x');
}
END_TEST

START_TEST(test_proto_now_ms)
{
	struct timespec ts;
	long t0 = proto_now_ms(), t1, mono;

	usleep(30000);
	t1 = proto_now_ms();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mono = ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
	ck_assert_int_ge(t1 - t0, 29);
	ck_assert_int_lt(t1 - t0, 5000);
	ck_assert_int_le(t1, mono); /* the same clock, read just before */
	ck_assert_int_ge(t1, mono - 1000);
}
END_TEST

/* The shim's codec writes what proto_encode writes and reads what
 * proto_decode reads, for every ASK, NOTE, VERDICT and ERROR sample. */
START_TEST(test_proto_shim_codec_matches)
{
	struct proto_msg *m = msg_new(), *d = msg_new();
	uint8_t a[2048], b[2048];

	for (int i = 0; sample(i, m); i++) {
		ssize_t n = proto_encode(m, a, sizeof a);
		if (m->type == PROTO_ASK || m->type == PROTO_NOTE) {
			const struct proto_ask *q = m->type == PROTO_ASK ? &m->u.ask : &m->u.note.ask;
			ck_assert_int_eq(proto_encode_ask(m->type, m->id, q, m->u.note.action, b,
							  sizeof b), n);
			ck_assert_mem_eq(a, b, (size_t)n);
			ck_assert_int_eq(proto_encode_ask(m->type, m->id, q, m->u.note.action, b,
							  (size_t)n - 1), -1);
		} else if (m->type == PROTO_VERDICT || m->type == PROTO_ERROR) {
			uint16_t type;
			uint32_t id;
			int32_t err = 0;
			memset(d, 0, sizeof *d);
			ck_assert_int_eq(proto_decode_answer(a, (size_t)n, &type, &id, &d->u.verdict,
							     &err), 0);
			d->type = type;
			d->id = id;
			if (type == PROTO_ERROR)
				d->u.error = err;
			assert_same(m, d);
		} else if (n > 0) {
			uint16_t type;
			uint32_t id;
			int32_t err;
			ck_assert_int_eq(proto_decode_answer(a, (size_t)n, &type, &id, &d->u.verdict,
							     &err), PROTO_BAD_TYPE);
		}
	}
	free(m);
	free(d);
}
END_TEST

/* A NOTE tells of a connect allowed or denied, and nothing else. */
START_TEST(test_proto_note_bounds)
{
	struct proto_ask q = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .port = 80,
			       .addr = addr4(10, 0, 0, 1) };
	struct proto_msg *d = msg_new();
	uint8_t buf[256];
	ssize_t n;

	ck_assert_int_eq(proto_encode_ask(PROTO_NOTE, 0, &q, PROTO_REWRITE, buf, sizeof buf), -1);
	ck_assert_int_eq(proto_encode_ask(PROTO_VERDICT, 0, &q, 0, buf, sizeof buf), -1);
	q.op = PROTO_OP_SEND;
	ck_assert_int_eq(proto_encode_ask(PROTO_NOTE, 0, &q, PROTO_ALLOW, buf, sizeof buf), -1);
	q.op = PROTO_OP_CONNECT;
	n = proto_encode_ask(PROTO_NOTE, 0, &q, PROTO_DENY, buf, sizeof buf);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, d), 0);
	buf[n - 1] = PROTO_PENDING; /* an action a NOTE cannot have */
	ck_assert_int_eq(proto_decode(buf, (size_t)n, d), PROTO_BAD_MSG);
	buf[n - 1] = PROTO_ALLOW;
	buf[PROTO_HDR_LEN] = PROTO_OP_RESOLVE; /* a NOTE of a lookup */
	ck_assert_int_eq(proto_decode(buf, (size_t)n, d), PROTO_BAD_MSG);
	buf[PROTO_HDR_LEN] = PROTO_OP_CONNECT;
	buf[8] = (uint8_t)(n - PROTO_HDR_LEN - 1); /* without its action byte */
	ck_assert_int_eq(proto_decode(buf, (size_t)n - 1, d), PROTO_BAD_MSG);
	free(d);
}
END_TEST

START_TEST(test_proto_constants)
{
	ck_assert_str_eq(PROTO_DEFAULT_SOCKET, "/run/egress/broker.sock");
	ck_assert_int_ge(PROTO_DEST_MAX, PROTO_NAME_MAX + sizeof ":65535");
	ck_assert_int_ge(PROTO_DEST_MAX, INET6_ADDRSTRLEN + sizeof "[]:65535" - 1);
}
END_TEST

/* ------------------------------------------------------------- note ring */

static struct proto_ring ring_mem;

static struct proto_ring *ring_fresh(uint32_t state)
{
	memset(&ring_mem, 0, sizeof ring_mem);
	ring_mem.state = state;
	return &ring_mem;
}

#define RING_MSG_LEN 40 /* a NOTE's size */

/* A message of RING_MSG_LEN bytes that say i. */
static const uint8_t *ring_msg(int i)
{
	static uint8_t m[RING_MSG_LEN];

	memset(m, i & 0xff, sizeof m);
	return m;
}

/* Put and take: in order, one bell for a run until the reader unbells,
 * nothing put while the broker does not read, a ring of 256 and no more. */
START_TEST(test_proto_ring_put_take)
{
	struct proto_ring *r = ring_fresh(PROTO_RING_NEW);
	uint8_t out[PROTO_RING_SLOT];
	uint32_t tail = 0;
	size_t got;
	const uint8_t *m = ring_msg(1);
	size_t len = RING_MSG_LEN;

	ck_assert_int_eq(proto_ring_put(r, m, len), -1); /* not taken yet */
	r->state = PROTO_RING_READ;
	ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), 0);
	ck_assert_int_eq(proto_ring_put(r, ring_msg(1), RING_MSG_LEN), 1);
	ck_assert_int_eq(proto_ring_put(r, ring_msg(2), RING_MSG_LEN), 0);
	proto_ring_unbell(r);
	ck_assert_int_eq(proto_ring_put(r, ring_msg(3), RING_MSG_LEN), 1);
	for (int i = 1; i <= 3; i++) {
		ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), 1);
		ck_assert_uint_eq(got, len);
		ck_assert_uint_eq(out[0], i);
		ck_assert_uint_eq(out[got - 1], i);
	}
	ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), 0);
	ck_assert_uint_eq(r->tail, 3);
	for (int i = 0; i < PROTO_RING_SLOTS; i++)
		ck_assert_int_ge(proto_ring_put(r, ring_msg(i), RING_MSG_LEN), 0);
	ck_assert_int_eq(proto_ring_put(r, ring_msg(9), RING_MSG_LEN), -1); /* full */
	ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), 1);
	ck_assert_uint_eq(out[0], 0);
	ck_assert_int_ge(proto_ring_put(r, ring_msg(9), RING_MSG_LEN), 0);
	ck_assert_int_eq(proto_ring_put(r, m, 0), -1);
	ck_assert_int_eq(proto_ring_put(r, m, PROTO_RING_SLOT), -1);
	r->state = PROTO_RING_SHUT;
	ck_assert_int_eq(proto_ring_put(r, m, len), -1);
}
END_TEST

/* What the program can write into the ring is caught: the reader's own
 * tail counts, not the shared one; head too far ahead, or a length out of
 * bounds, is a broken ring; the free-running counters wrap. */
START_TEST(test_proto_ring_broken)
{
	struct proto_ring *r = ring_fresh(PROTO_RING_READ);
	uint8_t out[PROTO_RING_SLOT];
	uint32_t tail;
	size_t got;

	r->head = r->tail = tail = UINT32_MAX - 1; /* about to wrap */
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(proto_ring_put(r, ring_msg(i), RING_MSG_LEN), 0);
	r->tail = 0; /* the program's write: not what the reader goes by */
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), 1);
		ck_assert_uint_eq(out[0], i);
	}
	ck_assert_uint_eq(tail, 2);
	r->head = tail + PROTO_RING_SLOTS + 1;
	ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), -1);
	r->head = tail + 1;
	r->slot[tail & (PROTO_RING_SLOTS - 1)][0] = 0;
	ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), -1);
	r->slot[tail & (PROTO_RING_SLOTS - 1)][0] = PROTO_RING_SLOT;
	ck_assert_int_eq(proto_ring_take(r, &tail, out, &got), -1);
	ck_assert_uint_eq(tail, 2);
}
END_TEST

/* A RING message is a header alone. */
START_TEST(test_proto_ring_message)
{
	uint8_t buf[PROTO_HDR_LEN + 1];
	struct proto_msg *d = msg_new();

	ck_assert_int_eq(proto_encode_ring(buf, PROTO_HDR_LEN - 1), -1);
	ck_assert_int_eq(proto_encode_ring(buf, sizeof buf), PROTO_HDR_LEN);
	ck_assert_int_eq(proto_decode(buf, PROTO_HDR_LEN, d), 0);
	ck_assert_uint_eq(d->type, PROTO_RING);
	buf[8] = 1; /* a body */
	buf[PROTO_HDR_LEN] = 0;
	ck_assert_int_eq(proto_decode(buf, sizeof buf, d), PROTO_BAD_MSG);
	free(d);
}
END_TEST

/* ------------------------------------------------------------------ suite */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *suite_proto(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_add_loop_test(tc, test_proto_decode_round_trip, 0, NSAMPLES);
	tcase_add_test(tc, test_proto_encode_layout);
	tcase_add_test(tc, test_proto_shim_codec_matches);
	tcase_add_test(tc, test_proto_note_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_loop_test(tc, test_proto_decode_truncated, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_proto_decode_truncated_consistent, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_proto_decode_length_mismatch, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_proto_decode_bad_magic, 0, NSAMPLES);
	tcase_add_loop_test(tc, test_proto_decode_bad_version, 0, NSAMPLES);
	tcase_add_test(tc, test_proto_decode_bad_type);
	tcase_add_test(tc, test_proto_decode_bad_ask);
	tcase_add_test(tc, test_proto_decode_bad_verdict);
	tcase_add_test(tc, test_proto_decode_bad_control_text_error);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode");
	tcase_add_loop_test(tc, test_proto_encode_out_of_bounds, 0, N(bad_mutations));
	tcase_add_loop_test(tc, test_proto_encode_small_buffer, 0, NSAMPLES);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_loop_test(tc, test_proto_ask_check_valid, 0, NASK_SAMPLES);
	tcase_add_loop_test(tc, test_proto_ask_check_bad_field, 0, N(bad_asks));
	tcase_add_test(tc, test_proto_ask_check_namelen);
	tcase_add_loop_test(tc, test_proto_names, 0, N(names));
	tcase_add_loop_test(tc, test_proto_addr_unmap, 0, N(unmaps));
	tcase_add_test(tc, test_proto_addr_unmap_ipv4_bytes);
	tcase_add_loop_test(tc, test_proto_addr_from_sockaddr, 0, N(from_sockaddrs));
	tcase_add_loop_test(tc, test_proto_addr_to_sockaddr, 0, N(to_sockaddrs));
	tcase_add_test(tc, test_proto_addr_to_sockaddr_bad_family);
	tcase_add_loop_test(tc, test_proto_dest_format, 0, N(dests));
	tcase_add_test(tc, test_proto_dest_format_bounds);
	tcase_add_test(tc, test_proto_now_ms);
	tcase_add_test(tc, test_proto_constants);
	suite_add_tcase(s, tc);

	tc = tcase_create("ring");
	tcase_add_test(tc, test_proto_ring_put_take);
	tcase_add_test(tc, test_proto_ring_broken);
	tcase_add_test(tc, test_proto_ring_message);
	suite_add_tcase(s, tc);
	return s;
}
