/* connect.c: the connect(2) hook. A stream connect is judged as CONNECT, a
 * connect on a datagram socket like the datagrams it will send. */
#include <errno.h>
#include <fcntl.h>

#include "shim.h"

/* True when fd's socket has a peer now. */
static bool connected(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	return shim_real.getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* Judges fd's connect to sa, then makes it, both on one private duplicate
 * of fd, so that another thread's dup2() onto fd cannot make the shim judge
 * one object and connect another. Every connect is judged, whatever the
 * socket's history: a rewritten socket still connected gets the kernel's
 * EISCONN (programs poll a nonblocking connect that way), one that was
 * disconnected (AF_UNSPEC) is judged again like a new one. A rewritten
 * connect is already made, or (nonblocking, through the relay) held in
 * progress by the broker until its upstream is: a nonblocking one reports
 * EINPROGRESS, as the program expects, and turns writable once connected;
 * connecting again while it is held says EALREADY, and once after it
 * failed, the failure. Returns what connect(2) returns. */
int shim_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct shim_dest d;
	int obj, op, l4, r, rc = -1;

	if (!shim_dest_copy(fd, sa, len, true, &d)) /* not IP: AF_UNIX, AF_UNSPEC, ... */
		return shim_real.connect(fd, shim_dest_sa(&d, sa), len);
	obj = shim_pin(fd, "connect");
	if (obj < 0)
		return -1;
	if (shim_classify(obj, 0, true, &op, &l4) < 0) {
		rc = shim_real.connect(obj, shim_dest_sa(&d, sa), len); /* the kernel's ENOTSOCK */
	} else if (op == PROTO_OP_CONNECT && (r = shim_rewrite_outcome(obj, true)) != 0) {
		errno = r == EINPROGRESS ? EALREADY : r; /* held, or failed: once, as the kernel */
	} else if (op == PROTO_OP_CONNECT && shim_rewritten(obj) && connected(obj)) {
		errno = EISCONN; /* a datagram socket may connect again, elsewhere */
	} else {
		shim_rewrite_forget(obj);
		r = shim_judge(fd, obj, op, l4, &d, "connect");
		if (r == 0)
			rc = shim_real.connect(obj, (const struct sockaddr *)&d.ss, d.len);
		else if (r > 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK))
			errno = EINPROGRESS;
		else if (r > 0)
			rc = 0;
	}
	shim_unpin(obj);
	return rc;
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	shim_init();
	return shim_connect(fd, sa, len);
}
