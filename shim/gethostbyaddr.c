/* gethostbyaddr.c: the gethostbyaddr(3) family (gethostbyaddr, its _r form,
 * libresolv's compat res_gethostbyaddr). A reverse lookup is DNS traffic
 * that the broker cannot make and the policy cannot judge by name (see
 * getnameinfo.c), so none is made: every address is "not found"
 * (HOST_NOT_FOUND), as for an address without a PTR record. */
#include <errno.h>

#include "shim.h"

int shim_gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret,
			 char *buf, size_t buflen, struct hostent **result, int *h_errnop)
{
	(void)addr, (void)len, (void)ret, (void)buf, (void)buflen;
	*result = NULL;
	if (type != AF_INET && type != AF_INET6) {
		*h_errnop = NETDB_INTERNAL;
		errno = EAFNOSUPPORT;
		return EAFNOSUPPORT;
	}
	if (shim_config.log == SHIM_LOG_ALL)
		shim_log_line("egress: gethostbyaddr: no reverse lookup is made; not found");
	h_errno = *h_errnop = HOST_NOT_FOUND; /* libc sets both */
	return 0;
}

static struct hostent *reverse(const void *addr, socklen_t len, int type)
{
	struct hostent he, *r;
	char buf[1];
	int herr;

	shim_gethostbyaddr_r(addr, len, type, &he, buf, sizeof buf, &r, &herr);
	h_errno = herr;
	return NULL;
}

SHIM_EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
	shim_init();
	return reverse(addr, len, type);
}

SHIM_EXPORT int gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret,
				char *buf, size_t buflen, struct hostent **result, int *h_errnop)
{
	shim_init();
	return shim_gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, h_errnop);
}

/* libresolv.so.2's compat res_gethostbyaddr: the same hook. */
extern __typeof__(gethostbyaddr) res_gethostbyaddr SHIM_EXPORT
	__attribute__((alias("gethostbyaddr")));
