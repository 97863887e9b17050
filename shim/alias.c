/* alias.c: libc's other exported names of functions the shim hooks. libc
 * exports __connect (connect@@GLIBC_2.2.5's twin, at a default version a
 * program can link) and __sendmmsg (GLIBC_PRIVATE); a call through either
 * would reach the kernel past the connect and sendmmsg hooks, so each gets
 * the same hook. (__send and __recv carry no destination; libc exports no
 * __sendto or __sendmsg.) */
#include "shim.h"

int __connect(int fd, const struct sockaddr *sa, socklen_t len);
int __sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags);

SHIM_EXPORT int __connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	shim_init();
	return shim_connect(fd, sa, len);
}

SHIM_EXPORT int __sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	shim_init();
	return shim_sendmmsg(fd, vec, vlen, flags);
}
