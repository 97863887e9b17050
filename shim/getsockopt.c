/* getsockopt.c: the getsockopt(2) hook. SO_ERROR of a rewritten socket
 * whose connect the broker held in progress and then failed (proto.h)
 * reports that failure (ECONNREFUSED, ETIMEDOUT...) instead of the reset
 * that ended the loopback leg; everything else is the kernel's. */
#include <errno.h>

#include "shim.h"

int shim_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	int rc = shim_real.getsockopt(fd, level, name, val, len), err;

	if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR && *len == sizeof(int) &&
	    (err = shim_rewrite_outcome(fd, true)) > 0 && err != EINPROGRESS)
		*(int *)val = err; /* the reset's ECONNRESET, or 0 before it arrived */
	return rc;
}

SHIM_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	shim_init();
	return shim_getsockopt(fd, level, name, val, len);
}
