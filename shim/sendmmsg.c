/* sendmmsg.c: the sendmmsg(2) hook (libuv sends UDP with it). Each message's
 * destination is judged in order; the messages before the first denied one
 * are sent, as a short count, and a denied first message fails the call. */
#include <sys/uio.h>

#include "shim.h"

#define CHUNK 64 /* messages copied, judged and sent per real call */

/* Returns what sendmmsg(2) returns, for at most the allowed prefix of vec.
 * The real call gets copies of the headers and of the judged destinations,
 * read once, so that another thread cannot change them after the verdict;
 * each sent message's msg_len is copied back into vec. */
int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct mmsghdr local[CHUNK];
	struct shim_dest d[CHUNK];
	unsigned int done = 0;
	int op, l4;

	if (vec == NULL || shim_classify(fd, flags, false, &op, &l4) < 0)
		return shim_real.sendmmsg(fd, vec, vlen, flags);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV; /* as the kernel caps it */
	while (done < vlen) {
		unsigned int n = vlen - done < CHUNK ? vlen - done : CHUNK, k;
		int sent, fl = flags;

		for (k = 0; k < n; k++) {
			struct msghdr *m = &local[k].msg_hdr;
			int r = 0;

			local[k] = vec[done + k];
			if (shim_dest_copy(fd, m->msg_name, m->msg_namelen, false, &d[k]) &&
			    (r = shim_judge(fd, op, l4, &d[k],
					    op == PROTO_OP_CONNECT ? "connect" : "send")) < 0)
				break;
			m->msg_name = (void *)shim_dest_sa(&d[k], m->msg_name);
			if (r == 1) { /* MSG_FASTOPEN, rewritten: connected now */
				m->msg_name = NULL;
				m->msg_namelen = 0;
				fl &= ~MSG_FASTOPEN;
			}
		}
		if (k == 0)
			return done > 0 ? (int)done : -1; /* errno from shim_judge */
		sent = shim_real.sendmmsg(fd, local, k, fl);
		if (sent < 0)
			return done > 0 ? (int)done : -1;
		for (int i = 0; i < sent; i++)
			vec[done + i].msg_len = local[i].msg_len;
		done += (unsigned)sent;
		if ((unsigned)sent < n)
			break; /* a denial, or the kernel sent fewer */
	}
	return (int)done;
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	shim_init();
	return shim_sendmmsg(fd, vec, vlen, flags);
}
