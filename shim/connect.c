/* connect.c: the connect(2) hook. A stream connect is judged as CONNECT, a
 * connect on a datagram socket like the datagrams it will send. */
#include <errno.h>
#include <fcntl.h>

#include "shim.h"

/* Judges fd's connect to sa, then makes it. A rewritten connect is already
 * made: a nonblocking one reports EINPROGRESS, as the program expects, and
 * turns writable at once. Returns what connect(2) returns. */
int shim_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct shim_dest d;
	int op, l4, r;

	/* A connect again on a rewritten socket (a program polling for the end
	 * of its nonblocking connect) gets the kernel's EISCONN, not a second
	 * connection through the transport. */
	if (shim_dest_copy(fd, sa, len, true, &d) && !shim_rewritten(fd) &&
	    shim_classify(fd, 0, true, &op, &l4) == 0 &&
	    (r = shim_judge(fd, op, l4, &d, "connect")) != 0) {
		if (r < 0)
			return -1;
		if (fcntl(fd, F_GETFL) & O_NONBLOCK) {
			errno = EINPROGRESS;
			return -1;
		}
		return 0;
	}
	return shim_real.connect(fd, shim_dest_sa(&d, sa), len);
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	shim_init();
	return shim_connect(fd, sa, len);
}
