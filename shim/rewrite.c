/* rewrite.c: puts the socket the broker connected through the mediated
 * transport in place of the program's own, under the same descriptor
 * number, with the options the program had set; and answers getpeername()
 * on it with the destination the program asked for. A datagram socket whose
 * DNS queries went to the broker's lookup stub is remembered the same way,
 * and the stub's answers are shown as from the name server it asked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

#define PEERS 256 /* rewritten sockets remembered, by inode number */

/* Options a program may set before connect that must survive the hand-over. */
static const struct {
	int level, name;
} copied[] = {
	{ SOL_SOCKET, SO_KEEPALIVE }, { SOL_SOCKET, SO_SNDBUF },    { SOL_SOCKET, SO_RCVBUF },
	{ SOL_SOCKET, SO_LINGER },    { SOL_SOCKET, SO_RCVTIMEO },  { SOL_SOCKET, SO_SNDTIMEO },
	{ SOL_SOCKET, SO_PRIORITY },  { SOL_SOCKET, SO_OOBINLINE }, { IPPROTO_TCP, TCP_NODELAY },
	{ IPPROTO_TCP, TCP_KEEPIDLE }, { IPPROTO_TCP, TCP_KEEPINTVL }, { IPPROTO_TCP, TCP_KEEPCNT },
	{ IPPROTO_TCP, TCP_USER_TIMEOUT }, { IPPROTO_TCP, TCP_CORK },
};

/* The destination a rewritten socket was asked to reach, by the socket's
 * identity (dev, ino), so that a dup of the descriptor answers the same.
 * Two sockets whose inode numbers collide in the table keep the newer; the
 * older then reports its real peer. */
struct peer {
	dev_t dev;
	ino_t ino;              /* 0: empty */
	socklen_t len;
	struct sockaddr_in6 sa; /* room for either family */
	uint16_t via;           /* a datagram socket's: the broker's loopback port its
				 * datagrams go to instead (the lookup stub, a relay), 0 none */
};

static struct peer peers[PEERS];
static int npeers; /* entries ever made: getpeername's fast path when 0 */
static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;

/* Copies onto to every option of from that differs from a fresh socket's
 * default: copying a default as well would pin it (an explicit SO_RCVBUF
 * turns off the kernel's buffer autotuning). */
static void copy_options(int from, int to)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int fresh;

	if (getsockname(from, (struct sockaddr *)&ss, &sl) < 0)
		return;
	fresh = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fresh < 0)
		return;
	for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
		union {
			int i;
			struct linger l;
			struct timeval tv;
		} have, dflt;
		socklen_t hl = sizeof have, dl = sizeof dflt;

		memset(&have, 0, sizeof have);
		memset(&dflt, 0, sizeof dflt);
		if (getsockopt(from, copied[i].level, copied[i].name, &have, &hl) < 0 ||
		    getsockopt(fresh, copied[i].level, copied[i].name, &dflt, &dl) < 0 ||
		    (hl == dl && memcmp(&have, &dflt, hl) == 0))
			continue;
		if (copied[i].level == SOL_SOCKET &&
		    (copied[i].name == SO_SNDBUF || copied[i].name == SO_RCVBUF))
			have.i /= 2; /* the kernel doubles what it is given */
		setsockopt(to, copied[i].level, copied[i].name, &have, hl);
	}
	close(fresh);
}

static void remember_peer(int fd, const struct sockaddr *sa, uint16_t via)
{
	struct stat st;
	struct peer *p;

	if (fstat(fd, &st) < 0)
		return;
	p = &peers[st.st_ino % PEERS];
	pthread_mutex_lock(&peers_lock);
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	p->len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	memcpy(&p->sa, sa, p->len);
	p->via = via;
	__atomic_store_n(&npeers, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&peers_lock);
}

/* Copies the destination remembered for fd's socket into *sa and returns
 * its length, or 0 when fd is not a rewritten socket. */
static socklen_t find_peer(int fd, struct sockaddr_in6 *sa, uint16_t *via)
{
	struct stat st;
	struct peer *p;
	socklen_t len = 0;

	if (!__atomic_load_n(&npeers, __ATOMIC_ACQUIRE) || fstat(fd, &st) < 0 || st.st_ino == 0)
		return 0;
	p = &peers[st.st_ino % PEERS];
	pthread_mutex_lock(&peers_lock);
	if (p->ino == st.st_ino && p->dev == st.st_dev) {
		len = p->len;
		memcpy(sa, &p->sa, len);
		if (via)
			*via = p->via;
	}
	pthread_mutex_unlock(&peers_lock);
	return len;
}

void shim_rewrite_forget(int fd)
{
	struct stat st;
	struct peer *p;

	if (!__atomic_load_n(&npeers, __ATOMIC_ACQUIRE) || fstat(fd, &st) < 0)
		return;
	p = &peers[st.st_ino % PEERS];
	pthread_mutex_lock(&peers_lock);
	if (p->ino == st.st_ino && p->dev == st.st_dev)
		p->ino = 0;
	pthread_mutex_unlock(&peers_lock);
}

bool shim_oob_refused(int fd)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	struct sockaddr_in6 asked;
	struct sockaddr_storage real;
	socklen_t rl = sizeof real, al = find_peer(fd, &asked, NULL);
	struct proto_addr a;
	uint16_t port;
	char dest[PROTO_DEST_MAX];

	if (al == 0 || shim_real.getpeername(fd, (struct sockaddr *)&real, &rl) < 0 ||
	    proto_addr_from_sockaddr((struct sockaddr *)&real, real.ss_family, &a, &port) < 0 ||
	    !(a.family == 4 ? a.bytes[0] == 127 : memcmp(a.bytes, v6lo, 16) == 0) ||
	    (rl == al && memcmp(&real, &asked, al) == 0))
		return false; /* not relayed: the program's own, or the broker's upstream socket */
	if (proto_addr_from_sockaddr((struct sockaddr *)&asked, asked.sin6_family, &a, &port) == 0)
		proto_dest_format(NULL, &a, port, dest, sizeof dest);
	else
		snprintf(dest, sizeof dest, "?");
	shim_log_line("egress: urgent data (MSG_OOB) to %s cannot go through the broker's relay; "
		      "refused (EOPNOTSUPP)", dest);
	errno = EOPNOTSUPP;
	return true;
}

int shim_rewrite_outcome(int fd, bool take)
{
	int lowat = 0, zero = 0, err;
	socklen_t ll = sizeof lowat, el = sizeof err;

	if (!shim_rewritten(fd) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, &ll) < 0 || lowat == 0)
		return 0;
	if (lowat == PROTO_HOLD_LOWAT)
		return EINPROGRESS;
	if ((lowat & ~0xfff) != PROTO_FAILED_LOWAT || (lowat & 0xfff) == 0)
		return 0; /* the program's own setting */
	if (take) { /* reported: the mark and the reset's error go */
		setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &zero, sizeof zero);
		shim_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	}
	return lowat & 0xfff;
}

bool shim_rewritten(int fd)
{
	struct sockaddr_in6 sa;

	return find_peer(fd, &sa, NULL) != 0;
}

/* True when a and b are the same kernel object. */
static bool same_object(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int shim_rewrite_install(int fd, int obj, int newfd, const struct sockaddr *sa)
{
	int fl = fcntl(obj, F_GETFL), fdfl = fcntl(fd, F_GETFD), err;

	if (fl < 0 || fdfl < 0)
		goto fail;
	if (!same_object(fd, obj)) { /* the program put something else there meanwhile */
		errno = EBADF;
		goto fail;
	}
	copy_options(obj, newfd);
	if (fcntl(newfd, F_SETFL, (fcntl(newfd, F_GETFL) & ~O_NONBLOCK) | (fl & O_NONBLOCK)) < 0)
		goto fail;
	if (dup3(newfd, fd, fdfl & FD_CLOEXEC ? O_CLOEXEC : 0) < 0)
		goto fail;
	close(newfd);
	remember_peer(fd, sa, 0);
	return 0;
fail:
	err = errno;
	close(newfd);
	errno = err;
	return -1;
}

/* Set once a datagram of this process went to the broker instead. */
static int any_via;

void shim_rewrite_via(int fd, const struct sockaddr *asked, uint16_t port)
{
	remember_peer(fd, asked, port);
	__atomic_store_n(&any_via, 1, __ATOMIC_RELEASE);
}

bool shim_rewrite_via_used(void)
{
	return __atomic_load_n(&any_via, __ATOMIC_ACQUIRE) != 0;
}

void shim_rewrite_source(int fd, struct sockaddr *sa, socklen_t *len, socklen_t cap)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	struct sockaddr_storage from;
	struct sockaddr_in6 asked;
	struct proto_addr a;
	socklen_t plen, got;
	uint16_t p, via = 0;

	if (!shim_rewrite_via_used() || sa == NULL || len == NULL)
		return;
	got = *len < cap ? *len : cap; /* what the kernel wrote */
	if (got < (socklen_t)sizeof(struct sockaddr_in) || got > (socklen_t)sizeof from)
		return;
	memcpy(&from, sa, got);
	if (proto_addr_from_sockaddr((struct sockaddr *)&from, from.ss_family, &a, &p) < 0 ||
	    !(a.family == 4 ? a.bytes[0] == 127 : memcmp(a.bytes, v6lo, 16) == 0))
		return; /* not from the broker */
	plen = find_peer(fd, &asked, &via);
	if (plen == 0 || via != p)
		return;
	memcpy(sa, &asked, cap < plen ? cap : plen);
	*len = plen;
}

int shim_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_in6 copy;
	socklen_t plen = sa != NULL && len != NULL ? find_peer(fd, &copy, NULL) : 0;
	socklen_t cap = len != NULL ? *len : 0;

	if (plen == 0)
		return shim_real.getpeername(fd, sa, len);
	if (shim_real.getpeername(fd, sa, len) < 0)
		return -1; /* no longer connected: the kernel's ENOTCONN */
	if (shim_rewrite_outcome(fd, false)) {
		errno = ENOTCONN; /* held in progress, or failed */
		return -1;
	}
	memcpy(sa, &copy, cap < plen ? cap : plen);
	*len = plen;
	return 0;
}

SHIM_EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	shim_init();
	return shim_getpeername(fd, sa, len);
}
