/* dns.h: the DNS messages egress reads and writes (dns.c): a query's one
 * question, and an answer of A or AAAA records. */
#ifndef EGRESS_DNS_H
#define EGRESS_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define DNS_MSG_MAX 512 /* a DNS message over UDP without EDNS */
#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1
#define DNS_NOERROR 0
#define DNS_SERVFAIL 2
#define DNS_NXDOMAIN 3
#define DNS_REFUSED 5

/* The question of a query. */
struct dns_question {
	uint16_t id;
	uint8_t rd, opcode;            /* recursion desired; the opcode, echoed */
	char name[PROTO_NAME_MAX + 1]; /* the labels joined by dots, as sent */
	uint16_t qtype, qclass;
	size_t qlen;                   /* bytes of header and question */
};

/* Reads the one question of the query in buf. Returns 0, or -1 when buf is
 * not a query with exactly one question of a name that reads one way
 * (labels of 1..63 bytes without dots or NULs, no compression). */
int dns_parse_query(const uint8_t *buf, size_t len, struct dns_question *q);

/* Writes into out (cap bytes) the answer to query (whose question is q):
 * rcode, and for DNS_NOERROR one record per address of addrs that fits the
 * question's type (A: IPv4, AAAA: IPv6; none for other types: NODATA), with
 * ttl; as many as fit, with TC set when some did not. Returns the length,
 * or -1 when not even the question fits. */
int dns_build_answer(const uint8_t *query, const struct dns_question *q, int rcode,
		     const struct proto_addr *addrs, int naddr, uint32_t ttl, uint8_t *out,
		     size_t cap);

#endif
