/* sendmsg.c: the sendmsg(2) hook, judged like sendto by msg_name. */
#include "shim.h"

/* Judges msg's destination, if any, then sends. Returns what sendmsg(2) returns. */
ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	int op, l4, r;

	if (msg != NULL && shim_is_inet(msg->msg_name, msg->msg_namelen) &&
	    shim_classify(fd, flags, false, &op, &l4) == 0 &&
	    (r = shim_judge(fd, op, l4, msg->msg_name,
			    op == PROTO_OP_CONNECT ? "connect" : "send")) != 0) {
		struct msghdr m;
		if (r < 0)
			return -1;
		/* MSG_FASTOPEN, rewritten: connected now, the data goes as a send */
		m = *msg;
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return shim_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	}
	return shim_real.sendmsg(fd, msg, flags);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	shim_init();
	return shim_sendmsg(fd, msg, flags);
}
