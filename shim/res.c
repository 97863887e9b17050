/* res.c: the resolver's query functions: res_query, res_search,
 * res_querydomain, res_send, their res_n* forms, and the __res_* names
 * that binaries built against older headers call. libc would send these
 * queries to the name server itself, past the broker, and any name can
 * carry data out in a query. Here the question is judged as a lookup
 * through shim_getaddrinfo (so the broker decides and records it, op
 * resolve) and the answer is made here, never by a name server:
 *
 *   - class IN, type A or AAAA, allowed: a response built from the
 *     broker's addresses (TTL 60);
 *   - denied: -1 with h_errno HOST_NOT_FOUND;
 *   - any other type or class (TXT, MX, SRV, PTR, ANY...): refused, -1
 *     with h_errno HOST_NOT_FOUND and one line on stderr. The broker does
 *     not make raw DNS queries, so they cannot be mediated; fail closed.
 *   - res_send/res_nsend: the question is read from the packet (a standard
 *     query with exactly one question); a packet that cannot be read is
 *     refused too.
 *
 * res_search and res_query judge the name as given: the broker's resolver
 * applies its own search list. res_mkquery only builds a packet and is not
 * hooked. */
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

#include "dns.h"
#include "shim.h"

#define DNS_TTL 60 /* seconds, in every record the shim makes */

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* Sets the resolver's error for statp (and the thread's h_errno). */
static void set_herr(struct __res_state *statp, int herr)
{
	if (statp != NULL)
		statp->res_h_errno = herr;
	h_errno = herr;
}

/* Writes a response to the query msg (question q) with the addresses of
 * ai of family af into ans (anslen bytes), through the codec the broker's
 * DNS stub uses. Returns its length, or -1 when not even the question fits. */
static int response(const unsigned char *msg, const struct dns_question *q,
		    const struct addrinfo *ai, int af, unsigned char *ans, size_t anslen)
{
	struct proto_addr addrs[PROTO_ADDRS_MAX];
	int n = 0;

	for (const struct addrinfo *p = ai; p != NULL && n < PROTO_ADDRS_MAX; p = p->ai_next) {
		uint16_t port;

		if (p->ai_family == af && p->ai_socktype == SOCK_STREAM &&
		    proto_addr_from_sockaddr(p->ai_addr, af, &addrs[n], &port) == 0)
			n++;
	}
	return dns_build_answer(msg, q, DNS_NOERROR, addrs, n, DNS_TTL, ans, anslen);
}

int shim_res_send(struct __res_state *statp, const unsigned char *msg, int msglen,
		  unsigned char *answer, int anslen, const char *fn)
{
	struct addrinfo h = { .ai_flags = AI_CANONNAME }, *ai = NULL;
	struct dns_question q;
	const char *name = q.name;
	int n, type, class, rc;

	if (msg == NULL || msglen < NS_HFIXEDSZ || dns_parse_query(msg, (size_t)msglen, &q) < 0 ||
	    q.opcode != 0 || get16(msg + 6) != 0 || get16(msg + 8) != 0) {
		if (shim_config.log != SHIM_LOG_OFF)
			shim_log_line("egress: %s of a packet that is not one standard query is not "
				      "mediated; denied", fn);
		set_herr(statp, NO_RECOVERY);
		errno = ECONNREFUSED;
		return -1;
	}
	type = q.qtype;
	class = q.qclass;
	if (class != ns_c_in || (type != ns_t_a && type != ns_t_aaaa)) {
		if (shim_config.log != SHIM_LOG_OFF)
			shim_log_line("egress: %s of %s (class %d, type %d) is not mediated; denied", fn,
				      name, class, type);
		set_herr(statp, HOST_NOT_FOUND);
		errno = ECONNREFUSED;
		return -1;
	}
	h.ai_family = type == ns_t_a ? AF_INET : AF_INET6;
	rc = shim_getaddrinfo(name, NULL, &h, &ai);
	if (rc != 0 && rc != EAI_NODATA && rc != EAI_ADDRFAMILY) {
		set_herr(statp, shim_herrno_of_eai(rc));
		errno = ECONNREFUSED;
		return -1;
	}
	/* allowed: an answer, with no records when the name has none of type */
	n = response(msg, &q, ai, h.ai_family, answer, anslen < 0 ? 0 : (size_t)anslen);
	if (ai != NULL)
		shim_freeaddrinfo(ai);
	if (n < 0) {
		set_herr(statp, NETDB_INTERNAL);
		errno = EMSGSIZE;
	}
	return n;
}

int shim_res_query(struct __res_state *statp, const char *name, int class, int type,
		   unsigned char *answer, int anslen, const char *fn)
{
	unsigned char q[NS_HFIXEDSZ + NS_MAXCDNAME + 4];
	int n;

	/* the question, as res_mkquery would make it (id 0, RD) */
	memset(q, 0, NS_HFIXEDSZ);
	q[2] = 0x01;
	put16(q + 4, 1);
	n = name == NULL ? -1 : dn_comp(name, q + NS_HFIXEDSZ, NS_MAXCDNAME, NULL, NULL);
	if (n < 0) {
		set_herr(statp, NO_RECOVERY);
		return -1;
	}
	put16(q + NS_HFIXEDSZ + n, (unsigned)type & 0xffff);
	put16(q + NS_HFIXEDSZ + n + 2, (unsigned)class & 0xffff);
	n = shim_res_send(statp, q, NS_HFIXEDSZ + n + 4, answer, anslen, fn);
	if (n >= 0 && get16(answer + 6) == 0) {
		set_herr(statp, NO_DATA); /* as res_query: an answer without records fails */
		return -1;
	}
	if (n >= 0)
		set_herr(statp, NETDB_SUCCESS);
	return n;
}

/* res_querydomain's name: name.domain, or name alone without a domain. */
static int querydomain(struct __res_state *statp, const char *name, const char *domain, int class,
		       int type, unsigned char *answer, int anslen, const char *fn)
{
	char full[NS_MAXDNAME];

	if (name == NULL ||
	    (domain != NULL && (size_t)snprintf(full, sizeof full, "%s.%s", name, domain) >= sizeof full)) {
		set_herr(statp, NO_RECOVERY);
		return -1;
	}
	return shim_res_query(statp, domain ? full : name, class, type, answer, anslen, fn);
}

/* ---- the exported names */

SHIM_EXPORT int res_query(const char *name, int class, int type, unsigned char *answer, int anslen)
{
	shim_init();
	return shim_res_query(&_res, name, class, type, answer, anslen, "res_query");
}

SHIM_EXPORT int res_search(const char *name, int class, int type, unsigned char *answer, int anslen)
{
	shim_init();
	return shim_res_query(&_res, name, class, type, answer, anslen, "res_search");
}

SHIM_EXPORT int res_querydomain(const char *name, const char *domain, int class, int type,
				unsigned char *answer, int anslen)
{
	shim_init();
	return querydomain(&_res, name, domain, class, type, answer, anslen, "res_querydomain");
}

SHIM_EXPORT int res_send(const unsigned char *msg, int msglen, unsigned char *answer, int anslen)
{
	shim_init();
	return shim_res_send(&_res, msg, msglen, answer, anslen, "res_send");
}

SHIM_EXPORT int res_nquery(res_state statp, const char *name, int class, int type,
			   unsigned char *answer, int anslen)
{
	shim_init();
	return shim_res_query(statp, name, class, type, answer, anslen, "res_nquery");
}

SHIM_EXPORT int res_nsearch(res_state statp, const char *name, int class, int type,
			    unsigned char *answer, int anslen)
{
	shim_init();
	return shim_res_query(statp, name, class, type, answer, anslen, "res_nsearch");
}

SHIM_EXPORT int res_nquerydomain(res_state statp, const char *name, const char *domain, int class,
				 int type, unsigned char *answer, int anslen)
{
	shim_init();
	return querydomain(statp, name, domain, class, type, answer, anslen, "res_nquerydomain");
}

SHIM_EXPORT int res_nsend(res_state statp, const unsigned char *msg, int msglen,
			  unsigned char *answer, int anslen)
{
	shim_init();
	return shim_res_send(statp, msg, msglen, answer, anslen, "res_nsend");
}

/* The names of the same functions before glibc 2.34 (libresolv's
 * __res_query@GLIBC_2.2.5 and friends, now compat symbols of libc): the
 * same hooks under a second name. */
#if defined(__has_attribute) && __has_attribute(copy)
/* GCC: the alias takes its target's attributes (leaf, nothrow from the
 * libc declaration) */
#define RES_ALIAS_ATTRS(new) __attribute__((alias(#new), copy(new)))
#else
#define RES_ALIAS_ATTRS(new) __attribute__((alias(#new)))
#endif
#define RES_ALIAS(old, new) extern __typeof__(new) old SHIM_EXPORT RES_ALIAS_ATTRS(new)
RES_ALIAS(__res_query, res_query);
RES_ALIAS(__res_search, res_search);
RES_ALIAS(__res_querydomain, res_querydomain);
RES_ALIAS(__res_send, res_send);
RES_ALIAS(__res_nquery, res_nquery);
RES_ALIAS(__res_nsearch, res_nsearch);
RES_ALIAS(__res_nquerydomain, res_nquerydomain);
RES_ALIAS(__res_nsend, res_nsend);
