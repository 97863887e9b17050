/* send.c: the send(2) hook. A send has no destination of its own; only
 * urgent data (MSG_OOB) on a socket the broker relays is refused, since the
 * relay would pass it on as ordinary bytes (see shim_oob_refused). */
#include "shim.h"

ssize_t shim_send(int fd, const void *buf, size_t n, int flags)
{
	if ((flags & MSG_OOB) && shim_oob_refused(fd))
		return -1;
	return shim_real.send(fd, buf, n, flags);
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	shim_init();
	return shim_send(fd, buf, n, flags);
}
