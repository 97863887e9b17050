/* capture.c: the broker's side of isolation mode. The sandbox (sandbox.c)
 * hands over sockets that live in the isolated network namespace: TCP
 * listeners that every outbound connection there is redirected to, and UDP
 * sockets that every DNS query there is redirected to. This file accepts
 * and reads them in the broker's loop, recovers where each connection was
 * going (SO_ORIGINAL_DST) and which process made it (the socket's inode,
 * looked up in the namespace's /proc), and hands each to the server, which
 * judges it with the same policy as a shim's request. The packets the
 * namespace drops come with the NFLOG socket, which nflog.c reads; this
 * file names their senders. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "broker.h"

/* The redirected connection's destination (linux/netfilter_ipv4.h and
 * linux/netfilter_ipv6/ip6_tables.h, which clash with netinet/in.h). */
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

#define CAPTURE_ACCEPTS 64 /* connections taken per wake-up */
#define CAPTURE_UID_EXTENTS 16 /* lines of the sandbox's uid_map kept */
#define CAPTURE_TREE_MAX 65536 /* processes of a namespace looked through by its tree */

struct capture;

/* One captured socket and what it serves. */
struct capture_sock {
	struct watch w;
	struct capture *cap;
	bool stream; /* a listener; else a DNS socket */
};

struct capture {
	struct loop *loop;
	struct capture_sink sink;
	pid_t pid;           /* the sandbox (PID 1 inside), as the broker sees it */
	dev_t ns_dev;        /* its network namespace */
	ino_t ns_ino;
	struct capture_sock socks[SANDBOX_LISTEN_SOCKS];
	int diag;            /* a NETLINK_SOCK_DIAG socket in the namespace */
	struct nflog *nflog; /* the packets the namespace drops, NULL when not read */
	struct {
		unsigned long in, out, count;
	} uids[CAPTURE_UID_EXTENTS]; /* its uid_map, read while the sandbox lives */
	int nuids;
	unsigned long connections, queries; /* taken so far */
};

/* Reads the identity of pid's network namespace. Returns 0 or -1. */
int capture_netns(pid_t pid, dev_t *dev, ino_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof path, "/proc/%ld/ns/net", (long)pid);
	if (stat(path, &st) < 0)
		return -1;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/* ------------------------------------------------------------ attribution */

/* The inode of the socket in table (a /proc/net file) whose local address
 * is want (as the kernel prints it) and that is not listening; 0 none. */
static unsigned long table_inode(pid_t proc_pid, const char *table, const char *want, bool stream)
{
	char path[64], line[512];
	unsigned long inode = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/net/%s", (long)proc_pid, table);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!inode && fgets(line, sizeof line, f)) {
		char local[64], remote[64];
		unsigned st;
		unsigned long ino;

		if (sscanf(line, " %*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &ino) ==
			    4 &&
		    strcmp(local, want) == 0 && (!stream || st != 0x0A /* LISTEN */))
			inode = ino;
	}
	fclose(f);
	return inode;
}

/* Reads an address as /proc/net/{udp,udp6} print it ("0100007F:0035":
 * each 32-bit word in host order as hex, then the port); an IPv4-mapped
 * one as the IPv4 address it carries. Returns 0 or -1. */
static int proc_addr_parse(const char *text, struct proto_addr *a, uint16_t *port)
{
	unsigned w[4] = { 0 }, p;
	size_t hex = strcspn(text, ":");

	memset(a, 0, sizeof *a);
	if (hex == 8 && sscanf(text, "%8x:%4x", &w[0], &p) == 2)
		a->family = 4;
	else if (hex == 32 && sscanf(text, "%8x%8x%8x%8x:%4x", &w[0], &w[1], &w[2], &w[3], &p) == 5)
		a->family = 6;
	else
		return -1;
	for (int i = 0; i < 4; i++) {
		uint32_t word = w[i];

		memcpy(a->bytes + 4 * i, &word, 4);
	}
	*port = (uint16_t)p;
	proto_addr_unmap(a);
	return 0;
}

/* The peer of table's (a /proc/net file of proc_pid's namespace) socket
 * bound to a:port when it is connected, in *peer and *peer_port. Returns 0,
 * or -1 when there is no such socket or it is not connected. */
static int table_peer(pid_t proc_pid, const char *table, const struct proto_addr *a,
		      uint16_t port, struct proto_addr *peer, uint16_t *peer_port)
{
	char path[64], line[512];
	int found = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/net/%s", (long)proc_pid, table);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (found < 0 && fgets(line, sizeof line, f)) {
		char local[64], remote[64];
		struct proto_addr la;
		uint16_t lp;
		unsigned st;

		if (sscanf(line, " %*d: %63s %63s %x", local, remote, &st) == 3 &&
		    st == 1 /* TCP_ESTABLISHED: a connected datagram socket */ &&
		    proc_addr_parse(local, &la, &lp) == 0 && lp == port && la.family == a->family &&
		    memcmp(la.bytes, a->bytes, a->family == 4 ? 4 : 16) == 0 &&
		    proc_addr_parse(remote, peer, peer_port) == 0)
			found = 0;
	}
	fclose(f);
	return found;
}

int capture_udp_peer(pid_t proc_pid, const struct proto_addr *a, uint16_t port, bool udplite,
		     struct proto_addr *peer, uint16_t *peer_port)
{
	/* an IPv4 address may be a dual-stack socket's, in the IPv6 table */
	if (a->family == 4 &&
	    table_peer(proc_pid, udplite ? "udplite" : "udp", a, port, peer, peer_port) == 0)
		return 0;
	return table_peer(proc_pid, udplite ? "udplite6" : "udp6", a, port, peer, peer_port);
}

/* Finds in the /proc/net/{tcp,udp}{,6} of proc_pid's namespace the inode of
 * the socket bound to a:port (the peer of what we accepted or received). A
 * dual-stack socket's IPv4 address is in the IPv6 table, mapped; a
 * datagram socket that never bound is listed with the wildcard address
 * (0.0.0.0, or :: for an IPv6 socket, which also sends from IPv4). Returns
 * it, or 0 when not found. */
static unsigned long socket_inode(pid_t proc_pid, const struct proto_addr *a, uint16_t port,
				  bool stream)
{
	const char *v4 = stream ? "tcp" : "udp", *v6 = stream ? "tcp6" : "udp6";
	char want[48];
	unsigned long inode;
	uint32_t w[4];

	/* each 32-bit word in host order as hex, then the port */
	memcpy(w, a->bytes, 16);
	if (a->family == 4)
		snprintf(want, sizeof want, "%08X:%04X", w[0], port);
	else
		snprintf(want, sizeof want, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3], port);
	inode = table_inode(proc_pid, a->family == 4 ? v4 : v6, want, stream);
	if (!inode && a->family == 4) { /* a dual-stack socket, in the mapped form */
		snprintf(want, sizeof want, "%08X%08X%08X%08X:%04X", 0, 0, htonl(0xffff), w[0], port);
		inode = table_inode(proc_pid, v6, want, stream);
	}
	if (inode || stream)
		return inode;
	snprintf(want, sizeof want, "%08X:%04X", 0, port);
	if ((inode = table_inode(proc_pid, v4, want, false)))
		return inode;
	snprintf(want, sizeof want, "%032X:%04X", 0, port);
	return table_inode(proc_pid, v6, want, false);
}

/* Asks sock_diag socket diag (of the namespace) for the TCP socket whose
 * own address is local and whose peer is remote (as that socket sees them:
 * for a redirected connection, where it was going), an exact lookup in
 * the kernel's hash. Returns 1 with its inode in *inode (0 when it has no
 * owner any more, such as in TIME_WAIT), 0 when the kernel knows no such
 * socket, -1 when the question could not be asked or read. */
int capture_diag_inode(int diag, const struct sockaddr *local, const struct sockaddr *remote,
		       unsigned long *inode)
{
	static uint32_t seq;
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = { .nh = { .nlmsg_len = sizeof req, .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			  .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = ++seq },
		  .r = { .sdiag_family = (uint8_t)local->sa_family, .sdiag_protocol = IPPROTO_TCP,
			 .idiag_states = ~0u,
			 .id.idiag_cookie = { INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE } } };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	union {
		struct nlmsghdr nh;
		char buf[8192];
	} rep;
	struct inet_diag_sockid *id = &req.r.id;

	if (local->sa_family != remote->sa_family)
		return errno = EAFNOSUPPORT, -1;
	if (local->sa_family == AF_INET) {
		const struct sockaddr_in *l = (const void *)local, *r = (const void *)remote;

		id->idiag_sport = l->sin_port, id->idiag_dport = r->sin_port;
		memcpy(id->idiag_src, &l->sin_addr, 4), memcpy(id->idiag_dst, &r->sin_addr, 4);
	} else if (local->sa_family == AF_INET6) {
		const struct sockaddr_in6 *l = (const void *)local, *r = (const void *)remote;

		id->idiag_sport = l->sin6_port, id->idiag_dport = r->sin6_port;
		memcpy(id->idiag_src, &l->sin6_addr, 16), memcpy(id->idiag_dst, &r->sin6_addr, 16);
	} else {
		return errno = EAFNOSUPPORT, -1;
	}
	if (sendto(diag, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
		return -1;
	/* the kernel answers while it takes the question: the answer is there */
	for (;;) {
		ssize_t n = recv(diag, &rep, sizeof rep, MSG_DONTWAIT);

		if (n < 0)
			return -1;
		size_t left = (size_t)n;

		/* NLMSG_OK and NLMSG_NEXT, with the lengths unsigned throughout */
		for (struct nlmsghdr *h = &rep.nh;
		     left >= sizeof *h && h->nlmsg_len >= sizeof *h && h->nlmsg_len <= left;
		     left -= NLMSG_ALIGN(h->nlmsg_len) < left ? NLMSG_ALIGN(h->nlmsg_len) : left,
				     h = (struct nlmsghdr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len))) {
			if (h->nlmsg_seq != req.nh.nlmsg_seq)
				continue; /* an answer to a question given up on */
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e))
					return errno = EPROTO, -1;
				if (e->error == -ENOENT)
					return 0;
				return errno = -e->error, -1;
			}
			if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
				const struct inet_diag_msg *m = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m))
					return errno = EPROTO, -1;
				/* no connection of these addresses, but a listener on
				 * the first: not the socket that connected */
				if (m->idiag_state == 10 /* TCP_LISTEN */ ||
				    m->id.idiag_sport != id->idiag_sport ||
				    m->id.idiag_dport != id->idiag_dport)
					return 0;
				*inode = m->idiag_inode;
				return 1;
			}
		}
	}
}

/* Called, when set, between finding a process that holds the socket and
 * reading its executable: the unit tests' way into that window. */
void (*capture_window)(pid_t pid);

/* Calls fn(fd, name, ctx) for each entry of the directory open at fd but
 * "." and "..", until fn returns true. Returns true so, false at the end
 * (read with getdents64 itself: no DIR, no system calls of its own). */
static bool dir_find(int fd, bool (*fn)(int fd, const char *name, void *ctx), void *ctx)
{
	union {
		struct dirent64 align;
		char b[4096];
	} buf;
	ssize_t n;

	while ((n = getdents64(fd, buf.b, sizeof buf.b)) > 0)
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *e = (const void *)(buf.b + off);

			off += e->d_reclen;
			if (e->d_name[0] != '.' && fn(fd, e->d_name, ctx))
				return true;
		}
	return false;
}

/* dir_find's fn: true when the descriptor name of fds links to ctx. */
static bool fd_is(int fds, const char *name, void *ctx)
{
	char link[64];
	ssize_t n = readlinkat(fds, name, link, sizeof link - 1);

	return n > 0 && (link[n] = 0, strcmp(link, ctx) == 0);
}

/* True when the process of dir (its /proc/PID, open) is in network
 * namespace (ns_dev, ns_ino) and has a descriptor on the socket want
 * ("socket:[INODE]"). Every read goes through dir: a process that ends
 * meanwhile fails them, even when another takes its pid. */
static bool proc_holds(int dir, dev_t ns_dev, ino_t ns_ino, const char *want)
{
	struct stat st;
	bool held;
	int fds;

	if (fstatat(dir, "ns/net", &st, 0) < 0 || st.st_dev != ns_dev || st.st_ino != ns_ino)
		return false;
	fds = openat(dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fds < 0)
		return false;
	held = dir_find(fds, fd_is, (void *)want);
	close(fds);
	return held;
}

/* The executable of process pid into exe when it is in network namespace
 * (ns_dev, ns_ino) and holds the socket want. Returns true so, with both
 * read from the same process. */
static bool proc_owner(pid_t pid, dev_t ns_dev, ino_t ns_ino, const char *want, char *exe,
		       size_t len)
{
	char path[32];
	ssize_t n = -1;
	int dir;

	snprintf(path, sizeof path, "/proc/%ld", (long)pid);
	dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return false;
	if (proc_holds(dir, ns_dev, ns_ino, want)) {
		if (capture_window)
			capture_window(pid);
		n = readlinkat(dir, "exe", exe, len - 1);
	}
	close(dir);
	exe[n > 0 ? n : 0] = 0;
	return n > 0; /* no executable: it ended (or is ending); another may hold it */
}

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* A list of pids being made. */
struct pids {
	pid_t *v;
	size_t n, cap;
	bool whole; /* false once one could not be read, or did not fit */
};

/* dir_find's fn: appends the children of thread name of tasks (a
 * /proc/PID/task) to ctx, a struct pids. */
static bool task_children(int tasks, const char *name, void *ctx)
{
	struct pids *l = ctx;
	char path[300], buf[4096];
	size_t got = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof path, "%s/children", name);
	if ((fd = openat(tasks, path, O_RDONLY | O_CLOEXEC)) < 0)
		return false; /* the thread ended: its children are another's now */
	while (got < sizeof buf - 1 && (r = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	buf[got] = 0;
	if (got == sizeof buf - 1)
		return !(l->whole = false); /* more children than we read */
	for (char *p = buf, *end;; p = end) {
		long c = strtol(p, &end, 10);

		if (end == p)
			break;
		if (l->n == l->cap) {
			size_t m = l->cap ? l->cap * 2 : 64;
			pid_t *g = m <= CAPTURE_TREE_MAX ? realloc(l->v, m * sizeof *g) : NULL;

			if (!g)
				return !(l->whole = false);
			l->v = g, l->cap = m;
		}
		l->v[l->n++] = (pid_t)c;
	}
	return false;
}

/* The pids of root and its descendants (the processes of the PID
 * namespace root is the first of), lowest first, in l. Returns true, or
 * false when they could not all be read. */
static bool tree_pids(pid_t root, struct pids *l)
{
	size_t w = 0;

	l->n = 0;
	l->whole = true;
	if (!l->cap && !(l->v = malloc(64 * sizeof *l->v)))
		return false;
	if (!l->cap)
		l->cap = 64;
	l->v[l->n++] = root;
	for (size_t i = 0; i < l->n && l->whole; i++) {
		char path[32];
		int tasks;

		snprintf(path, sizeof path, "/proc/%ld/task", (long)l->v[i]);
		if ((tasks = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			continue; /* it ended: its children are another's now */
		dir_find(tasks, task_children, l);
		close(tasks);
	}
	if (!l->whole)
		return false;
	qsort(l->v, l->n, sizeof *l->v, pid_cmp);
	for (size_t i = 0; i < l->n; i++) /* a process seen twice, moved while read */
		if (w == 0 || l->v[i] != l->v[w - 1])
			l->v[w++] = l->v[i];
	l->n = w;
	return true;
}

/* The holder of socket inode: the sandbox's tree first (a handful of
 * processes), then, when none there holds it, every process on the host
 * (the old way, which a process that entered the namespace from outside,
 * or one moved while the tree was read, needs). */
pid_t capture_inode_owner(pid_t root, bool everywhere, dev_t ns_dev, ino_t ns_ino,
			  unsigned long inode, char *exe, size_t len)
{
	static struct pids tree; /* kept, to be reused */
	char want[48];
	DIR *proc;
	struct dirent *p;

	exe[0] = 0;
	if (!inode)
		return 0;
	snprintf(want, sizeof want, "socket:[%lu]", inode);
	if (root > 0 && tree_pids(root, &tree))
		for (size_t i = 0; i < tree.n; i++)
			if (proc_owner(tree.v[i], ns_dev, ns_ino, want, exe, len))
				return tree.v[i];
	/* not in the tree: held by a process that joined the namespace from
	 * outside it, or moved while the tree was read */
	if (!everywhere || !(proc = opendir("/proc")))
		return 0;
	while ((p = readdir(proc))) {
		pid_t pid = (pid_t)strtol(p->d_name, NULL, 10);

		if (pid > 0 && proc_owner(pid, ns_dev, ns_ino, want, exe, len)) {
			closedir(proc);
			return pid;
		}
	}
	closedir(proc);
	return 0;
}

bool capture_holds(pid_t pid, dev_t ns_dev, ino_t ns_ino, const struct sockaddr *local)
{
	struct proto_addr a;
	uint16_t port;
	unsigned long inode;
	char want[48], exe[PATH_MAX];

	if (proto_addr_from_sockaddr(local, local->sa_family, &a, &port) < 0 ||
	    !(inode = socket_inode(pid, &a, port, false)))
		return false;
	snprintf(want, sizeof want, "socket:[%lu]", inode);
	return proc_owner(pid, ns_dev, ns_ino, want, exe, sizeof exe);
}

pid_t capture_owner(pid_t proc_pid, dev_t ns_dev, ino_t ns_ino, const struct sockaddr *peer,
		    bool stream, char *exe, size_t cap)
{
	struct proto_addr a;
	uint16_t port;

	exe[0] = 0;
	if (proto_addr_from_sockaddr(peer, peer->sa_family, &a, &port) < 0)
		return 0;
	return capture_inode_owner(0, true, ns_dev, ns_ino, socket_inode(proc_pid, &a, port, stream),
				   exe, cap);
}

/* -------------------------------------------------------------- sockets */

/* Where the redirected connection fd was going, as it was asked (in ss)
 * and canonical (a, port). Returns 0 or -1. */
static int original_dst(int fd, int family, struct sockaddr_storage *ss, struct proto_addr *a,
			uint16_t *port)
{
	socklen_t len = sizeof *ss;

	if (family == AF_INET ? getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, &len)
			      : getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ss, &len))
		return -1;
	if (proto_addr_from_sockaddr((struct sockaddr *)ss, ss->ss_family, a, port) < 0)
		return -1;
	policy_addr_canonical(a);
	return 0;
}

/* The process of the namespace that made the connection accepted from
 * peer to dst: the socket's inode by its four addresses (sock_diag), or,
 * when that cannot be asked, by its address in the namespace's
 * /proc/net/tcp; then its holder among the namespace's processes. Returns
 * its pid with its executable in exe, or 0. */
static pid_t capture_conn_owner(const struct capture *cap, const struct sockaddr *peer,
				const struct sockaddr *dst, char *exe, size_t len)
{
	unsigned long inode = 0;
	struct proto_addr a;
	uint16_t port;

	exe[0] = 0;
	if (capture_diag_inode(cap->diag, peer, dst, &inode) < 0) {
		if (proto_addr_from_sockaddr(peer, peer->sa_family, &a, &port) < 0)
			return 0;
		inode = socket_inode(cap->pid, &a, port, true);
	}
	return capture_inode_owner(cap->pid, true, cap->ns_dev, cap->ns_ino, inode, exe, len);
}

/* The listener's handler: takes each waiting connection, finds where it
 * was going and who made it, and gives it to the sink (which owns it). */
static void capture_accept(struct capture_sock *cs)
{
	struct capture *cap = cs->cap;

	for (int i = 0; i < CAPTURE_ACCEPTS; i++) {
		struct sockaddr_storage peer, dst;
		socklen_t plen = sizeof peer;
		struct capture_conn k = { .fd = -1 };
		int fd = accept4(cs->w.fd, (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		cap->connections++;
		k.fd = fd;
		if (original_dst(fd, peer.ss_family, &dst, &k.dst, &k.port) < 0) {
			log_warn("captured connection: no original destination: %s", strerror(errno));
			close(fd);
			continue;
		}
		k.pid = capture_conn_owner(cap, (struct sockaddr *)&peer, (struct sockaddr *)&dst, k.exe,
					   sizeof k.exe);
		k.ns_pid = cap->pid;
		cap->sink.connection(cap->sink.ctx, &k);
	}
}

/* The process of the namespace whose UDP socket sent from, by its address
 * in the namespace's /proc/net/udp. Returns its pid with its executable in
 * exe, or 0. */
static pid_t capture_query_owner(const struct capture *cap, const struct sockaddr *from, char *exe,
				 size_t len)
{
	struct proto_addr a;
	uint16_t port;

	exe[0] = 0;
	if (proto_addr_from_sockaddr(from, from->sa_family, &a, &port) < 0)
		return 0;
	return capture_inode_owner(cap->pid, true, cap->ns_dev, cap->ns_ino,
				   socket_inode(cap->pid, &a, port, false), exe, len);
}

/* A DNS socket's handler: each query goes to the sink with a way back. */
static void capture_query(struct capture_sock *cs)
{
	struct capture *cap = cs->cap;

	for (int i = 0; i < CAPTURE_ACCEPTS; i++) {
		struct capture_query q = { .fd = cs->w.fd };
		ssize_t n;

		q.fromlen = sizeof q.from;
		n = recvfrom(cs->w.fd, q.buf, sizeof q.buf, MSG_DONTWAIT, (struct sockaddr *)&q.from,
			     &q.fromlen);
		if (n < 0)
			return;
		cap->queries++;
		q.len = (size_t)n;
		q.pid = capture_query_owner(cap, (struct sockaddr *)&q.from, q.exe, sizeof q.exe);
		q.ns_pid = cap->pid;
		cap->sink.query(cap->sink.ctx, &q);
	}
}

/* ------------------------------------------------------ dropped packets */

/* Keeps the sandbox's uid_map (its user namespace's uids, as the broker's
 * numbers them), read once: the sandbox may be gone when its last packets
 * are read. */
static void capture_read_uid_map(struct capture *cap)
{
	char path[64], line[128];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/uid_map", (long)cap->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (cap->nuids < CAPTURE_UID_EXTENTS && fgets(line, sizeof line, f)) {
		unsigned long in, out, count;

		if (sscanf(line, "%lu %lu %lu", &in, &out, &count) == 3)
			cap->uids[cap->nuids].in = in, cap->uids[cap->nuids].out = out,
			cap->uids[cap->nuids++].count = count;
	}
	fclose(f);
}

/* uid of the namespace's user namespace as the broker numbers it;
 * (uid_t)-1 when it maps to none. */
static uid_t capture_uid(const struct capture *cap, uint32_t uid)
{
	for (int i = 0; i < cap->nuids; i++)
		if (uid >= cap->uids[i].in && uid - cap->uids[i].in < cap->uids[i].count)
			return (uid_t)(cap->uids[i].out + (uid - cap->uids[i].in));
	return (uid_t)-1;
}

/* nflog's owner: the process of the namespace whose socket sent p, found
 * by its source port for UDP and TCP (a dual-stack socket's IPv4 packets
 * in the IPv6 table); other protocols are not attributed (pid 0). */
static pid_t capture_sender(void *ctx, const struct nflog_packet *p, uid_t *uid, char *exe,
			    size_t len)
{
	const struct capture *cap = ctx;
	unsigned long inode = 0;

	exe[0] = 0;
	if (p->has_uid)
		*uid = capture_uid(cap, p->uid);
	if (p->ipproto == IPPROTO_UDP || p->ipproto == IPPROTO_TCP) {
		bool stream = p->ipproto == IPPROTO_TCP;

		inode = socket_inode(cap->pid, &p->src, p->sport, stream);
	}
	return inode ? capture_inode_owner(cap->pid, true, cap->ns_dev, cap->ns_ino, inode, exe, len)
		     : 0;
}

static void capture_dropped(void *ctx, struct audit_event *ev)
{
	const struct capture *cap = ctx;

	cap->sink.dropped(cap->sink.ctx, cap->pid, ev);
}

static void capture_dropped_count(void *ctx, const struct nflog_counts *n)
{
	const struct capture *cap = ctx;

	cap->sink.dropped_count(cap->sink.ctx, n);
}

static void capture_event(void *ctx, uint32_t events)
{
	struct capture_sock *cs = ctx;

	(void)events;
	if (cs->stream)
		capture_accept(cs);
	else
		capture_query(cs);
}

/* True when socket fd lives in the network namespace dev/ino (SIOCGSKNS
 * gives that namespace; the broker holds CAP_NET_ADMIN over a sandbox's,
 * as root or as the owner of its user namespace). */
static bool socket_in_netns(int fd, dev_t dev, ino_t ino)
{
	struct stat st;
	int ns = ioctl(fd, SIOCGSKNS);
	bool same;

	if (ns < 0)
		return false;
	same = fstat(ns, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
	close(ns);
	return same;
}

struct capture *capture_new(struct loop *l, const int fds[SANDBOX_CAPTURE_FDS], pid_t pid,
			    const struct capture_sink *sink, char *err, size_t errlen)
{
	struct capture *cap = calloc(1, sizeof *cap);
	int nfl = fds[SANDBOX_NFLOG_FD], v = 0;
	socklen_t vl = sizeof v;

	if (!cap) {
		for (int i = 0; i < SANDBOX_CAPTURE_FDS; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cap->loop = l;
	cap->sink = *sink;
	cap->pid = pid;
	cap->diag = fds[SANDBOX_DIAG_FD];
	for (int i = 0; i < SANDBOX_LISTEN_SOCKS; i++) {
		watch_init(&cap->socks[i].w, fds[i], capture_event, &cap->socks[i]);
		cap->socks[i].cap = cap;
	}
	if (nfl >= 0 && (getsockopt(nfl, SOL_SOCKET, SO_PROTOCOL, &v, &vl) < 0 ||
			 v != NETLINK_NETFILTER)) {
		close(nfl); /* not the NFLOG socket */
		snprintf(err, errlen, "the NFLOG descriptor is not a netfilter netlink socket");
		capture_free(cap);
		return NULL;
	}
	if (capture_netns(pid, &cap->ns_dev, &cap->ns_ino) < 0) {
		snprintf(err, errlen, "cannot read the network namespace of pid %ld: %s", (long)pid,
			 strerror(errno));
		if (nfl >= 0)
			close(nfl);
		capture_free(cap);
		return NULL;
	}
	capture_read_uid_map(cap);
	if (nfl >= 0) {
		struct nflog_sink ns = { .ctx = cap, .owner = capture_sender, .record = capture_dropped,
					 .count = capture_dropped_count };

		cap->nflog = nflog_new(l, nfl, &ns); /* owns nfl */
		if (!cap->nflog) {
			snprintf(err, errlen, "NFLOG: %s", strerror(errno));
			capture_free(cap);
			return NULL;
		}
	}
	for (int i = 0; i < SANDBOX_LISTEN_SOCKS; i++) {
		int fd = fds[i], type = 0;
		socklen_t tl = sizeof type;

		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) {
			snprintf(err, errlen, "capture socket %d is not a socket: %s", i, strerror(errno));
			capture_free(cap);
			return NULL;
		}
		if (!socket_in_netns(fd, cap->ns_dev, cap->ns_ino)) {
			snprintf(err, errlen, "capture socket %d is not in the sandbox's network namespace",
				 i);
			capture_free(cap);
			return NULL;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
		    loop_watch(l, &cap->socks[i].w, EPOLLIN) < 0) {
			snprintf(err, errlen, "capture socket %d: %s", i, strerror(errno));
			capture_free(cap);
			return NULL;
		}
		cap->socks[i].stream = type == SOCK_STREAM;
	}
	vl = sizeof v;
	if (getsockopt(cap->diag, SOL_SOCKET, SO_DOMAIN, &v, &vl) < 0 || v != AF_NETLINK ||
	    getsockopt(cap->diag, SOL_SOCKET, SO_PROTOCOL, &v, &vl) < 0 || v != NETLINK_SOCK_DIAG ||
	    !socket_in_netns(cap->diag, cap->ns_dev, cap->ns_ino)) {
		snprintf(err, errlen, "descriptor %d is not a sock_diag socket in the sandbox's network "
				      "namespace", SANDBOX_DIAG_FD);
		capture_free(cap);
		return NULL;
	}
	return cap;
}

void capture_free(struct capture *cap)
{
	if (!cap)
		return;
	nflog_free(cap->nflog);
	if (cap->diag >= 0)
		close(cap->diag);
	for (int i = 0; i < SANDBOX_LISTEN_SOCKS; i++) {
		if (cap->socks[i].w.fd < 0)
			continue;
		loop_unwatch(cap->loop, &cap->socks[i].w);
		close(cap->socks[i].w.fd);
	}
	free(cap);
}

bool capture_owns_netns(const struct capture *cap, dev_t dev, ino_t ino)
{
	return cap && cap->ns_dev == dev && cap->ns_ino == ino;
}

pid_t capture_pid(const struct capture *cap)
{
	return cap->pid;
}

void capture_counts(const struct capture *cap, unsigned long *connections, unsigned long *queries)
{
	*connections = cap ? cap->connections : 0;
	*queries = cap ? cap->queries : 0;
}
