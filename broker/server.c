/* server.c: the daemon: one epoll loop that owns every piece of state
 * (policy, name memory, stats, audit), the hardened listening socket, the
 * clients, ASK and CONTROL handling, reload and signals. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <uthash.h>

#include "broker.h"

/* epoll tags; clients are tagged with their serial, which starts above. */
enum { TAG_LISTEN = 1, TAG_SIGNAL, TAG_TIMER, TAG_RESOLVER, TAG_FIRST_CLIENT = 16 };

#define SERVER_GC_S 10       /* name memory garbage collection period */
#define SERVER_TICK_S 1      /* timer period: transport deadlines */
#define SERVER_BACKLOG 128
#define SERVER_EVENTS 64
#define SERVER_ACCEPTS 64    /* accepts per wake-up, so clients are served too */
#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct client {
	uint64_t serial;          /* never reused: the client's id and generation in one */
	int fd;                   /* connected SEQPACKET socket */
	pid_t pid, ppid;          /* SO_PEERCRED, and the parent from /proc/<pid>/stat */
	uid_t uid;
	gid_t gid;
	char exe[PATH_MAX];       /* /proc/<pid>/exe, "" when unreadable */
	unsigned pending;         /* resolves in flight */
	bool paused;              /* reading stopped while pending is at its bound */
	UT_hash_handle hh;        /* serial -> client */
};

struct server {
	int epfd;                          /* the loop */
	int lfd;                           /* listening socket, -1 none */
	int sigfd;                         /* signalfd, -1 none */
	int timerfd;                       /* GC timer */
	int reserve_fd;                    /* spare descriptor for EMFILE */
	char socket_path[SUN_PATH_MAX];    /* "" when not configured */
	bool socket_owned;                 /* we created socket_path */
	dev_t sock_dev;                    /* its inode, to remove only ours */
	ino_t sock_ino;
	char policy_path[PATH_MAX];        /* reloaded from here */
	char audit_opt[PATH_MAX];          /* --audit, "" when not given */
	struct policy *policy;             /* in force */
	char sha256[65];                   /* of the file in force */
	struct timespec loaded_at;         /* CLOCK_REALTIME */
	char last_error[POLICY_ERR_MAX];   /* last failed reload, "" none */
	struct timespec last_error_at;
	struct audit audit;
	struct addrmap *addrmap;
	struct stats stats;
	struct resolver *resolver;
	struct transport *transport;       /* rewritten connections */
	struct synth *synth;               /* synthetic addresses of rewritten names */
	unsigned ticks;                    /* timer ticks, one a second */
	char transport_text[300];          /* for status */
	struct transport_conn conns[TRANSPORT_LIST_MAX]; /* for status */
	struct client *clients;            /* serial -> client */
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
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void real_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

/* --------------------------------------------------------------- helpers */

/* Zeroes the unused bytes of an IPv4 address, so addresses compare whole. */
static void addr_clean(struct proto_addr *a)
{
	if (a->family == 4)
		memset(a->bytes + 4, 0, 12);
}

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

/* ---------------------------------------------------------------- clients */

static void client_close(struct server *s, struct client *c)
{
	if (s->transport)
		transport_client_gone(s->transport, c->serial);
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
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
	struct epoll_event ev = { .events = pause ? 0 : EPOLLIN, .data.u64 = c->serial };

	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->paused = pause;
}

/* Sends m to c without blocking, with fd as SCM_RIGHTS when fd >= 0.
 * Returns 0, or -1 after closing c (it would block or is gone): c must not
 * be used then. */
static int client_send_fd(struct server *s, struct client *c, const struct proto_msg *m, int fd)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	ssize_t n = proto_encode(m, s->out, sizeof s->out);
	struct iovec iov = { .iov_base = s->out };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n < 0) {
		log_error("client pid %ld: cannot encode the answer", (long)c->pid);
		client_close(s, c);
		return -1;
	}
	iov.iov_len = (size_t)n;
	if (fd >= 0) {
		struct cmsghdr *cm;
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.space;
		mh.msg_controllen = sizeof ctl.space;
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	if (sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		client_close(s, c);
		return -1;
	}
	return 0;
}

static int client_send(struct server *s, struct client *c, const struct proto_msg *m)
{
	return client_send_fd(s, c, m, -1);
}

static int client_send_error(struct server *s, struct client *c, uint32_t id, int code)
{
	s->ans.type = PROTO_ERROR;
	s->ans.id = id;
	s->ans.u.error = code;
	return client_send(s, c, &s->ans);
}

int server_add_client(struct server *s, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	struct epoll_event ev = { .events = EPOLLIN };
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
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || !(c = calloc(1, sizeof *c))) {
		log_error("client pid %ld: %s", (long)cr.pid, strerror(errno));
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->serial = s->next_serial++;
	snprintf(path, sizeof path, "/proc/%ld/exe", (long)cr.pid);
	n = readlink(path, c->exe, sizeof c->exe - 1);
	c->exe[n > 0 ? n : 0] = 0;
	proc_stat(cr.pid, &c->ppid, &starttime);
	ev.data.u64 = c->serial;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
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

/* Accepts what waits on the listening socket. When descriptors run out, the
 * reserve descriptor makes room to accept and close one, so a full process
 * table does not spin the loop. */
static void server_accept(struct server *s)
{
	for (int i = 0; i < SERVER_ACCEPTS; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

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
			fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
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

/* ------------------------------------------------------------- decisions */

/* Counts and audits one decision (the audit never changes it). */
static void server_record(struct server *s, const struct client *c, int op, const char *name,
			  const struct proto_addr *addr, uint16_t port, int l4, int action,
			  const char *rule, const char *err)
{
	struct audit_event ev = {
		.pid = c->pid, .uid = c->uid, .exe = client_exe(c), .op = op, .name = name,
		.addr = addr, .port = port, .l4 = l4, .action = action, .rule = rule, .err = err,
	};

	stats_decision(&s->stats, op, action);
	if (action == PROTO_DENY)
		stats_denied(&s->stats, name, addr, port, l4);
	real_now(&ev.time);
	audit_write(&s->audit, &ev);
}

/* Sends a VERDICT to c. Returns as client_send(). */
static int answer_verdict(struct server *s, struct client *c, uint32_t id, int action, int err,
			  uint32_t ttl_ms, const char *rule, const char *name,
			  const struct proto_addr *addrs, int naddr)
{
	struct proto_verdict *v = &s->ans.u.verdict;

	s->ans.type = PROTO_VERDICT;
	s->ans.id = id;
	memset(v, 0, sizeof *v);
	v->action = (uint8_t)action;
	v->err = err;
	v->ttl_ms = ttl_ms;
	snprintf(v->rule, sizeof v->rule, "%s", rule ? rule : "");
	snprintf(v->name, sizeof v->name, "%s", name ? name : "");
	v->naddr = (uint8_t)naddr;
	if (naddr)
		memcpy(v->addrs, addrs, (size_t)naddr * sizeof *addrs);
	return client_send(s, c, &s->ans);
}

/* Answers a resolve and records it; eai is the EAI code, 0 for none. */
static void resolve_answer(struct server *s, struct client *c, uint32_t id,
			   const struct proto_ask *a, int action, int eai, const char *rule,
			   const struct proto_addr *addrs, int naddr)
{
	server_record(s, c, PROTO_OP_RESOLVE, a->name, NULL, a->port, a->l4, action, rule,
		      eai ? audit_eai_name(eai) : NULL);
	answer_verdict(s, c, id, action, eai, 0, rule, "", addrs, naddr);
}

/* Finishes the resolve of a->name (normalised) with the addresses found:
 * each is judged with the name, the allowed ones are remembered for c's
 * process and returned; none allowed is a DENY with the dropping rule. */
static void resolve_finish(struct server *s, struct client *c, uint32_t id,
			   const struct proto_ask *a, const char *rule,
			   const struct proto_addr *raw, int nraw, bool from_hosts, int eai)
{
	struct proto_addr kept[PROTO_ADDRS_MAX];
	const char *first_rule = NULL, *deny_rule = NULL;
	struct policy_request req = {
		.op = PROTO_OP_RESOLVE, .l4 = a->l4, .name = a->name, .port = a->port,
		.exe = client_exe(c), .from_hosts = from_hosts,
	};
	struct policy_verdict v;
	time_t now;
	int n = 0;

	if (eai) {
		resolve_answer(s, c, id, a, PROTO_ALLOW, eai, rule, NULL, 0);
		return;
	}
	for (int i = 0; i < nraw && n < PROTO_ADDRS_MAX; i++) {
		struct proto_addr addr = raw[i];
		bool dup = false;

		policy_addr_canonical(&addr);
		addr_clean(&addr);
		for (int j = 0; j < n && !dup; j++)
			dup = memcmp(&kept[j], &addr, sizeof addr) == 0;
		if (dup)
			continue;
		req.addr = &addr;
		policy_decide(s->policy, &req, &v);
		if (v.action == PROTO_DENY) {
			if (!deny_rule)
				deny_rule = v.rule;
			continue;
		}
		if (!first_rule)
			first_rule = v.rule;
		kept[n++] = addr;
	}
	if (!n) {
		resolve_answer(s, c, id, a, PROTO_DENY, EAI_NONAME, deny_rule ? deny_rule : rule,
			       NULL, 0);
		return;
	}
	now = mono_now();
	for (int i = 0; i < n; i++)
		addrmap_record(s->addrmap, c->pid, &kept[i], a->name, from_hosts, now);
	resolve_answer(s, c, id, a, PROTO_ALLOW, 0, first_rule, kept, n);
}

/* RESOLVE of a name that is rewritten: never looked up here. The answer is
 * its synthetic address in c's process map, which the connect maps back;
 * an IPv6-only request gets no address (EAI_NODATA), so that the program
 * falls back to IPv4; a full map fails closed. */
static void resolve_synthetic(struct server *s, struct client *c, uint32_t id,
			      const struct proto_ask *q, const char *rule)
{
	struct proto_addr a;

	if (q->family == 6) {
		server_record(s, c, PROTO_OP_RESOLVE, q->name, NULL, q->port, q->l4, PROTO_REWRITE, rule,
			      audit_eai_name(EAI_NODATA));
		answer_verdict(s, c, id, PROTO_ALLOW, EAI_NODATA, 0, rule, "", NULL, 0);
		return;
	}
	if (synth_map(s->synth, c->pid, q->name, &a) < 0) {
		log_error("pid %ld: more than %d rewritten names; %s refused", (long)c->pid,
			  SYNTH_PER_PID_MAX, q->name);
		resolve_answer(s, c, id, q, PROTO_DENY, EAI_FAIL, rule, NULL, 0);
		return;
	}
	server_record(s, c, PROTO_OP_RESOLVE, q->name, &a, q->port, q->l4, PROTO_REWRITE, rule, NULL);
	answer_verdict(s, c, id, PROTO_ALLOW, 0, 0, rule, "", &a, 1);
}

/* RESOLVE: the name is judged alone first; an allowed name is answered from
 * [hosts] at once or handed to the resolver, finished in resolve_finish();
 * a rewritten name gets a synthetic address. */
static void ask_resolve(struct server *s, struct client *c, uint32_t id, const struct proto_ask *a)
{
	struct proto_ask q = *a;
	struct proto_addr hosts[PROTO_ADDRS_MAX];
	struct policy_request req = { .op = PROTO_OP_RESOLVE, .l4 = a->l4, .port = a->port,
				      .exe = client_exe(c) };
	struct policy_verdict v;
	struct resolver_job *job;
	int n, nf = 0;

	if (policy_name_normalise(a->name, q.name, sizeof q.name) < 0) {
		resolve_answer(s, c, id, a, PROTO_DENY, EAI_NONAME, "invalid-name", NULL, 0);
		return;
	}
	req.name = q.name;
	policy_decide(s->policy, &req, &v);
	if (v.action == PROTO_DENY) {
		resolve_answer(s, c, id, &q, PROTO_DENY, EAI_NONAME, v.rule, NULL, 0);
		return;
	}
	if (v.action == PROTO_REWRITE) {
		resolve_synthetic(s, c, id, &q, v.rule);
		return;
	}
	n = policy_hosts_lookup(s->policy, q.name, hosts, PROTO_ADDRS_MAX);
	if (n > 0) {
		/* The operator's static name: never sent to DNS. */
		for (int i = 0; i < n; i++) {
			policy_addr_canonical(&hosts[i]);
			if (!q.family || hosts[i].family == q.family)
				hosts[nf++] = hosts[i];
		}
		if (!nf)
			resolve_answer(s, c, id, &q, PROTO_ALLOW, EAI_NONAME, v.rule, NULL, 0);
		else
			resolve_finish(s, c, id, &q, v.rule, hosts, nf, true, 0);
		return;
	}
	job = calloc(1, sizeof *job);
	if (job) {
		job->client = c->serial;
		job->msgid = id;
		job->ask = q;
		snprintf(job->rule, sizeof job->rule, "%s", v.rule);
	}
	if (!job || resolver_submit(s->resolver, job) < 0) {
		free(job);
		resolve_answer(s, c, id, &q, PROTO_ALLOW, EAI_AGAIN, v.rule, NULL, 0);
		return;
	}
	if (++c->pending >= SERVER_PENDING_MAX)
		client_pause(s, c, true);
}

/* Hands finished resolves back to their clients; a result whose client
 * has gone (serial not found) is dropped silently. */
static void server_resolved(struct server *s)
{
	struct resolver_job *j = resolver_take(s->resolver), *next;
	struct client *c;

	for (; j; j = next) {
		next = j->next;
		if (j->conduit) {
			transport_resolved(s->transport, j->conduit, j->eai, j->addrs, j->naddr);
			free(j);
			continue;
		}
		HASH_FIND(hh, s->clients, &j->client, sizeof j->client, c);
		if (c) {
			c->pending--;
			if (c->paused && c->pending < SERVER_PENDING_MAX)
				client_pause(s, c, false);
			resolve_finish(s, c, j->msgid, &j->ask, j->rule, j->addrs, j->naddr, false,
				       j->eai);
		}
		free(j);
	}
}

/* A rewritten CONNECT goes to the transport, which answers c itself; a
 * rewritten datagram is denied (the transports carry TCP only). */
static void ask_rewrite(struct server *s, struct client *c, uint32_t id, const struct proto_ask *a,
			const struct proto_addr *addr, const char *name,
			const struct policy_verdict *v)
{
	struct transport_request r = {
		.client = c->serial, .msgid = id, .nonblock = a->flags & PROTO_ASK_NONBLOCK,
		.inet6 = a->flags & PROTO_ASK_INET6,
		.pid = c->pid, .ppid = c->ppid, .uid = c->uid, .exe = client_exe(c), .name = name,
		.addr = *addr, .port = a->port, .rule = v->rule, .transport = v->transport,
		.limit = v->limit, .timeout_ms = policy_timeout_ms(s->policy),
	};

	if (a->op != PROTO_OP_CONNECT || a->l4 != PROTO_L4_TCP) {
		server_record(s, c, a->op, name, addr, a->port, a->l4, PROTO_DENY, v->rule, "EPERM");
		answer_verdict(s, c, id, PROTO_DENY, EPERM, 0, v->rule, name ? name : "", NULL, 0);
		return;
	}
	stats_decision(&s->stats, a->op, PROTO_REWRITE);
	if (transport_start(s->transport, &r) < 0) {
		server_record(s, c, a->op, name, addr, a->port, a->l4, PROTO_DENY, v->rule, "ENOMEM");
		answer_verdict(s, c, id, PROTO_FAIL, ENOMEM, 0, v->rule, name ? name : "", NULL, 0);
	}
}

/* CONNECT and SEND: the address is attributed to the name c's process (or
 * its parent) resolved to it, then judged. A synthetic address stands for
 * the rewritten name it was given for; one this process was never given is
 * refused. */
static void ask_addr(struct server *s, struct client *c, uint32_t id, const struct proto_ask *a)
{
	static const struct policy_transport direct = { .kind = POLICY_DIRECT };
	struct proto_addr addr = a->addr;
	char name[PROTO_NAME_MAX + 1];
	bool from_hosts = false, known, synthetic;
	struct policy_request req = { .op = a->op, .l4 = a->l4, .addr = &addr, .port = a->port,
				      .exe = client_exe(c) };
	struct policy_verdict v;
	uint32_t ttl;
	int err;

	policy_addr_canonical(&addr);
	addr_clean(&addr);
	synthetic = synth_is(&addr);
	if (synthetic) {
		known = synth_lookup(s->synth, c->pid, c->ppid, &addr, name, sizeof name);
		if (!known) {
			server_record(s, c, a->op, NULL, &addr, a->port, a->l4, PROTO_DENY, "synthetic",
				      "ENETUNREACH");
			answer_verdict(s, c, id, PROTO_DENY, ENETUNREACH, 0, "synthetic", "", NULL, 0);
			return;
		}
		req.addr = NULL; /* the name alone is judged: the address means nothing */
	} else {
		known = addrmap_lookup(s->addrmap, c->pid, c->ppid, &addr, mono_now(), name,
				      sizeof name, &from_hosts);
	}
	req.name = known ? name : NULL;
	req.from_hosts = from_hosts;
	policy_decide(s->policy, &req, &v);
	if (synthetic && v.action == PROTO_ALLOW) {
		/* allowed since it was rewritten (a reload): still only reachable
		 * by name, so the broker connects to it itself */
		v.action = PROTO_REWRITE;
		v.transport = &direct;
		v.limit = 0;
	}
	if (v.action == PROTO_REWRITE) {
		ask_rewrite(s, c, id, a, &addr, req.name, &v);
		return;
	}
	err = v.action == PROTO_DENY ? (v.err ? v.err : EPERM) : 0;
	ttl = a->op == PROTO_OP_SEND ? policy_ttl_ms(s->policy) : 0;
	server_record(s, c, a->op, req.name, &addr, a->port, a->l4, v.action, v.rule,
		      err ? policy_errno_name(err) : NULL);
	answer_verdict(s, c, id, v.action, err, ttl, v.rule, known ? name : "", NULL, 0);
}

/* ---------------------------------------------------- transport callbacks */

static int on_answer(void *ctx, uint64_t client, uint32_t msgid, int action, int err, int fd,
		     const char *rule, const char *name)
{
	struct server *s = ctx;
	struct proto_verdict *v = &s->ans.u.verdict;
	struct client *c;

	HASH_FIND(hh, s->clients, &client, sizeof client, c);
	if (!c)
		return -1;
	s->ans.type = PROTO_VERDICT;
	s->ans.id = msgid;
	memset(v, 0, sizeof *v);
	v->action = (uint8_t)action;
	v->err = err;
	v->ttl_ms = action == PROTO_PENDING ? policy_timeout_ms(s->policy) : 0;
	snprintf(v->rule, sizeof v->rule, "%s", rule);
	snprintf(v->name, sizeof v->name, "%s", name);
	return client_send_fd(s, c, &s->ans, fd);
}

static void on_audit(void *ctx, const struct audit_event *ev)
{
	struct server *s = ctx;

	if (ev->err && ev->op == PROTO_OP_CONNECT)
		stats_denied(&s->stats, ev->name, ev->addr, ev->port, ev->l4);
	audit_write(&s->audit, ev);
}

static bool on_addr_ok(void *ctx, const struct transport_request *r, const struct proto_addr *a,
		       bool from_hosts)
{
	struct server *s = ctx;
	struct proto_addr addr = *a;
	struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .name = r->name,
				      .addr = &addr, .port = r->port, .exe = r->exe,
				      .from_hosts = from_hosts };
	struct policy_verdict v;

	policy_addr_canonical(&addr);
	policy_decide(s->policy, &req, &v);
	return v.action != PROTO_DENY;
}

static int on_resolve(void *ctx, uint64_t conduit, const char *name, bool hosts,
		      struct proto_addr *out, int max, bool *from_hosts)
{
	struct server *s = ctx;
	struct resolver_job *job;
	int n = hosts ? policy_hosts_lookup(s->policy, name, out, max) : 0;

	if (n > 0) {
		for (int i = 0; i < n; i++)
			policy_addr_canonical(&out[i]);
		*from_hosts = true;
		return n;
	}
	job = calloc(1, sizeof *job);
	if (!job)
		return -1;
	job->conduit = conduit;
	job->ask.op = PROTO_OP_RESOLVE;
	snprintf(job->ask.name, sizeof job->ask.name, "%s", name);
	if (resolver_submit(s->resolver, job) < 0) {
		free(job);
		return -1;
	}
	return 0;
}

/* -------------------------------------------------------------- control */

/* Fills ci from the server's state (pointers into s). */
static void server_info(struct server *s, struct control_info *ci)
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
}

/* CONTROL: only the broker's own uid or root may ask. */
static void server_control(struct server *s, struct client *c, uint32_t id, int what)
{
	struct proto_text *t = &s->ans.u.text;
	struct control_info ci;
	size_t len = 0;

	if (c->uid != geteuid() && c->uid != 0) {
		client_send_error(s, c, id, PROTO_E_DENIED);
		return;
	}
	s->ans.type = PROTO_TEXT;
	s->ans.id = id;
	t->status = 0;
	switch (what) {
	case PROTO_CTL_STATUS:
		server_info(s, &ci);
		len = control_status_text(&ci, t->text, sizeof t->text);
		break;
	case PROTO_CTL_STATUS_JSON:
		server_info(s, &ci);
		len = control_status_json(&ci, t->text, sizeof t->text);
		break;
	case PROTO_CTL_RELOAD:
		t->status = server_reload(s, t->text, sizeof t->text) < 0 ? 1 : 0;
		len = strlen(t->text);
		break;
	}
	t->len = (uint32_t)len;
	client_send(s, c, &s->ans);
}

/* Reads and handles one message from c (one per wake-up, so that a busy
 * client cannot starve the others). */
static void client_readable(struct server *s, struct client *c)
{
	struct iovec iov = { .iov_base = s->in, .iov_len = sizeof s->in };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int rc;

	n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(s, c);
		return;
	}
	if (mh.msg_flags & MSG_TRUNC) {
		client_malformed(s, c, "message too long");
		return;
	}
	rc = proto_decode(s->in, (size_t)n, &s->msg);
	if (rc == PROTO_BAD_VERSION || rc == PROTO_BAD_TYPE) {
		if (client_send_error(s, c, s->msg.id,
				      rc == PROTO_BAD_VERSION ? PROTO_E_VERSION : PROTO_E_TYPE) == 0)
			client_close(s, c);
		return;
	}
	if (rc < 0) {
		client_malformed(s, c, "malformed message");
		return;
	}
	switch (s->msg.type) {
	case PROTO_ASK:
		if (s->msg.u.ask.op == PROTO_OP_RESOLVE)
			ask_resolve(s, c, s->msg.id, &s->msg.u.ask);
		else
			ask_addr(s, c, s->msg.id, &s->msg.u.ask);
		break;
	case PROTO_CONTROL:
		server_control(s, c, s->msg.id, s->msg.u.control.what);
		break;
	default:
		client_malformed(s, c, "unexpected message type");
		break;
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

int server_signals(struct server *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_SIGNAL };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev) < 0) {
		log_error("signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void server_signal(struct server *s)
{
	struct signalfd_siginfo si;
	char msg[POLICY_ERR_MAX + 128];

	while (read(s->sigfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP)
			server_reload(s, msg, sizeof msg);
		else
			s->stop = true;
	}
}

/* --------------------------------------------------------------- socket */

/* Creates the directories above path (mode 0755) that are missing. Returns
 * 0, or -1 with the reason in err. */
static int server_mkdir_parent(const char *path, char *err, size_t errlen)
{
	char dir[SUN_PATH_MAX];
	struct stat st;

	snprintf(dir, sizeof dir, "%s", path);
	for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	/* The last component's directory must now be a directory. */
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s is not a directory", dir);
			return -1;
		}
	}
	return 0;
}

/* Clears a stale socket at path: only a socket on which nothing answers is
 * removed. Returns 0 (path free), or -1 with the reason in err. */
static int server_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc, e;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		snprintf(err, errlen, "another broker is running at %s", path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		snprintf(err, errlen, "%s: %s; not removing it", path, strerror(e));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The socket appears at its path only once it accepts connections:
 * parent directory created if missing (0755), stale socket cleared (a live
 * broker there is refused), then umask, bind to PATH.tmp-<pid>, chmod 0660,
 * listen, and rename() onto PATH. The same uid can always connect; group
 * members too when the directory lets them.
 */
int server_listen(struct server *s, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };
	const char *path = s->socket_path;
	struct stat st;
	mode_t old;
	int fd, n;

	if (!path[0]) {
		snprintf(err, errlen, "no socket path");
		return -1;
	}
	n = snprintf(sun.sun_path, sizeof sun.sun_path, "%s.tmp-%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof sun.sun_path) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	if (server_mkdir_parent(path, err, errlen) < 0 || server_clear_stale(path, err, errlen) < 0)
		return -1;
	unlink(sun.sun_path); /* left by a crashed broker with our pid */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0117);
	n = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (n < 0) {
		snprintf(err, errlen, "bind %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(sun.sun_path, 0660) < 0 || listen(fd, SERVER_BACKLOG) < 0 ||
	    rename(sun.sun_path, path) < 0 || lstat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(sun.sun_path);
		close(fd);
		return -1;
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	s->lfd = fd;
	s->socket_owned = true;
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

struct server *server_new(const struct server_config *cfg, char *err, size_t errlen)
{
	struct itimerspec its = { .it_interval = { SERVER_TICK_S, 0 },
				  .it_value = { SERVER_TICK_S, 0 } };
	struct epoll_event ev = { .events = EPOLLIN };
	struct server *s = calloc(1, sizeof *s);
	struct transport_ops ops = { .ctx = s, .answer = on_answer, .audit = on_audit,
				     .addr_ok = on_addr_ok, .resolve = on_resolve };

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->epfd = s->lfd = s->sigfd = s->timerfd = s->reserve_fd = -1;
	stats_init(&s->stats);
	audit_init(&s->audit);
	s->next_serial = TAG_FIRST_CLIENT;
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
	s->addrmap = addrmap_new(ADDRMAP_PER_PID_MAX);
	s->synth = synth_new(SYNTH_PER_PID_MAX);
	if (!s->addrmap || !s->synth) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->epfd < 0 || s->timerfd < 0 || timerfd_settime(s->timerfd, 0, &its, NULL) < 0) {
		snprintf(err, errlen, "epoll/timerfd: %s", strerror(errno));
		goto fail;
	}
	ev.data.u64 = TAG_TIMER;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->timerfd, &ev) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		goto fail;
	}
	s->resolver = resolver_new(RESOLVER_THREADS, cfg->lookup);
	if (!s->resolver) {
		snprintf(err, errlen, "cannot start the resolver threads");
		goto fail;
	}
	ev.data.u64 = TAG_RESOLVER;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, resolver_fd(s->resolver), &ev) < 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		goto fail;
	}
	s->transport = transport_new(s->epfd, &ops);
	if (!s->transport) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return s;
fail:
	server_free(s);
	return NULL;
}

void server_free(struct server *s)
{
	struct client *c, *tmp;
	struct stat st;

	if (!s)
		return;
	transport_free(s->transport);
	s->transport = NULL;
	HASH_ITER(hh, s->clients, c, tmp)
		client_close(s, c);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->socket_owned && lstat(s->socket_path, &st) == 0 && st.st_dev == s->sock_dev &&
	    st.st_ino == s->sock_ino)
		unlink(s->socket_path);
	resolver_free(s->resolver);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->timerfd >= 0)
		close(s->timerfd);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	if (s->epfd >= 0)
		close(s->epfd);
	audit_close(&s->audit);
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
	struct epoll_event ev[SERVER_EVENTS];
	struct client *c;
	uint64_t ticks;
	int n;

	n = epoll_wait(s->epfd, ev, SERVER_EVENTS, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return s->stop ? 1 : 0;
		log_error("epoll_wait: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;

		switch (tag) {
		case TAG_LISTEN:
			server_accept(s);
			break;
		case TAG_SIGNAL:
			server_signal(s);
			break;
		case TAG_TIMER:
			if (read(s->timerfd, &ticks, sizeof ticks) > 0) {
				transport_tick(s->transport);
				audit_check(&s->audit);
				s->ticks += (unsigned)ticks;
				if (s->ticks >= SERVER_GC_S / SERVER_TICK_S) {
					s->ticks = 0;
					server_gc(s);
				}
			}
			break;
		case TAG_RESOLVER:
			server_resolved(s);
			break;
		default:
			if (tag & TRANSPORT_TAG) {
				transport_event(s->transport, tag, ev[i].events);
				break;
			}
			/* Looked up by serial: a client closed earlier in this batch
			 * is simply not found. */
			HASH_FIND(hh, s->clients, &tag, sizeof tag, c);
			if (!c)
				break;
			if (ev[i].events & EPOLLIN)
				client_readable(s, c);
			else if (ev[i].events & (EPOLLHUP | EPOLLERR))
				client_close(s, c);
			break;
		}
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
