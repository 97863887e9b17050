/* gethostbyaddr.c: the gethostbyaddr(3) family (gethostbyaddr, its _r form,
 * libresolv's compat res_gethostbyaddr). A reverse lookup is DNS traffic
 * that the broker cannot make and the policy cannot judge by name (see
 * getnameinfo.c), so none is made: an address gets the names /etc/hosts
 * gives it (a local file, as libc's "files" source), and any other is "not
 * found" (HOST_NOT_FOUND), as for an address without a PTR record. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hostsfile.h"
#include "shim.h"

#define NAMES_MAX 16 /* names of one address taken from /etc/hosts */

const char *shim_hosts_path = HOSTSFILE_ETC;

/* Fills ret from the names (count, consecutive strings of nlen bytes) for
 * addr, laid out in buf. Returns 0, or ERANGE when buf is too small. */
static int fill(const void *addr, int type, const char *names, size_t nlen, int count,
		struct hostent *ret, char *buf, size_t buflen)
{
	size_t alen = type == AF_INET ? 4 : 16;
	uintptr_t p = ((uintptr_t)buf + sizeof(char *) - 1) & ~(uintptr_t)(sizeof(char *) - 1);
	char **ptrs = (char **)p; /* aliases (count - 1, NULL), then addresses (1, NULL) */
	size_t need = (size_t)(count + 2) * sizeof(char *) + alen + nlen;
	char *data;

	if (p + need > (uintptr_t)buf + buflen)
		return ERANGE;
	data = (char *)(ptrs + count + 2);
	memcpy(data, addr, alen);
	memcpy(data + alen, names, nlen);
	ret->h_name = data + alen;
	ret->h_aliases = ptrs;
	for (int i = 1, off = (int)strlen(ret->h_name) + 1; i < count; i++) {
		ptrs[i - 1] = ret->h_name + off;
		off += (int)strlen(ptrs[i - 1]) + 1;
	}
	ptrs[count - 1] = NULL;
	ret->h_addr_list = ptrs + count;
	ret->h_addr_list[0] = data;
	ret->h_addr_list[1] = NULL;
	ret->h_addrtype = type;
	ret->h_length = (int)alen;
	return 0;
}

int shim_gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret,
			 char *buf, size_t buflen, struct hostent **result, int *h_errnop)
{
	struct proto_addr a = { .family = type == AF_INET ? 4 : 6 };
	char names[1024];
	int count, rc;

	*result = NULL;
	if (type != AF_INET && type != AF_INET6) {
		*h_errnop = NETDB_INTERNAL;
		errno = EAFNOSUPPORT;
		return EAFNOSUPPORT;
	}
	if (addr != NULL && len == (type == AF_INET ? 4u : 16u)) {
		size_t nlen = 0;

		memcpy(a.bytes, addr, len);
		count = hostsfile_names(shim_hosts_path, &a, names, sizeof names, NAMES_MAX);
		for (int i = 0; i < count; i++)
			nlen += strlen(names + nlen) + 1;
		if (count > 0) {
			rc = fill(addr, type, names, nlen, count, ret, buf, buflen);
			if (rc) {
				*h_errnop = NETDB_INTERNAL;
				errno = rc;
				return rc;
			}
			*result = ret;
			*h_errnop = 0;
			return 0;
		}
	}
	if (shim_config.log == SHIM_LOG_ALL)
		shim_log_line("egress: gethostbyaddr: not in /etc/hosts, and no reverse lookup is "
			      "made; not found");
	h_errno = *h_errnop = HOST_NOT_FOUND; /* libc sets both */
	return 0;
}

static struct hostent *reverse(const void *addr, socklen_t len, int type)
{
	static __thread struct hostent he;
	static __thread char buf[2048];
	struct hostent *r;
	int herr;

	shim_gethostbyaddr_r(addr, len, type, &he, buf, sizeof buf, &r, &herr);
	h_errno = herr;
	return r;
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
