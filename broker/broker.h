/* broker.h: the modules of egress-broker, one section and one prefix per
 * file (log_, buf_, sha256_, audit_, addrmap_, upstream_, loop_, transport_,
 * synth_, nflog_, stats_, resolver_, capture_, sandbox_, ask_, control_, ctl_, cli_,
 * server_); used by
 * main.c and the unit tests. docs/ARCHITECTURE.md walks through them. */
#ifndef EGRESS_BROKER_H
#define EGRESS_BROKER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "policy.h"
#include "proto.h"

#define BROKER_VERSION "0.1"

/* ------------------------------------------------------------------ log.c */

/* Each prints "egress-broker: <message>" and a newline to stderr: log_error
 * for a failure, log_warn (prefixed "warning: ") for a misbehaving client or
 * file that was dealt with, log_info for what the broker did. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------ buf.c */

/* A fixed-size text builder: appends never overrun; once full it remembers
 * that it overflowed and the text stays NUL-terminated. */
struct buf {
	char *p;       /* caller's memory */
	size_t cap;    /* bytes at p, including room for the NUL */
	size_t len;    /* bytes written, without the NUL */
	bool overflow; /* something did not fit */
};

void buf_init(struct buf *b, char *mem, size_t cap);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the string s, and the decimal v: what buf_printf's "%s" and
 * "%llu" would, without a format to parse (the audit line's pieces). */
void buf_str(struct buf *b, const char *s);
void buf_uint(struct buf *b, unsigned long long v);
/* Appends s as a JSON string with its quotes ("null" when s is NULL):
 * quote, backslash, control characters and every byte >= 0x7f escaped. */
void buf_json_str(struct buf *b, const char *s);
/* Appends ts (UTC) as 2026-11-22T10:00:00.123Z, or without the
 * milliseconds when millis is false. */
void buf_time(struct buf *b, const struct timespec *ts, bool millis);

/* --------------------------------------------------------------- sha256.c */

struct sha256 {
	uint32_t h[8];   /* chaining state */
	uint64_t len;    /* bytes hashed so far */
	uint8_t blk[64]; /* partial block */
	size_t nblk;     /* bytes in blk */
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *data, size_t len);
void sha256_final(struct sha256 *c, uint8_t out[32]);
/* Writes the lowercase hex SHA-256 of data into hex (65 bytes). */
void sha256_hex(const void *data, size_t len, char hex[65]);
/* Writes the hex SHA-256 of the file at path into hex. Returns 0, or -1
 * (logged) when it cannot be read. */
int sha256_file(const char *path, char hex[65]);

/* ---------------------------------------------------------------- audit.c */

#define AUDIT_OP_CLOSE 16 /* not a request: the end of a relayed connection */

/* One decision, as written to the audit log. */
struct audit_event {
	struct timespec time;          /* CLOCK_REALTIME */
	pid_t pid;                     /* peer's pid */
	uid_t uid;                     /* peer's uid */
	const char *exe;               /* peer's executable, NULL when unknown */
	int op;                        /* enum proto_op */
	const char *name;              /* attributed or asked name, NULL when unknown */
	const struct proto_addr *addr; /* NULL for a resolve */
	uint16_t port;                 /* 0 when unknown */
	int l4;                        /* enum proto_l4 */
	int action;                    /* enum proto_action */
	const char *rule;              /* matched rule */
	const char *err;               /* "EPERM", "EAI_NONAME" or NULL */
	const char *transport;         /* a rewrite: the transport, without credentials */
	const char *upstream;          /* a rewrite: what the upstream answered */
	bool relayed;                  /* a relayed connection's close: the counts below */
	bool captured;                 /* caught in an isolated namespace, not asked by a shim */
	bool cached;                   /* applied by the shim from a cached verdict (a NOTE) */
	bool limit_hit;                /* it was cut at the rule's limit */
	unsigned long count;           /* datagrams an isolated namespace dropped: how many this
					* event stands for (nflog.c); 0: not such an event */
	int ipproto;                   /* with count: their IP protocol number */
	uint64_t bytes_sent;           /* program -> destination */
	uint64_t bytes_received;       /* destination -> program */
};

/* The audit log: JSON Lines, append mode, one write() per event. */
struct audit {
	char path[PATH_MAX];     /* "" when there is no audit log */
	int fd;                  /* -1 when closed or failed to open */
	int err;                 /* errno of the last failure, 0 when the last write worked */
	unsigned long failures;  /* events that could not be written */
	unsigned long written;   /* events written */
	unsigned long reopened;  /* times the file was found removed and recreated */
	dev_t dev;               /* the open file, to notice its removal */
	ino_t ino;
	bool held;               /* between audit_hold and audit_flush */
	char *batch;             /* lines held, AUDIT_BATCH bytes (NULL unless held) */
	size_t nbatch;           /* bytes in it */
	unsigned long batched;   /* lines in it */
};

#define AUDIT_BATCH 65536 /* the most bytes held for one write */

void audit_init(struct audit *a);
/* Closes any open log and opens path (NULL or "" for none). Returns 0, or
 * -1 (logged, error kept in a->err) when it cannot be opened; the next
 * event tries again. */
int audit_open(struct audit *a, const char *path);
/* Reopens the same path (log rotation). Returns as audit_open(). */
int audit_reopen(struct audit *a);
/* Reopens the log when its file was removed or replaced under it (events
 * written to an unlinked file would be lost unseen). Returns as audit_open(). */
int audit_check(struct audit *a);
void audit_close(struct audit *a);
/* Formats ev as one JSON line with its newline into buf. Returns the length,
 * or -1 when it does not fit. */
int audit_format(const struct audit_event *ev, char *buf, size_t cap);
/* Writes ev to the log, if any. Returns 0, or -1 after counting the failure
 * (the decision stands whatever this returns). */
int audit_write(struct audit *a, const struct audit_event *ev);
/* From audit_hold to audit_flush, events are gathered and written a batch
 * (AUDIT_BATCH bytes at most) at a time, as when a note ring's worth is
 * recorded at once: in the same order, each counted when it is written.
 * audit_write then fails only for a line that cannot be formatted. */
void audit_hold(struct audit *a);
void audit_flush(struct audit *a);
/* Symbolic name of a getaddrinfo error ("EAI_NONAME"), "EAI_?" if unknown. */
const char *audit_eai_name(int eai);

/* -------------------------------------------------------------- addrmap.c */

#define ADDRMAP_PER_PID_MAX 4096 /* addresses remembered per process */
#define ADDRMAP_IDLE_S 600       /* a process unused this long is forgotten */

/* Per-process memory of address -> name, fed by resolves and consulted by
 * connects; keyed by pid because a process's threads come and go. */
struct addrmap;

struct addrmap *addrmap_new(size_t per_pid_max);
void addrmap_free(struct addrmap *m);
/* A connection of pid opened; starttime (from /proc/<pid>/stat, 0 when
 * unknown) tells a reused pid, whose memory is then flushed. Returns 0/-1. */
int addrmap_attach(struct addrmap *m, pid_t pid, unsigned long long starttime, time_t now);
/* A connection of pid closed. */
void addrmap_detach(struct addrmap *m, pid_t pid, time_t now);
/* Remembers that pid resolved name to a (canonical); the most recent
 * resolution wins, and the least recently used address goes when full.
 * Returns 0, or -1 when out of memory. */
int addrmap_record(struct addrmap *m, pid_t pid, const struct proto_addr *a, const char *name,
		  bool from_hosts, time_t now);
/* Looks a up in pid's memory, then in ppid's (a forked child connecting to
 * what its parent resolved). Copies the name into name (cap bytes) and
 * returns true when found. */
bool addrmap_lookup(struct addrmap *m, pid_t pid, pid_t ppid, const struct proto_addr *a,
		   time_t now, char *name, size_t cap, bool *from_hosts);
/* Forgets processes with no connection whose pid is no longer alive, and
 * everything unused for ADDRMAP_IDLE_S. Returns the processes dropped. */
size_t addrmap_gc(struct addrmap *m, time_t now, bool (*alive)(pid_t));
size_t addrmap_pids(const struct addrmap *m);    /* processes known */
/* Moves whenever an address comes to stand for another name, or for none
 * (an entry added, renamed, dropped): a cached verdict may be stale then. */
uint64_t addrmap_changes(const struct addrmap *m);
size_t addrmap_entries(const struct addrmap *m); /* addresses known, all processes */

/* ------------------------------------------------------------- upstream.c */

#define UPSTREAM_HTTP_MAX 8192 /* longest proxy answer header we read */

/* True for a destination name that may go into a CONNECT line or a SOCKS5
 * request: one already in the form policy_name_normalise() gives (letters,
 * digits, '-', '_' and dots, 1..253 bytes, labels 1..63, lowercase, no
 * trailing dot). */
bool upstream_name_ok(const char *name);
/* Writes "CONNECT host:port HTTP/1.1" with Host and, with credentials,
 * Proxy-Authorization: Basic. host is a checked name or an address (IPv6
 * without brackets). Returns the length, or -1. */
int upstream_http_request(char *out, size_t cap, const char *host, uint16_t port,
			  const struct policy_transport *t);
/* Parses a proxy's answer header. Returns its length through the blank line
 * with *status and a printable reason set, 0 when more bytes are needed, or
 * -1 when it is not HTTP/1.x or longer than UPSTREAM_HTTP_MAX. */
int upstream_http_response(const char *buf, size_t len, int *status, char *reason, size_t cap);
/* The errno a program gets for an HTTP status (0 for 2xx); the table is at
 * the top of upstream.c. */
int upstream_http_errno(int status);
/* SOCKS5 messages: each builder returns the length written or -1; each
 * parser returns the bytes its message takes (all present), 0 when more are
 * needed, or -1 when malformed. */
int upstream_socks5_greeting(uint8_t *out, size_t cap, const struct policy_transport *t);
int upstream_socks5_method_reply(const uint8_t *in, size_t len, int *method);
int upstream_socks5_auth(uint8_t *out, size_t cap, const struct policy_transport *t);
int upstream_socks5_auth_reply(const uint8_t *in, size_t len, int *status);
/* CONNECT to name (address type domain: the proxy resolves it), or to addr
 * when name is NULL. */
int upstream_socks5_connect(uint8_t *out, size_t cap, const char *name,
			    const struct proto_addr *addr, uint16_t port);
/* *need: the bytes the whole reply takes, as far as len tells. The reply
 * to a UDP ASSOCIATE has the same shape. */
int upstream_socks5_connect_reply(const uint8_t *in, size_t len, int *rep, size_t *need);
/* UDP ASSOCIATE (RFC 1928 4), from an address not known yet (0.0.0.0:0). */
int upstream_socks5_udp_associate(uint8_t *out, size_t cap);
/* The relay address (BND.ADDR, BND.PORT) of a whole reply in (len bytes):
 * 0, or -1 when it names the relay by name or is short. */
int upstream_socks5_bound(const uint8_t *in, size_t len, struct proto_addr *a, uint16_t *port);
/* The header of a datagram to name (or addr) at port, through the relay. */
int upstream_socks5_udp_header(uint8_t *out, size_t cap, const char *name,
			       const struct proto_addr *addr, uint16_t port);
/* The length of the header of a datagram from the relay (len bytes), where
 * its data starts; -1 for a fragment or anything malformed. */
int upstream_socks5_udp_data(const uint8_t *in, size_t len);
int upstream_socks5_errno(int rep);
const char *upstream_socks5_reply_text(int rep);

/* ----------------------------------------------------------------- loop.c */

/* What a descriptor in the loop is served by: fn(ctx, events) runs when it
 * is ready. The owner embeds the watch in its own state. */
typedef void (*watch_fn)(void *ctx, uint32_t events);

struct watch {
	int fd;
	watch_fn fn;
	void *ctx;
	bool added;  /* in the epoll set now */
};

struct loop;

/* An empty loop. Returns NULL when epoll cannot be had. */
struct loop *loop_new(void);
void loop_free(struct loop *l);
/* Sets w up for fd, served by fn(ctx, events); not watched yet. */
void watch_init(struct watch *w, int fd, watch_fn fn, void *ctx);
/* Watches w for events (adding it, or changing what it waits for; hang-ups
 * and errors are always reported). Returns 0 or -1 with errno set. */
int loop_watch(struct loop *l, struct watch *w, uint32_t events);
/* Stops watching w (call before closing its fd); an event of w still in
 * the batch at hand is dropped. */
void loop_unwatch(struct loop *l, struct watch *w);
/* A nonblocking, close-on-exec socket of type bound to 127.0.0.1 or ::1
 * (IPv6 only) at *port (0: any; the port it got is written back), a
 * stream one listening. Returns it, or -1. */
int loop_socket(int family, int type, uint16_t *port);
/* Waits up to timeout_ms and runs the handlers of what is ready. Returns 0,
 * or -1 when epoll fails (not on EINTR). */
int loop_run_once(struct loop *l, int timeout_ms);

/* ---------------------------------------------------------- transport.c */

/* One rewritten connect to carry out. */
struct transport_request {
	uint64_t client;   /* serial of the client waiting for the verdict */
	uint32_t msgid;    /* its request id */
	bool nonblock;     /* answer at once, relay behind */
	bool inet6;        /* the program's socket is AF_INET6: so is the one it gets */
	pid_t pid;
	uid_t uid;
	const char *exe;
	const char *name;  /* destination name, NULL when only the address is known */
	struct proto_addr addr; /* the address asked for */
	uint16_t port;
	const char *rule;
	const struct policy_transport *transport;
	uint64_t limit;    /* relay byte limit, 0 none */
	uint32_t timeout_ms;
	int action;        /* as recorded: REWRITE, or ALLOW for a connect the broker makes
			    * for an isolated program; 0 means REWRITE */
	bool captured;     /* a captured connection to relay: no client to answer */
	int captured_fd;   /* its socket, which the transport then owns */
};

struct transport_stats {
	unsigned long active, total;   /* relayed connections */
	uint64_t sent, received;       /* relayed bytes, program -> destination and back */
};

/* A verdict for a client: the one shape in which the decisions and the
 * transport answer. */
struct reply {
	uint64_t client;               /* serial of the client */
	uint32_t msgid;                /* its request id */
	int action;                    /* enum proto_action */
	int err;                       /* errno, or an EAI_* code for a resolve */
	uint32_t ttl_ms;               /* SEND: cache time; PENDING: how long to wait */
	const char *rule;
	const char *name;              /* attributed name, NULL or "" none */
	const struct proto_addr *addrs; /* RESOLVE answer; SEND: where to instead */
	int naddr;
	uint16_t port;                 /* SEND: the port of those addresses, 0 none */
	int fd;                        /* a socket to pass (SCM_RIGHTS), -1 none */
};

/* Where the transport's answers and records go: the server's one verdict
 * path and one record path. Neither calls back into the transport. */
struct transport_sink {
	void *ctx;
	/* Sends rp to its client if it is still there. Returns 0 when sent. */
	int (*answer)(void *ctx, const struct reply *rp);
	/* Counts and audits one event. */
	void (*record)(void *ctx, const struct audit_event *ev);
};

struct transport;
struct resolver;

/* A transport running in loop l, resolving through res, judging the
 * addresses a name resolves to against *policy (read at each use, so that
 * a reload takes effect), answering and recording through sink. */
struct transport *transport_new(struct loop *l, struct resolver *res, struct policy *const *policy,
				const struct transport_sink *sink);
/* Closes every conduit (relayed connections are reset). */
void transport_free(struct transport *t);
/* Starts r: answers the client at once (REWRITE with a relay connection
 * for a nonblocking connect, else PENDING) and later with REWRITE or FAIL.
 * Returns 0, or -1 when out of memory. */
int transport_start(struct transport *t, const struct transport_request *r);
/* Fails the conduits past their deadline; call about once a second. */
void transport_tick(struct transport *t);
/* The client of that serial went away: drop what only it was waiting for. */
void transport_client_gone(struct transport *t, uint64_t client);
const struct transport_stats *transport_stats(const struct transport *t);

#define TRANSPORT_LIST_MAX 20 /* relayed connections that status lists */

/* One connection the relay is moving bytes for, as status shows it. */
struct transport_conn {
	char dest[PROTO_NAME_MAX + 8]; /* name:port, or address:port */
	char rule[PROTO_RULE_MAX + 1];
	pid_t pid;
	long age_s;                    /* since the relaying began */
	uint64_t sent, received;       /* program -> destination, and back */
};

/* Fills out with up to max of the connections being relayed now. Returns
 * how many it filled; transport_stats() says how many there are. */
size_t transport_connections(const struct transport *t, struct transport_conn *out, size_t max);

/* ---------------------------------------------------------------- synth.c */

#define SYNTH_PER_PID_MAX 4096 /* rewritten names one process may map */

/* Per-process map of synthetic addresses (198.18.0.0/15) to rewritten names. */
struct synth;

struct synth *synth_new(size_t per_pid_max);
void synth_free(struct synth *s);
/* True when a is in 198.18.0.0/15. */
bool synth_is(const struct proto_addr *a);
/* Gives name its synthetic address in pid's map (the same one again for a
 * name already mapped). Returns 0, or -1 when pid's map is full or memory
 * runs out: the caller fails closed. */
int synth_map(struct synth *s, pid_t pid, const char *name, struct proto_addr *out);
/* Finds the name a maps to for pid, else for ppid (a forked child). */
bool synth_lookup(const struct synth *s, pid_t pid, pid_t ppid, const struct proto_addr *a,
		  char *name, size_t cap);
/* Forgets the maps of processes no longer alive. Returns how many. */
size_t synth_gc(struct synth *s, bool (*alive)(pid_t));
/* Forgets pid's map now (an isolated namespace's, when its capture ends). */
void synth_forget(struct synth *s, pid_t pid);
size_t synth_entries(const struct synth *s); /* names mapped, all processes */

/* ---------------------------------------------------------------- nflog.c */

#define NFLOG_GROUP 7   /* the NFLOG group of the isolated namespace's drop rule */
#define NFLOG_COPY 128  /* bytes of each dropped packet the kernel copies: its headers */
#define NFLOG_KEYS 32   /* senders x destinations itemised in the audit log at once */
#define NFLOG_READS 32  /* netlink datagrams read per wake-up */

/* One packet the namespace's drop rule logged, as far as it could be read. */
struct nflog_packet {
	int family;             /* 4 or 6; 0 when the payload is no IP header it could read */
	int ipproto;            /* IPPROTO_* of the transport header */
	struct proto_addr src, dst;
	uint16_t sport, dport;  /* host order; 0 when the protocol has none or they were cut off */
	bool has_uid;           /* it came from a socket: uid is its owner's, as the namespace's
				 * user namespace numbers it */
	uint32_t uid;
	bool has_seq;
	uint32_t seq;           /* the group's sequence number: a gap is packets lost */
};

/* What the kernel sends for one packet: a function of the parser. */
typedef void (*nflog_packet_fn)(void *ctx, const struct nflog_packet *p);

/* Counts of dropped packets, added up in the broker's stats. */
struct nflog_counts {
	unsigned long dropped;    /* packets the namespace dropped, lost ones included */
	unsigned long lost;       /* of them, logged but lost before the broker read them
				   * (counted by sequence gaps) */
	unsigned long unitemised; /* of them, read but in no audit event: more than NFLOG_KEYS
				   * senders x destinations at once, or no IP header */
	unsigned long malformed;  /* netlink messages skipped as malformed */
};

/* Opens, in the calling process's network namespace (it needs CAP_NET_ADMIN
 * there), a netlink socket bound to NFLOG group with packets copied up to
 * NFLOG_COPY bytes and numbered, that only the kernel can send to. Returns
 * it (close-on-exec), or -1 with the reason in err. */
int nflog_open(uint16_t group, char *err, size_t errlen);
/* Reads the netlink datagram buf (len bytes, every length in it checked):
 * calls fn(ctx, p) for each packet message whose attributes are well
 * formed, and counts every other message but NLMSG_DONE, NLMSG_NOOP and an ack
 * in *malformed. Returns the packets given to fn. */
int nflog_parse(const void *buf, size_t len, nflog_packet_fn fn, void *ctx, unsigned *malformed);

/* Where the reader of the NFLOG socket gets attribution and sends records. */
struct nflog_sink {
	void *ctx;
	/* The process that sent p: returns its pid (0 when not found) with its
	 * executable in exe ("" unknown); *uid, p->uid on entry, becomes the
	 * uid as the broker numbers it. */
	pid_t (*owner)(void *ctx, const struct nflog_packet *p, uid_t *uid, char *exe, size_t cap);
	/* One audit event standing for ev->count dropped packets. */
	void (*record)(void *ctx, struct audit_event *ev);
	/* Counts to add. */
	void (*count)(void *ctx, const struct nflog_counts *n);
};

struct nflog;

/* Reads the NFLOG socket fd (nflog_open's, which it then owns, closed on
 * failure too) in loop l: the first packet from a socket to a destination
 * is recorded at once, the repeats of the next second in one event with
 * their count. Returns NULL (logged) on failure. */
struct nflog *nflog_new(struct loop *l, int fd, const struct nflog_sink *sink);
/* Records the repeats still pending and closes the socket. */
void nflog_free(struct nflog *n);

/* ---------------------------------------------------------------- stats.c */

#define STATS_DENIED_MAX 1024 /* denied destinations tracked */

struct stats_denied; /* one denied destination (uthash) */

/* Counters of the broker, owned by the loop. */
struct stats {
	unsigned long allow, deny, rewrite;   /* decisions by action */
	unsigned long resolve, connect, send; /* decisions by operation */
	unsigned long cached;                 /* of the connects, applied from a shim's cache */
	unsigned long malformed;              /* connections closed for a bad message, note rings let go */
	unsigned long clients_now;            /* connected clients */
	unsigned long clients_total;          /* clients ever accepted */
	struct nflog_counts dropped;          /* packets isolated namespaces dropped */
	struct stats_denied *denied;          /* destination -> count */
	size_t ndenied;                       /* entries in denied */
};

struct stats_top {
	char dest[PROTO_DEST_MAX]; /* "name:port" or "addr:port" */
	int l4;                    /* enum proto_l4 */
	unsigned long count;
};

void stats_init(struct stats *s);
void stats_free(struct stats *s);
/* Counts one decision of op with action. */
void stats_decision(struct stats *s, int op, int action);
/* Counts a denied destination: the name when known, else the address. At
 * STATS_DENIED_MAX entries the least counted one makes room. */
void stats_denied(struct stats *s, const char *name, const struct proto_addr *addr, uint16_t port,
		  int l4);
/* Adds the counts of packets an isolated namespace dropped. */
void stats_dropped(struct stats *s, const struct nflog_counts *n);
/* Copies the max most denied destinations into out, most first. Returns
 * how many. */
size_t stats_top_denied(const struct stats *s, struct stats_top *out, size_t max);

/* ------------------------------------------------------------- resolver.c */

#define RESOLVER_THREADS 8
#define RESOLVER_PER_HOLDER 2 /* workers one process may occupy at once */
#define RESOLVER_QUEUE_MAX 1024
#define RESOLVER_RAW_MAX (2 * PROTO_ADDRS_MAX) /* addresses kept per lookup */

/* Resolves name for family (0, 4, 6) into out (at most max). Returns 0 with
 * *n set, or an EAI_* code. Replaceable so tests need no DNS. */
typedef int (*resolver_lookup_fn)(const char *name, int family, struct proto_addr *out, int max,
				  int *n);

struct resolver_job;

/* Called in the loop's thread with a finished job (freed after it returns). */
typedef void (*resolver_done_fn)(void *owner, struct resolver_job *job);

/* One getaddrinfo for the loop: filled in by its owner, answered by a
 * worker, handed back to done() through resolver_dispatch(). */
struct resolver_job {
	resolver_done_fn done;                 /* who gets the result */
	void *owner;                           /* done's first argument */
	uint64_t key;                          /* the owner's: client serial, conduit id */
	uint64_t holder;                       /* whom it is for (a pid): see the cap in resolver.c */
	uint32_t msgid;                        /* the owner's: request id to echo */
	char name[PROTO_NAME_MAX + 1];         /* normalised name to look up */
	int family;                            /* 0 any, 4, 6 */
	void *data;                            /* the owner's, freed with the job */
	int eai;                               /* result: 0 or EAI_* */
	int naddr;                             /* result: addresses in addrs */
	struct proto_addr addrs[RESOLVER_RAW_MAX];
	struct resolver_job *next;             /* queue link */
};

/* Starts nthreads workers using lookup (NULL: getaddrinfo). Returns NULL
 * (logged) on failure. */
struct resolver *resolver_new(int nthreads, resolver_lookup_fn lookup);
/* Stops and joins the workers, frees every job still queued. */
void resolver_free(struct resolver *r);
/* The descriptor that turns readable when results wait in resolver_take(). */
int resolver_fd(const struct resolver *r);
/* Queues job; the resolver owns it on success. Returns 0, or -1 when the
 * queue is full (the caller keeps the job). */
int resolver_submit(struct resolver *r, struct resolver_job *job);
/* Returns the finished jobs as a list (caller frees each), NULL if none. */
struct resolver_job *resolver_take(struct resolver *r);
/* Takes the finished jobs and hands each to its done(), then frees it. */
void resolver_dispatch(struct resolver *r);
/* Frees a job and its data. */
void resolver_job_free(struct resolver_job *job);
/* Lookups the workers have made so far (every DNS query the broker makes). */
unsigned long resolver_lookups(const struct resolver *r);
/* True when /etc/hosts names name and gives it loopback addresses only
 * (127.0.0.0/8, ::1): hostsfile_loopback_only. */
bool resolver_etc_hosts_loopback(const char *name);
/* The default lookup: getaddrinfo without AI_ADDRCONFIG. */
int resolver_getaddrinfo(const char *name, int family, struct proto_addr *out, int max, int *n);

/* -------------------------------------------------------------- capture.c */

#define SANDBOX_LISTEN_SOCKS 4  /* TCP v4 and v6 listeners, DNS v4 and v6 sockets */
#define SANDBOX_DIAG_FD 4       /* then a NETLINK_SOCK_DIAG socket: which socket connected */
#define SANDBOX_CAPTURE_SOCKS 5 /* what a sandbox always hands over */
#define SANDBOX_NFLOG_FD 5      /* then the NFLOG socket, when the sandbox could open one */
#define SANDBOX_CAPTURE_FDS 6   /* the most a sandbox hands over */

/* One connection the isolated namespace made, caught by a capture listener. */
struct capture_conn {
	int fd;                    /* the accepted socket: the sink owns it */
	struct proto_addr dst;     /* where it was going (canonical) */
	uint16_t port;
	pid_t pid;                 /* the process that made it, 0 when not found */
	char exe[PATH_MAX];        /* its executable, "" when unknown */
	pid_t ns_pid;              /* the sandbox: the namespace's own maps are kept under it */
};

/* One DNS query sent in the isolated namespace. */
struct capture_query {
	int fd;                        /* the socket to answer on */
	struct sockaddr_storage from;  /* and to whom */
	socklen_t fromlen;
	uint8_t buf[512];
	size_t len;
	pid_t pid;                     /* the asking process, 0 when not found */
	char exe[PATH_MAX];
	pid_t ns_pid;
};

/* What the capture gives what it catches to (the server). */
struct capture_sink {
	void *ctx;
	void (*connection)(void *ctx, struct capture_conn *k);
	void (*query)(void *ctx, const struct capture_query *q);
	/* An event of packets the namespace of the sandbox ns_pid dropped (ev->name unset). */
	void (*dropped)(void *ctx, pid_t ns_pid, struct audit_event *ev);
	void (*dropped_count)(void *ctx, const struct nflog_counts *n);
};

struct capture;

/* Takes the capture sockets fds of the sandbox pid (closing them on
 * failure too) into loop l; fds[SANDBOX_NFLOG_FD] is -1 when there is no
 * NFLOG socket (the packets are dropped all the same, unrecorded). Each
 * must live in pid's network namespace. Returns NULL (nothing left open)
 * on failure, with the reason in err. */
struct capture *capture_new(struct loop *l, const int fds[SANDBOX_CAPTURE_FDS], pid_t pid,
			    const struct capture_sink *sink, char *err, size_t errlen);
void capture_free(struct capture *cap);
/* Reads the identity of pid's network namespace. Returns 0 or -1. */
int capture_netns(pid_t pid, dev_t *dev, ino_t *ino);
/* The process of network namespace (ns_dev, ns_ino) that holds the TCP
 * (stream) or UDP socket bound to peer, found through proc_pid's
 * /proc/net and every process's descriptors: its pid as the broker sees
 * it, with its executable in exe; 0 (exe "") when not found. */
/* True when process pid (of network namespace ns_dev, ns_ino) holds the
 * UDP socket bound to local (or to its wildcard address and port). */
bool capture_holds(pid_t pid, dev_t ns_dev, ino_t ns_ino, const struct sockaddr *local);
pid_t capture_owner(pid_t proc_pid, dev_t ns_dev, ino_t ns_ino, const struct sockaddr *peer,
		    bool stream, char *exe, size_t cap);
/* The peer of the datagram socket (UDP, or UDP-Lite when udplite) of
 * proc_pid's network namespace that is bound to a:port, when it is
 * connected: in *peer and *peer_port (an IPv4-mapped one as IPv4).
 * Returns 0, or -1 when there is no such socket or it is not connected. */
int capture_udp_peer(pid_t proc_pid, const struct proto_addr *a, uint16_t port, bool udplite,
		     struct proto_addr *peer, uint16_t *peer_port);
/* The inode of the TCP socket of diag's network namespace (diag: a
 * NETLINK_SOCK_DIAG socket) whose own address is local and whose peer is
 * remote, in *inode (0: it has no owner any more). Returns 1, 0 when there
 * is no such socket, -1 when the kernel could not be asked. */
int capture_diag_inode(int diag, const struct sockaddr *local, const struct sockaddr *remote,
		       unsigned long *inode);
/* The process of network namespace (ns_dev, ns_ino) with a descriptor on
 * socket inode, the lowest pid first: among root and its descendants (an
 * isolated namespace's sandbox and its tree) when root is not 0, then,
 * when everywhere, among every process. Its pid, with its executable in
 * exe, both read from the same process; 0 (exe "") when none. */
pid_t capture_inode_owner(pid_t root, bool everywhere, dev_t ns_dev, ino_t ns_ino,
			  unsigned long inode, char *exe, size_t len);
/* Called, when set, between finding a process that holds the socket and
 * reading its executable (the unit tests' way into that window). */
extern void (*capture_window)(pid_t pid);
/* True when the network namespace dev/ino is the captured one. */
bool capture_owns_netns(const struct capture *cap, dev_t dev, ino_t ino);
/* The sandbox whose sockets these are (as the broker sees its pid). */
pid_t capture_pid(const struct capture *cap);
/* Connections caught and queries read so far (0 without a capture). */
void capture_counts(const struct capture *cap, unsigned long *connections, unsigned long *queries);

/* ---------------------------------------------------------------- dgram.c */

/* A datagram association to make: for pid's datagrams to addr:port under
 * rule, through transport (relay or SOCKS5), held to limit bytes (0 none). */
struct dgram_request {
	pid_t pid;
	uid_t uid;
	const char *exe;
	const char *name;   /* attributed name, NULL none */
	struct proto_addr addr;
	uint16_t port;
	uint16_t src_port;  /* the sending socket's own port, as the shim named it; 0 unknown */
	const char *rule;
	const struct policy_transport *transport;
	uint64_t limit;
	uint32_t ttl_ms;    /* how long the shim may keep the verdict that sends there */
	uint32_t timeout_ms; /* SOCKS5: for the proxy to set the association up */
};

/* Where an association's close is recorded (the server). */
struct dgram_sink {
	void *ctx;
	void (*record)(void *ctx, const struct audit_event *ev);
};

struct dgrams;

struct dgrams *dgrams_new(struct loop *l, const struct dgram_sink *sink);
void dgrams_free(struct dgrams *m);
/* The loopback port of r's association, made now if there is none (on
 * 127.0.0.1, and on ::1 too when *v6 says so); 0 with errno when it cannot
 * be made. The socket of r's src_port is taken as the process's from now
 * on, once it is found to be. */
uint16_t dgrams_open(struct dgrams *m, const struct dgram_request *r, bool *v6);
/* True when r's datagram answers a socket connected to the one that sends
 * it: a loopback socket (an association's own, or a SOCKS5 proxy's
 * relay's) whose peer is r's src_port, a socket of r's process. Such a
 * socket takes datagrams from its peer alone, so only the program's own
 * socket can reach it; through an association the answer would be lost. */
bool dgrams_answer(const struct dgrams *m, const struct dgram_request *r);
/* Ends the associations idle too long; call about once a second. */
void dgrams_tick(struct dgrams *m);
/* Associations now and in all (0 without m). */
void dgrams_counts(const struct dgrams *m, unsigned long *active, unsigned long *total);

/* ----------------------------------------------------------------- stub.c */

/* Where the stub's queries go (the server), each with its asker found. */
struct stub_sink {
	void *ctx;
	void (*query)(void *ctx, const struct capture_query *q);
};

struct stub;

/* The lookup stub: UDP sockets on 127.0.0.1 and ::1 (one port, the IPv6
 * one where it can be had) in loop l. Returns NULL when it cannot bind. */
struct stub *stub_new(struct loop *l, const struct stub_sink *sink);
void stub_free(struct stub *st);
/* The stub's addresses (1 or 2: IPv4 first) and *port; 0 without a stub. */
int stub_addrs(const struct stub *st, struct proto_addr addrs[2], uint16_t *port);
/* Queries read so far. */
unsigned long stub_queries(const struct stub *st);

/* -------------------------------------------------------------- sandbox.c */

/* `egress-broker sandbox ...` (argv[0] is "sandbox"): see sandbox.c.
 * Returns the exit status. */
int sandbox_main(int argc, char **argv);

/* ------------------------------------------------------------------ ask.c */

/* Who asks: from the socket's peer credentials and /proc. */
struct ask_who {
	pid_t pid, ppid;
	const char *exe; /* NULL when unknown */
};

/* What a decision reads besides the request. The maps are the daemon's
 * per-process state; `check` has maps of its own, empty but for what its
 * one simulated lookup puts there. */
struct ask_state {
	const struct policy *policy;
	struct addrmap *addrmap; /* names processes resolved; NULL: none known */
	struct synth *synth;     /* synthetic addresses; NULL: a rewritten name gets none */
	time_t now;              /* monotonic seconds, for the addrmap */
	/* true for a name this machine's hosts file gives loopback addresses
	 * only; NULL: none is */
	bool (*loopback_name)(const char *name);
	const struct proto_addr *stub; /* the lookup stub's addresses (nstub), NULL none */
	int nstub;
	uint16_t stub_port;
};

enum ask_next {
	ASK_ANSWER = 1, /* answer and record the result as it is */
	ASK_LOOKUP,     /* a resolve: look name up, then ask_resolved() */
	ASK_TRANSPORT,  /* a rewritten connect: hand it to the transport */
	ASK_DGRAM,      /* a datagram through the relay: to its association (dgram.c) */
};

/* The outcome of one decision. */
struct ask_result {
	int next;                      /* enum ask_next */
	int op, l4;                    /* of the request */
	uint16_t port;
	int family;                    /* RESOLVE: 0, 4, 6 */
	int flags;                     /* CONNECT: PROTO_ASK_* */
	int action;                    /* as recorded: ALLOW, DENY, REWRITE */
	int answer;                    /* as answered: a rewritten name is ALLOW with its address */
	int err;                       /* errno, or an EAI_* code for a resolve; 0 none */
	const char *err_name;          /* err by name for the audit, NULL none */
	const char *rule;              /* owned by the policy, or a literal */
	const char *why;               /* a denial's reason beyond its rule, NULL none */
	char name[PROTO_NAME_MAX + 1]; /* normalised or attributed name, "" unknown */
	struct proto_addr addr;        /* CONNECT/SEND: the canonical address */
	bool has_addr;                 /* addr is set (a rewritten name: its synthetic one) */
	bool from_hosts;               /* the name came from [hosts] */
	int naddr;                     /* RESOLVE: addresses in the answer */
	struct proto_addr addrs[PROTO_ADDRS_MAX];
	uint32_t ttl_ms;               /* SEND: how long the shim may cache it */
	uint16_t to_port;              /* SEND: go to addrs (naddr of them) at this port
					* instead: a DNS query, to the lookup stub */
	uint16_t src_port;             /* SEND: the asking socket's own port (0 unknown) */
	const char *upstream;          /* REWRITE answered ALLOW: what is recorded as its
					* upstream, NULL for what to_port says (static) */
	const struct policy_transport *transport; /* REWRITE: owned by the policy */
	uint64_t limit;                /* REWRITE: relay byte limit */
	uint32_t timeout_ms;           /* REWRITE: upstream timeout */
};

/* RESOLVE of q->name: judged by name; a denied or invalid name is DENY
 * with EAI_NONAME; a rewritten one gets its synthetic address (none for an
 * IPv6-only lookup: EAI_NODATA); a [hosts] name is finished at once; any
 * other allowed name comes back as ASK_LOOKUP of r->name. */
void ask_resolve(const struct ask_state *st, const struct ask_who *w, const struct proto_ask *q,
		 struct ask_result *r);
/* Finishes r (from ask_resolve, ASK_LOOKUP) with what the lookup found:
 * each address is judged with the name, the allowed ones are remembered
 * in st->addrmap and answered; none allowed is DENY with the first rule
 * that dropped one. eai: the lookup's failure, 0 none. */
void ask_resolved(const struct ask_state *st, const struct ask_who *w, struct ask_result *r,
		  const struct proto_addr *raw, int nraw, bool from_hosts, int eai);
/* CONNECT or SEND to q->addr, attributed to the name the process (or its
 * parent) resolved to it. A synthetic address the process was never given
 * is DENY ENETUNREACH (rule "synthetic"); a rewritten TCP connect is
 * ASK_TRANSPORT; a rewritten datagram is DENY EPERM. */
void ask_addr(const struct ask_state *st, const struct ask_who *w, const struct proto_ask *q,
	      struct ask_result *r);
/* CONNECT or SEND to a name whose addresses are not known here (`check`
 * without DNS): judged by the name alone, as ask_addr judges. */
void ask_name(const struct ask_state *st, const struct ask_who *w, int op, int l4,
	      const char *name, uint16_t port, struct ask_result *r);
/* Adjusts r, decided for a program in an isolated namespace (egress-run
 * --isolate), to what the namespace allows: its own loopback is its own
 * (refusals there become ALLOW, rule "namespace": nothing of the host is
 * there); an allowed TCP connect is made by the broker (ASK_TRANSPORT,
 * direct, recorded as ALLOW); an allowed datagram is denied with
 * ENETUNREACH, but a DNS query, which the namespace's stub judges. */
void ask_isolated(const struct ask_state *st, struct ask_result *r);

/* True for 127.0.0.0/8 and ::1 (inside an isolated namespace, its own). */
bool ask_addr_loopback(const struct proto_addr *a);
/* True when p lets a rewritten connect to name go to a, an address the
 * transport resolved name to (private-range protection, address rules). */
bool ask_upstream_ok(const struct policy *p, const char *name, const struct proto_addr *a,
		     uint16_t port, const char *exe, bool from_hosts);

/* -------------------------------------------------------------- control.c */

struct server;

#define CONTROL_SANDBOX_LIST_MAX 20 /* sandboxes that status lists */

/* One sandbox whose capture the broker holds, as status shows it. */
struct control_sandbox {
	pid_t pid;                 /* the sandbox, PID 1 of its namespaces, as the broker sees it */
	unsigned long connections; /* captured connections so far */
	unsigned long queries;     /* DNS queries to its stub so far */
};

/* What STATUS reports; filled in by the server. */
struct control_info {
	pid_t pid;
	long uptime_s;
	const char *socket;           /* listening path */
	const char *policy_path;
	const char *sha256;           /* hex of the policy file in force */
	unsigned rules;
	struct timespec loaded_at;    /* when the policy in force was loaded */
	const char *last_error;       /* last failed reload, NULL when none */
	struct timespec last_error_at;
	const char *audit_path;       /* NULL when no audit log */
	const char *audit_error;      /* NULL when fine */
	unsigned long audit_failures;
	unsigned long audit_reopened;
	const struct stats *stats;
	const char *transport;        /* [egress] transport, without credentials */
	const struct transport_stats *relay;
	const struct transport_conn *conns; /* relayed now: the first nconns of them */
	size_t nconns;
	unsigned long lookups;        /* resolver lookups */
	size_t synthetic;             /* rewritten names mapped to synthetic addresses */
	uint16_t stub_port;           /* the lookup stub's, 0 none */
	unsigned long stub_queries;   /* queries it took */
	unsigned long dgram_active;   /* datagram associations (dgram.c) now */
	unsigned long dgram_total;    /* and in all */
	bool isolate;                 /* --isolate: sandboxes may hand over their capture */
	size_t sandboxes_active;      /* captures held now */
	unsigned long sandboxes_total; /* captures taken since start */
	const struct control_sandbox *sandboxes; /* the first nsandboxes of those held now */
	size_t nsandboxes;
};

/* The listening socket, and what tells it is still ours at exit. */
struct listener {
	int fd;                 /* -1 none */
	char path[108];         /* sizeof sun_path */
	dev_t dev;              /* the socket file we created */
	ino_t ino;
};

/* Resolves the socket path: opt, else $EGRESS_SOCKET, else the default.
 * Returns 0, or -1 (logged) when it does not fit a sockaddr_un. */
int control_socket_path(const char *opt, char *out, size_t cap);
/* Sets the mode control_listen gives the socket (default 0660) from an octal
 * string (0600..0777). Returns 0, or -1 with the reason in err. */
int control_socket_mode(const char *arg, char *err, size_t errlen);
/* Creates the listening socket at path (see the contract in control.c)
 * into ln. Returns 0, or -1 with the reason in err. */
int control_listen(const char *path, struct listener *ln, char *err, size_t errlen);
/* Closes ln and removes its socket file if it is still the one we made. */
void control_unlisten(struct listener *ln);
/* Answers a CONTROL request what from a peer of uid into ans (TEXT, or
 * ERROR when the peer may not ask): status from server_info(), reload by
 * server_reload(). Only root and the broker's own uid may ask. */
void control_handle(struct server *s, uid_t uid, int what, struct proto_msg *ans);
/* Formats the human status into out. Returns the length (truncated to fit). */
size_t control_status_text(const struct control_info *ci, char *out, size_t cap);
/* Formats the status as one JSON object into out. Returns the length. */
size_t control_status_json(const struct control_info *ci, char *out, size_t cap);

/* ------------------------------------------------------------------ ctl.c */

/* Sends CONTROL what to the broker at path and waits for the answer.
 * Returns 0 with *status and text filled, or -1 with errno set (no broker)
 * or with a message in err. */
int ctl_request(const char *path, int what, int *status, char *text, size_t cap, char *err,
		size_t errlen);
/* `egress-broker status|reload [--json] [--socket PATH]`: argv[0] is the
 * subcommand. Returns the exit code: 0, 1 failure, 2 usage. */
int ctl_main(int argc, char **argv);

/* ------------------------------------------------------------------ cli.c */

/* Splits HOST, HOST:PORT, [v6]:PORT or a URL (scheme://[user@]host[:port]
 * [/path]; the scheme gives the port when none is written) into an address
 * or a normalised name and a port (0 when absent). Returns 0, or -1 with a
 * message in err. */
int cli_parse_target(const char *s, char *name, size_t namecap, struct proto_addr *addr,
		     bool *is_addr, uint16_t *port, char *err, size_t errlen);
/* Judges target offline against p through the decision procedure (ask.c),
 * as the daemon would for a lookup and then a connect (or send, udp) from a
 * program exe; writes one line (without newline) into out. *by_name says
 * that a name was judged alone (not in [hosts], so its addresses are
 * unknown here). Returns 0 allow or rewrite, 1 deny, 2 on error (message
 * in out). */
int cli_check(const struct policy *p, const char *target, bool udp, const char *exe, char *out,
	      size_t cap, bool *by_name);

/* --------------------------------------------------------------- server.c */

#define SERVER_LOOKUPS_MAX 8 /* lookups in flight per client before reading pauses */

struct server_config {
	const char *policy_path;   /* required */
	const char *socket_path;   /* shown in status; server_listen() binds it */
	const char *audit_path;    /* --audit; NULL: the policy's audit key */
	resolver_lookup_fn lookup; /* NULL: getaddrinfo */
	bool isolate;              /* --isolate: take the capture sockets of sandboxes */
};

/* Loads the policy and sets up the loop (epoll, resolver, GC timer, audit),
 * without any socket or signal. Returns NULL with the reason in err. */
struct server *server_new(const struct server_config *cfg, char *err, size_t errlen);
/* Removes the socket if it is still ours, closes every client, frees all. */
void server_free(struct server *s);
/* Listens at the configured path (control_listen) and accepts clients
 * there. Returns 0, or -1 with the reason in err. */
int server_listen(struct server *s, char *err, size_t errlen);
/* Blocks SIGTERM, SIGINT, SIGHUP and takes them through a signalfd; call
 * before any thread starts. Returns 0 or -1 (logged). */
int server_signals_block(void);
int server_signals(struct server *s);
/* Adopts a connected SEQPACKET socket as a client (accept does this).
 * Returns 0, or -1 (fd closed). */
int server_add_client(struct server *s, int fd);
/* Waits up to timeout_ms and handles what is ready. Returns 1 once asked
 * to stop, 0 otherwise, -1 on a loop failure. */
int server_run_once(struct server *s, int timeout_ms);
/* Runs until SIGTERM or SIGINT. Returns 0, or -1 on a loop failure. */
int server_run(struct server *s);
/* Reloads the policy file (swapped in on success, the old one kept on
 * failure) and reopens the audit log; msg gets the answer line, "reloaded
 * PATH (N rules, sha256 HEX)" or the parse error. Returns 0 or -1. */
int server_reload(struct server *s, char *msg, size_t cap);
/* Fills ci from the server's state (pointers into s, valid until the next
 * turn of the loop). */
void server_info(struct server *s, struct control_info *ci);
/* Runs the garbage collection of the address maps now. */
void server_gc(struct server *s);
const struct stats *server_stats(const struct server *s);
const struct addrmap *server_addrmap(const struct server *s);
const struct transport_stats *server_relay_stats(const struct server *s);
unsigned long server_lookups(const struct server *s); /* DNS lookups made */

#endif
