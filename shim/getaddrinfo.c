/* getaddrinfo.c: the getaddrinfo(3) and freeaddrinfo(3) hooks. A name goes
 * to the broker, which applies policy and resolves it; the answer is built
 * here as one allocation, which freeaddrinfo recognises and frees. Numeric
 * hosts are parsed by libc without any lookup and judged at connect. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define AI_HEAD 0x3148737365726765ULL /* "egressH1": first node of our block */
#define AI_TAIL 0x3154737365726765ULL /* "egressT1": the others */

/* One node of a result the shim built: ai_addr points at sa, which sits
 * at a different offset than in libc's nodes, and magic confirms it. */
struct shim_ai {
	struct addrinfo ai;
	uint64_t magic;
	union {
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} sa;
};

static const struct {
	int socktype, protocol;
} socktypes[] = {
	{ SOCK_STREAM, IPPROTO_TCP },
	{ SOCK_DGRAM, IPPROTO_UDP },
	{ SOCK_RAW, 0 },
};

/* True when code is an EAI_* value getaddrinfo may return without errno. */
static bool eai_valid(int code)
{
	switch (code) {
	case EAI_BADFLAGS: case EAI_NONAME: case EAI_AGAIN: case EAI_FAIL:
	case EAI_FAMILY: case EAI_SOCKTYPE: case EAI_SERVICE: case EAI_MEMORY:
	case EAI_NODATA: case EAI_ADDRFAMILY:
		return true;
	}
	return false;
}

/* Sets *port from service (NULL, "" or a number, or a name in the services
 * database). Returns 0 or the EAI_* code getaddrinfo would give. */
static int service_port(const char *service, const struct addrinfo *h, uint16_t *port)
{
	struct servent se, *found = NULL;
	char buf[1024], *end;
	unsigned long v;

	*port = 0;
	if (service == NULL)
		return 0;
	/* as glibc: "" is the number 0, not a service name to look up */
	v = strtoul(service, &end, 10);
	if (*end == 0)
		return v <= 65535 ? (*port = (uint16_t)v, 0) : EAI_SERVICE;
	if (h->ai_flags & AI_NUMERICSERV)
		return EAI_NONAME;
	if (h->ai_socktype != SOCK_DGRAM)
		getservbyname_r(service, "tcp", &se, buf, sizeof buf, &found);
	if (found == NULL && h->ai_socktype != SOCK_STREAM)
		getservbyname_r(service, "udp", &se, buf, sizeof buf, &found);
	if (found == NULL)
		return EAI_SERVICE;
	*port = ntohs((uint16_t)found->s_port);
	return 0;
}

/* Keeps the addresses of v the caller asked for, in order, into out (IPv4
 * for AF_INET6 only with AI_V4MAPPED: build maps it). Returns how many. */
static int select_addrs(const struct proto_verdict *v, const struct addrinfo *h,
			struct proto_addr *out)
{
	int n = 0, n6 = 0;

	for (int i = 0; i < v->naddr; i++)
		n6 += v->addrs[i].family == 6;
	for (int i = 0; i < v->naddr; i++) {
		const struct proto_addr *a = &v->addrs[i];
		if (h->ai_family == AF_INET && a->family != 4)
			continue;
		if (h->ai_family == AF_INET6 && a->family == 4 &&
		    (!(h->ai_flags & AI_V4MAPPED) || (n6 > 0 && !(h->ai_flags & AI_ALL))))
			continue;
		out[n++] = *a;
	}
	return n;
}

/* Builds the result list for addrs × socket types in one allocation, all
 * AF_INET6 (IPv4 in mapped form) when the caller asked for AF_INET6.
 * Returns 0 or EAI_MEMORY. */
static int build(const char *name, const struct proto_addr *addrs, int naddr, uint16_t port,
		 const struct addrinfo *h, struct addrinfo **res)
{
	size_t ntypes = 0, count, namelen = strlen(name);
	int types[3];
	struct shim_ai *block;
	char *canon;

	for (size_t t = 0; t < sizeof socktypes / sizeof socktypes[0]; t++) {
		if (h->ai_socktype != 0 && h->ai_socktype != socktypes[t].socktype)
			continue;
		if (h->ai_protocol != 0 && socktypes[t].protocol != 0 &&
		    h->ai_protocol != socktypes[t].protocol)
			continue;
		if (socktypes[t].socktype == SOCK_RAW && h->ai_socktype == 0 && port != 0)
			continue; /* as libc: raw sockets have no service */
		types[ntypes++] = (int)t;
	}
	if (ntypes == 0)
		ntypes = 1, types[0] = -1; /* an unusual type: give the caller's own */
	count = (size_t)naddr * ntypes;
	block = calloc(1, count * sizeof *block + namelen + 1);
	if (block == NULL)
		return EAI_MEMORY;
	canon = (char *)(block + count);
	memcpy(canon, name, namelen + 1);

	for (size_t i = 0; i < count; i++) {
		struct shim_ai *n = &block[i];
		const struct proto_addr *a = &addrs[i / ntypes];
		int t = types[i % ntypes];
		struct sockaddr_storage ss;

		n->magic = i == 0 ? AI_HEAD : AI_TAIL;
		n->ai.ai_flags = h->ai_flags;
		n->ai.ai_socktype = t < 0 ? h->ai_socktype : socktypes[t].socktype;
		n->ai.ai_protocol = t < 0 ? h->ai_protocol : socktypes[t].protocol;
		n->ai.ai_addrlen = proto_addr_to_sockaddr(a, port, h->ai_family == AF_INET6, &ss);
		n->ai.ai_family = ss.ss_family;
		memcpy(&n->sa, &ss, n->ai.ai_addrlen);
		n->ai.ai_addr = (struct sockaddr *)&n->sa;
		n->ai.ai_next = i + 1 < count ? &block[i + 1].ai : NULL;
	}
	if (h->ai_flags & AI_CANONNAME)
		block[0].ai.ai_canonname = canon;
	*res = &block[0].ai;
	return 0;
}

int shim_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		     struct addrinfo **res)
{
	struct addrinfo h = { .ai_family = AF_UNSPEC, .ai_flags = AI_V4MAPPED | AI_ADDRCONFIG };
	struct proto_ask ask = { .op = PROTO_OP_RESOLVE };
	struct proto_verdict v;
	struct proto_addr addrs[PROTO_ADDRS_MAX];
	size_t len;
	int rc, n, saved = errno;

	if (hints != NULL)
		h = *hints;
	if (node == NULL || res == NULL ||
	    (h.ai_family != AF_UNSPEC && h.ai_family != AF_INET && h.ai_family != AF_INET6))
		return shim_real.getaddrinfo(node, service, hints, res); /* no lookup to judge */

	/* A numeric host is no lookup: libc parses it and connect judges it. */
	struct addrinfo numeric = h;
	numeric.ai_flags |= AI_NUMERICHOST;
	rc = shim_real.getaddrinfo(node, service, &numeric, res);
	if (rc != EAI_NONAME || (h.ai_flags & AI_NUMERICHOST))
		return rc;

	rc = service_port(service, &h, &ask.port);
	if (rc != 0)
		return rc;
	len = strlen(node);
	if (len == PROTO_NAME_MAX + 1 && node[len - 1] == '.')
		len--; /* the root's dot does not count */
	if (len == 0 || len > PROTO_NAME_MAX)
		return EAI_NONAME;
	memcpy(ask.name, node, len);
	ask.name[len] = 0;
	ask.l4 = h.ai_socktype == SOCK_STREAM  ? PROTO_L4_TCP
		 : h.ai_socktype == SOCK_DGRAM ? PROTO_L4_UDP
					       : PROTO_L4_ANY;
	/* a lookup for binding is answered with the name's own addresses */
	if ((h.ai_flags & AI_PASSIVE) || (service == NULL && h.ai_socktype == 0))
		ask.flags = PROTO_ASK_PASSIVE;
	ask.family = h.ai_family == AF_INET ? 4
		     : h.ai_family == AF_INET6 && !(h.ai_flags & AI_V4MAPPED) ? 6
									: 0;

	if (shim_ask(&ask, &v, NULL) < 0) {
		int err = errno;
		char what[PROTO_NAME_MAX + 32];
		snprintf(what, sizeof what, "resolve of %s", ask.name);
		if (shim_log_unanswered(what, err))
			return shim_real.getaddrinfo(node, service, hints, res); /* EGRESS_FAIL=open */
		errno = saved;
		/* another protocol version does not pass by waiting */
		return err == EPROTONOSUPPORT ? EAI_FAIL : EAI_AGAIN;
	}
	errno = saved;
	if (v.action != PROTO_ALLOW) {
		if (shim_config.log != SHIM_LOG_OFF)
			shim_log_line("egress: denied resolve of %s (rule %s)", ask.name, v.rule);
		return v.action == PROTO_DENY && eai_valid(v.err) ? v.err : EAI_NONAME;
	}
	if (shim_config.log == SHIM_LOG_ALL)
		shim_log_line("egress: allowed resolve of %s (rule %s)", ask.name, v.rule);
	if (v.naddr == 0)
		return eai_valid(v.err) ? v.err : EAI_NONAME;
	n = select_addrs(&v, &h, addrs);
	if (n == 0)
		return h.ai_family == AF_UNSPEC ? EAI_NONAME : EAI_ADDRFAMILY;
	return build(ask.name, addrs, n, ask.port, &h, res);
}

void shim_freeaddrinfo(struct addrinfo *ai)
{
	struct shim_ai *n = (struct shim_ai *)ai;

	if (ai != NULL && ai->ai_addr == (struct sockaddr *)&n->sa) {
		if (n->magic == AI_HEAD)
			free(n);
		return; /* AI_TAIL: not the head of our list, nothing we may free */
	}
	shim_real.freeaddrinfo(ai);
}

SHIM_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
			    struct addrinfo **res)
{
	shim_init();
	return shim_getaddrinfo(node, service, hints, res);
}

SHIM_EXPORT void freeaddrinfo(struct addrinfo *ai)
{
	shim_init();
	shim_freeaddrinfo(ai);
}
