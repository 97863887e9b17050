/* sendto.c: the sendto(2) hook. A datagram with a destination is judged as
 * SEND; a stream sendto with MSG_FASTOPEN is the connect it is. */
#include "shim.h"

/* Judges the destination, if any, then sends. Returns what sendto(2) returns. */
ssize_t shim_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
		    socklen_t len)
{
	struct shim_dest d;
	int op, l4, r;

	if (shim_dest_copy(fd, sa, len, false, &d) && shim_classify(fd, flags, false, &op, &l4) == 0 &&
	    (r = shim_judge(fd, op, l4, &d, op == PROTO_OP_CONNECT ? "connect" : "send")) != 0) {
		if (r < 0)
			return -1;
		/* MSG_FASTOPEN, rewritten: connected now, the data goes as a send */
		return shim_real.sendto(fd, buf, n, flags & ~MSG_FASTOPEN, NULL, 0);
	}
	return shim_real.sendto(fd, buf, n, flags, shim_dest_sa(&d, sa), len);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *sa, socklen_t len)
{
	shim_init();
	return shim_sendto(fd, buf, n, flags, sa, len);
}
