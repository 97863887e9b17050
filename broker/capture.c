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

#include <linux/netlink.h>

#include "broker.h"

/* The redirected connection's destination (linux/netfilter_ipv4.h and
 * linux/netfilter_ipv6/ip6_tables.h, which clash with netinet/in.h). */
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

#define CAPTURE_ACCEPTS 64 /* connections taken per wake-up */
#define CAPTURE_UID_EXTENTS 16 /* lines of the sandbox's uid_map kept */

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
	struct capture_sock socks[SANDBOX_CAPTURE_SOCKS];
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

/* Finds the process of network namespace (ns_dev, ns_ino) holding socket
 * inode. Returns its pid (as the broker sees it) with its executable in
 * exe, or 0. */
static pid_t socket_owner(dev_t ns_dev, ino_t ns_ino, unsigned long inode, char *exe,
			  size_t cap_len)
{
	char want[48], path[300], link[64];
	DIR *proc;
	struct dirent *p;
	pid_t found = 0;

	if (!inode)
		return 0;
	snprintf(want, sizeof want, "socket:[%lu]", inode);
	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!found && (p = readdir(proc))) {
		pid_t pid = (pid_t)strtol(p->d_name, NULL, 10);
		dev_t dev;
		ino_t ino;
		DIR *fds;
		struct dirent *e;

		if (pid <= 0 || capture_netns(pid, &dev, &ino) < 0 || dev != ns_dev || ino != ns_ino)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((e = readdir(fds))) {
			ssize_t n;

			snprintf(path, sizeof path, "/proc/%ld/fd/%s", (long)pid, e->d_name);
			n = readlink(path, link, sizeof link - 1);
			if (n > 0 && (link[n] = 0, strcmp(link, want) == 0)) {
				found = pid;
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	exe[0] = 0;
	if (found) {
		ssize_t n;

		snprintf(path, sizeof path, "/proc/%ld/exe", (long)found);
		n = readlink(path, exe, cap_len - 1);
		exe[n > 0 ? n : 0] = 0;
	}
	return found;
}

pid_t capture_owner(pid_t proc_pid, dev_t ns_dev, ino_t ns_ino, const struct sockaddr *peer,
		    bool stream, char *exe, size_t cap)
{
	struct proto_addr a;
	uint16_t port;

	exe[0] = 0;
	if (proto_addr_from_sockaddr(peer, peer->sa_family, &a, &port) < 0)
		return 0;
	return socket_owner(ns_dev, ns_ino, socket_inode(proc_pid, &a, port, stream), exe, cap);
}

/* -------------------------------------------------------------- sockets */

/* Where the redirected connection fd was going. Returns 0 or -1. */
static int original_dst(int fd, int family, struct proto_addr *a, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (family == AF_INET ? getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len)
			      : getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len))
		return -1;
	if (proto_addr_from_sockaddr((struct sockaddr *)&ss, ss.ss_family, a, port) < 0)
		return -1;
	policy_addr_canonical(a);
	return 0;
}

/* The listener's handler: takes each waiting connection, finds where it
 * was going and who made it, and gives it to the sink (which owns it). */
static void capture_accept(struct capture_sock *cs)
{
	struct capture *cap = cs->cap;

	for (int i = 0; i < CAPTURE_ACCEPTS; i++) {
		struct sockaddr_storage peer;
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
		if (original_dst(fd, peer.ss_family, &k.dst, &k.port) < 0) {
			log_warn("captured connection: no original destination: %s", strerror(errno));
			close(fd);
			continue;
		}
		k.pid = capture_owner(cap->pid, cap->ns_dev, cap->ns_ino, (struct sockaddr *)&peer,
				      true, k.exe, sizeof k.exe);
		k.ns_pid = cap->pid;
		cap->sink.connection(cap->sink.ctx, &k);
	}
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
		q.pid = capture_owner(cap->pid, cap->ns_dev, cap->ns_ino, (struct sockaddr *)&q.from,
				      false, q.exe, sizeof q.exe);
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
	return inode ? socket_owner(cap->ns_dev, cap->ns_ino, inode, exe, len) : 0;
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
	for (int i = 0; i < SANDBOX_CAPTURE_SOCKS; i++) {
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
	for (int i = 0; i < SANDBOX_CAPTURE_SOCKS; i++) {
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
	return cap;
}

void capture_free(struct capture *cap)
{
	if (!cap)
		return;
	nflog_free(cap->nflog);
	for (int i = 0; i < SANDBOX_CAPTURE_SOCKS; i++) {
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
