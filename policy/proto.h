/* proto.h: the wire protocol between libegress.so, egress-broker and its
 * control commands. One header and one codec, compiled into both sides. */
#ifndef EGRESS_PROTO_H
#define EGRESS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * Transport: AF_UNIX, SOCK_SEQPACKET; one message per request and per
 * response. Every message is a 12-byte header followed by a body whose
 * length is exactly what its type needs:
 *
 *   u8 magic 'E' | u8 version | u16 type | u32 id | u32 body length
 *
 * A VERDICT of action REWRITE carries the connected socket that replaces
 * the program's as SCM_RIGHTS ancillary data. An ALLOW or DENY verdict with
 * a ttl_ms may carry the broker's generation page (struct proto_page, a
 * sealed memfd that only the broker can write): the first such verdict on
 * each connection does; the shim's note ring comes with a NOTE (below).
 * Every other message carries no descriptor.
 *
 * Cached verdicts: a shim that holds the page may keep a verdict with a
 * ttl_ms for that long, tagged with the generation the verdict names (the
 * page's when the broker decided); an entry whose generation is no longer
 * the page's is stale. The broker moves the generation on whatever could change a
 * verdict (a reload, before it is reported done; a change in which name a
 * process's address stands for; a sandbox's capture), so a cached verdict
 * is never used past the moment asking would have answered otherwise. A
 * connect applied from the cache is still told to the broker, by a NOTE
 * that is not answered; one that cannot be sent at once is asked instead.
 * NOTEs go through the connection's note ring (struct proto_ring) once the
 * shim has one: the first NOTE that it can send after making the ring
 * carries the ring's memfd; a RING message (no body, no answer) says that
 * slots wait in it.
 *
 * All integers are little-endian. Bump PROTO_VERSION with any change to the
 * message set or a body layout.
 */
#define PROTO_MAGIC 'E'
#define PROTO_VERSION 7 /* 3: the ASK flag PROTO_ASK_INET6; 4: PROTO_CTL_CAPTURE; 5: PROTO_ASK_PASSIVE,
			 * the verdict's port (a send to a name server goes to the broker's);
			 * 6: NOTE, cached connect verdicts and the generation page;
			 * 7: RING, the note ring */
#define PROTO_HDR_LEN 12
#define PROTO_NAME_MAX 253  /* longest DNS name, without the trailing dot */
#define PROTO_RULE_MAX 63   /* longest rule name */
#define PROTO_ADDRS_MAX 32  /* most addresses in one RESOLVE answer */
#define PROTO_TEXT_MAX 65000 /* longest control answer */
#define PROTO_MSG_MAX (PROTO_HDR_LEN + 8 + PROTO_TEXT_MAX) /* receive buffer size */
#define PROTO_DEFAULT_SOCKET "/run/egress/broker.sock" /* where the broker listens */
#define PROTO_DEST_MAX (PROTO_NAME_MAX + 48) /* room for "name:port" or "[v6]:port" with NUL */

enum proto_type {
	PROTO_ASK = 1,     /* shim -> broker: judge one attempt */
	PROTO_VERDICT = 2, /* broker -> shim: the decision */
	PROTO_CONTROL = 3, /* control tool -> broker: status or reload */
	PROTO_TEXT = 4,    /* broker -> control tool: a text answer */
	PROTO_ERROR = 5,   /* broker -> anyone: request refused */
	PROTO_NOTE = 6,    /* shim -> broker: a connect applied from a cached verdict; no answer */
	PROTO_RING = 7,    /* shim -> broker: NOTEs wait in the note ring; no body, no answer */
};

enum proto_op {
	PROTO_OP_RESOLVE = 1, /* getaddrinfo of a name */
	PROTO_OP_CONNECT = 2, /* connect of a stream socket */
	PROTO_OP_SEND = 3,    /* datagram (sendto/sendmsg/sendmmsg, UDP connect) */
};

enum proto_l4 {
	PROTO_L4_ANY = 0, /* unknown (a resolve without socket type) */
	PROTO_L4_TCP = 1,
	PROTO_L4_UDP = 2,
};

enum proto_action {
	PROTO_ALLOW = 1,
	PROTO_DENY = 2,
	PROTO_REWRITE = 3, /* CONNECT: the socket that comes with it replaces the program's */
	PROTO_PENDING = 4, /* CONNECT: the transport is at work; wait ttl_ms more for the verdict */
	PROTO_FAIL = 5,    /* CONNECT: rewritten, but the transport failed with errno err */
};

/* A nonblocking connect through the relay (or a proxy) is held in
 * progress until the broker's upstream leg is up, as the program's own
 * connect would be: the loopback leg it is handed has TCP_NOTSENT_LOWAT
 * PROTO_HOLD_LOWAT and bytes queued that the relay does not take (the
 * filler), so it is not writable. Once the upstream is up the broker sets
 * 0 (it turns writable: connected) and drops the filler; when it fails,
 * PROTO_FAILED_LOWAT | errno, then resets the leg, and the shim reports
 * that errno (SO_ERROR, a second connect) instead of the reset. A shim or
 * broker of an older build ignores it: the message set is the same. */
#define PROTO_HOLD_LOWAT 1
#define PROTO_FAILED_LOWAT 0x1000 /* | errno (< 4096): still below what is unsent, so the
				   * leg stays unwritable until its reset arrives */

/* ASK flags. */
#define PROTO_ASK_NONBLOCK 0x01 /* CONNECT on an O_NONBLOCK socket: answer at once */
#define PROTO_ASK_INET6 0x02    /* CONNECT on an AF_INET6 socket: hand over one of that family */
#define PROTO_ASK_PASSIVE 0x04  /* RESOLVE for binding (AI_PASSIVE, or no service and no
				 * socket type): always the name's own addresses */
#define PROTO_ASK_SOURCE 0x08   /* SEND asked again only to name src_port, which the socket
				 * got after the verdict: not a new attempt (not recorded) */
#define PROTO_ASK_FLAGS (PROTO_ASK_NONBLOCK | PROTO_ASK_INET6 | PROTO_ASK_PASSIVE | PROTO_ASK_SOURCE) /* all that are defined */

enum proto_ctl {
	PROTO_CTL_STATUS = 1,      /* human-readable status */
	PROTO_CTL_STATUS_JSON = 2, /* status as one JSON object */
	PROTO_CTL_RELOAD = 3,      /* reload the policy file */
	PROTO_CTL_CAPTURE = 4,     /* egress-run --isolate: take the capture sockets it carries (SCM_RIGHTS) */
};

enum proto_err {
	PROTO_E_VERSION = 1, /* unknown protocol version */
	PROTO_E_TYPE = 2,    /* unknown or unexpected message type */
	PROTO_E_DENIED = 3,  /* control request from a peer not allowed to */
};

/* Decoder results (negative). */
#define PROTO_BAD_VERSION (-1) /* header fine but another version */
#define PROTO_BAD_TYPE (-2)    /* header fine but unknown type */
#define PROTO_BAD_MSG (-3)     /* malformed: close the connection */

struct proto_addr {
	uint8_t family;    /* 4 or 6 */
	uint8_t bytes[16]; /* network order; IPv4 uses the first 4 */
};

struct proto_ask {
	uint8_t op;                      /* enum proto_op */
	uint8_t l4;                      /* enum proto_l4 */
	uint8_t family;                  /* RESOLVE: 0 any, 4, 6 */
	uint8_t flags;                   /* PROTO_ASK_* */
	uint16_t port;                   /* host order; 0 unknown */
	struct proto_addr addr;          /* CONNECT and SEND */
	uint16_t src_port;               /* SEND: the sending socket's own port, 0 unbound */
	char name[PROTO_NAME_MAX + 1];   /* RESOLVE: NUL-terminated name */
};

struct proto_verdict {
	uint8_t action;                          /* enum proto_action */
	int32_t err;                             /* DENY: errno; RESOLVE failure: EAI_* */
	uint32_t ttl_ms;                         /* how long the verdict may be cached (0: not) */
	uint32_t gen;                            /* the generation it was decided in (0: none) */
	char rule[PROTO_RULE_MAX + 1];           /* matched rule, NUL-terminated */
	char name[PROTO_NAME_MAX + 1];           /* CONNECT/SEND: the name the address was attributed to, or "" */
	uint16_t port;                           /* SEND: non-zero when the datagram goes to
						  * addrs (one per family) at this port instead:
						  * a DNS query, to the broker's lookup stub */
	uint8_t naddr;                           /* RESOLVE: number of addresses */
	struct proto_addr addrs[PROTO_ADDRS_MAX];
};

/* NOTE: the ASK a connect would have sent (op CONNECT), and the action
 * (ALLOW or DENY) its cached verdict applied. The body is the ASK's
 * followed by one byte, the action. */
struct proto_note {
	struct proto_ask ask;
	uint8_t action;
};

/* The generation page: one page of shared memory the broker writes and its
 * clients map read-only. */
#define PROTO_PAGE_SIZE 4096
#define PROTO_PAGE_MAGIC 0x65677270u /* "egrp" */
struct proto_page {
	uint32_t magic;      /* PROTO_PAGE_MAGIC */
	uint32_t version;    /* PROTO_VERSION */
	uint32_t generation; /* moved (never to 0) whenever a cached verdict may be stale */
};
/* At this offset the page holds a robust, process-shared pthread mutex
 * that the broker's loop thread locks at start and holds for its life.
 * Its first word (glibc's lock word, the kernel's robust futex) is the
 * owner's thread id while the broker lives; when that thread ends, however
 * it ends (SIGKILL too), the kernel sets PROTO_PAGE_OWNER_DIED there before
 * the broker's descriptors close. A shim applies no kept verdict of a
 * broker whose word says so. */
#define PROTO_PAGE_LOCK_OFFSET 64
#define PROTO_PAGE_TID_MASK 0x3fffffffu   /* FUTEX_TID_MASK */
#define PROTO_PAGE_OWNER_DIED 0x40000000u /* FUTEX_OWNER_DIED */

/* The note ring: NOTEs written into memory the shim and the broker share
 * instead of sent, so that a thread connecting again and again from its
 * cache neither makes a system call nor wakes the broker for each. The
 * shim makes it (a memfd sealed against shrinking, so that the broker's
 * reads can never fault) for its connection and owns head; the broker
 * keeps its own tail (what the shared one says is only for the shim) and
 * state. A slot is a length byte and one NOTE as proto_encode_ask makes it,
 * which the broker decodes as any message it receives: whatever the
 * program writes into the ring is what it could send. Single writer (the
 * thread that owns the connection), single reader. */
#define PROTO_RING_MAGIC 0x65677272u /* "egrr" */
#define PROTO_RING_SLOTS 256         /* a power of two */
#define PROTO_RING_SLOT 48           /* a length byte and one NOTE */
#define PROTO_RING_SIZE (64 + PROTO_RING_SLOTS * PROTO_RING_SLOT)

enum proto_ring_state {
	PROTO_RING_NEW = 0,  /* not taken yet: the shim sends its NOTEs */
	PROTO_RING_READ = 1, /* the broker reads it */
	PROTO_RING_SHUT = 2, /* the broker reads it no more (the connection ended) */
};

struct proto_ring {
	uint32_t magic;   /* PROTO_RING_MAGIC */
	uint32_t version; /* PROTO_VERSION */
	uint32_t head;    /* slots filled, free-running: the shim's */
	uint32_t tail;    /* slots read, free-running: the broker's */
	uint32_t bell;    /* 1: the broker has been told (RING) that slots wait */
	uint32_t state;   /* enum proto_ring_state: the broker's */
	uint8_t pad[40];
	uint8_t slot[PROTO_RING_SLOTS][PROTO_RING_SLOT];
};

/* The shim's side: puts the NOTE msg (len bytes) into r. Returns 1 when it
 * is in and the broker must be told (a RING message), 0 when it is in and
 * the broker has been told already, -1 when it is not in, or may never be
 * read (r full, msg too long, the broker not reading r): the caller then
 * sends the NOTE, or asks, and the broker may read it twice. */
int proto_ring_put(struct proto_ring *r, const void *msg, size_t len);

/* The broker's side: takes the next slot after *tail into out (at least
 * PROTO_RING_SLOT bytes) and its length into *len, and moves *tail on.
 * Returns 1 when it took one, 0 when r is empty, -1 when r is broken
 * (head and tail more than the ring apart, a length out of bounds): the
 * program wrote over it. r may change under this call. */
int proto_ring_take(struct proto_ring *r, uint32_t *tail, void *out, size_t *len);

/* The broker's side: from now on, slots are announced again (a RING):
 * before it reads what waits, so that nothing put after the read goes
 * untold. */
void proto_ring_unbell(struct proto_ring *r);

struct proto_control {
	uint8_t what; /* enum proto_ctl */
};

struct proto_text {
	int32_t status;                  /* 0 success, else failure */
	uint32_t len;                    /* bytes in text, without the NUL */
	char text[PROTO_TEXT_MAX + 1];   /* NUL-terminated */
};

struct proto_msg {
	uint16_t type; /* enum proto_type */
	uint32_t id;   /* chosen by the asker, echoed in the answer */
	union {
		struct proto_ask ask;
		struct proto_note note;
		struct proto_verdict verdict;
		struct proto_control control;
		struct proto_text text;
		int32_t error; /* PROTO_ERROR: enum proto_err */
	} u;
};

/* Encodes m into buf. Returns the message length, or -1 when a field is out
 * of bounds or cap is too small; buf is then undefined. */
ssize_t proto_encode(const struct proto_msg *m, void *buf, size_t cap);

/* Decodes exactly len bytes of buf into m. Returns 0, or PROTO_BAD_VERSION
 * or PROTO_BAD_TYPE (m->id and m->type are then set, so an ERROR can be
 * answered), or PROTO_BAD_MSG for anything malformed. */
int proto_decode(const void *buf, size_t len, struct proto_msg *m);

/* The shim's codec, with no struct proto_msg (its 64 KiB text would be on
 * the stack of whatever asks, a signal handler's small one included).
 * proto_encode_ask encodes an ASK (type PROTO_ASK) or a NOTE (PROTO_NOTE,
 * with action) as proto_encode would. proto_decode_answer decodes a
 * VERDICT or an ERROR into *type, *id and *v or *error, as proto_decode
 * would, and returns as it does. */
ssize_t proto_encode_ask(uint16_t type, uint32_t id, const struct proto_ask *a, uint8_t action,
			 void *buf, size_t cap);
int proto_decode_answer(const void *buf, size_t len, uint16_t *type, uint32_t *id,
			struct proto_verdict *v, int32_t *error);
/* Encodes a RING message (a header alone) into buf. Returns its length,
 * or -1 when cap is too small. */
ssize_t proto_encode_ring(void *buf, size_t cap);

/* --------------------------- shared helpers: linked by the shim and the broker */

/* Checks an ASK's fields (op, l4, flags, family, name length, address) as
 * both encode and decode need: a RESOLVE has a name of 1 to PROTO_NAME_MAX
 * bytes (namelen, not counting the NUL), a family of 0, 4 or 6 and no
 * address; a CONNECT or SEND has an IPv4 or IPv6 address, no name and no
 * family; only a SEND has a src_port. Returns 0 or -1. */
int proto_ask_check(const struct proto_ask *a, size_t namelen);

/* The name of op ("resolve", "connect", "send"), l4 ("tcp", "udp", "any")
 * or action ("allow", "deny", "rewrite", "pending", "fail"); "?" for a
 * value outside its enum. Static strings. */
const char *proto_op_name(int op);
const char *proto_l4_name(int l4);
const char *proto_action_name(int action);

/* The IPv4 address an IPv4-mapped IPv6 address (::ffff:a.b.c.d) carries:
 * true and *a rewritten as family 4 (other bytes zeroed) when a is mapped,
 * else false and a unchanged. */
bool proto_addr_unmap(struct proto_addr *a);

/* Fills a and *port from an AF_INET (>= 16 bytes) or AF_INET6 (>= 24 bytes:
 * no scope id is read) sockaddr, read as `family` (the caller's reading of
 * AF_UNSPEC); an IPv4-mapped IPv6 address becomes IPv4. sa need not be
 * aligned. Returns 0, or -1 for another family (a and *port untouched). */
int proto_addr_from_sockaddr(const struct sockaddr *sa, int family, struct proto_addr *a,
			     uint16_t *port);

/* Fills ss with a:port: AF_INET for IPv4 unless v6, when IPv4 is written in
 * mapped form ::ffff:a.b.c.d; AF_INET6 for IPv6. Returns the length to pass
 * to connect/bind, or 0 (ss zeroed) when a is neither IPv4 nor IPv6. */
socklen_t proto_addr_to_sockaddr(const struct proto_addr *a, uint16_t port, bool v6,
				 struct sockaddr_storage *ss);

/* Formats "name:port" when name is non-empty, else "1.2.3.4:port" or
 * "[2001:db8::1]:port", into out (cap bytes, PROTO_DEST_MAX is enough;
 * truncated and NUL-terminated when cap is smaller, nothing when it is 0).
 * A name's bytes outside printable ASCII become '?', so a name from the
 * network cannot write control characters into a log; a NULL name counts
 * as empty, and a NULL addr or one of another family gives "?:port". */
void proto_dest_format(const char *name, const struct proto_addr *addr, uint16_t port, char *out,
		       size_t cap);

/* Milliseconds of CLOCK_MONOTONIC. */
long proto_now_ms(void);

/* Sends the message buf (len bytes) on sock with flags, and fd as
 * SCM_RIGHTS when fd >= 0. Returns as sendmsg. */
ssize_t proto_send_fd(int sock, const void *buf, size_t len, int fd, int flags);

#endif
