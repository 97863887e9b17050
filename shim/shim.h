/* shim.h: internals of libegress.so shared by its hook files. Only the libc
 * names it hooks are exported (SHIM_EXPORT); everything here is hidden. */
#ifndef EGRESS_SHIM_H
#define EGRESS_SHIM_H

#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "proto.h"

#define SHIM_EXPORT __attribute__((visibility("default")))
#define SHIM_DEFAULT_TIMEOUT_MS 3000

/* The real libc functions, found once with dlsym(RTLD_NEXT). */
struct shim_real {
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	void (*freeaddrinfo)(struct addrinfo *);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*getnameinfo)(const struct sockaddr *, socklen_t, char *, socklen_t, char *,
			   socklen_t, int);
};

enum shim_log { SHIM_LOG_OFF, SHIM_LOG_DENY, SHIM_LOG_ALL };

/* Settings read once from the environment at start. */
struct shim_config {
	char socket_path[108];  /* EGRESS_SOCKET, else PROTO_DEFAULT_SOCKET */
	int timeout_ms;         /* EGRESS_TIMEOUT_MS: wait for an answer this long */
	enum shim_log log;      /* EGRESS_LOG=off|deny|all */
	bool fail_open;         /* EGRESS_FAIL=open: debugging only */
};

extern struct shim_real shim_real;
extern struct shim_config shim_config;
/* The hosts file reverse lookups are answered from (HOSTSFILE_ETC; a unit
 * test's own). */
extern const char *shim_hosts_path;

/* init.c: resolves the real symbols and reads the environment, once; safe to
 * call from every hook, before or after the constructor has run. */
void shim_init(void);

/* client.c: asks the broker about one attempt over this thread's connection,
 * opening or reopening it as needed, and waits for the verdict (longer when
 * the broker says PENDING). Returns 0 with *v filled, and *fd set to the
 * descriptor a REWRITE verdict brought (else -1), or -1 with errno set when
 * the broker is unreachable or did not answer in time, EPROTONOSUPPORT when
 * it speaks another protocol version (a shim and broker of different
 * builds), EACCES (or EPERM) when its socket refuses this process, EMFILE or
 * ENFILE when no descriptor was left to reach it. Async-signal-safe and
 * reentrant: a signal handler may ask while its thread is asking. */
int shim_client_ask(const struct proto_ask *ask, struct proto_verdict *v, int *fd);

/* client.c: tells the broker, without waiting, that a connect was applied
 * from a cached verdict of action. Returns 0 when the NOTE went out at
 * once over this thread's own connection, else -1: the caller asks
 * instead (a signal handler inside an ask, a CLONE_VM process, a full
 * socket buffer, a broker that has gone all end up asking, which fails
 * closed). */
int shim_client_note(const struct proto_ask *ask, int action);

/* The noting function in use: shim_client_note, or a unit test's stub. */
extern int (*shim_note)(const struct proto_ask *ask, int action);

/* The asking function in use: shim_client_ask, or a unit test's stub. */
extern int (*shim_ask)(const struct proto_ask *ask, struct proto_verdict *v, int *fd);

/* An attempt's destination, copied out of the program's memory once: it is
 * judged and handed to the real call from here, so that another thread
 * cannot change it between the verdict and the call. */
struct shim_dest {
	struct sockaddr_storage ss; /* the program's bytes, zero-padded */
	socklen_t len;              /* the program's length; 0: nothing copied */
	int family;                 /* AF_INET, AF_INET6: as the kernel will read ss */
};

/* The shortest IPv6 address the kernel accepts: RFC 2133's, no scope id. */
#define SHIM_SIN6_LEN_MIN 24

/* judge.c: copies (sa, len) into *d when the kernel would take it at all,
 * and returns true when it is an IPv4 or IPv6 destination the shim must
 * judge: AF_INET from 16 bytes, AF_INET6 from 24, and an AF_UNSPEC send
 * destination that the kernel reads as one of them. When d->len is not 0
 * the real call must be given d->ss, not sa. */
bool shim_dest_copy(int fd, const struct sockaddr *sa, socklen_t len, bool is_connect,
		    struct shim_dest *d);

/* The address the real call gets: the copy when there is one. */
static inline const struct sockaddr *shim_dest_sa(const struct shim_dest *d,
						  const struct sockaddr *sa)
{
	return d->len ? (const struct sockaddr *)&d->ss : sa;
}

/* judge.c: a private duplicate of fd (close-on-exec), so that the checks
 * and the real call of one connect act on the same kernel object whatever
 * another thread dup2()s onto fd meanwhile. Returns it, or -1 with errno
 * (EBADF: fd is not open; EMFILE: no descriptor is free, and the attempt is
 * refused with a line on stderr, since judging fd itself could judge one
 * object and connect another). */
int shim_pin(int fd, const char *verb);

/* judge.c: closes a descriptor from shim_pin, errno kept. */
void shim_unpin(int obj);

/* judge.c: judges an attempt of op/l4 to d (from shim_dest_copy) on the
 * socket obj (fd itself, or its pinned duplicate) of the program's
 * descriptor fd. verb names the call in messages ("connect", "send").
 * Returns 0 when the real call may go ahead on obj, to *d (which the
 * verdict may have changed: a DNS query goes to the broker's lookup stub
 * instead, d->len then its new length), 1 when fd has been
 * replaced by a socket already connected through the mediated transport (a
 * rewrite), else -1 with errno set to what the hooked call returns. */
int shim_judge(int fd, int obj, int op, int l4, struct shim_dest *d, const char *verb);

/* rewrite.c: puts newfd in fd's place (dup3), keeping O_NONBLOCK,
 * FD_CLOEXEC and the socket options set on obj (the judged socket, which
 * fd must still be), and remembers sa as its peer for getpeername. newfd is
 * closed in any case. Returns 0 or -1 (EBADF: fd is another object now). */
int shim_rewrite_install(int fd, int obj, int newfd, const struct sockaddr *sa);

/* rewrite.c: forgets that fd's socket was rewritten (it was disconnected
 * and is about to be connected again, judged like any other). */
void shim_rewrite_forget(int fd);

/* rewrite.c: where the connect of fd's rewritten socket is that the
 * broker holds in progress (proto.h, PROTO_HOLD_LOWAT): EINPROGRESS while
 * it is held, the errno of its failure once it failed (with take set,
 * reported: forgotten with the reset's error, as the kernel forgets a
 * socket's error once it has reported it), else 0: connected, or not a
 * held connect at all. */
int shim_rewrite_outcome(int fd, bool take);

/* rewrite.c: true when fd's socket is one shim_rewrite_install put in place
 * (already connected through the transport). */
bool shim_rewritten(int fd);

/* rewrite.c: true, with errno EOPNOTSUPP and one line, when fd is the
 * loopback leg of the broker's relay: urgent data (MSG_OOB) would not
 * reach the destination as urgent, so the program is told instead. */
bool shim_oob_refused(int fd);

/* rewrite.c: fd's datagram to asked goes to the broker at port of its
 * loopback instead (the lookup stub, a datagram relay): remembers asked as
 * fd's peer (getpeername), and as the source of what comes back from that
 * port (shim_rewrite_source). */
void shim_rewrite_via(int fd, const struct sockaddr *asked, uint16_t port);

/* rewrite.c: after a receive on fd that wrote the source sa (*len bytes of
 * it, in a buffer of cap): a datagram from the broker's port that fd's
 * datagrams go to is shown as from the destination the program asked. */
void shim_rewrite_source(int fd, struct sockaddr *sa, socklen_t *len, socklen_t cap);
/* rewrite.c: true once a datagram of this process went to the broker. */
bool shim_rewrite_via_used(void);

/* judge.c: the l4 and op an attempt on socket fd has: returns 0 and sets them,
 * or -1 when fd is not a socket the shim judges (pass it through). A stream
 * socket's datagram-style send (no MSG_FASTOPEN) is passed through too, and
 * a send that passes goes without its IP destination: the kernel ignores it
 * there (or refuses a call on what is not a socket), so nothing is lost,
 * and a datagram socket another thread puts under fd meanwhile cannot take
 * it unjudged. */
int shim_classify(int fd, int flags, bool is_connect, int *op, int *l4);

/* cache.c: this thread's verdict cache (connects and datagrams). lookup
 * returns true and fills *v (action, err, rule, and a datagram's port and
 * addresses) while an entry for the key is fresh: within its TTL, and of
 * the page's generation now; *src_port is the port of the socket that
 * asked for it (a datagram's: the broker knows that socket). store keeps
 * an ALLOW or DENY with a ttl_ms and a generation. */
bool shim_cache_lookup(const struct proto_addr *a, uint16_t port, int op, int l4,
		       struct proto_verdict *v, uint16_t *src_port);
void shim_cache_store(const struct proto_addr *a, uint16_t port, int op, int l4,
		      const struct proto_verdict *v, uint16_t src_port);
void shim_cache_clear(void);
/* cache.c: maps the broker's generation page from fd (a verdict brought
 * it) unless it is the one in use: another broker's replaces it. fd is
 * closed in any case. */
void shim_page_take(int fd);
/* cache.c: the page's generation; 0 while there is no page, and once its
 * broker has gone (its lock word, proto.h). */
uint32_t shim_page_gen(void);
/* The cache's clock (proto_now_ms); a unit test's stub may store from it. */
extern long (*shim_cache_clock)(void);

/* The logic of each hook, apart from its exported symbol: each returns what
 * the libc call returns. */
int shim_connect(int fd, const struct sockaddr *sa, socklen_t len);
ssize_t shim_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
		    socklen_t len);
ssize_t shim_send(int fd, const void *buf, size_t n, int flags);
ssize_t shim_sendmsg(int fd, const struct msghdr *msg, int flags);
int shim_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags);
int shim_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int shim_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
ssize_t shim_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa,
		      socklen_t *len);
ssize_t shim_recvmsg(int fd, struct msghdr *msg, int flags);
int shim_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		  struct timespec *timeout);
int shim_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		     struct addrinfo **res);
void shim_freeaddrinfo(struct addrinfo *ai);

/* The lookups besides getaddrinfo (gethostbyname.c, gethostbyaddr.c,
 * getnameinfo.c, getaddrinfo_a.c, res.c): each returns what its libc
 * function returns. Names are judged and resolved through
 * shim_getaddrinfo; reverse lookups make no DNS query. fn names the
 * caller in res.c's messages. */
struct __res_state;
int shim_herrno_of_eai(int eai); /* the h_errno of a getaddrinfo result */
int shim_gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
			  struct hostent **result, int *h_errnop);
int shim_gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret,
			 char *buf, size_t buflen, struct hostent **result, int *h_errnop);
int shim_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
		     char *serv, socklen_t servlen, int flags);
int shim_getaddrinfo_a(int mode, struct gaicb *list[], int nitems, struct sigevent *sevp);
int shim_res_query(struct __res_state *statp, const char *name, int class, int type,
		   unsigned char *answer, int anslen, const char *fn);
int shim_res_send(struct __res_state *statp, const unsigned char *msg, int msglen,
		  unsigned char *answer, int anslen, const char *fn);

/* log.c: one line to stderr, written with a single write(2); formats only
 * %s %c %d %u %ld %lu %zu, async-signal-safe. */
void shim_log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* log.c: says why the broker gave no verdict on what ("connect to
 * 1.2.3.4:443"), err being shim_ask's errno: EPROTONOSUPPORT, a broker of
 * another protocol version; EACCES or EPERM, a broker socket that refuses
 * this process (its uid); EMFILE or ENFILE, no descriptor left to ask with;
 * anything else, an unreachable broker. Each is
 * said once per process (a forked child says it again): denials stay
 * silent after the first. Returns true when what may go ahead unchecked:
 * EGRESS_FAIL=open and an unreachable broker. A broker of another version
 * is reachable, and what is denied whatever EGRESS_FAIL says; so is a
 * refused process or one out of descriptors: neither is an unreachable
 * broker. */
bool shim_log_unanswered(const char *what, int err);

#endif
