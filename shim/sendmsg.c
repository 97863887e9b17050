/* sendmsg.c: the sendmsg(2) hook, judged like sendto by msg_name. */
#include "shim.h"

/* Judges msg's destination, if any, then sends. The real call gets a copy of
 * the header and of the judged destination, read once, so that another
 * thread cannot change either after the verdict; a MSG_FASTOPEN send is a
 * connect, judged and made on one private duplicate of fd (see
 * shim_connect). Returns what sendmsg(2) returns. */
ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct shim_dest d;
	struct msghdr m;
	int obj = fd, op, l4, r;
	ssize_t rc = -1;

	if (msg == NULL)
		return shim_real.sendmsg(fd, msg, flags);
	if ((flags & MSG_OOB) && shim_oob_refused(fd))
		return -1;
	if ((flags & MSG_FASTOPEN) && (obj = shim_pin(fd, "connect")) < 0)
		return -1;
	m = *msg;
	if (!shim_dest_copy(obj, m.msg_name, m.msg_namelen, false, &d)) {
		m.msg_name = (void *)shim_dest_sa(&d, m.msg_name);
		rc = shim_real.sendmsg(obj, &m, flags);
	} else if (shim_classify(obj, flags, false, &op, &l4) < 0) {
		m.msg_name = NULL; /* its address unjudged: none */
		m.msg_namelen = 0;
		rc = shim_real.sendmsg(obj, &m, flags);
	} else if ((r = shim_judge(fd, obj, op, l4, &d,
				   op == PROTO_OP_CONNECT ? "connect" : "send")) == 0) {
		m.msg_name = &d.ss;
		m.msg_namelen = d.len;
		rc = shim_real.sendmsg(obj, &m, flags);
	} else if (r > 0) { /* MSG_FASTOPEN, rewritten: connected now, the data goes as a send */
		m.msg_name = NULL;
		m.msg_namelen = 0;
		rc = shim_real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	}
	if (obj != fd)
		shim_unpin(obj);
	return rc;
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	shim_init();
	return shim_sendmsg(fd, msg, flags);
}
