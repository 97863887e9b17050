/* alias.c: libc's other exported names of functions the shim hooks. libc
 * exports __connect (connect@@GLIBC_2.2.5's twin, at a default version a
 * program can link) and __sendmmsg (GLIBC_PRIVATE); a call through either
 * would reach the kernel past the connect and sendmmsg hooks, so each gets
 * the same hook, and so does __send (whose urgent data the relay refuses).
 * (__recv carries no source; libc exports no __sendto or __sendmsg.) */
#include "shim.h"

int __connect(int fd, const struct sockaddr *sa, socklen_t len);
int __sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags);
ssize_t __send(int fd, const void *buf, size_t n, int flags);

SHIM_EXPORT ssize_t __send(int fd, const void *buf, size_t n, int flags)
{
	shim_init();
	return shim_send(fd, buf, n, flags);
}

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
