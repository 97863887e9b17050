/* dns.c: the little of the DNS wire format (RFC 1035) that egress speaks:
 * the question of a query, and an answer built from addresses the broker
 * chose. No lookups; every length checked. */
#include <stdbool.h>
#include <string.h>

#include "dns.h"

#define DNS_HDR 12

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

int dns_parse_query(const uint8_t *buf, size_t len, struct dns_question *q)
{
	size_t off = DNS_HDR, n = 0;

	memset(q, 0, sizeof *q);
	if (len < DNS_HDR || (buf[2] & 0x80) || get16(buf + 4) != 1)
		return -1; /* not a query, or not exactly one question */
	q->id = get16(buf);
	q->rd = buf[2] & 0x01;
	q->opcode = (buf[2] >> 3) & 0x0f;
	for (;;) {
		size_t l;

		if (off >= len)
			return -1;
		l = buf[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > len || n + l + 1 > sizeof q->name - 1)
			return -1; /* a compression pointer, or too long */
		if (n)
			q->name[n++] = '.';
		for (size_t i = 0; i < l; i++) {
			uint8_t c = buf[off + i];
			if (c == '.' || c == 0)
				return -1; /* would read as another name */
			q->name[n++] = (char)c;
		}
		off += l;
	}
	if (n == 0 || off + 4 > len)
		return -1;
	q->name[n] = 0;
	q->qtype = get16(buf + off);
	q->qclass = get16(buf + off + 2);
	q->qlen = off + 4;
	return 0;
}

int dns_build_answer(const uint8_t *query, const struct dns_question *q, int rcode,
		     const struct proto_addr *addrs, int naddr, uint32_t ttl, uint8_t *out,
		     size_t cap)
{
	size_t off;
	int count = 0;
	bool truncated = false;

	if (q->qlen > cap || q->qlen < DNS_HDR)
		return -1;
	memcpy(out, query, q->qlen); /* header and question, as asked */
	out[2] = (uint8_t)(0x80 | (q->opcode << 3) | q->rd); /* QR, no AA, no TC */
	out[3] = (uint8_t)(0x80 | (rcode & 0x0f));           /* RA */
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, 0);
	off = q->qlen;
	for (int i = 0; rcode == DNS_NOERROR && q->qclass == DNS_CLASS_IN && i < naddr; i++) {
		const struct proto_addr *a = &addrs[i];
		size_t rdlen = a->family == 4 ? 4 : 16;

		if ((a->family == 4 && q->qtype != DNS_TYPE_A) ||
		    (a->family == 6 && q->qtype != DNS_TYPE_AAAA))
			continue;
		if (off + 12 + rdlen > cap) {
			truncated = true;
			break;
		}
		put16(out + off, 0xc00c); /* the name: the question's */
		put16(out + off + 2, q->qtype);
		put16(out + off + 4, DNS_CLASS_IN);
		out[off + 6] = (uint8_t)(ttl >> 24);
		out[off + 7] = (uint8_t)(ttl >> 16);
		out[off + 8] = (uint8_t)(ttl >> 8);
		out[off + 9] = (uint8_t)ttl;
		put16(out + off + 10, (uint16_t)rdlen);
		memcpy(out + off + 12, a->bytes, rdlen);
		off += 12 + rdlen;
		count++;
	}
	put16(out + 6, (uint16_t)count);
	if (truncated)
		out[2] |= 0x02; /* TC */
	return (int)off;
}
