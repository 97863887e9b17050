/* judge.c: the decision code behind every hook: classify the socket, turn
 * the address into a request, ask the broker (or the datagram cache), and
 * apply the verdict: go ahead, or fail with the rule's errno and a line on
 * stderr. Testable without preloading: the broker is reached through
 * shim_ask. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

/* The family the kernel reads an AF_UNSPEC destination of a send on fd as:
 * an IPv4 datagram or raw socket takes it as AF_INET (udp_sendmsg,
 * raw_sendmsg), an IPv6 raw socket as AF_INET6; elsewhere (an IPv6 UDP
 * socket, any connect) it means "no address" or "disconnect". */
static int unspec_family(int fd)
{
	int domain, type;
	socklen_t dl = sizeof domain, tl = sizeof type;

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type == SOCK_STREAM)
		return AF_UNSPEC;
	if (domain == AF_INET)
		return AF_INET;
	return domain == AF_INET6 && type == SOCK_RAW ? AF_INET6 : AF_UNSPEC;
}

bool shim_dest_copy(int fd, const struct sockaddr *sa, socklen_t len, bool is_connect,
		    struct shim_dest *d)
{
	int family;

	d->len = 0;
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t) || len > (socklen_t)sizeof d->ss)
		return false; /* the kernel refuses it, or there is none */
	memset(&d->ss, 0, sizeof d->ss);
	memcpy(&d->ss, sa, len);
	d->len = len;
	family = d->ss.ss_family;
	if (family == AF_UNSPEC && !is_connect)
		family = unspec_family(fd);
	d->family = family;
	if (family == AF_INET)
		return len >= (socklen_t)sizeof(struct sockaddr_in);
	if (family == AF_INET6)
		return len >= (socklen_t)SHIM_SIN6_LEN_MIN;
	return false;
}

int shim_classify(int fd, int flags, bool is_connect, int *op, int *l4)
{
	int type;
	socklen_t tlen = sizeof type;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0)
		return -1; /* not a socket: the real call reports it */
	switch (type) {
	case SOCK_STREAM:
		if (!is_connect && !(flags & MSG_FASTOPEN))
			return -1; /* the kernel ignores a stream send's address */
		*op = PROTO_OP_CONNECT;
		*l4 = PROTO_L4_TCP;
		return 0;
	case SOCK_DGRAM:
		*op = PROTO_OP_SEND;
		*l4 = PROTO_L4_UDP;
		return 0;
	default: /* raw, SCTP and friends: judged, matched only by proto-less rules */
		*op = is_connect ? PROTO_OP_CONNECT : PROTO_OP_SEND;
		*l4 = PROTO_L4_ANY;
		return 0;
	}
}

/* The errno a denial returns: the broker's, when it is one a call can return. */
static int deny_errno(int err)
{
	return err > 0 && err < 4096 ? err : EPERM;
}

/* A descriptor kept for shim_pin when the table is full: an unbound UNIX
 * socket, known by its inode, so that one the program closed and reused is
 * never taken for it. Published with its identity written first. */
static struct {
	int fd; /* -1 none */
	dev_t dev;
	ino_t ino;
} pin_spare = { .fd = -1 };

/* Makes the spare when there is none (once, and again after each use). */
static void pin_spare_make(void)
{
	struct stat st;
	int fd;

	if (__atomic_load_n(&pin_spare.fd, __ATOMIC_ACQUIRE) >= 0)
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	pin_spare.dev = st.st_dev;
	pin_spare.ino = st.st_ino;
	int none = -1;
	if (!__atomic_compare_exchange_n(&pin_spare.fd, &none, fd, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED))
		close(fd); /* another thread made one meanwhile */
}

/* Takes the spare and closes it, freeing its slot. Returns true when it did. */
static bool pin_spare_release(void)
{
	int fd = __atomic_exchange_n(&pin_spare.fd, -1, __ATOMIC_ACQ_REL);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_dev != pin_spare.dev ||
	    st.st_ino != pin_spare.ino)
		return false; /* gone, or the program's own now: not ours to close */
	close(fd);
	return true;
}

int shim_pin(int fd, const char *verb)
{
	int obj = fcntl(fd, F_DUPFD_CLOEXEC, 0), err;

	if (obj < 0 && (errno == EMFILE || errno == ENFILE) && pin_spare_release())
		obj = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* into the spare's slot */
	if (obj >= 0) {
		pin_spare_make();
		return obj;
	}
	err = errno;
	if (err == EMFILE || err == ENFILE) /* said without strerror: a handler may be here */
		shim_log_line("egress: no free descriptor to judge a %s (%s); denied", verb,
			      err == EMFILE ? "Too many open files" : "Too many open files in system");
	errno = err;
	return -1;
}

void shim_unpin(int obj)
{
	int err = errno;

	close(obj);
	pin_spare_make(); /* back into the slot just freed, if the spare was used */
	errno = err;
}

/* The datagram of a SEND verdict with a port goes to the broker at that
 * port (its lookup stub, a datagram relay): d becomes the broker's address
 * of the socket's family (or the IPv4 one, mapped), and what was asked is
 * remembered for the answers. */
static void to_broker(int obj, struct shim_dest *d, const struct proto_ask *ask,
		      const struct proto_verdict *v)
{
	bool v6 = d->family == AF_INET6;
	const struct proto_addr *a = &v->addrs[0];
	struct sockaddr_storage asked;

	for (int i = 0; i < v->naddr; i++)
		if (v->addrs[i].family == (v6 ? 6 : 4)) {
			a = &v->addrs[i];
			break;
		}
	proto_addr_to_sockaddr(&ask->addr, ask->port, v6, &asked);
	shim_rewrite_via(obj, (struct sockaddr *)&asked, v->port);
	memset(&d->ss, 0, sizeof d->ss);
	d->len = proto_addr_to_sockaddr(a, v->port, v6, &d->ss);
}

/* An attempt applied from the cache: a datagram's verdict as it is, a
 * connect's once the broker has been told (a NOTE), with its line as when
 * asked (a datagram's is said once, when asked).
 * Returns 0 or -1 as shim_judge, or 2 when the broker could not be told at
 * once: ask. */
static int cached(int obj, struct shim_dest *d, const struct proto_ask *ask,
		  const struct proto_verdict *v, const char *verb)
{
	bool allow = v->action == PROTO_ALLOW;
	char dest[PROTO_DEST_MAX];

	if (ask->op == PROTO_OP_CONNECT && shim_note(ask, v->action) < 0)
		return 2;
	if (ask->op == PROTO_OP_CONNECT &&
	    shim_config.log > (allow ? SHIM_LOG_DENY : SHIM_LOG_OFF)) {
		proto_dest_format(NULL, &ask->addr, ask->port, dest, sizeof dest);
		shim_log_line("egress: %s %s to %s (rule %s)", allow ? "allowed" : "denied", verb,
			      dest, v->rule);
	}
	if (allow) {
		if (v->port && v->naddr > 0)
			to_broker(obj, d, ask, v);
		return 0;
	}
	errno = deny_errno(v->err);
	return -1;
}

/* The port obj's socket sends from: its own, or, when it has none yet and
 * bind is set, the one it gets now by binding to its family's wildcard
 * address, as the kernel would bind it at its first send (so the caller
 * does this only for a send that goes ahead). 0 when there is none. */
static uint16_t own_port(int obj, bool bind_now)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct proto_addr a;
	uint16_t port = 0;

	if (getsockname(obj, (struct sockaddr *)&ss, &len) < 0 ||
	    proto_addr_from_sockaddr((struct sockaddr *)&ss, ss.ss_family, &a, &port) < 0)
		return 0;
	if (port || !bind_now)
		return port;
	memset(&ss, 0, sizeof ss);
	ss.ss_family = a.family == 4 && len == sizeof(struct sockaddr_in) ? AF_INET : AF_INET6;
	len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (bind(obj, (struct sockaddr *)&ss, len) < 0)
		return 0;
	return own_port(obj, false);
}

int shim_judge(int fd, int obj, int op, int l4, struct shim_dest *d, const char *verb)
{
	struct proto_ask ask = { .op = (uint8_t)op, .l4 = (uint8_t)l4 };
	struct proto_verdict v;
	char dest[PROTO_DEST_MAX];
	int newfd = -1, fl, r;
	uint16_t src;

	if (proto_addr_from_sockaddr((const struct sockaddr *)&d->ss, d->family, &ask.addr,
				     &ask.port) < 0) {
		errno = EAFNOSUPPORT; /* not from shim_dest_copy: nothing to judge */
		return -1;
	}
	/* A datagram that goes to the broker instead (v.port) is taken there
	 * from the socket that asked for it: another socket of this thread
	 * asks again, and names its port. */
	if (shim_cache_lookup(&ask.addr, ask.port, op, l4, &v, &src) &&
	    (!v.port || own_port(obj, true) == src) && (r = cached(obj, d, &ask, &v, verb)) != 2)
		return r;
	if (op == PROTO_OP_SEND && l4 == PROTO_L4_UDP)
		ask.src_port = own_port(obj, false);
	if (op == PROTO_OP_CONNECT && (fl = fcntl(obj, F_GETFL)) >= 0 && (fl & O_NONBLOCK))
		ask.flags = PROTO_ASK_NONBLOCK;
	if (op == PROTO_OP_CONNECT && d->ss.ss_family == AF_INET6)
		ask.flags |= PROTO_ASK_INET6; /* a rewrite must hand back an IPv6 socket */
again:
	if (shim_ask(&ask, &v, op == PROTO_OP_CONNECT ? &newfd : NULL) < 0) {
		int err = errno;
		proto_dest_format(NULL, &ask.addr, ask.port, dest, sizeof dest);
		char what[sizeof dest + 16];
		snprintf(what, sizeof what, "%s to %s", verb, dest);
		if (shim_log_unanswered(what, err))
			return 0; /* EGRESS_FAIL=open */
		/* out of descriptors is said as such; every other failure to
		 * get a verdict is a denial */
		errno = err == EMFILE || err == ENFILE ? err : EPERM;
		return -1;
	}
	if (v.action == PROTO_ALLOW && op == PROTO_OP_SEND && l4 == PROTO_L4_UDP && v.port &&
	    !ask.src_port && (ask.src_port = own_port(obj, true))) {
		/* to the broker, from a socket that had no port when it asked:
		 * it has one now, bound as its send would bind it, and the
		 * broker is told which (not a new attempt) */
		ask.flags |= PROTO_ASK_SOURCE;
		goto again;
	}
	if (newfd < 0)
		shim_cache_store(&ask.addr, ask.port, op, l4, &v, ask.src_port);
	if (v.action == PROTO_ALLOW) {
		if (op == PROTO_OP_SEND && v.port && v.naddr > 0)
			to_broker(obj, d, &ask, &v);
		if (shim_config.log == SHIM_LOG_ALL) {
			proto_dest_format(v.name, &ask.addr, ask.port, dest, sizeof dest);
			shim_log_line("egress: allowed %s to %s (rule %s)", verb, dest, v.rule);
		}
		return 0;
	}
	proto_dest_format(v.name, &ask.addr, ask.port, dest, sizeof dest);
	if (v.action == PROTO_REWRITE && newfd >= 0) {
		if (shim_rewrite_install(fd, obj, newfd, (const struct sockaddr *)&d->ss) < 0) {
			shim_log_line("egress: %s to %s: cannot take over the rewritten socket: %s",
				      verb, dest, strerror(errno));
			errno = EPERM;
			return -1;
		}
		if (shim_config.log == SHIM_LOG_ALL)
			shim_log_line("egress: rewrote %s to %s (rule %s)", verb, dest, v.rule);
		return 1;
	}
	if (newfd >= 0)
		close(newfd);
	if (v.action == PROTO_FAIL) {
		errno = deny_errno(v.err);
		if (shim_config.log != SHIM_LOG_OFF)
			shim_log_line("egress: %s to %s failed in the transport: %s (rule %s)", verb,
				      dest, strerror(errno), v.rule);
		return -1;
	}
	if (shim_config.log != SHIM_LOG_OFF) {
		if (v.action == PROTO_DENY && op == PROTO_OP_SEND && v.err == EPROTONOSUPPORT)
			shim_log_line("egress: denied %s to %s (rule %s: its transport carries no "
				      "datagrams)", verb, dest, v.rule);
		else if (v.action == PROTO_DENY)
			shim_log_line("egress: denied %s to %s (rule %s)", verb, dest, v.rule);
		else /* a rewrite without its socket, or an action this shim does not know */
			shim_log_line("egress: denied %s to %s (rule %s: unusable broker answer)",
				      verb, dest, v.rule);
	}
	errno = v.action == PROTO_DENY ? deny_errno(v.err) : EPERM;
	return -1;
}
