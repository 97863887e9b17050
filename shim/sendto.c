/* sendto.c: the sendto(2) hook. A datagram with a destination is judged as
 * SEND; a stream sendto with MSG_FASTOPEN is the connect it is. */
#include "shim.h"

/* Judges the destination, if any, then sends. A MSG_FASTOPEN send is a
 * connect, judged and made on one private duplicate of fd (see
 * shim_connect). Returns what sendto(2) returns. */
ssize_t shim_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
		    socklen_t len)
{
	struct shim_dest d;
	int obj = fd, op, l4, r;
	ssize_t rc = -1;

	if ((flags & MSG_OOB) && shim_oob_refused(fd))
		return -1;
	if ((flags & MSG_FASTOPEN) && (obj = shim_pin(fd, "connect")) < 0)
		return -1;
	if (!shim_dest_copy(obj, sa, len, false, &d))
		rc = shim_real.sendto(obj, buf, n, flags, shim_dest_sa(&d, sa), len);
	else if (shim_classify(obj, flags, false, &op, &l4) < 0)
		rc = shim_real.sendto(obj, buf, n, flags, NULL, 0); /* its address unjudged: none */
	else if ((r = shim_judge(fd, obj, op, l4, &d, op == PROTO_OP_CONNECT ? "connect" : "send")) == 0)
		rc = shim_real.sendto(obj, buf, n, flags, (const struct sockaddr *)&d.ss, d.len);
	else if (r > 0) /* MSG_FASTOPEN, rewritten: connected now, the data goes as a send */
		rc = shim_real.sendto(fd, buf, n, flags & ~MSG_FASTOPEN, NULL, 0);
	if (obj != fd)
		shim_unpin(obj);
	return rc;
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *sa, socklen_t len)
{
	shim_init();
	return shim_sendto(fd, buf, n, flags, sa, len);
}
