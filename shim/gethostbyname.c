/* gethostbyname.c: the gethostbyname(3) family (gethostbyname, gethostbyname2
 * and their _r forms, and libresolv's compat res_gethostbyname and
 * res_gethostbyname2). libc would resolve the name itself, past the broker;
 * here it is judged and resolved through shim_getaddrinfo, exactly as a
 * getaddrinfo of it would be, and the answer is laid out as a hostent in the
 * caller's buffer (_r) or in a buffer of this thread (the others). */
#include <errno.h>
#include <netinet/in.h>
#include <stdalign.h>
#include <string.h>

#include "shim.h"

int shim_herrno_of_eai(int eai)
{
	switch (eai) {
	case 0:
		return 0;
	case EAI_NONAME:
		return HOST_NOT_FOUND;
	case EAI_AGAIN:
		return TRY_AGAIN;
	case EAI_NODATA: case EAI_ADDRFAMILY:
		return NO_DATA;
	case EAI_MEMORY: case EAI_SYSTEM:
		return NETDB_INTERNAL;
	default: /* EAI_FAIL and anything unexpected */
		return NO_RECOVERY;
	}
}

/* Lays out name and the addresses of ai (family af, one per address: the
 * SOCK_STREAM nodes) as a hostent in buf. Returns 0, or ERANGE when buf is
 * too small. */
static int hostent_fill(const char *name, const struct addrinfo *ai, int af, struct hostent *he,
			char *buf, size_t buflen)
{
	size_t alen = af == AF_INET ? 4 : 16, n = 0, namelen = strlen(name) + 1, need, pad;
	const struct addrinfo *p;
	char **list, *addr;

	for (p = ai; p != NULL; p = p->ai_next)
		n += p->ai_family == af && p->ai_socktype == SOCK_STREAM;
	pad = (alignof(char *) - (uintptr_t)buf % alignof(char *)) % alignof(char *);
	need = pad + (n + 2) * sizeof(char *) + n * alen + namelen;
	if (buflen < need)
		return ERANGE;
	list = (char **)(void *)(buf + pad); /* h_addr_list[n + 1], then h_aliases[1] */
	addr = (char *)(list + n + 2);
	n = 0;
	for (p = ai; p != NULL; p = p->ai_next) {
		if (p->ai_family != af || p->ai_socktype != SOCK_STREAM)
			continue;
		if (af == AF_INET)
			memcpy(addr, &((const struct sockaddr_in *)(void *)p->ai_addr)->sin_addr, alen);
		else
			memcpy(addr, &((const struct sockaddr_in6 *)(void *)p->ai_addr)->sin6_addr, alen);
		list[n++] = addr;
		addr += alen;
	}
	list[n] = NULL;
	list[n + 1] = NULL;
	memcpy(addr, name, namelen);
	he->h_name = addr;
	he->h_aliases = &list[n + 1];
	he->h_addrtype = af;
	he->h_length = (int)alen;
	he->h_addr_list = list;
	return 0;
}

int shim_gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
			  struct hostent **result, int *h_errnop)
{
	/* socket type 0: asked as any protocol; hostent_fill keeps the
	 * SOCK_STREAM node of each address. No AI_ADDRCONFIG, as libc's */
	struct addrinfo h = { .ai_family = af,
			      .ai_flags = AI_CANONNAME }, *ai = NULL;
	int rc;

	*result = NULL;
	if (af != AF_INET && af != AF_INET6) {
		*h_errnop = NETDB_INTERNAL;
		errno = EAFNOSUPPORT;
		return EAFNOSUPPORT;
	}
	if (name == NULL) {
		h_errno = *h_errnop = HOST_NOT_FOUND;
		return 0;
	}
	rc = shim_getaddrinfo(name, NULL, &h, &ai);
	if (rc != 0) {
		h_errno = *h_errnop = shim_herrno_of_eai(rc); /* libc sets both */
		if (rc == EAI_MEMORY)
			return errno = ENOMEM;
		return rc == EAI_AGAIN ? EAGAIN : 0; /* not found: 0 and no result */
	}
	rc = hostent_fill(ai->ai_canonname ? ai->ai_canonname : name, ai, af, ret, buf, buflen);
	shim_freeaddrinfo(ai);
	if (rc != 0) {
		h_errno = *h_errnop = NETDB_INTERNAL;
		return errno = rc;
	}
	*h_errnop = 0;
	*result = ret;
	return 0;
}

/* The non-_r forms' answer: this thread's, until its next call. */
static __thread struct hostent tls_he;
static __thread char tls_buf[PROTO_NAME_MAX + 1 + (PROTO_ADDRS_MAX + 2) * (16 + sizeof(char *)) +
			     sizeof(char *)];

/* gethostbyname2's logic: NULL with h_errno set, or this thread's hostent. */
static struct hostent *lookup(const char *name, int af)
{
	struct hostent *he;
	int herr;

	shim_gethostbyname2_r(name, af, &tls_he, tls_buf, sizeof tls_buf, &he, &herr);
	h_errno = herr;
	return he;
}

SHIM_EXPORT struct hostent *gethostbyname(const char *name)
{
	shim_init();
	return lookup(name, AF_INET);
}

SHIM_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
	shim_init();
	return lookup(name, af);
}

SHIM_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
				struct hostent **result, int *h_errnop)
{
	shim_init();
	return shim_gethostbyname2_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

SHIM_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
				 size_t buflen, struct hostent **result, int *h_errnop)
{
	shim_init();
	return shim_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
}

/* libresolv.so.2's compat versions (res_gethostbyname@GLIBC_2.2.5) query
 * DNS through libc's resolver: the same hooks under a second name. */
extern __typeof__(gethostbyname) res_gethostbyname SHIM_EXPORT
	__attribute__((alias("gethostbyname")));
extern __typeof__(gethostbyname2) res_gethostbyname2 SHIM_EXPORT
	__attribute__((alias("gethostbyname2")));
