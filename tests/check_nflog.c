/* check_nflog.c: unit tests of broker/nflog.c's parser, which reads what
 * the kernel's NFLOG sends for each packet an isolated namespace drops:
 * packets read whole, and every truncation, lying length and oversized or
 * repeated attribute skipped as malformed without reading past the
 * datagram. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

#define MSG_TYPE ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)

/* A netlink datagram being built. */
struct dgram {
	uint8_t b[4096];
	size_t len;
	size_t msg; /* where the message being built starts */
};

/* Starts a message of type (a packet message: with its nfgenmsg of af). */
static void msg_begin(struct dgram *d, uint16_t type, uint8_t af)
{
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = NLM_F_MULTI };

	d->msg = d->len;
	memcpy(d->b + d->len, &h, sizeof h);
	d->len += NLMSG_HDRLEN;
	if (type == MSG_TYPE) {
		struct nfgenmsg g = { .nfgen_family = af, .version = NFNETLINK_V0, .res_id = htons(7) };

		memcpy(d->b + d->len, &g, sizeof g);
		d->len += NLMSG_ALIGN(sizeof g);
	}
}

/* Appends an attribute whose header says hdrlen bytes of data (its real
 * data is len bytes). */
static void attr_raw(struct dgram *d, uint16_t type, const void *data, size_t len, size_t hdrlen)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + hdrlen), .nla_type = type };

	memcpy(d->b + d->len, &a, sizeof a);
	memcpy(d->b + d->len + NLA_HDRLEN, data, len);
	d->len += NLA_HDRLEN + NLA_ALIGN(len);
}

static void attr(struct dgram *d, uint16_t type, const void *data, size_t len)
{
	attr_raw(d, type, data, len, len);
}

static void attr_u32(struct dgram *d, uint16_t type, uint32_t v)
{
	v = htonl(v);
	attr(d, type, &v, sizeof v);
}

/* Ends the message: its length written into its header. */
static void msg_end(struct dgram *d)
{
	uint32_t len = (uint32_t)(d->len - d->msg);

	memcpy(d->b + d->msg, &len, sizeof len);
}

/* An IPv4 UDP packet header 10.0.0.2:4000 -> 10.9.9.9:443 into p;
 * returns its length (28). */
static size_t ip4_udp(uint8_t *p)
{
	static const uint8_t h[28] = {
		0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, IPPROTO_UDP, 0, 0, 10, 0, 0, 2, 10, 9, 9, 9,
		0x0f, 0xa0, 0x01, 0xbb, 0, 20, 0, 0,
	};

	memcpy(p, h, sizeof h);
	return sizeof h;
}

/* A packet message of the IPv4 UDP packet with uid and seq. */
static void packet4(struct dgram *d, uint32_t uid, uint32_t seq)
{
	struct nfulnl_msg_packet_hdr ph = { .hw_protocol = htons(0x0800), .hook = 3 };
	uint8_t ip[28];
	size_t n = ip4_udp(ip);

	msg_begin(d, MSG_TYPE, AF_INET);
	attr(d, NFULA_PACKET_HDR, &ph, sizeof ph);
	attr_u32(d, NFULA_IFINDEX_OUTDEV, 1);
	attr(d, NFULA_PAYLOAD, ip, n);
	attr_u32(d, NFULA_UID, uid);
	attr_u32(d, NFULA_GID, uid);
	attr_u32(d, NFULA_SEQ, seq);
	msg_end(d);
}

/* What the parser handed over. */
struct got {
	int n;
	struct nflog_packet p[8];
};

static void collect(void *ctx, const struct nflog_packet *p)
{
	struct got *g = ctx;

	if (g->n < 8)
		g->p[g->n] = *p;
	g->n++;
}

/* Parses a copy of len bytes of d on the heap (so that a read past its
 * end is caught by the sanitizers). Returns the packets; *bad set. */
static int parse(const struct dgram *d, size_t len, struct got *g, unsigned *bad)
{
	uint8_t *copy = malloc(len ? len : 1);
	int n;

	memcpy(copy, d->b, len);
	memset(g, 0, sizeof *g);
	n = nflog_parse(copy, len, collect, g, bad);
	free(copy);
	ck_assert_int_eq(n, g->n);
	return n;
}

START_TEST(test_nflog_parse_reads_an_ipv4_udp_packet)
{
	struct dgram d = { .len = 0 };
	struct got g;
	unsigned bad;
	struct proto_addr dst = A("10.9.9.9"), src = A("10.0.0.2");

	packet4(&d, 1000, 5);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(g.p[0].family, 4);
	ck_assert_int_eq(g.p[0].ipproto, IPPROTO_UDP);
	ck_assert_mem_eq(&g.p[0].dst, &dst, sizeof dst);
	ck_assert_mem_eq(&g.p[0].src, &src, sizeof src);
	ck_assert_uint_eq(g.p[0].sport, 4000);
	ck_assert_uint_eq(g.p[0].dport, 443);
	ck_assert(g.p[0].has_uid);
	ck_assert_uint_eq(g.p[0].uid, 1000);
	ck_assert(g.p[0].has_seq);
	ck_assert_uint_eq(g.p[0].seq, 5);
}
END_TEST

START_TEST(test_nflog_parse_reads_a_batch_ended_by_done)
{
	struct dgram d = { .len = 0 };
	struct got g;
	unsigned bad;

	packet4(&d, 0, 1);
	packet4(&d, 0, 2);
	packet4(&d, 0, 3);
	msg_begin(&d, NLMSG_DONE, 0);
	d.len += 4; /* NLMSG_DONE carries an int */
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 3);
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(g.p[2].seq, 3);
}
END_TEST

START_TEST(test_nflog_parse_reads_ipv6_past_extension_headers)
{
	struct dgram d = { .len = 0 };
	uint8_t ip[40 + 8 + 8 + 8] = { 0x60 };
	struct proto_addr dst = A("2001:db8::1");
	struct got g;
	unsigned bad;

	ip[6] = IPPROTO_DSTOPTS;
	ip[23] = 1;                                     /* src ::1 */
	memcpy(ip + 24, dst.bytes, 16);
	ip[40] = IPPROTO_FRAGMENT, ip[41] = 0;          /* 8 bytes of options */
	ip[48] = IPPROTO_UDP;                           /* fragment header, offset 0 */
	ip[56] = 0x30, ip[57] = 0x39, ip[58] = 0, ip[59] = 123; /* 12345 -> 123 */
	msg_begin(&d, MSG_TYPE, AF_INET6);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(g.p[0].family, 6);
	ck_assert_mem_eq(&g.p[0].dst, &dst, sizeof dst);
	ck_assert_int_eq(g.p[0].ipproto, IPPROTO_UDP);
	ck_assert_uint_eq(g.p[0].sport, 12345);
	ck_assert_uint_eq(g.p[0].dport, 123);
	ck_assert(!g.p[0].has_uid); /* sent by no socket */
	/* a later fragment: no ports */
	ip[50] = 0x01;
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET6);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].ipproto, IPPROTO_UDP);
	ck_assert_uint_eq(g.p[0].dport, 0);
	/* an extension header longer than what was copied: no ports either */
	ip[50] = 0, ip[41] = 200;
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET6);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].family, 6);
	ck_assert_uint_eq(g.p[0].sport, 0);
	ck_assert_uint_eq(g.p[0].dport, 0);
}
END_TEST

/* Payloads that are not what they claim: the packet is still counted, with
 * what could be read of it. */
START_TEST(test_nflog_parse_payload_cut_or_foreign)
{
	struct dgram d = { .len = 0 };
	uint8_t ip[28];
	struct got g;
	unsigned bad;

	ip4_udp(ip);
	for (size_t cut = 0; cut < sizeof ip; cut++) { /* every copy length */
		d.len = 0;
		msg_begin(&d, MSG_TYPE, AF_INET);
		attr(&d, NFULA_PAYLOAD, ip, cut);
		msg_end(&d);
		ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
		ck_assert_uint_eq(bad, 0);
		ck_assert_int_eq(g.p[0].family, cut < 20 ? 0 : 4);
		ck_assert_uint_eq(g.p[0].dport, cut < 24 ? 0 : 443);
	}
	ip[0] = 0x4f; /* IHL 60, past the copy */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].family, 4);
	ck_assert_uint_eq(g.p[0].dport, 0);
	ip[0] = 0x44; /* IHL below 20 */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].family, 0);
	ip[0] = 0x45, ip[6] = 0x20, ip[7] = 0x10; /* a later fragment */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].family, 4);
	ck_assert_uint_eq(g.p[0].dport, 0);
	ip[6] = 0x40, ip[7] = 0; /* IPv4 in a message that says IPv6 */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET6);
	attr(&d, NFULA_PAYLOAD, ip, sizeof ip);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].family, 0);
	d.len = 0; /* no payload at all */
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr_u32(&d, NFULA_SEQ, 9);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_int_eq(g.p[0].family, 0);
	ck_assert_uint_eq(g.p[0].seq, 9);
}
END_TEST

START_TEST(test_nflog_parse_every_truncation)
{
	struct dgram d = { .len = 0 };
	struct got g;
	unsigned bad;
	size_t one;

	packet4(&d, 1, 1);
	one = d.len;
	packet4(&d, 1, 2);
	for (size_t cut = 0; cut < d.len; cut++) {
		int n = parse(&d, cut, &g, &bad);

		ck_assert_int_eq(n, cut < one ? 0 : 1);
		ck_assert_uint_eq(bad, cut == 0 || cut == one ? 0 : 1);
	}
}
END_TEST

/* Lying lengths, each in a datagram of its own. */
START_TEST(test_nflog_parse_lying_lengths)
{
	static const uint8_t two[2];
	struct dgram d = { .len = 0 };
	struct got g;
	unsigned bad;
	uint32_t v;

	/* an attribute longer than its message */
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr_raw(&d, NFULA_PAYLOAD, two, sizeof two, 4000);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* an attribute of 65535 bytes */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr_raw(&d, NFULA_PAYLOAD, two, sizeof two, 65535 - NLA_HDRLEN);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* an attribute shorter than its own header */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr_u32(&d, NFULA_SEQ, 1);
	v = 2; /* nla_len 2 */
	memcpy(d.b + d.len - 8, &v, 2);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* a uid of two bytes */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr(&d, NFULA_UID, two, sizeof two);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* a sequence number given twice */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	attr_u32(&d, NFULA_SEQ, 1);
	attr_u32(&d, NFULA_SEQ, 2);
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* a message too short for its nfgenmsg */
	d.len = 0;
	msg_begin(&d, MSG_TYPE, AF_INET);
	d.len = d.msg + NLMSG_HDRLEN + 2;
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* a message that says it is longer than the datagram, then one that
	 * says it is shorter than its header: nothing after either is read */
	d.len = 0;
	packet4(&d, 0, 0);
	v = (uint32_t)d.len + 1;
	memcpy(d.b, &v, sizeof v);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	v = 8;
	memcpy(d.b, &v, sizeof v);
	packet4(&d, 0, 1);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0);
	ck_assert_uint_eq(bad, 1);
	/* a message whose length is not a multiple of 4 still ends the datagram */
	d.len = 0;
	packet4(&d, 0, 0);
	d.len -= 1;
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 0); /* its last attribute is cut */
	ck_assert_uint_eq(bad, 1);
}
END_TEST

START_TEST(test_nflog_parse_other_messages)
{
	struct dgram d = { .len = 0 };
	struct got g;
	unsigned bad;
	int32_t e = 0;

	msg_begin(&d, NLMSG_ERROR, 0); /* an ack */
	memcpy(d.b + d.len, &e, sizeof e);
	d.len += 20;
	msg_end(&d);
	packet4(&d, 0, 0);
	msg_begin(&d, NLMSG_ERROR, 0); /* an error */
	e = -1;
	memcpy(d.b + d.len, &e, sizeof e);
	d.len += 20;
	msg_end(&d);
	msg_begin(&d, 0x0404, 0); /* some other message */
	msg_end(&d);
	msg_begin(&d, NLMSG_ERROR, 0); /* an error too short to say which */
	msg_end(&d);
	ck_assert_int_eq(parse(&d, d.len, &g, &bad), 1);
	ck_assert_uint_eq(bad, 3);
}
END_TEST

Suite *suite_nflog(void)
{
	Suite *s = suite_create("nflog");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_nflog_parse_reads_an_ipv4_udp_packet);
	tcase_add_test(tc, test_nflog_parse_reads_a_batch_ended_by_done);
	tcase_add_test(tc, test_nflog_parse_reads_ipv6_past_extension_headers);
	tcase_add_test(tc, test_nflog_parse_payload_cut_or_foreign);
	tcase_add_test(tc, test_nflog_parse_every_truncation);
	tcase_add_test(tc, test_nflog_parse_lying_lengths);
	tcase_add_test(tc, test_nflog_parse_other_messages);
	suite_add_tcase(s, tc);
	return s;
}
