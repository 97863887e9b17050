/* sendmmsg.c: the sendmmsg(2) hook (libuv sends UDP with it). Each message's
 * destination is judged in order; the messages before the first denied one
 * are sent, as a short count, and a denied first message fails the call. */

#include "shim.h"

/* Returns what sendmmsg(2) returns, for at most the allowed prefix of vec. */
int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	int op, l4;
	unsigned int i;

	if (vec == NULL || shim_classify(fd, flags, false, &op, &l4) < 0)
		return shim_real.sendmmsg(fd, vec, vlen, flags);
	for (i = 0; i < vlen; i++) {
		const struct msghdr *m = &vec[i].msg_hdr;
		if (shim_is_inet(m->msg_name, m->msg_namelen) &&
		    shim_judge(fd, op, l4, m->msg_name, op == PROTO_OP_CONNECT ? "connect" : "send") < 0)
			break;
	}
	if (i == 0 && vlen > 0)
		return -1; /* errno from shim_judge */
	return shim_real.sendmmsg(fd, vec, i, flags);
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	shim_init();
	return shim_sendmmsg(fd, vec, vlen, flags);
}
