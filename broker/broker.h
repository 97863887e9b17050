/* broker.h: the modules of egress-broker, one section and one prefix per
 * file (buf_, sha256_, audit_, addrmap_, stats_, resolver_, control_, cli_,
 * server_, log_); used by main.c and tests/check_broker.c. */
#ifndef EGRESS_BROKER_H
#define EGRESS_BROKER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "policy.h"
#include "proto.h"

#define BROKER_VERSION "0.1"
#define BROKER_DEFAULT_SOCKET "/run/egress/broker.sock"

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
	bool limit_hit;                /* it was cut at the rule's limit */
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
};

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
/* Symbolic name of a getaddrinfo error ("EAI_NONAME"), "EAI_?" if unknown. */
const char *audit_eai_name(int eai);
const char *audit_op_name(int op);     /* "resolve", "connect", "send", "close" */
const char *audit_l4_name(int l4);     /* "tcp", "udp", "any" */
const char *audit_action_name(int a);  /* "allow", "deny", "rewrite" */

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
size_t addrmap_entries(const struct addrmap *m); /* addresses known, all processes */

/* ------------------------------------------------------------- upstream.c */

#define UPSTREAM_HTTP_MAX 8192 /* longest proxy answer header we read */

/* True for a destination name that may go into a CONNECT line or a SOCKS5
 * request: letters, digits, '-', '_' and dots, 1..253 bytes, labels 1..63. */
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
/* *need: the bytes the whole reply takes, as far as len tells. */
int upstream_socks5_connect_reply(const uint8_t *in, size_t len, int *rep, size_t *need);
int upstream_socks5_errno(int rep);
const char *upstream_socks5_reply_text(int rep);

/* ---------------------------------------------------------- transport.c */

#define TRANSPORT_TAG 0x4000000000000000ULL /* epoll tags of the conduits */

/* One rewritten connect to carry out. */
struct transport_request {
	uint64_t client;   /* serial of the client waiting for the verdict */
	uint32_t msgid;    /* its request id */
	bool nonblock;     /* answer at once, relay behind */
	bool inet6;        /* the program's socket is AF_INET6: so is the one it gets */
	pid_t pid, ppid;
	uid_t uid;
	const char *exe;
	const char *name;  /* destination name, NULL when only the address is known */
	struct proto_addr addr; /* the address asked for */
	uint16_t port;
	const char *rule;
	const struct policy_transport *transport;
	uint64_t limit;    /* relay byte limit, 0 none */
	uint32_t timeout_ms;
};

struct transport_stats {
	unsigned long active, total;   /* relayed connections */
	uint64_t sent, received;       /* relayed bytes, program -> destination and back */
};

/* What the transport needs from the server that runs it. */
struct transport_ops {
	void *ctx;
	/* Sends a VERDICT (with fd as SCM_RIGHTS when >= 0) to the client of
	 * that serial if it is still there. Returns 0 when sent. */
	int (*answer)(void *ctx, uint64_t client, uint32_t msgid, int action, int err, int fd,
		      const char *rule, const char *name);
	void (*audit)(void *ctx, const struct audit_event *ev);
	/* True when the policy lets r's connection go to a, an address its
	 * name resolved to (private-range protection). */
	bool (*addr_ok)(void *ctx, const struct transport_request *r, const struct proto_addr *a,
			bool from_hosts);
	/* Resolves name: returns the addresses at once (from [hosts] when
	 * hosts is true), 0 when a lookup was queued (transport_resolved comes
	 * later), -1 on failure. */
	int (*resolve)(void *ctx, uint64_t conduit, const char *name, bool hosts,
		       struct proto_addr *out, int max, bool *from_hosts);
};

struct transport;

struct transport *transport_new(int epfd, const struct transport_ops *ops);
/* Closes every conduit (relayed connections are reset). */
void transport_free(struct transport *t);
/* Starts r: answers the client at once (REWRITE with a relay connection
 * for a nonblocking connect, else PENDING) and later with REWRITE or FAIL.
 * Returns 0, or -1 when out of memory. */
int transport_start(struct transport *t, const struct transport_request *r);
/* An epoll event with a TRANSPORT_TAG tag. */
void transport_event(struct transport *t, uint64_t tag, uint32_t events);
/* A queued lookup finished. */
void transport_resolved(struct transport *t, uint64_t conduit, int eai,
			const struct proto_addr *addrs, int n);
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
size_t synth_entries(const struct synth *s); /* names mapped, all processes */

/* ---------------------------------------------------------------- stats.c */

#define STATS_DENIED_MAX 1024 /* denied destinations tracked */
#define STATS_DEST_MAX (PROTO_NAME_MAX + 48) /* "name:port" or "[v6]:port" */

struct stats_denied; /* one denied destination (uthash) */

/* Counters of the broker, owned by the loop. */
struct stats {
	unsigned long allow, deny, rewrite;   /* decisions by action */
	unsigned long resolve, connect, send; /* decisions by operation */
	unsigned long malformed;              /* connections closed for a bad message */
	unsigned long clients_now;            /* connected clients */
	unsigned long clients_total;          /* clients ever accepted */
	struct stats_denied *denied;          /* destination -> count */
	size_t ndenied;                       /* entries in denied */
};

struct stats_top {
	char dest[STATS_DEST_MAX]; /* "name:port" or "addr:port" */
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
/* Copies the max most denied destinations into out, most first. Returns
 * how many. */
size_t stats_top_denied(const struct stats *s, struct stats_top *out, size_t max);
/* Formats "name:port", "1.2.3.4:port" or "[v6]:port" into out. */
void stats_dest(const char *name, const struct proto_addr *addr, uint16_t port, char *out,
		size_t cap);

/* ------------------------------------------------------------- resolver.c */

#define RESOLVER_THREADS 4
#define RESOLVER_QUEUE_MAX 1024
#define RESOLVER_RAW_MAX (2 * PROTO_ADDRS_MAX) /* addresses kept per lookup */

/* Resolves name for family (0, 4, 6) into out (at most max). Returns 0 with
 * *n set, or an EAI_* code. Replaceable so tests need no DNS. */
typedef int (*resolver_lookup_fn)(const char *name, int family, struct proto_addr *out, int max,
				  int *n);

/* One getaddrinfo for the loop: filled in by the loop, answered by a
 * worker, handed back through resolver_take(). */
struct resolver_job {
	uint64_t client;                       /* client serial (id and generation) */
	uint64_t conduit;                      /* nonzero: a transport's lookup */
	uint32_t msgid;                        /* request id to echo */
	struct proto_ask ask;                  /* the request, name normalised */
	char rule[PROTO_RULE_MAX + 1];         /* rule that allowed the name */
	int eai;                               /* result: 0 or EAI_* */
	int naddr;                             /* result: addresses in addrs */
	struct proto_addr addrs[RESOLVER_RAW_MAX];
	struct resolver_job *next;             /* queue link */
};

struct resolver;

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
/* Lookups the workers have made so far (every DNS query the broker makes). */
unsigned long resolver_lookups(const struct resolver *r);
/* The default lookup: getaddrinfo without AI_ADDRCONFIG. */
int resolver_getaddrinfo(const char *name, int family, struct proto_addr *out, int max, int *n);

/* -------------------------------------------------------------- control.c */

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
};

/* Resolves the socket path: opt, else $EGRESS_SOCKET, else the default.
 * Returns 0, or -1 (logged) when it does not fit a sockaddr_un. */
int control_socket_path(const char *opt, char *out, size_t cap);
/* Formats the human status into out. Returns the length (truncated to fit). */
size_t control_status_text(const struct control_info *ci, char *out, size_t cap);
/* Formats the status as one JSON object into out. Returns the length. */
size_t control_status_json(const struct control_info *ci, char *out, size_t cap);
/* Sends CONTROL what to the broker at path and waits for the answer.
 * Returns 0 with *status and text filled, or -1 with errno set (no broker)
 * or with a message in err. */
int control_request(const char *path, int what, int *status, char *text, size_t cap, char *err,
		    size_t errlen);

/* ------------------------------------------------------------------ cli.c */

/* Splits HOST[:PORT] (or [v6]:PORT) into an address or a normalised name
 * and a port (0 when absent). Returns 0, or -1 with a message in err. */
int cli_parse_target(const char *s, char *name, size_t namecap, struct proto_addr *addr,
		     bool *is_addr, uint16_t *port, char *err, size_t errlen);
/* Judges target offline against p, writes one line (without newline) into
 * out; *by_name says that a name was judged alone (not in [hosts], so its
 * addresses are unknown here). Returns 0 allow or rewrite, 1 deny, 2 on
 * error (message in out). */
int cli_check(const struct policy *p, const char *target, bool udp, const char *exe, char *out,
	      size_t cap, bool *by_name);

/* --------------------------------------------------------------- server.c */

#define SERVER_PENDING_MAX 8 /* resolves in flight per client before reading pauses */

struct server_config {
	const char *policy_path;   /* required */
	const char *socket_path;   /* shown in status; server_listen() binds it */
	const char *audit_path;    /* --audit; NULL: the policy's audit key */
	resolver_lookup_fn lookup; /* NULL: getaddrinfo */
};

struct server;

/* Loads the policy and sets up the loop (epoll, resolver, GC timer, audit),
 * without any socket or signal. Returns NULL with the reason in err. */
struct server *server_new(const struct server_config *cfg, char *err, size_t errlen);
/* Removes the socket if it is still ours, closes every client, frees all. */
void server_free(struct server *s);
/* Creates the listening socket at the configured path (see the contract in
 * server.c). Returns 0, or -1 with the reason in err. */
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
/* Runs the garbage collection of the name memory now. */
void server_gc(struct server *s);
const struct stats *server_stats(const struct server *s);
const struct addrmap *server_addrmap(const struct server *s);
const struct transport_stats *server_relay_stats(const struct server *s);
unsigned long server_lookups(const struct server *s); /* DNS lookups made */

#endif
