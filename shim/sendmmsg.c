/* sendmmsg.c: the sendmmsg(2) hook (libuv sends UDP with it). Each message's
 * destination is judged in order; the messages before the first denied one
 * are sent, as a short count, and a denied first message fails the call. */
#include <sys/uio.h>

#include "shim.h"

#define CHUNK 64 /* messages copied, judged and sent per real call */

/* Sends the allowed prefix of vec, as one real call per CHUNK messages.
 * The real call gets copies of the headers and of the judged destinations,
 * read once, so that another thread cannot change them after the verdict;
 * each sent message's msg_len is copied back into vec. On a socket the shim
 * does not judge, IP destinations are left out (see shim_classify); a
 * MSG_FASTOPEN batch is judged and sent on one private duplicate of fd (see
 * shim_connect). Returns what sendmmsg(2) returns. */
static int send_chunks(int fd, int obj, bool judged, int op, int l4, struct mmsghdr *vec,
		       unsigned int vlen, int flags)
{
	struct mmsghdr local[CHUNK];
	struct shim_dest d[CHUNK];
	unsigned int done = 0;

	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV; /* as the kernel caps it */
	while (done < vlen) {
		unsigned int n = vlen - done < CHUNK ? vlen - done : CHUNK, k;
		int sent, fl = flags, on = obj;

		for (k = 0; k < n; k++) {
			struct msghdr *m = &local[k].msg_hdr;
			int r = 0;

			local[k] = vec[done + k];
			if (!shim_dest_copy(obj, m->msg_name, m->msg_namelen, false, &d[k])) {
				m->msg_name = (void *)shim_dest_sa(&d[k], m->msg_name);
				continue;
			}
			if (judged && (r = shim_judge(fd, obj, op, l4, &d[k],
						      op == PROTO_OP_CONNECT ? "connect" : "send")) < 0)
				break;
			m->msg_name = &d[k].ss;
			m->msg_namelen = d[k].len;
			if (!judged || r == 1) { /* unjudged, or MSG_FASTOPEN rewritten: none */
				m->msg_name = NULL;
				m->msg_namelen = 0;
			}
			if (r == 1) { /* connected now, through the socket put in fd's place */
				fl &= ~MSG_FASTOPEN;
				on = fd;
			}
		}
		if (k == 0)
			return done > 0 ? (int)done : -1; /* errno from shim_judge */
		sent = shim_real.sendmmsg(on, local, k, fl);
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

int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	int obj = fd, op = 0, l4 = 0, rc;
	bool judged;

	if (vec == NULL)
		return shim_real.sendmmsg(fd, vec, vlen, flags);
	if ((flags & MSG_FASTOPEN) && (obj = shim_pin(fd, "connect")) < 0)
		return -1;
	judged = shim_classify(obj, flags, false, &op, &l4) == 0;
	rc = send_chunks(fd, obj, judged, op, l4, vec, vlen, flags);
	if (obj != fd)
		shim_unpin(obj);
	return rc;
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	shim_init();
	return shim_sendmmsg(fd, vec, vlen, flags);
}
