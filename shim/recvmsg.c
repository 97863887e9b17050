/* recvmsg.c: the recvmsg(2) and recvmmsg(2) hooks: as recvfrom, a
 * datagram from the broker's lookup stub is shown as from the name server
 * the program asked. */
#include "shim.h"

ssize_t shim_recvmsg(int fd, struct msghdr *msg, int flags)
{
	socklen_t cap = msg != NULL ? msg->msg_namelen : 0;
	ssize_t rc = shim_real.recvmsg(fd, msg, flags);

	if (rc >= 0 && msg != NULL)
		shim_rewrite_source(fd, msg->msg_name, &msg->msg_namelen, cap);
	return rc;
}

int shim_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		  struct timespec *timeout)
{
	socklen_t cap[64];
	unsigned int n = vlen < 64 ? vlen : 64; /* the rest next time, as a short read */
	int rc;

	if (vec == NULL || !shim_rewrite_via_used())
		return shim_real.recvmmsg(fd, vec, vlen, flags, timeout);
	for (unsigned int i = 0; i < n; i++)
		cap[i] = vec[i].msg_hdr.msg_namelen;
	rc = shim_real.recvmmsg(fd, vec, n, flags, timeout);
	for (int i = 0; i < rc; i++)
		shim_rewrite_source(fd, vec[i].msg_hdr.msg_name, &vec[i].msg_hdr.msg_namelen, cap[i]);
	return rc;
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	shim_init();
	return shim_recvmsg(fd, msg, flags);
}

SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
			 struct timespec *timeout)
{
	shim_init();
	return shim_recvmmsg(fd, vec, vlen, flags, timeout);
}
