/* sendmsg.c: the sendmsg(2) hook, judged like sendto by msg_name. */
#include "shim.h"

/* Judges msg's destination, if any, then sends. The real call gets a copy of
 * the header and of the judged destination, read once, so that another
 * thread cannot change either after the verdict. Returns what sendmsg(2)
 * returns. */
ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct shim_dest d;
	struct msghdr m;
	int op, l4, r;

	if (msg == NULL)
		return shim_real.sendmsg(fd, msg, flags);
	m = *msg;
	if (shim_dest_copy(fd, m.msg_name, m.msg_namelen, false, &d) &&
	    shim_classify(fd, flags, false, &op, &l4) == 0 &&
	    (r = shim_judge(fd, op, l4, &d, op == PROTO_OP_CONNECT ? "connect" : "send")) != 0) {
		if (r < 0)
			return -1;
		/* MSG_FASTOPEN, rewritten: connected now, the data goes as a send */
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return shim_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	}
	m.msg_name = (void *)shim_dest_sa(&d, m.msg_name);
	return shim_real.sendmsg(fd, &m, flags);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	shim_init();
	return shim_sendmsg(fd, msg, flags);
}
