/* recvfrom.c: the recvfrom(2) hook, and its fortified twin. Nothing is
 * judged on receipt: a datagram from the broker's lookup stub is shown as
 * from the name server the program sent its query to (see judge.c). */
#include <stdlib.h>

#include "shim.h"

ssize_t shim_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
		      socklen_t *len)
{
	socklen_t cap = len != NULL ? *len : 0;
	ssize_t rc = shim_real.recvfrom(fd, buf, n, flags, sa, len);

	if (rc >= 0)
		shim_rewrite_source(fd, sa, len, cap);
	return rc;
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
			     socklen_t *len)
{
	shim_init();
	return shim_recvfrom(fd, buf, n, flags, sa, len);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *sa, socklen_t *len);

/* What _FORTIFY_SOURCE builds call: libc's own would reach the kernel
 * through its internal recvfrom, past the hook. */
SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
				   struct sockaddr *sa, socklen_t *len)
{
	if (n > buflen)
		abort(); /* as libc's __chk_fail: a buffer overflow caught */
	shim_init();
	return shim_recvfrom(fd, buf, n, flags, sa, len);
}
