/* client.c: the shim's side of the broker connection: one SOCK_SEQPACKET
 * connection per thread, opened lazily, close-on-exec, moved to a high
 * descriptor, checked before every use and reopened after a fork, a broker
 * restart, or a program that closed or replaced the descriptor.
 *
 * Asking is async-signal-safe and reentrant, because connect and sendto are
 * (POSIX), and the hooks ask from whatever context the program calls them
 * in. The ask path uses only system calls and our own codec: no malloc, no
 * stdio, no locks, no pthread_once. Two askers never share one socket:
 *
 *  - the thread's connection belongs to the thread that opened it (its tid,
 *    from the kernel) and is marked busy while an ask is using it;
 *  - a signal handler that asks while the interrupted code of the same
 *    thread is asking (busy), and a process that shares this memory
 *    without being a thread of ours (clone with CLONE_VM and without
 *    CLONE_THREAD, vfork, some posix_spawns: its tid is not the owner's),
 *    ask over a connection of their own for that one question, opened and
 *    closed on the spot, and never write into the shared state: with
 *    CLONE_VM even this thread-local variable is the other's memory.
 *
 * The common case (the owner, not busy) costs one gettid more than the
 * round trip; the old getpid check it replaces was one too. A connect
 * applied from the verdict cache tells the broker with a NOTE over the
 * same connection under the same rules, and waits for nothing: once the
 * connection has a note ring (proto.h) the NOTE is put there, which costs
 * no system call but the gettid, and only the first one after the broker
 * has read the ring rings its bell (a RING message). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

#define HIGH_FD_GAP 64 /* the broker descriptor goes this far below the fd limit */

struct conn {
	int fd;                     /* our broker socket, or -1 */
	pid_t owner;                /* tid of the thread that may use it; 0: nobody yet */
	dev_t dev;                  /* identity of fd, to notice a close or dup2 over it */
	ino_t ino;
	uint32_t next_id;           /* id of the next request */
	volatile sig_atomic_t busy; /* 1 while an ask of the owner is using fd */
	struct proto_ring *ring;    /* fd's note ring, NULL none (yet) */
	bool ring_failed;           /* none could be made for fd: NOTEs are sent */
};

static __thread struct conn tconn __attribute__((tls_model("initial-exec"))) = { .fd = -1 };
static pthread_key_t exit_key;
static bool exit_key_made;

/* The process this address space is our own in: set at load and in every
 * fork child. Another pid sharing it is a CLONE_VM process, which never
 * takes a thread's connection. */
static pid_t space_pid;

/* A spare unconnected broker socket, so that a thread still gets a
 * connection when the program has used every descriptor (EMFILE): -1 when
 * there is none (used, or not made yet). Its identity is checked before it
 * is taken, as the program may have closed or replaced it. */
static int spare_fd = -1;
static dev_t spare_dev;
static ino_t spare_ino;

int (*shim_ask)(const struct proto_ask *, struct proto_verdict *, int *) = shim_client_ask;

/* The kernel's id of the calling thread: never a cached copy, which a
 * CLONE_VM process would share. */
static pid_t self_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Keeps the compiler from moving memory accesses across it: what a signal
 * handler of this thread sees is then in program order. */
static inline void signal_fence(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* True when fd is still the socket of identity (dev, ino). */
static bool fd_is(int fd, dev_t dev, ino_t ino)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev &&
	       st.st_ino == ino;
}

/* True when c->fd is still the socket we opened. */
static bool conn_is_ours(const struct conn *c)
{
	return fd_is(c->fd, c->dev, c->ino);
}

/* Forgets the connection, closing the descriptor only while it is ours,
 * and its note ring (in a fork child: the child's mapping of its parent's). */
static void conn_drop(struct conn *c)
{
	if (conn_is_ours(c))
		close(c->fd);
	c->fd = -1;
	if (c->ring)
		munmap(c->ring, PROTO_RING_SIZE);
	c->ring = NULL;
	c->ring_failed = false;
}

/* Thread exit: close this thread's connection, if it is the owner's. */
static void conn_exit(void *unused)
{
	(void)unused;
	if (tconn.owner == self_tid())
		conn_drop(&tconn);
}

/* A fork child: its memory is its own, its descriptors are copies. It
 * forgets its parent's connection (closing its copy) and will open its own. */
static void conn_forked(void)
{
	space_pid = getpid();
	shim_cache_clear(); /* its verdicts are asked for, and noted, anew */
	conn_drop(&tconn);
	tconn.owner = 0;
	tconn.busy = 0;
}

/* At load, so that nothing of it runs in the ask path: the thread-exit key,
 * the fork handler, the address space's pid. */
__attribute__((constructor)) static void client_setup(void)
{
	space_pid = getpid();
	exit_key_made = pthread_key_create(&exit_key, conn_exit) == 0;
	pthread_atfork(NULL, NULL, conn_forked);
}

/* Moves fd out of the way of programs that expect low descriptors to be
 * theirs, to below the soft limit (at most 1024) minus gap. Returns the
 * descriptor to use (fd itself when it cannot be moved). */
static int move_high(int fd, int gap)
{
	struct rlimit rl;
	int hi;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 3 * HIGH_FD_GAP) {
		rlim_t base = rl.rlim_cur > 1024 ? 1024 : rl.rlim_cur;
		hi = fcntl(fd, F_DUPFD_CLOEXEC, (int)(base - (rlim_t)gap));
		if (hi >= 0) {
			close(fd);
			return hi;
		}
	}
	return fd;
}

/* Makes the spare socket if there is none. Called after a connection was
 * opened, so a program that has used every descriptor has one left to ask. */
static void spare_make(void)
{
	struct stat st;
	int fd, none = -1;

	if (__atomic_load_n(&spare_fd, __ATOMIC_ACQUIRE) >= 0)
		return;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	fd = move_high(fd, HIGH_FD_GAP + 1);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	/* dev and ino are published with the descriptor (release); a thread
	 * that made one at the same time keeps its own and closes ours */
	spare_dev = st.st_dev;
	spare_ino = st.st_ino;
	if (!__atomic_compare_exchange_n(&spare_fd, &none, fd, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED))
		close(fd);
}

/* Takes the spare socket: returns it, or -1 when there is none or the
 * program has taken its descriptor. */
static int spare_take(void)
{
	int fd = __atomic_exchange_n(&spare_fd, -1, __ATOMIC_ACQUIRE);

	return fd >= 0 && fd_is(fd, spare_dev, spare_ino) ? fd : -1;
}

/* Connects a new socket to the broker, with the spare socket when the
 * descriptors ran out and spare allows it. Returns the descriptor or -1
 * with errno: EMFILE/ENFILE no descriptor, EACCES the socket refuses this
 * process, others the broker is unreachable. */
static int broker_connect(bool spare)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = shim_config.timeout_ms / 1000,
			      .tv_usec = (shim_config.timeout_ms % 1000) * 1000 };
	int fd, err;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 && spare && (errno == EMFILE || errno == ENFILE)) {
		err = errno;
		fd = spare_take();
		if (fd < 0)
			errno = err;
	}
	if (fd < 0)
		return -1;
	memcpy(sun.sun_path, shim_config.socket_path, strlen(shim_config.socket_path) + 1);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (shim_real.connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Opens this thread's connection into c, owned by tid. Returns 0 or -1
 * with errno (as broker_connect). */
static int conn_open(struct conn *c, pid_t tid)
{
	struct stat st;
	int fd, err;

	fd = broker_connect(true);
	if (fd < 0)
		return -1;
	fd = move_high(fd, HIGH_FD_GAP);
	if (fstat(fd, &st) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	c->fd = fd;
	c->owner = tid;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	/* The key's table entry is in the thread descriptor for the first 32
	 * keys: no allocation. */
	if (exit_key_made)
		pthread_setspecific(exit_key, c);
	spare_make();
	return 0;
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
	/* A descriptor that found no free slot here (the program used them
	 * all) is dropped by the kernel: the answer stands without it (a
	 * REWRITE without its socket is then refused). */
	if (mh.msg_flags & MSG_TRUNC)
		return (ssize_t)cap + 1;
	return n;
}

/* Sends one encoded request on sock and waits for the answer with the same
 * id; a PENDING answer moves the deadline (the transport is connecting).
 * Returns 0 with *fd the descriptor a REWRITE brought (else -1), or -1 with
 * errno: EPIPE and friends when the broker has gone (the caller may
 * reconnect), ETIMEDOUT, EPROTONOSUPPORT when the broker speaks another
 * protocol version (its answer is of another version, or an ERROR that says
 * ours is unknown), EPROTO for another answer we refuse. */
static int exchange(int sock, const void *req, size_t len, uint32_t id, struct proto_verdict *v,
		    int *fd)
{
	uint8_t buf[1024];
	long deadline = proto_now_ms() + shim_config.timeout_ms;

	*fd = -1;
	if (send(sock, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	for (;;) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		long left = deadline - proto_now_ms();
		ssize_t n;
		int r, got, rc;
		uint16_t type;
		uint32_t mid;
		int32_t error = 0;

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
		n = recv_with_fd(sock, buf, sizeof buf, &got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		rc = (size_t)n > sizeof buf ? PROTO_BAD_MSG
					    : proto_decode_answer(buf, (size_t)n, &type, &mid, v, &error);
		if (rc == 0 && type == PROTO_ERROR && error == PROTO_E_VERSION)
			rc = PROTO_BAD_VERSION; /* a broker of another build: whatever the id */
		else if ((rc == 0 || rc == PROTO_BAD_TYPE) && mid == id && type != PROTO_VERDICT)
			rc = PROTO_BAD_MSG;
		else if (rc == PROTO_BAD_TYPE)
			rc = 0, type = 0; /* another id's message of a type we do not take: skipped */
		if (rc != 0) {
			if (got >= 0)
				close(got);
			errno = rc == PROTO_BAD_VERSION ? EPROTONOSUPPORT : EPROTO;
			return -1;
		}
		if (mid != id || type != PROTO_VERDICT || v->action == PROTO_PENDING) {
			if (got >= 0)
				close(got); /* a stale answer's descriptor: not ours to take */
			if (mid == id)
				deadline = proto_now_ms() + shim_config.timeout_ms + (long)v->ttl_ms;
			continue;
		}
		if (got >= 0 && v->action == PROTO_REWRITE && fd != NULL)
			*fd = got;
		else if (got >= 0 && v->ttl_ms && (v->action == PROTO_ALLOW || v->action == PROTO_DENY))
			shim_page_take(got); /* the broker's generation page */
		else if (got >= 0)
			close(got);
		return 0;
	}
}

/* Encodes ask as request id into req. Returns its length, or -1 (EINVAL). */
static ssize_t encode(const struct proto_ask *ask, uint32_t id, uint8_t *req, size_t cap)
{
	ssize_t len = proto_encode_ask(PROTO_ASK, id, ask, 0, req, cap);

	if (len < 0)
		errno = EINVAL;
	return len;
}

#define REQ_MAX (PROTO_HDR_LEN + 32 + PROTO_NAME_MAX) /* an ASK or a NOTE */

/* One question over a connection of its own, opened and closed here: for a
 * signal handler that interrupted an ask of its thread, and for a process
 * that shares the owner's memory. Touches no shared state. Returns as
 * shim_client_ask. */
static int ask_alone(const struct proto_ask *ask, struct proto_verdict *v, int *fd)
{
	uint8_t req[REQ_MAX];
	ssize_t len = encode(ask, 1, req, sizeof req);
	int sock, r, err;

	if (len < 0)
		return -1;
	sock = broker_connect(false);
	if (sock < 0)
		return -1;
	r = exchange(sock, req, (size_t)len, 1, v, fd);
	err = errno;
	close(sock);
	errno = err;
	return r;
}

/* One question over the thread's connection c, which tid owns and has
 * marked busy. Returns as shim_client_ask. */
static int ask_owned(struct conn *c, pid_t tid, const struct proto_ask *ask,
		     struct proto_verdict *v, int *fd)
{
	uint8_t req[REQ_MAX];

	for (int attempt = 0; attempt < 2; attempt++) {
		ssize_t len;
		uint32_t id;
		int err;

		if (c->fd >= 0 && !conn_is_ours(c))
			conn_drop(c); /* the program took the descriptor */
		if (c->fd < 0 && conn_open(c, tid) < 0)
			return -1;
		id = ++c->next_id;
		len = encode(ask, id, req, sizeof req);
		if (len < 0)
			return -1;
		if (exchange(c->fd, req, (size_t)len, id, v, fd) == 0)
			return 0;
		/* A late answer must never be read as the next one: start afresh. */
		err = errno;
		conn_drop(c);
		errno = err;
		if (err != EPIPE && err != ECONNRESET && err != ENOTCONN)
			return -1;
		/* the broker went away (maybe restarted): try a new connection once */
	}
	return -1;
}

/* Sends msg (len bytes) on c without waiting, with fd as SCM_RIGHTS when
 * fd >= 0, while c->fd is still ours. Returns 0 or -1. */
static int conn_send(struct conn *c, const void *msg, size_t len, int fd)
{
	if (c->fd < 0 || !conn_is_ours(c) ||
	    proto_send_fd(c->fd, msg, len, fd, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	return 0;
}

/* Makes c's note ring: a memfd sealed against shrinking (so that the
 * broker's reads of it can never fault), mapped here. Returns its
 * descriptor, to send, or -1 (c->ring_failed: the NOTEs of c are sent). */
static int ring_make(struct conn *c)
{
	int fd = memfd_create("egress-notes", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p = MAP_FAILED;

	if (fd >= 0 && ftruncate(fd, PROTO_RING_SIZE) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		p = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		if (fd >= 0)
			close(fd);
		c->ring_failed = true;
		return -1;
	}
	c->ring = p;
	c->ring->magic = PROTO_RING_MAGIC;
	c->ring->version = PROTO_VERSION;
	return fd;
}

/* Tells the broker of the NOTE msg (len bytes) over c, which the caller
 * owns and has marked busy: into the ring while the broker reads it (and
 * its bell rung when it must be), else sent, the first time with a new
 * ring. Returns 0, or -1 when the broker could not be told at once. */
static int note_owned(struct conn *c, const uint8_t *msg, size_t len)
{
	uint8_t bell[PROTO_HDR_LEN];
	int put, ring = -1, r;

	if (c->fd < 0)
		return -1;
	put = c->ring ? proto_ring_put(c->ring, msg, len) : -1;
	if (put == 0)
		return 0;
	if (put == 1) /* in the ring; unread unless the broker is told */
		return conn_send(c, bell, (size_t)proto_encode_ring(bell, sizeof bell), -1);
	if (!c->ring && !c->ring_failed)
		ring = ring_make(c);
	r = conn_send(c, msg, len, ring);
	if (ring >= 0) {
		close(ring);
		if (r < 0) { /* the broker never got it: make another next time */
			munmap(c->ring, PROTO_RING_SIZE);
			c->ring = NULL;
		}
	}
	return r;
}

int (*shim_note)(const struct proto_ask *, int) = shim_client_note;

int shim_client_note(const struct proto_ask *ask, int action)
{
	struct conn *c = &tconn;
	uint8_t req[REQ_MAX];
	ssize_t len = proto_encode_ask(PROTO_NOTE, 0, ask, (uint8_t)action, req, sizeof req);
	int saved = errno, r;

	/* Only the owner's own connection, idle: what it sends is then
	 * attributed to this process by the broker (its peer credentials),
	 * and comes between two whole questions. */
	if (len < 0 || c->owner != self_tid() || c->busy)
		return -1;
	c->busy = 1;
	signal_fence();
	r = note_owned(c, req, (size_t)len);
	signal_fence();
	c->busy = 0;
	errno = saved;
	return r;
}

int shim_client_ask(const struct proto_ask *ask, struct proto_verdict *v, int *fd)
{
	struct conn *c = &tconn;
	pid_t tid = self_tid();
	int saved = errno, got = -1, r;

	/* A thread's first question claims its connection, unless the asker
	 * is a CLONE_VM process, which must not claim another's (a getpid
	 * once per thread). */
	if (c->owner == 0 && !c->busy && getpid() == space_pid)
		c->owner = tid;
	if (c->owner != tid || c->busy) {
		r = ask_alone(ask, v, &got);
	} else {
		c->busy = 1;
		signal_fence();
		r = ask_owned(c, tid, ask, v, &got);
		signal_fence();
		c->busy = 0;
	}
	if (r < 0)
		return -1;
	if (fd != NULL)
		*fd = got;
	else if (got >= 0)
		close(got);
	errno = saved;
	return 0;
}
