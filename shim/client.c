/* client.c: the shim's side of the broker connection: one SOCK_SEQPACKET
 * connection per thread, opened lazily, close-on-exec, moved to a high
 * descriptor, checked before every use and reopened after a fork, a broker
 * restart, or a program that closed or replaced the descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

#define HIGH_FD_GAP 64 /* the broker descriptor goes this far below the fd limit */

struct conn {
	int fd;         /* our broker socket, or -1 */
	pid_t pid;      /* process that opened it: another pid means we forked */
	dev_t dev;      /* identity of fd, to notice a close or dup2 over it */
	ino_t ino;
	uint32_t next_id; /* id of the next request */
};

static __thread struct conn tconn __attribute__((tls_model("initial-exec"))) = { .fd = -1 };
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

int (*shim_ask)(const struct proto_ask *, struct proto_verdict *, int *) = shim_client_ask;

/* True when c->fd is still the socket we opened. */
static bool conn_is_ours(const struct conn *c)
{
	struct stat st;

	return c->fd >= 0 && fstat(c->fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       st.st_dev == c->dev && st.st_ino == c->ino;
}

/* Forgets the connection, closing the descriptor only while it is ours. */
static void conn_drop(struct conn *c)
{
	if (conn_is_ours(c))
		close(c->fd);
	c->fd = -1;
}

/* Thread exit: close this thread's connection. */
static void conn_exit(void *unused)
{
	(void)unused;
	conn_drop(&tconn);
}

static void make_key(void)
{
	pthread_key_create(&exit_key, conn_exit);
}

/* Opens a connection to the broker into c. Returns 0 or -1 with errno. */
static int conn_open(struct conn *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = shim_config.timeout_ms / 1000,
			      .tv_usec = (shim_config.timeout_ms % 1000) * 1000 };
	struct rlimit rl;
	struct stat st;
	int fd, hi, err;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memcpy(sun.sun_path, shim_config.socket_path, strlen(shim_config.socket_path) + 1);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (shim_real.connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		goto fail;

	/* Out of the way of programs that expect low descriptors to be theirs. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 3 * HIGH_FD_GAP) {
		rlim_t base = rl.rlim_cur > 1024 ? 1024 : rl.rlim_cur;
		hi = fcntl(fd, F_DUPFD_CLOEXEC, (int)(base - HIGH_FD_GAP));
		if (hi >= 0) {
			close(fd);
			fd = hi;
		}
	}
	if (fstat(fd, &st) < 0)
		goto fail;
	c->fd = fd;
	c->pid = getpid();
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	pthread_once(&key_once, make_key);
	pthread_setspecific(exit_key, c);
	return 0;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* Receives one message into buf. Returns its length (or more than cap when
 * truncated) and sets *fd to a descriptor it carried (else -1); -1 with errno. */
static ssize_t recv_with_fd(int sock, uint8_t *buf, size_t cap, int *fd)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
			     .msg_controllen = sizeof ctl.space };
	ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	*fd = -1;
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return (ssize_t)cap + 1;
	return n;
}

/* Sends one encoded request and waits for the answer with the same id; a
 * PENDING answer moves the deadline (the transport is connecting). Returns
 * 0 with *fd the descriptor a REWRITE brought (else -1), or -1 with errno:
 * EPIPE and friends when the broker has gone (the caller may reconnect),
 * ETIMEDOUT, EPROTONOSUPPORT when the broker speaks another protocol version
 * (its answer is of another version, or an ERROR that says ours is unknown),
 * EPROTO for another answer we refuse. */
static int conn_exchange(struct conn *c, const void *req, size_t len, uint32_t id,
			 struct proto_verdict *v, int *fd)
{
	uint8_t buf[1024];
	struct proto_msg m;
	long deadline = proto_now_ms() + shim_config.timeout_ms;

	*fd = -1;
	if (send(c->fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		long left = deadline - proto_now_ms();
		ssize_t n;
		int r, got, rc;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ETIMEDOUT;
			return -1;
		}
		n = recv_with_fd(c->fd, buf, sizeof buf, &got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		rc = (size_t)n > sizeof buf ? PROTO_BAD_MSG : proto_decode(buf, (size_t)n, &m);
		if (rc == 0 && m.type == PROTO_ERROR && m.u.error == PROTO_E_VERSION)
			rc = PROTO_BAD_VERSION; /* a broker of another build: whatever the id */
		else if (rc == 0 && m.id == id && m.type != PROTO_VERDICT)
			rc = PROTO_BAD_MSG;
		if (rc != 0) {
			if (got >= 0)
				close(got);
			errno = rc == PROTO_BAD_VERSION ? EPROTONOSUPPORT : EPROTO;
			return -1;
		}
		if (m.id != id || m.u.verdict.action == PROTO_PENDING) {
			if (got >= 0)
				close(got); /* a stale answer's descriptor: not ours to take */
			if (m.id == id)
				deadline = proto_now_ms() + shim_config.timeout_ms +
					   (long)m.u.verdict.ttl_ms;
			continue;
		}
		*v = m.u.verdict;
		if (got >= 0 && (v->action != PROTO_REWRITE || fd == NULL))
			close(got);
		else if (fd != NULL)
			*fd = got;
		return 0;
	}
}

int shim_client_ask(const struct proto_ask *ask, struct proto_verdict *v, int *fd)
{
	struct conn *c = &tconn;
	struct proto_msg m = { .type = PROTO_ASK };
	uint8_t req[PROTO_HDR_LEN + 32 + PROTO_NAME_MAX];
	ssize_t len;
	int saved = errno, got;

	m.u.ask = *ask;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->fd >= 0 && (c->pid != getpid() || !conn_is_ours(c)))
			conn_drop(c); /* forked, or the program took the descriptor */
		if (c->fd < 0 && conn_open(c) < 0)
			return -1;
		m.id = ++c->next_id;
		len = proto_encode(&m, req, sizeof req);
		if (len < 0) {
			errno = EINVAL;
			return -1;
		}
		if (conn_exchange(c, req, (size_t)len, m.id, v, &got) == 0) {
			if (fd != NULL)
				*fd = got;
			errno = saved;
			return 0;
		}
		/* A late answer must never be read as the next one: start afresh. */
		int err = errno;
		conn_drop(c);
		errno = err;
		if (err != EPIPE && err != ECONNRESET && err != ENOTCONN)
			return -1;
		/* the broker went away (maybe restarted): try a new connection once */
	}
	return -1;
}
