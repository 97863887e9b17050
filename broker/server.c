/* server.c: the daemon's loop and everything it owns (policy, address
 * maps, stats, audit): the clients and their requests, which ask.c decides
 * and this file answers and records (the one verdict path and the one
 * record path, which the transport uses too), the sandboxes' captures
 * (one per isolated network namespace), reload, signals and the timer.
 * The listening socket and CONTROL requests live in control.c. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <uthash.h>

#include "broker.h"
#include "dns.h"

#define SERVER_GC_S 10       /* address map garbage collection period */
#define SERVER_TICK_S 1      /* timer period: transport deadlines */
#define SERVER_ACCEPTS 64    /* accepts per wake-up, so clients are served too */
#define SERVER_FIRST_SERIAL 16 /* client serials start here; 0 means none */
#define SERVER_NOTES_PER_WAKE 32 /* NOTEs of one client read in a row */
#define SERVER_RING_DELAY_NS 2000000 /* a note ring is read this long after its bell */

/* A network namespace, as /proc/PID/ns/net names it: a hash key. */
struct netns {
	dev_t dev;
	ino_t ino;
};

struct client {
	struct server *s;
	uint64_t serial;          /* never reused: the client's id and generation in one */
	struct watch w;           /* its connected SEQPACKET socket */
	pid_t pid, ppid;          /* SO_PEERCRED, and the parent from /proc/<pid>/stat */
	uid_t uid;
	gid_t gid;
	char exe[PATH_MAX];       /* /proc/<pid>/exe, "" when unreadable */
	unsigned lookups;         /* resolves waiting for the resolver */
	struct netns ns;          /* its network namespace when it connected (zeroes: unknown) */
	bool ns_known;            /* ns could be read */
	bool foreign;             /* not known to be in the broker's own network namespace */
	bool isolated;            /* ns is a captured one: see client_isolated() */
	bool paused;              /* reading stopped while lookups is at its bound */
	bool page_sent;           /* the generation page went with a verdict */
	struct proto_ring *ring;  /* its note ring (proto.h), NULL none */
	uint32_t ring_tail;       /* slots of it read: ours, whatever the ring says */
	bool ring_due;            /* its bell rang: on s->due until read */
	struct client *due_next;
	struct capture *capture;  /* a sandbox's connection: the capture it handed over */
	UT_hash_handle hh;        /* serial -> client */
	UT_hash_handle nh;        /* ns -> the sandbox's connection, in s->sandboxes */
};

struct server {
	struct loop *loop;
	struct listener listener;          /* fd -1 until server_listen() */
	struct watch listen_w, signal_w, timer_w, resolver_w, ring_w;
	int reserve_fd;                    /* spare descriptor for EMFILE */
	char socket_path[108];             /* "" when not configured */
	char policy_path[PATH_MAX];        /* reloaded from here */
	char audit_opt[PATH_MAX];          /* --audit, "" when not given */
	struct policy *policy;             /* in force */
	char sha256[65];                   /* of the file in force */
	struct timespec loaded_at;         /* CLOCK_REALTIME */
	char last_error[POLICY_ERR_MAX];   /* last failed reload, "" none */
	struct timespec last_error_at;
	struct audit audit;
	struct addrmap *addrmap;           /* names processes resolved */
	uint64_t addrmap_seen;             /* its changes the generation has moved for */
	int page_fd;                       /* the generation page (proto.h), -1 none */
	struct proto_page *page;           /* mapped writable here only */
	struct synth *synth;               /* synthetic addresses of rewritten names */
	struct stats stats;
	struct resolver *resolver;
	struct transport *transport;       /* rewritten connections */
	bool isolate;                      /* --isolate: sandboxes may hand over their capture */
	struct client *sandboxes;          /* netns -> the connection of the sandbox capturing it */
	unsigned long sandboxes_total;     /* captures taken since start */
	struct control_sandbox sbinfo[CONTROL_SANDBOX_LIST_MAX]; /* for status */
	struct netns ns;                   /* our own network namespace */
	struct stub *stub;                 /* the lookup stub (not with --isolate), NULL none */
	struct dgrams *dgrams;             /* datagrams through the relay */
	struct proto_addr stub_addrs[2];
	int nstub;
	uint16_t stub_port;
	unsigned ticks;                    /* timer ticks, one a second */
	char transport_text[300];          /* for status */
	struct transport_conn conns[TRANSPORT_LIST_MAX]; /* for status */
	struct client *clients;            /* serial -> client */
	struct client *due;                /* clients whose note ring rang, until ring_w fires */
	bool ring_armed;                   /* ring_w is set to fire */
	uint64_t next_serial;
	time_t started;                    /* monotonic seconds */
	bool stop;                         /* SIGTERM or SIGINT seen */
	bool emfile_logged;                /* descriptor exhaustion reported */
	uint8_t in[PROTO_MSG_MAX];         /* one received message */
	uint8_t out[PROTO_MSG_MAX];        /* one encoded answer */
	struct proto_msg msg;              /* decoded request */
	struct proto_msg ans;              /* answer being built */
};

/* ------------------------------------------------------------------ time */

static time_t mono_now(void)
{
	return (time_t)(proto_now_ms() / 1000);
}

static void real_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

/* --------------------------------------------------------------- helpers */

static const char *client_exe(const struct client *c)
{
	return c->exe[0] ? c->exe : NULL;
}

/* True unless /proc/<pid> is known to be gone. */
static bool proc_alive(pid_t pid)
{
	char p[32];

	snprintf(p, sizeof p, "/proc/%ld", (long)pid);
	return access(p, F_OK) == 0 || errno != ENOENT;
}

/* Reads the parent pid and start time of pid from /proc/<pid>/stat; both
 * stay 0 when it cannot be read. */
static void proc_stat(pid_t pid, pid_t *ppid, unsigned long long *starttime)
{
	char path[32], buf[1024], *p, *save = NULL;
	ssize_t n;
	int fd, field;

	*ppid = 0;
	*starttime = 0;
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p)
		return;
	/* Fields after comm: 3 state, 4 ppid, ... 22 starttime. */
	field = 3;
	for (p = strtok_r(p + 1, " ", &save); p; p = strtok_r(NULL, " ", &save), field++) {
		if (field == 4)
			*ppid = (pid_t)strtol(p, NULL, 10);
		if (field == 22) {
			*starttime = strtoull(p, NULL, 10);
			break;
		}
	}
}

/* ------------------------------------------------------ generation page */

/* Puts the page's robust lock in place and takes it, for the life of this
 * thread (the loop's): its word then says whether the broker lives
 * (proto.h). Returns 0, or -1 with errno. */
static int page_lock(struct server *s)
{
	pthread_mutex_t *m = (pthread_mutex_t *)((char *)s->page + PROTO_PAGE_LOCK_OFFSET);
	pthread_mutexattr_t a;
	int rc;

	_Static_assert(PROTO_PAGE_LOCK_OFFSET + sizeof(pthread_mutex_t) <= PROTO_PAGE_SIZE,
		       "the lock fits the page");
	if ((rc = pthread_mutexattr_init(&a)) == 0 &&
	    (rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
	    (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
	    (rc = pthread_mutex_init(m, &a)) == 0)
		rc = pthread_mutex_lock(m);
	pthread_mutexattr_destroy(&a);
	errno = rc;
	return rc ? -1 : 0;
}

/* Makes the generation page: a memfd sealed so that no one but this
 * mapping can write it (F_SEAL_FUTURE_WRITE: no write(2), no new writable
 * mapping, no mprotect to writable of a read-only one), nor resize it.
 * Without it (an old kernel) verdicts are not cached: clients ask. */
static void page_open(struct server *s)
{
	int fd = memfd_create("egress-generation", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p = MAP_FAILED;

	s->page_fd = -1;
	if (fd >= 0 && ftruncate(fd, PROTO_PAGE_SIZE) == 0)
		p = mmap(NULL, PROTO_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	s->page = p == MAP_FAILED ? NULL : p;
	if (!s->page ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) <
		    0 ||
	    page_lock(s) < 0) {
		log_warn("no generation page (%s): verdicts are not cached, every attempt is asked",
			 strerror(errno));
		if (s->page)
			munmap(s->page, PROTO_PAGE_SIZE);
		if (fd >= 0)
			close(fd);
		s->page = NULL;
		return;
	}
	s->page->magic = PROTO_PAGE_MAGIC;
	s->page->version = PROTO_VERSION;
	/* A random first generation: verdicts a shim kept from a broker that
	 * ran before this one on the same socket never pass for this one's. */
	uint32_t first = 0;
	if (getrandom(&first, sizeof first, 0) != sizeof first || first == 0)
		first = (uint32_t)proto_now_ms() | 1;
	__atomic_store_n(&s->page->generation, first, __ATOMIC_RELEASE);
	s->page_fd = fd;
}

/* Moves the generation: every verdict cached before is stale from now on,
 * in every process. */
static void page_move(struct server *s)
{
	if (s->page && __atomic_add_fetch(&s->page->generation, 1, __ATOMIC_ACQ_REL) == 0)
		__atomic_store_n(&s->page->generation, 1, __ATOMIC_RELEASE); /* 0 means none */
}

/* Moves the generation when an address has come to stand for another name
 * since the last move (the address maps of the requests so far). */
static void page_sync(struct server *s)
{
	uint64_t changes = addrmap_changes(s->addrmap);

	if (changes != s->addrmap_seen) {
		s->addrmap_seen = changes;
		page_move(s);
	}
}

/* ------------------------------------------------------------ note rings */

static void server_note(struct server *s, struct client *c, const struct proto_note *n);

/* Takes fd, which came with a NOTE of c, as c's note ring: a memfd the
 * broker can map writable that is sealed against shrinking (whatever the
 * program does to it then, reading the mapping cannot fault). One that
 * is not is refused, and c's NOTEs keep coming as messages. Closes fd. */
static void ring_take(struct client *c, int fd)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	void *p = MAP_FAILED;

	if (!c->ring && seals >= 0 && (seals & F_SEAL_SHRINK) && fstat(fd, &st) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size >= PROTO_RING_SIZE)
		p = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return;
	c->ring = p;
	if (c->ring->magic != PROTO_RING_MAGIC || c->ring->version != PROTO_VERSION) {
		munmap(p, PROTO_RING_SIZE);
		c->ring = NULL;
		return;
	}
	c->ring_tail = __atomic_load_n(&c->ring->tail, __ATOMIC_ACQUIRE);
	__atomic_store_n(&c->ring->state, PROTO_RING_READ, __ATOMIC_SEQ_CST);
}

/* Lets c's ring go; the shim asks from now on. */
static void ring_drop(struct client *c)
{
	__atomic_store_n(&c->ring->state, PROTO_RING_SHUT, __ATOMIC_SEQ_CST);
	munmap(c->ring, PROTO_RING_SIZE);
	c->ring = NULL;
}

/* Records what waits in c's note ring, in order, if it has one. A ring
 * the program wrote over (head and tail too far apart, a slot that is not
 * a NOTE) is let go, and said to be: c's NOTEs come as messages again,
 * and what is left in it, which the program spoilt, is not read. */
static void ring_read(struct server *s, struct client *c)
{
	uint8_t slot[PROTO_RING_SLOT];
	size_t len;
	int rc;

	if (!c->ring)
		return;
	proto_ring_unbell(c->ring);
	audit_hold(&s->audit); /* a ring's worth of lines, one write */
	while ((rc = proto_ring_take(c->ring, &c->ring_tail, slot, &len)) == 1)
		if (proto_decode(slot, len, &s->msg) != 0 || s->msg.type != PROTO_NOTE) {
			rc = -1;
			break;
		} else {
			server_note(s, c, &s->msg.u.note);
		}
	audit_flush(&s->audit);
	if (rc == 0)
		return;
	log_warn("client pid %ld (%s): its note ring was written over; let go", (long)c->pid,
		 c->exe[0] ? c->exe : "?");
	s->stats.malformed++;
	ring_drop(c);
}

/* The bell of c's ring rang (a RING): it is read a moment from now, with
 * what else comes into it meanwhile, at the cost of one wake-up. */
static void ring_due(struct server *s, struct client *c)
{
	struct itimerspec its = { .it_value.tv_nsec = SERVER_RING_DELAY_NS };

	if (!c->ring_due) {
		c->ring_due = true;
		c->due_next = s->due;
		s->due = c;
	}
	if (!s->ring_armed && timerfd_settime(s->ring_w.fd, 0, &its, NULL) == 0)
		s->ring_armed = true;
	else if (!s->ring_armed)
		ring_read(s, c); /* no timer: at once */
}

/* Reads every ring whose bell rang. */
static void rings_read(struct server *s)
{
	struct client *c;

	while ((c = s->due)) {
		s->due = c->due_next;
		c->due_next = NULL;
		c->ring_due = false;
		ring_read(s, c);
	}
}

/* ring_w's handler. */
static void rings_tick(void *ctx, uint32_t events)
{
	struct server *s = ctx;
	uint64_t n;

	(void)events;
	if (read(s->ring_w.fd, &n, sizeof n) < 0 && errno == EAGAIN)
		return;
	s->ring_armed = false;
	rings_read(s);
}

/* c is going: what its ring holds is recorded, and the shim told that
 * nothing more will be (it asks instead). */
static void ring_close(struct server *s, struct client *c)
{
	struct client **p;

	for (p = &s->due; *p; p = &(*p)->due_next)
		if (*p == c) {
			*p = c->due_next;
			break;
		}
	if (!c->ring)
		return;
	__atomic_store_n(&c->ring->state, PROTO_RING_SHUT, __ATOMIC_SEQ_CST);
	ring_read(s, c);
	if (c->ring)
		ring_drop(c);
}

/* ---------------------------------------------------------------- clients */

static struct client *client_find(struct server *s, uint64_t serial)
{
	struct client *c;

	HASH_FIND(hh, s->clients, &serial, sizeof serial, c);
	return c;
}

/* The connection of the sandbox whose capture holds network namespace
 * ns, NULL when none does. */
static struct client *sandbox_of(struct server *s, const struct netns *ns)
{
	struct client *sb;

	HASH_FIND(nh, s->sandboxes, ns, sizeof *ns, sb);
	return sb;
}

/* True when c is a program in an isolated network namespace: one that a
 * sandbox's capture came from. Decided when c connects; a client of another
 * namespace that connected before that namespace's capture arrived is
 * looked up again whenever it asks, until it is found. Once isolated, c
 * stays so for as long as it is connected (fail closed: its namespace is
 * never taken for the broker's own again). */
static bool client_isolated(struct server *s, struct client *c)
{
	if (!c->isolated && c->ns_known && c->foreign && sandbox_of(s, &c->ns))
		c->isolated = true;
	return c->isolated;
}

static void client_close(struct server *s, struct client *c)
{
	ring_close(s, c);
	if (s->transport)
		transport_client_gone(s->transport, c->serial);
	if (c->capture) { /* the sandbox is gone, and its namespace with it */
		log_info("sandbox pid %ld gone: capture of its network namespace ended", (long)c->pid);
		pid_t pid = capture_pid(c->capture);

		HASH_DELETE(nh, s->sandboxes, c);
		capture_free(c->capture); /* its last dropped packets still read the names */
		c->capture = NULL;
		synth_forget(s->synth, pid);
	}
	loop_unwatch(s->loop, &c->w);
	close(c->w.fd);
	HASH_DEL(s->clients, c);
	addrmap_detach(s->addrmap, c->pid, mono_now());
	s->stats.clients_now--;
	free(c);
}

/* Closes c for a message that breaks the protocol, and counts it. */
static void client_malformed(struct server *s, struct client *c, const char *why)
{
	log_warn("client pid %ld (%s): %s; connection closed", (long)c->pid,
		 c->exe[0] ? c->exe : "?", why);
	s->stats.malformed++;
	client_close(s, c);
}

/* Stops or resumes reading from c. */
static void client_pause(struct server *s, struct client *c, bool pause)
{
	if (loop_watch(s->loop, &c->w, pause ? 0 : EPOLLIN) == 0)
		c->paused = pause;
}

/* Sends m to c without blocking, with fd as SCM_RIGHTS when fd >= 0.
 * Returns 0, or -1 after closing c (it would block or is gone): c must not
 * be used then. */
static int client_send(struct server *s, struct client *c, const struct proto_msg *m, int fd)
{
	ssize_t n = proto_encode(m, s->out, sizeof s->out);

	if (n < 0) {
		log_error("client pid %ld: cannot encode the answer", (long)c->pid);
		client_close(s, c);
		return -1;
	}
	if (proto_send_fd(c->w.fd, s->out, (size_t)n, fd, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		client_close(s, c);
		return -1;
	}
	return 0;
}

static int client_send_error(struct server *s, struct client *c, uint32_t id, int code)
{
	s->ans.type = PROTO_ERROR;
	s->ans.id = id;
	s->ans.u.error = code;
	return client_send(s, c, &s->ans, -1);
}

static bool client_readable(struct server *s, struct client *c);

/* The handler of a client's socket: one message, or a run of NOTEs (they
 * are answered with nothing, so a thread that connects again and again
 * from its cache leaves several at once) up to SERVER_NOTES_PER_WAKE. */
static void client_event(void *ctx, uint32_t events)
{
	struct client *c = ctx;

	if (events & EPOLLIN) {
		for (int i = 0; i < SERVER_NOTES_PER_WAKE && client_readable(c->s, c); i++)
			;
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		client_close(c->s, c);
	}
}

int server_add_client(struct server *s, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	unsigned long long starttime;
	struct client *c;
	char path[32];
	ssize_t n;
	int fl;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		log_error("SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ||
	    !(c = calloc(1, sizeof *c))) {
		log_error("client pid %ld: %s", (long)cr.pid, strerror(errno));
		close(fd);
		return -1;
	}
	c->s = s;
	watch_init(&c->w, fd, client_event, c);
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->serial = s->next_serial++;
	snprintf(path, sizeof path, "/proc/%ld/exe", (long)cr.pid);
	n = readlink(path, c->exe, sizeof c->exe - 1);
	c->exe[n > 0 ? n : 0] = 0;
	proc_stat(cr.pid, &c->ppid, &starttime);
	/* A namespace that cannot be read counts as foreign (control refused
	 * by an --isolate broker) and as not captured (it cannot hand one over). */
	c->ns_known = capture_netns(cr.pid, &c->ns.dev, &c->ns.ino) == 0;
	c->foreign = !c->ns_known || memcmp(&c->ns, &s->ns, sizeof c->ns) != 0;
	client_isolated(s, c);
	if (loop_watch(s->loop, &c->w, EPOLLIN) < 0) {
		log_error("epoll_ctl: %s", strerror(errno));
		close(fd);
		free(c);
		return -1;
	}
	HASH_ADD(hh, s->clients, serial, sizeof c->serial, c);
	addrmap_attach(s->addrmap, c->pid, starttime, mono_now());
	s->stats.clients_now++;
	s->stats.clients_total++;
	return 0;
}

/* The listening socket's handler: accepts what waits. When descriptors run
 * out, the reserve descriptor makes room to accept and close one, so a full
 * process table does not spin the loop. */
static void server_accept(void *ctx, uint32_t events)
{
	struct server *s = ctx;

	(void)events;
	for (int i = 0; i < SERVER_ACCEPTS; i++) {
		int fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			s->emfile_logged = false;
			server_add_client(s, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE) {
			if (!s->emfile_logged)
				log_error("accept: %s; refusing clients until descriptors free up",
					  strerror(errno));
			s->emfile_logged = true;
			if (s->reserve_fd < 0)
				return;
			close(s->reserve_fd);
			fd = accept4(s->listener.fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			log_error("accept: %s", strerror(errno));
		return;
	}
}

/* ------------------------------------------------ answering and recording */

/* The one record path: counts one event and writes it to the audit log
 * (which never changes the decision). A relayed connection's close is
 * audited, not counted again. */
static void server_record(void *ctx, const struct audit_event *ev)
{
	struct server *s = ctx;

	if (ev->op != AUDIT_OP_CLOSE) {
		stats_decision(&s->stats, ev->op, ev->action);
		if (ev->action == PROTO_DENY || ev->err)
			stats_denied(&s->stats, ev->name, ev->addr, ev->port, ev->l4);
	}
	audit_write(&s->audit, ev);
}

/* The one verdict path: sends rp as a VERDICT to its client, if it is still
 * there. Returns 0 when sent. */
static int server_answer(void *ctx, const struct reply *rp)
{
	struct server *s = ctx;
	struct proto_verdict *v = &s->ans.u.verdict;
	struct client *c = client_find(s, rp->client);

	int fd = rp->fd;

	if (!c)
		return -1;
	page_sync(s); /* before the answer that may rest on the change */
	if (fd < 0 && rp->ttl_ms && (rp->action == PROTO_ALLOW || rp->action == PROTO_DENY) &&
	    s->page_fd >= 0 && !c->page_sent) {
		fd = s->page_fd; /* the first verdict that may be kept brings the page */
		c->page_sent = true;
	}
	s->ans.type = PROTO_VERDICT;
	s->ans.id = rp->msgid;
	memset(v, 0, sizeof *v);
	v->action = (uint8_t)rp->action;
	v->err = rp->err;
	v->ttl_ms = rp->ttl_ms;
	v->gen = rp->ttl_ms && s->page ? s->page->generation : 0;
	v->port = rp->port;
	snprintf(v->rule, sizeof v->rule, "%s", rp->rule ? rp->rule : "");
	snprintf(v->name, sizeof v->name, "%s", rp->name ? rp->name : "");
	v->naddr = (uint8_t)rp->naddr;
	if (rp->naddr)
		memcpy(v->addrs, rp->addrs, (size_t)rp->naddr * sizeof *rp->addrs);
	return client_send(s, c, &s->ans, fd);
}

/* Records the decision r, made for pid (0: not found) of uid running exe;
 * captured: caught in an isolated namespace, not asked by a shim; cached:
 * applied by the shim from its cache (a NOTE). */
static void server_record_result(struct server *s, const struct ask_result *r, pid_t pid,
				 uid_t uid, const char *exe, bool captured, bool cached)
{
	struct audit_event ev = {
		.pid = pid, .uid = uid, .exe = exe, .op = r->op,
		.name = r->name[0] ? r->name : NULL, .addr = r->has_addr ? &r->addr : NULL,
		.port = r->port, .l4 = r->l4, .action = r->action, .rule = r->rule,
		.err = r->err_name, .captured = captured, .cached = cached,
	};
	char text[300];

	if (r->to_port && !r->transport) {
		ev.transport = "dns";
		ev.upstream = "the broker's lookup stub";
	} else if (r->action == PROTO_REWRITE && r->transport) { /* the transport did not take it */
		policy_transport_text(r->transport, text, sizeof text);
		ev.transport = text;
		if (r->op != PROTO_OP_RESOLVE)
			ev.upstream = r->upstream  ? r->upstream
				      : r->to_port ? "datagram relay"
						   : "the program's own socket";
	}
	real_now(&ev.time);
	server_record(s, &ev);
}

/* Records the decision r of c's request id and answers it. */
static void server_decided(struct server *s, struct client *c, uint32_t id,
			   const struct ask_result *r)
{
	struct reply rp = {
		.client = c->serial, .msgid = id, .action = r->answer, .err = r->err,
		.ttl_ms = r->ttl_ms, .rule = r->rule,
		.name = r->op == PROTO_OP_RESOLVE ? NULL : r->name, .addrs = r->addrs,
		.naddr = r->op == PROTO_OP_RESOLVE || r->to_port ? r->naddr : 0,
		.port = r->to_port, .fd = -1,
	};

	if (r->why && r->op == PROTO_OP_RESOLVE)
		log_warn("pid %ld: %s refused: %s", (long)c->pid, r->name, r->why);
	if (!(r->flags & PROTO_ASK_SOURCE)) /* that one was recorded when first asked */
		server_record_result(s, r, c->pid, c->uid, client_exe(c), false, false);
	server_answer(s, &rp);
}

/* ------------------------------------------------------------- decisions */


static struct ask_state server_ask_state(const struct server *s)
{
	struct ask_state st = { .policy = s->policy, .addrmap = s->addrmap, .synth = s->synth,
				.now = mono_now(), .loopback_name = resolver_etc_hosts_loopback,
				.stub = s->nstub ? s->stub_addrs : NULL,
				.nstub = s->nstub, .stub_port = s->stub_port };

	return st;
}

static struct ask_who client_who(const struct client *c)
{
	struct ask_who w = { .pid = c->pid, .ppid = c->ppid, .exe = client_exe(c) };

	return w;
}

/* The resolver's answer to a lookup of one of c's resolves; a client that
 * has gone (serial not found) is not answered. */
static void server_looked_up(void *owner, struct resolver_job *j)
{
	struct server *s = owner;
	struct client *c = client_find(s, j->key);
	struct ask_state st = server_ask_state(s);
	struct ask_result *r = j->data;
	struct ask_who w;

	if (!c)
		return;
	c->lookups--;
	if (c->paused && c->lookups < SERVER_LOOKUPS_MAX)
		client_pause(s, c, false);
	w = client_who(c);
	ask_resolved(&st, &w, r, j->addrs, j->naddr, false, j->eai);
	server_decided(s, c, j->msgid, r);
}

/* Hands the name of r to the resolver; reading from c pauses while it has
 * SERVER_LOOKUPS_MAX lookups waiting. A full queue answers EAI_AGAIN. */
static void server_lookup(struct server *s, struct client *c, uint32_t id,
			  struct ask_result *r)
{
	struct resolver_job *job = calloc(1, sizeof *job);
	struct ask_state st;
	struct ask_who w;

	if (job && (job->data = malloc(sizeof *r))) {
		memcpy(job->data, r, sizeof *r);
		job->done = server_looked_up;
		job->owner = s;
		job->key = c->serial;
		job->holder = (uint64_t)c->pid;
		job->msgid = id;
		job->family = r->family;
		snprintf(job->name, sizeof job->name, "%s", r->name);
		if (resolver_submit(s->resolver, job) == 0) {
			if (++c->lookups >= SERVER_LOOKUPS_MAX)
				client_pause(s, c, true);
			return;
		}
	}
	resolver_job_free(job);
	st = server_ask_state(s);
	w = client_who(c);
	ask_resolved(&st, &w, r, NULL, 0, false, EAI_AGAIN);
	server_decided(s, c, id, r);
}

/* Hands a rewritten connect to the transport, which answers c itself. */
static void server_rewrite(struct server *s, struct client *c, uint32_t id, struct ask_result *r)
{
	struct transport_request tr = {
		.client = c->serial, .msgid = id, .nonblock = r->flags & PROTO_ASK_NONBLOCK,
		.inet6 = r->flags & PROTO_ASK_INET6, .pid = c->pid, .uid = c->uid,
		.exe = client_exe(c), .name = r->name[0] ? r->name : NULL, .addr = r->addr,
		.port = r->port, .rule = r->rule, .transport = r->transport, .limit = r->limit,
		.timeout_ms = r->timeout_ms, .action = r->action,
	};

	if (transport_start(s->transport, &tr) == 0)
		return;
	r->action = PROTO_DENY;
	r->answer = PROTO_FAIL;
	r->err = ENOMEM;
	r->err_name = "ENOMEM";
	server_decided(s, c, id, r);
}

/* A datagram through the relay: to its association, whose loopback port
 * the answer names (made on the first datagram of a process to the
 * destination). One that cannot be made is denied. */
static void server_dgram(struct server *s, struct client *c, uint32_t id, struct ask_result *r)
{
	struct dgram_request dr = {
		.pid = c->pid, .uid = c->uid, .exe = client_exe(c),
		.name = r->name[0] ? r->name : NULL, .addr = r->addr, .port = r->port,
		.src_port = r->src_port,
		.rule = r->rule, .transport = r->transport, .limit = r->limit, .ttl_ms = r->ttl_ms,
		.timeout_ms = r->timeout_ms,
	};
	bool v6 = false;
	uint16_t port;

	if (dgrams_answer(s->dgrams, &dr)) {
		/* it goes as it is, from the program's own socket, the only
		 * one the socket it answers takes it from */
		r->upstream = "the program's own socket (an answer to a socket connected to it)";
		server_decided(s, c, id, r);
		return;
	}
	port = dgrams_open(s->dgrams, &dr, &v6);
	if (port) {
		memset(r->addrs, 0, 2 * sizeof r->addrs[0]);
		r->addrs[0].family = 4;
		r->addrs[0].bytes[0] = 127;
		r->addrs[0].bytes[3] = 1;
		r->addrs[1].family = 6; /* ::1, for an IPv6 socket bound there */
		r->addrs[1].bytes[15] = 1;
		r->naddr = v6 ? 2 : 1;
		r->to_port = port;
	} else {
		r->action = PROTO_DENY;
		r->answer = PROTO_DENY;
		r->err = errno == EAGAIN ? EAGAIN : ENOMEM;
		r->err_name = policy_errno_name(r->err);
		r->why = "no datagram relay could be made";
	}
	server_decided(s, c, id, r);
}

/* ASK: decided by ask.c; then answered, looked up, or rewritten. */
static void server_ask(struct server *s, struct client *c, uint32_t id, const struct proto_ask *q)
{
	struct ask_state st = server_ask_state(s);
	struct ask_who w = client_who(c);
	struct ask_result r;

	if (c->isolated)
		st.stub = NULL; /* the namespace's queries go to the capture's stub */
	if (q->op == PROTO_OP_RESOLVE)
		ask_resolve(&st, &w, q, &r);
	else
		ask_addr(&st, &w, q, &r);
	if (client_isolated(s, c))
		ask_isolated(&st, &r);
	switch (r.next) {
	case ASK_LOOKUP:
		server_lookup(s, c, id, &r);
		break;
	case ASK_TRANSPORT:
		server_rewrite(s, c, id, &r);
		break;
	case ASK_DGRAM:
		server_dgram(s, c, id, &r);
		break;
	default:
		server_decided(s, c, id, &r);
		break;
	}
}

/* NOTE: a connect the shim applied from its cache, judged again here so
 * that it is recorded as asking would have recorded it. It is answered
 * with nothing. Should this judgement differ (the cache raced a change),
 * what the shim did is recorded, with the rule "cached", and the
 * generation moves so that it does not happen again. */
static void server_note(struct server *s, struct client *c, const struct proto_note *n)
{
	struct ask_state st = server_ask_state(s);
	struct ask_who w = client_who(c);
	struct ask_result r;

	ask_addr(&st, &w, &n->ask, &r);
	if (client_isolated(s, c))
		ask_isolated(&st, &r);
	if (r.answer != n->action) {
		log_warn("pid %ld: a connect applied a cached %s where the policy now says %s; "
			 "cached verdicts renewed", (long)c->pid, proto_action_name(n->action),
			 proto_action_name(r.answer));
		r.action = n->action; /* by a rule of a policy no longer in force */
		r.rule = "cached";
		r.err_name = n->action == PROTO_ALLOW ? NULL : "EPERM";
		page_move(s);
	}
	s->stats.cached++;
	server_record_result(s, &r, c->pid, c->uid, client_exe(c), false, true);
	page_sync(s);
}

static void server_captured(void *ctx, struct capture_conn *k);
static void server_dns(void *ctx, const struct capture_query *cq);
static void server_stub_query(void *ctx, const struct capture_query *cq);
static void server_dropped(void *ctx, pid_t ns_pid, struct audit_event *ev);
static void server_dropped_count(void *ctx, const struct nflog_counts *n);

/* CONTROL CAPTURE: the sandbox of an `egress-run --isolate` hands over its
 * capture sockets. A broker started with --isolate takes one capture per
 * network namespace, from a client of the broker's own uid (or root) in a
 * namespace other than the broker's that no capture holds yet; the capture
 * lasts as long as that client's connection. The fds are the broker's then
 * (closed on refusal); the answer is TEXT "capturing", or status 1 and the
 * reason. */
static void server_capture(struct server *s, struct client *c, uint32_t id, int *fds, int nfds)
{
	struct capture_sink sink = { .ctx = s, .connection = server_captured, .query = server_dns,
				     .dropped = server_dropped, .dropped_count = server_dropped_count };
	struct proto_text *t = &s->ans.u.text;
	char why[256] = "";
	bool nflog = nfds == SANDBOX_CAPTURE_FDS;
	struct client *sb;

	if (!s->isolate)
		snprintf(why, sizeof why, "this broker was not started with --isolate");
	else if (c->uid != geteuid() && c->uid != 0)
		snprintf(why, sizeof why, "uid %ld may not hand over a capture (only root and uid %ld)",
			 (long)c->uid, (long)geteuid());
	else if (!c->ns_known)
		snprintf(why, sizeof why, "cannot read the network namespace of pid %ld", (long)c->pid);
	else if (!c->foreign)
		snprintf(why, sizeof why, "pid %ld is in the broker's own network namespace",
			 (long)c->pid);
	else if ((sb = sandbox_of(s, &c->ns)))
		snprintf(why, sizeof why, "its network namespace is captured already (sandbox pid %ld)",
			 (long)sb->pid);
	else if (nfds != SANDBOX_CAPTURE_FDS && nfds != SANDBOX_CAPTURE_SOCKS)
		snprintf(why, sizeof why, "not the capture sockets (%d descriptors, not %d or %d)",
			 nfds, SANDBOX_CAPTURE_SOCKS, SANDBOX_CAPTURE_FDS);
	if (!why[0]) {
		if (nfds == SANDBOX_CAPTURE_SOCKS)
			fds[SANDBOX_NFLOG_FD] = -1; /* the sandbox could not open NFLOG */
		c->capture = capture_new(s->loop, fds, c->pid, &sink, why, sizeof why);
		nfds = 0; /* capture_new owns them now, whatever it returns */
		if (c->capture && !capture_owns_netns(c->capture, c->ns.dev, c->ns.ino)) {
			snprintf(why, sizeof why, "pid %ld changed network namespace", (long)c->pid);
			capture_free(c->capture);
			c->capture = NULL;
		}
		if (c->capture) {
			HASH_ADD(nh, s->sandboxes, ns, sizeof c->ns, c);
			s->sandboxes_total++;
			page_move(s); /* its programs ask anew: isolated, they are not cached */
		}
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	s->ans.type = PROTO_TEXT;
	s->ans.id = id;
	t->status = why[0] ? 1 : 0;
	snprintf(t->text, sizeof t->text, "%s", why[0] ? why : "capturing");
	t->len = (uint32_t)strlen(t->text);
	if (why[0])
		log_warn("client pid %ld: capture refused: %s", (long)c->pid, why);
	else if (!nflog)
		log_warn("capturing the network namespace of pid %ld without its NFLOG socket: the "
			 "packets it drops (UDP but DNS, other IP) are not audited", (long)c->pid);
	else
		log_info("capturing the network namespace of sandbox pid %ld (%u capturing now)",
			 (long)c->pid, HASH_CNT(nh, s->sandboxes));
	client_send(s, c, &s->ans, -1);
}

/* The descriptors that came with mh, at most max of them, into fds.
 * Returns how many. */
static int received_fds(struct msghdr *mh, int *fds, int max)
{
	int n = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
			if (n < max)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

/* Reads and handles one message from c (one per wake-up, so that a busy
 * client cannot starve the others). Descriptors a message brings are
 * closed unless it is the sandbox's CAPTURE. Returns true when it was a
 * NOTE (c is still there, and another may follow at once). */
static bool client_readable(struct server *s, struct client *c)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * SANDBOX_CAPTURE_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = s->in, .iov_len = sizeof s->in };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
			     .msg_controllen = sizeof ctl.space };
	int fds[SANDBOX_CAPTURE_FDS], nfds;
	ssize_t n;
	int rc;

	n = recvmsg(c->w.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	nfds = n > 0 ? received_fds(&mh, fds, SANDBOX_CAPTURE_FDS) : 0;
	/* What waits in the ring came before this message (a bell excepted:
	 * its ring is read a moment later, which is the point of it). */
	if (n >= PROTO_HDR_LEN && (s->in[2] | s->in[3] << 8) != PROTO_RING)
		ring_read(s, c);
	rc = n <= 0 ? -1 : proto_decode(s->in, (size_t)n, &s->msg);
	if (rc == 0 && s->msg.type == PROTO_CONTROL && s->msg.u.control.what == PROTO_CTL_CAPTURE &&
	    !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		server_capture(s, c, s->msg.id, fds, nfds);
		return false;
	}
	if (rc == 0 && s->msg.type == PROTO_NOTE && nfds == 1 &&
	    !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		ring_take(c, fds[0]); /* the shim's note ring, for its next NOTEs */
		nfds = 0;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (n <= 0) {
		client_close(s, c);
		return false;
	}
	if (mh.msg_flags & MSG_TRUNC) {
		client_malformed(s, c, "message too long");
		return false;
	}
	if (rc == PROTO_BAD_VERSION || rc == PROTO_BAD_TYPE) {
		if (client_send_error(s, c, s->msg.id,
				      rc == PROTO_BAD_VERSION ? PROTO_E_VERSION : PROTO_E_TYPE) == 0)
			client_close(s, c);
		return false;
	}
	if (rc < 0) {
		client_malformed(s, c, "malformed message");
		return false;
	}
	switch (s->msg.type) {
	case PROTO_ASK:
		server_ask(s, c, s->msg.id, &s->msg.u.ask);
		break;
	case PROTO_NOTE:
		server_note(s, c, &s->msg.u.note);
		return true;
	case PROTO_RING:
		if (c->ring) /* else let go, or never had: nothing to read */
			ring_due(s, c);
		return true;
	case PROTO_CONTROL:
		/* A program under --isolate may not steer its broker; nor may
		 * anything else outside the broker's network namespace once it
		 * takes captures (a namespace made inside a sandbox is not a
		 * captured one, but no less the sandbox's). */
		if (client_isolated(s, c) || (s->isolate && c->foreign)) {
			client_send_error(s, c, s->msg.id, PROTO_E_DENIED);
			break;
		}
		{
			int what = s->msg.u.control.what;

			rings_read(s); /* status counts what has been done */
			control_handle(s, c->uid, what, &s->ans);
		}
		s->ans.id = s->msg.id;
		client_send(s, c, &s->ans, -1);
		break;
	default:
		client_malformed(s, c, "unexpected message type");
		break;
	}
	return false;
}

/* ---------------------------------------------------------- lookup stub */

/* A query at the lookup stub, while its name is looked up. */
struct stub_job {
	struct capture_query q;
	struct dns_question dq;
	struct ask_result r;
	struct ask_who w;
	uid_t uid;
};

/* Records j's result as a lookup of its asker and answers the query. */
static void stub_answer(struct server *s, struct stub_job *j)
{
	const struct ask_result *r = &j->r;
	uint8_t out[DNS_MSG_MAX];
	int rcode = DNS_NOERROR, n;

	if (r->answer == PROTO_DENY || r->err == EAI_NONAME)
		rcode = DNS_NXDOMAIN;
	else if (r->err && r->err != EAI_NODATA && r->err != EAI_ADDRFAMILY)
		rcode = DNS_SERVFAIL;
	server_record_result(s, r, j->w.pid, j->uid, j->w.exe, false, false);
	n = dns_build_answer(j->q.buf, &j->dq, rcode, r->addrs, r->naddr, 60, out, sizeof out);
	if (n > 0)
		sendto(j->q.fd, out, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)&j->q.from,
		       j->q.fromlen);
}

static void stub_looked_up(void *owner, struct resolver_job *job)
{
	struct server *s = owner;
	struct stub_job *j = job->data;
	struct ask_state st = server_ask_state(s);

	ask_resolved(&st, &j->w, &j->r, job->addrs, job->naddr, false, job->eai);
	stub_answer(s, j);
}

/* A DNS query that the shim sent to the stub instead of a name server: the
 * name is judged as a lookup of the process that asked (found by its
 * socket; pid 0 when it could not be), and answered with what getaddrinfo
 * would have given it. Only A and AAAA are answered with addresses; any
 * other type of an allowed name gets none. */
static void server_stub_query(void *ctx, const struct capture_query *cq)
{
	struct server *s = ctx;
	struct ask_state st = server_ask_state(s);
	struct proto_ask q = { .op = PROTO_OP_RESOLVE, .l4 = PROTO_L4_ANY };
	struct resolver_job *job = NULL;
	struct stub_job *j = calloc(1, sizeof *j);
	unsigned long long starttime;
	char path[32];
	struct stat sb;

	if (!j)
		return;
	j->q = *cq;
	if (dns_parse_query(j->q.buf, j->q.len, &j->dq) < 0) {
		free(j);
		return; /* not a query: no answer */
	}
	j->w.pid = cq->pid;
	j->w.exe = j->q.exe[0] ? j->q.exe : NULL;
	if (cq->pid > 0) {
		proc_stat(cq->pid, &j->w.ppid, &starttime);
		snprintf(path, sizeof path, "/proc/%ld", (long)cq->pid);
		if (stat(path, &sb) == 0)
			j->uid = sb.st_uid;
	}
	q.family = j->dq.qtype == DNS_TYPE_AAAA ? 6 : 4;
	memcpy(q.name, j->dq.name, sizeof q.name);
	ask_resolve(&st, &j->w, &q, &j->r);
	if (j->dq.qclass != DNS_CLASS_IN ||
	    (j->dq.qtype != DNS_TYPE_A && j->dq.qtype != DNS_TYPE_AAAA)) {
		if (j->r.answer != PROTO_DENY) { /* judged by its name, answered empty */
			j->r.next = ASK_ANSWER;
			j->r.naddr = 0;
			j->r.err = EAI_NODATA;
			j->r.err_name = audit_eai_name(EAI_NODATA);
		}
	} else if (j->r.next == ASK_LOOKUP && (job = calloc(1, sizeof *job))) {
		job->done = stub_looked_up;
		job->owner = s;
		job->holder = (uint64_t)cq->pid;
		job->family = j->r.family;
		job->data = j;
		snprintf(job->name, sizeof job->name, "%s", j->r.name);
		if (resolver_submit(s->resolver, job) == 0)
			return;
		job->data = NULL;
		resolver_job_free(job);
		ask_resolved(&st, &j->w, &j->r, NULL, 0, false, EAI_AGAIN);
	} else if (j->r.next == ASK_LOOKUP) {
		ask_resolved(&st, &j->w, &j->r, NULL, 0, false, EAI_AGAIN);
	}
	stub_answer(s, j);
	free(j);
}

/* ----------------------------------------------------------- captured */

/* A connection the isolated namespace made past every shim (a static or
 * Go program, a raw system call): judged as the shim's connect would be,
 * by the name the namespace's DNS stub gave its address for; then relayed
 * to where it was going (or through the rule's transport), or reset. */
static void server_captured(void *ctx, struct capture_conn *k)
{
	struct server *s = ctx;
	struct ask_state st = server_ask_state(s);
	struct ask_who w = { .pid = k->pid ? k->pid : k->ns_pid, .ppid = k->ns_pid,
			     .exe = k->exe[0] ? k->exe : NULL };
	struct proto_ask q = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .port = k->port,
			       .addr = k->dst };
	struct ask_result r;

	ask_addr(&st, &w, &q, &r);
	ask_isolated(&st, &r); /* an allowed connect: the broker makes it */
	if (r.next == ASK_TRANSPORT) {
		struct transport_request tr = {
			.pid = k->pid, .exe = w.exe, .name = r.name[0] ? r.name : NULL,
			.addr = r.addr, .port = r.port, .rule = r.rule, .transport = r.transport,
			.limit = r.limit, .timeout_ms = r.timeout_ms, .action = r.action,
			.captured = true, .captured_fd = k->fd,
		};

		if (transport_start(s->transport, &tr) == 0)
			return;
		r.action = PROTO_DENY;
		r.err_name = "ENOMEM";
	}
	server_record_result(s, &r, k->pid, 0, w.exe, true, false);
	{
		struct linger lg = { .l_onoff = 1, .l_linger = 0 }; /* a reset: refused */
		setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(k->fd);
}

/* A DNS query of the isolated namespace: its name judged as a lookup.
 * Allowed and rewritten names get an IPv4 synthetic address from the
 * namespace's own map (so the captured connect to it is judged by the
 * name); IPv6 and other types an empty answer; denied names NXDOMAIN. */
static void server_dns(void *ctx, const struct capture_query *cq)
{
	struct server *s = ctx;
	struct ask_state st = server_ask_state(s);
	struct ask_who w = { .pid = cq->ns_pid, .ppid = cq->ns_pid,
			     .exe = cq->exe[0] ? cq->exe : NULL };
	struct proto_ask q = { .op = PROTO_OP_RESOLVE, .l4 = PROTO_L4_ANY };
	struct dns_question dq;
	struct ask_result r;
	uint8_t out[DNS_MSG_MAX];
	int rcode = DNS_NOERROR, n;

	if (dns_parse_query(cq->buf, cq->len, &dq) < 0)
		return; /* not a query: no answer */
	q.family = dq.qtype == DNS_TYPE_AAAA ? 6 : 4;
	memcpy(q.name, dq.name, sizeof q.name);
	ask_resolve(&st, &w, &q, &r);
	if (r.answer == PROTO_DENY) {
		rcode = DNS_NXDOMAIN;
	} else if (dq.qtype == DNS_TYPE_A && dq.qclass == DNS_CLASS_IN) {
		/* every name the stub answers gets a synthetic address, so that
		 * the captured connect to it is judged by the name */
		bool synthetic = r.next == ASK_ANSWER && r.has_addr && synth_is(&r.addr);

		if (!synthetic && synth_map(s->synth, cq->ns_pid, r.name, &r.addrs[0]) < 0) {
			rcode = DNS_SERVFAIL;
			r.action = PROTO_DENY;
			r.err_name = "EAI_FAIL";
		} else {
			r.naddr = 1;
			r.addr = r.addrs[0];
			r.has_addr = true;
			if (r.action != PROTO_REWRITE)
				r.action = PROTO_ALLOW;
			r.err_name = NULL;
		}
	} else {
		r.naddr = 0; /* IPv6 and other types: none, so programs take IPv4 */
		if (r.action == PROTO_ALLOW)
			r.err_name = NULL;
	}
	if (!r.rule)
		r.rule = "default";
	server_record_result(s, &r, cq->pid, 0, w.exe, true, false);
	n = dns_build_answer(cq->buf, &dq, rcode, r.addrs, r.naddr, 60, out, sizeof out);
	if (n > 0)
		sendto(cq->fd, out, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)&cq->from,
		       cq->fromlen);
}

/* A record of packets the isolated namespace of ns_pid dropped (nflog.c),
 * named by the synthetic address its stub gave, when it is one. */
static void server_dropped(void *ctx, pid_t ns_pid, struct audit_event *ev)
{
	struct server *s = ctx;
	char name[PROTO_NAME_MAX + 1];

	if (ev->addr && synth_lookup(s->synth, ns_pid, ns_pid, ev->addr, name, sizeof name))
		ev->name = name;
	server_record(s, ev);
}

static void server_dropped_count(void *ctx, const struct nflog_counts *n)
{
	struct server *s = ctx;

	stats_dropped(&s->stats, n);
}

/* --------------------------------------------------------------- status */

void server_info(struct server *s, struct control_info *ci)
{
	memset(ci, 0, sizeof *ci);
	ci->pid = getpid();
	ci->uptime_s = (long)(mono_now() - s->started);
	ci->socket = s->socket_path[0] ? s->socket_path : NULL;
	ci->policy_path = policy_path(s->policy);
	ci->sha256 = s->sha256;
	ci->rules = policy_rule_count(s->policy);
	ci->loaded_at = s->loaded_at;
	ci->last_error = s->last_error[0] ? s->last_error : NULL;
	ci->last_error_at = s->last_error_at;
	ci->audit_path = s->audit.path[0] ? s->audit.path : NULL;
	ci->audit_error = s->audit.err ? strerror(s->audit.err) : NULL;
	ci->audit_failures = s->audit.failures;
	ci->audit_reopened = s->audit.reopened;
	ci->stats = &s->stats;
	policy_transport_text(policy_transport(s->policy), s->transport_text,
			      sizeof s->transport_text);
	ci->transport = s->transport_text;
	ci->relay = transport_stats(s->transport);
	ci->conns = s->conns;
	ci->nconns = transport_connections(s->transport, s->conns, TRANSPORT_LIST_MAX);
	ci->lookups = resolver_lookups(s->resolver);
	ci->synthetic = synth_entries(s->synth);
	ci->stub_port = s->stub ? s->stub_port : 0;
	ci->stub_queries = stub_queries(s->stub);
	dgrams_counts(s->dgrams, &ci->dgram_active, &ci->dgram_total);
	ci->isolate = s->isolate;
	ci->sandboxes_total = s->sandboxes_total;
	ci->sandboxes_active = HASH_CNT(nh, s->sandboxes);
	ci->sandboxes = s->sbinfo;
	for (struct client *sb = s->sandboxes; sb && ci->nsandboxes < CONTROL_SANDBOX_LIST_MAX;
	     sb = sb->nh.next) {
		struct control_sandbox *o = &s->sbinfo[ci->nsandboxes++];

		o->pid = sb->pid;
		capture_counts(sb->capture, &o->connections, &o->queries);
	}
}

/* --------------------------------------------------------------- reload */

/* Points the audit log at --audit, else the policy's audit key, reopening
 * it (log rotation) when the path is unchanged. */
static void server_audit_open(struct server *s)
{
	const char *path = s->audit_opt[0] ? s->audit_opt : policy_audit_path(s->policy);

	if (!path)
		path = "";
	if (strcmp(path, s->audit.path) == 0)
		audit_reopen(&s->audit);
	else
		audit_open(&s->audit, path);
}

int server_reload(struct server *s, char *msg, size_t cap)
{
	char err[POLICY_ERR_MAX], hex[65];
	struct policy *np = policy_load(s->policy_path, err, sizeof err);

	rings_read(s); /* judged by the policy they were applied under */

	if (!np) {
		snprintf(s->last_error, sizeof s->last_error, "%s", err);
		real_now(&s->last_error_at);
		log_warn("reload failed, policy in force kept: %s", err);
		snprintf(msg, cap, "%s", err);
		server_audit_open(s);
		return -1;
	}
	/* The file is read a second time for its digest: a write between the
	 * two reads shows as a digest that differs from what is in force,
	 * and the next reload settles it. */
	if (sha256_file(s->policy_path, hex) < 0)
		strcpy(hex, "unknown");
	policy_free(s->policy);
	s->policy = np; /* between two decisions: the loop is single-threaded */
	page_move(s);   /* before the reload is reported done: no cached verdict outlives it */
	memcpy(s->sha256, hex, sizeof hex);
	real_now(&s->loaded_at);
	s->last_error[0] = 0;
	server_audit_open(s);
	snprintf(msg, cap, "reloaded %s (%u rules, sha256 %s)", policy_path(np),
		 policy_rule_count(np), hex);
	log_info("%s", msg);
	return 0;
}

/* -------------------------------------------------------------- signals */

int server_signals_block(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		log_error("sigprocmask: %s", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* The signalfd's handler: SIGHUP reloads, SIGTERM and SIGINT stop. */
static void server_signal(void *ctx, uint32_t events)
{
	struct server *s = ctx;
	struct signalfd_siginfo si;
	char msg[POLICY_ERR_MAX + 128];

	(void)events;
	while (read(s->signal_w.fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP)
			server_reload(s, msg, sizeof msg);
		else
			s->stop = true;
	}
}

int server_signals(struct server *s)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	watch_init(&s->signal_w, fd, server_signal, s);
	if (fd < 0 || loop_watch(s->loop, &s->signal_w, EPOLLIN) < 0) {
		log_error("signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ----------------------------------------------------------- the loop */

/* The timer's handler, once a second: transport deadlines, the audit log's
 * presence, and now and then the garbage collection. */
static void server_tick(void *ctx, uint32_t events)
{
	struct server *s = ctx;
	uint64_t ticks;

	(void)events;
	if (read(s->timer_w.fd, &ticks, sizeof ticks) <= 0)
		return;
	transport_tick(s->transport);
	dgrams_tick(s->dgrams);
	audit_check(&s->audit);
	s->ticks += (unsigned)ticks;
	if (s->ticks >= SERVER_GC_S / SERVER_TICK_S) {
		s->ticks = 0;
		server_gc(s);
		page_sync(s);
	}
}

/* The resolver's handler: finished lookups go to their owners. */
static void server_resolver(void *ctx, uint32_t events)
{
	(void)events;
	resolver_dispatch(ctx);
}

int server_listen(struct server *s, char *err, size_t errlen)
{
	if (!s->socket_path[0]) {
		snprintf(err, errlen, "no socket path");
		return -1;
	}
	if (control_listen(s->socket_path, &s->listener, err, errlen) < 0)
		return -1;
	watch_init(&s->listen_w, s->listener.fd, server_accept, s);
	if (loop_watch(s->loop, &s->listen_w, EPOLLIN) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		control_unlisten(&s->listener);
		return -1;
	}
	return 0;
}

struct server *server_new(const struct server_config *cfg, char *err, size_t errlen)
{
	struct itimerspec its = { .it_interval = { SERVER_TICK_S, 0 },
				  .it_value = { SERVER_TICK_S, 0 } };
	struct server *s = calloc(1, sizeof *s);
	struct transport_sink sink = { .ctx = s, .answer = server_answer, .record = server_record };
	int fd;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->listener.fd = s->reserve_fd = s->page_fd = -1;
	watch_init(&s->signal_w, -1, NULL, NULL);
	watch_init(&s->timer_w, -1, NULL, NULL);
	watch_init(&s->ring_w, -1, NULL, NULL);
	stats_init(&s->stats);
	audit_init(&s->audit);
	s->next_serial = SERVER_FIRST_SERIAL;
	s->isolate = cfg->isolate;
	if (capture_netns(getpid(), &s->ns.dev, &s->ns.ino) < 0) {
		snprintf(err, errlen, "cannot read /proc/self/ns/net: %s", strerror(errno));
		goto fail;
	}
	s->started = mono_now();
	if (snprintf(s->policy_path, sizeof s->policy_path, "%s", cfg->policy_path) >=
		    (int)sizeof s->policy_path ||
	    snprintf(s->socket_path, sizeof s->socket_path, "%s",
		     cfg->socket_path ? cfg->socket_path : "") >= (int)sizeof s->socket_path ||
	    snprintf(s->audit_opt, sizeof s->audit_opt, "%s",
		     cfg->audit_path ? cfg->audit_path : "") >= (int)sizeof s->audit_opt) {
		snprintf(err, errlen, "path too long");
		goto fail;
	}
	s->policy = policy_load(s->policy_path, err, errlen);
	if (!s->policy)
		goto fail;
	if (sha256_file(s->policy_path, s->sha256) < 0)
		strcpy(s->sha256, "unknown");
	real_now(&s->loaded_at);
	server_audit_open(s); /* a failing audit log is reported, not fatal */
	page_open(s);
	s->addrmap = addrmap_new(ADDRMAP_PER_PID_MAX);
	s->synth = synth_new(SYNTH_PER_PID_MAX);
	s->loop = loop_new();
	if (!s->addrmap || !s->synth || !s->loop) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	watch_init(&s->timer_w, fd, server_tick, s);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) < 0 ||
	    loop_watch(s->loop, &s->timer_w, EPOLLIN) < 0) {
		snprintf(err, errlen, "timerfd: %s", strerror(errno));
		goto fail;
	}
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	watch_init(&s->ring_w, fd, rings_tick, s);
	if (fd < 0 || loop_watch(s->loop, &s->ring_w, EPOLLIN) < 0) {
		snprintf(err, errlen, "timerfd: %s", strerror(errno));
		goto fail;
	}
	s->resolver = resolver_new(RESOLVER_THREADS, cfg->lookup);
	if (!s->resolver) {
		snprintf(err, errlen, "cannot start the resolver threads");
		goto fail;
	}
	watch_init(&s->resolver_w, resolver_fd(s->resolver), server_resolver, s->resolver);
	if (loop_watch(s->loop, &s->resolver_w, EPOLLIN) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		goto fail;
	}
	s->transport = transport_new(s->loop, s->resolver, &s->policy, &sink);
	if (!s->transport) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	{
		struct dgram_sink ds = { .ctx = s, .record = server_record };

		if (!(s->dgrams = dgrams_new(s->loop, &ds))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (!s->isolate) { /* isolated namespaces have the capture's own stub */
		struct stub_sink ss = { .ctx = s, .query = server_stub_query };

		s->stub = stub_new(s->loop, &ss);
		s->nstub = stub_addrs(s->stub, s->stub_addrs, &s->stub_port);
		if (!s->stub)
			log_warn("no lookup stub on loopback (%s): datagrams to port 53 are judged "
				 "by their address", strerror(errno));
	}
	return s;
fail:
	server_free(s);
	return NULL;
}

void server_free(struct server *s)
{
	struct client *c, *tmp;

	if (!s)
		return;
	stub_free(s->stub);
	s->stub = NULL;
	dgrams_free(s->dgrams);
	s->dgrams = NULL;
	transport_free(s->transport);
	s->transport = NULL;
	HASH_ITER(hh, s->clients, c, tmp)
		client_close(s, c);
	control_unlisten(&s->listener);
	resolver_free(s->resolver);
	if (s->signal_w.fd >= 0)
		close(s->signal_w.fd);
	if (s->timer_w.fd >= 0)
		close(s->timer_w.fd);
	if (s->ring_w.fd >= 0)
		close(s->ring_w.fd);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	loop_free(s->loop);
	audit_close(&s->audit);
	if (s->page) { /* the broker has gone: its lock word says so (unlocked: no owner) */
		pthread_mutex_unlock((pthread_mutex_t *)((char *)s->page + PROTO_PAGE_LOCK_OFFSET));
		munmap(s->page, PROTO_PAGE_SIZE);
		close(s->page_fd);
	}
	addrmap_free(s->addrmap);
	synth_free(s->synth);
	stats_free(&s->stats);
	policy_free(s->policy);
	free(s);
}

void server_gc(struct server *s)
{
	addrmap_gc(s->addrmap, mono_now(), proc_alive);
	synth_gc(s->synth, proc_alive);
	/* after a crowd of clients has gone, give the freed heap back to the
	 * system, so that the broker's size follows its clients */
	malloc_trim(0);
}

int server_run_once(struct server *s, int timeout_ms)
{
	if (loop_run_once(s->loop, timeout_ms) < 0) {
		log_error("epoll_wait: %s", strerror(errno));
		return -1;
	}
	return s->stop ? 1 : 0;
}

int server_run(struct server *s)
{
	int rc;

	while ((rc = server_run_once(s, -1)) == 0)
		;
	return rc < 0 ? -1 : 0;
}

const struct stats *server_stats(const struct server *s)
{
	return &s->stats;
}

const struct addrmap *server_addrmap(const struct server *s)
{
	return s->addrmap;
}

const struct transport_stats *server_relay_stats(const struct server *s)
{
	return transport_stats(s->transport);
}

unsigned long server_lookups(const struct server *s)
{
	return resolver_lookups(s->resolver);
}
