/* check_capture.c: unit tests of broker/capture.c's attribution, on real
 * processes and sockets of this namespace: the socket of a connection by
 * its four addresses (sock_diag), and the process that holds a socket
 * among a sandbox's tree (forked children, orphans, threads' children, a
 * process that changed uid, many processes) and then the host's; a
 * process that ends between holding and being read is never named, nor
 * is the one that takes its pid; the peer of a connected datagram socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

#define MANY 100 /* processes in the tree of test_capture_inode_owner_many */

/* What a holder tells the test: who holds which socket. */
struct held {
	pid_t pid;
	unsigned long inode;
};

static dev_t ns_dev;
static ino_t ns_ino;
static char self_exe[PATH_MAX];
static pid_t started[4 * MANY]; /* every process a test started or was told of */
static int nstarted;

static void started_add(pid_t pid)
{
	if (nstarted < (int)(sizeof started / sizeof started[0]))
		started[nstarted++] = pid;
}

static void setup(void)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);

	ck_assert_int_gt(n, 0);
	self_exe[n] = 0;
	ck_assert_int_eq(capture_netns(getpid(), &ns_dev, &ns_ino), 0);
	/* orphans of the holders come back to the test, as to a sandbox */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

/* Ends every process the test started (and its orphans). */
static void teardown(void)
{
	for (int i = 0; i < nstarted; i++)
		kill(started[i], SIGKILL);
	nstarted = 0;
	while (waitpid(-1, NULL, 0) > 0)
		;
}

static unsigned long inode_of(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return (unsigned long)st.st_ino;
}

/* Tells out that this process holds fd, then waits to be killed. */
_Noreturn static void hold(int out, int fd)
{
	struct held h = { .pid = getpid(), .inode = inode_of(fd) };

	if (write(out, &h, sizeof h) != sizeof h)
		_exit(1);
	for (;;)
		pause();
}

static struct held told(int in)
{
	struct held h;

	ck_assert_int_eq(read(in, &h, sizeof h), (ssize_t)sizeof h);
	started_add(h.pid);
	return h;
}

/* Starts a process that runs body(out) and returns its pid. */
static pid_t spawn(void (*body)(int out), int out)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		body(out);
		_exit(0);
	}
	started_add(pid);
	return pid;
}

static void body_socket(int out)
{
	hold(out, socket(AF_INET, SOCK_STREAM, 0));
}

/* A child that makes the socket and leaves: its child holds it, an orphan. */
static void body_orphan(int out)
{
	if (fork() == 0)
		body_socket(out);
	_exit(0);
}

static void *thread_forks(void *arg)
{
	int out = *(int *)arg;

	if (fork() == 0)
		body_socket(out);
	for (;;)
		pause();
	return NULL;
}

/* A process whose second thread forks the holder: its child is listed in
 * that thread's children only. */
static void body_thread(int out)
{
	static int o;
	pthread_t t;

	o = out;
	if (pthread_create(&t, NULL, thread_forks, &o) != 0)
		_exit(1);
	for (;;)
		pause();
}

/* Makes the socket as root and holds it as uid 65534. */
static void body_setuid(int out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
		_exit(1);
	hold(out, fd);
}

/* Makes the socket and forks: parent and child hold it, both tell. */
static void body_shared(int out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fork() == 0)
		hold(out, fd);
	hold(out, fd);
}

static pid_t owner(pid_t root, bool everywhere, unsigned long inode, char *exe)
{
	return capture_inode_owner(root, everywhere, ns_dev, ns_ino, inode, exe, PATH_MAX);
}

/* ------------------------------------------------------------ sock_diag */

static int diag_socket(void)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* A listener on 127.0.0.1, any port. */
static int listener(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

/* Connects a socket of family to lst (an IPv6 one by the mapped address)
 * and accepts it; the accepted end in *acc, the peer as the listener saw it
 * in peer, and what the client connected to in dst. Returns the client. */
static int connected(int lst, int family, int *acc, struct sockaddr_storage *peer,
		     struct sockaddr_storage *dst)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	socklen_t len = sizeof sin;
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_eq(getsockname(lst, (struct sockaddr *)&sin, &len), 0);
	if (family == AF_INET) {
		ck_assert_int_eq(connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
	} else {
		sin6.sin6_port = sin.sin_port;
		ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr), 1);
		ck_assert_int_eq(connect(c, (struct sockaddr *)&sin6, sizeof sin6), 0);
	}
	len = sizeof *peer;
	*acc = accept(lst, (struct sockaddr *)peer, &len);
	ck_assert_int_ge(*acc, 0);
	len = sizeof *dst;
	ck_assert_int_eq(getsockname(*acc, (struct sockaddr *)dst, &len), 0);
	return c;
}

START_TEST(test_capture_diag_inode_exact)
{
	struct sockaddr_storage peer, dst, peer2, dst2;
	int diag = diag_socket(), lst = listener(), a, a2;
	int c = connected(lst, AF_INET, &a, &peer, &dst), c2 = connected(lst, AF_INET, &a2, &peer2, &dst2);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	unsigned long inode = 0;

	ck_assert_int_eq(capture_diag_inode(diag, (struct sockaddr *)&peer, (struct sockaddr *)&dst,
					    &inode), 1);
	ck_assert_uint_eq(inode, inode_of(c));
	ck_assert_int_eq(capture_diag_inode(diag, (struct sockaddr *)&peer2, (struct sockaddr *)&dst2,
					    &inode), 1);
	ck_assert_uint_eq(inode, inode_of(c2));
	/* from the listener's own address, to where nothing connected it: the
	 * listener, which is not a connection's */
	((struct sockaddr_in *)&peer2)->sin_port = htons(1);
	ck_assert_int_eq(capture_diag_inode(diag, (struct sockaddr *)&dst, (struct sockaddr *)&peer2,
					    &inode), 0);
	/* gone (reset, so not even in TIME_WAIT) */
	ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(c);
	ck_assert_int_eq(capture_diag_inode(diag, (struct sockaddr *)&peer, (struct sockaddr *)&dst,
					    &inode), 0);
	/* a family that is not IP is not asked */
	ck_assert_int_eq(capture_diag_inode(diag, (struct sockaddr *)&(struct sockaddr){ .sa_family = AF_UNIX },
					    (struct sockaddr *)&dst, &inode), -1);
	close(a), close(a2), close(c2), close(lst), close(diag);
}
END_TEST

/* A dual-stack socket's IPv4 connection is found by its IPv4 addresses. */
START_TEST(test_capture_diag_inode_dual_stack)
{
	struct sockaddr_storage peer, dst;
	int diag = diag_socket(), lst = listener(), a;
	int c = connected(lst, AF_INET6, &a, &peer, &dst);
	unsigned long inode = 0;

	ck_assert_int_eq(peer.ss_family, AF_INET);
	ck_assert_int_eq(capture_diag_inode(diag, (struct sockaddr *)&peer, (struct sockaddr *)&dst,
					    &inode), 1);
	ck_assert_uint_eq(inode, inode_of(c));
	close(a), close(c), close(lst), close(diag);
}
END_TEST

/* ------------------------------------------------------- datagram peers */

/* A UDP (or UDP-Lite) socket of family bound to its loopback address, port 0,
 * nonblocking; its address in *ss. */
static int udp_bound(int family, int proto, struct sockaddr_storage *ss)
{
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, proto);

	ck_assert_int_ge(fd, 0);
	memset(ss, 0, sizeof *ss);
	ss->ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)ss, len), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)ss, &len), 0);
	return fd;
}

static const struct {
	int family, proto;
} peer_cases[] = {
	{ AF_INET, IPPROTO_UDP },
	{ AF_INET6, IPPROTO_UDP },
	{ AF_INET, IPPROTO_UDPLITE },
	{ AF_INET6, IPPROTO_UDPLITE },
};

/* A connected datagram socket names its peer; an unconnected one, a
 * socket of the other protocol and a port nothing is bound to name none. */
START_TEST(test_capture_udp_peer_connected)
{
	int fam = peer_cases[_i].family, proto = peer_cases[_i].proto;
	bool lite = proto == IPPROTO_UDPLITE;
	struct sockaddr_storage ca, pa;
	int c = udp_bound(fam, proto, &ca), p = udp_bound(fam, proto, &pa);
	struct proto_addr a, want, peer;
	uint16_t port, want_port, peer_port = 0;

	proto_addr_from_sockaddr((struct sockaddr *)&ca, fam, &a, &port);
	proto_addr_from_sockaddr((struct sockaddr *)&pa, fam, &want, &want_port);
	ck_assert_int_eq(capture_udp_peer(getpid(), &a, port, lite, &peer, &peer_port), -1);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&pa,
				 fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)),
			 0);
	ck_assert_int_eq(capture_udp_peer(getpid(), &a, port, lite, &peer, &peer_port), 0);
	ck_assert_uint_eq(peer_port, want_port);
	ck_assert_int_eq(peer.family, want.family);
	ck_assert_mem_eq(peer.bytes, want.bytes, sizeof peer.bytes);
	ck_assert_int_eq(capture_udp_peer(getpid(), &a, port, !lite, &peer, &peer_port), -1);
	ck_assert_int_eq(capture_udp_peer(getpid(), &want, want_port, lite, &peer, &peer_port), -1);
	close(c), close(p);
}
END_TEST

/* A dual-stack socket connected to an IPv4 peer is found by its IPv4
 * address, and names its peer as IPv4. */
START_TEST(test_capture_udp_peer_dual_stack)
{
	struct sockaddr_storage pa;
	struct sockaddr_in6 ca = { .sin6_family = AF_INET6 };
	socklen_t len = sizeof ca;
	int p = udp_bound(AF_INET, IPPROTO_UDP, &pa), c = socket(AF_INET6, SOCK_DGRAM, 0), off = 0;
	struct proto_addr a, peer;
	uint16_t port, peer_port = 0;

	ck_assert_int_eq(setsockopt(c, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off), 0);
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &ca.sin6_addr), 1);
	ck_assert_int_eq(bind(c, (struct sockaddr *)&ca, sizeof ca), 0);
	ca.sin6_port = ((struct sockaddr_in *)&pa)->sin_port; /* the peer, mapped */
	ck_assert_int_eq(connect(c, (struct sockaddr *)&ca, sizeof ca), 0);
	ck_assert_int_eq(getsockname(c, (struct sockaddr *)&ca, &len), 0);
	proto_addr_from_sockaddr((struct sockaddr *)&ca, AF_INET6, &a, &port);
	proto_addr_unmap(&a); /* as the shim names it */
	ck_assert_int_eq(a.family, 4);
	ck_assert_int_eq(capture_udp_peer(getpid(), &a, port, false, &peer, &peer_port), 0);
	ck_assert_int_eq(peer.family, 4);
	ck_assert_uint_eq(peer_port, ntohs(((struct sockaddr_in *)&pa)->sin_port));
	close(c), close(p);
}
END_TEST

/* --------------------------------------------------------------- owners */

/* One case: a holder started with body, found in the tree of the test. */
struct owner_case {
	const char *what;
	void (*body)(int out);
	bool root_only;
};

static const struct owner_case owner_cases[] = {
	{ "a forked child", body_socket, false },
	{ "an orphan, come back to the sandbox", body_orphan, false },
	{ "a child of a second thread", body_thread, false },
	{ "a child that changed uid", body_setuid, true },
};

START_TEST(test_capture_inode_owner_tree)
{
	const struct owner_case *k = &owner_cases[_i];
	char exe[PATH_MAX];
	int p[2];
	struct held h;

	if (k->root_only && geteuid() != 0)
		return;
	ck_assert_int_eq(pipe(p), 0);
	spawn(k->body, p[1]);
	h = told(p[0]);
	ck_assert_msg(owner(getpid(), false, h.inode, exe) == h.pid, "%s: not found in the tree",
		      k->what);
	ck_assert_str_eq(exe, self_exe);
	/* the test itself (the tree's root) is no one's holder of it */
	ck_assert_int_ne(h.pid, getpid());
	kill(h.pid, SIGKILL);
	close(p[0]), close(p[1]);
}
END_TEST

/* Many processes in the tree, each with its own socket: each is named. */
START_TEST(test_capture_inode_owner_many)
{
	struct held h[MANY];
	char exe[PATH_MAX];
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	for (int i = 0; i < MANY; i++)
		spawn(i % 2 ? body_socket : body_orphan, p[1]);
	for (int i = 0; i < MANY; i++)
		h[i] = told(p[0]);
	for (int i = 0; i < MANY; i += 7) {
		ck_assert_int_eq(owner(getpid(), false, h[i].inode, exe), h[i].pid);
		ck_assert_str_eq(exe, self_exe);
	}
	for (int i = 0; i < MANY; i++)
		kill(h[i].pid, SIGKILL);
	close(p[0]), close(p[1]);
}
END_TEST

/* Outside the tree (a process that joined the namespace from outside):
 * found among every process, and only then. */
START_TEST(test_capture_inode_owner_outside_tree)
{
	char exe[PATH_MAX];
	int p[2], fd;
	struct held h;
	pid_t root;

	ck_assert_int_eq(pipe(p), 0);
	root = spawn(body_socket, p[1]); /* a tree that does not hold fd */
	h = told(p[0]);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(owner(root, false, inode_of(fd), exe), 0);
	ck_assert_str_eq(exe, "");
	ck_assert_int_eq(owner(root, true, inode_of(fd), exe), getpid());
	ck_assert_str_eq(exe, self_exe);
	/* and the root's own socket, by the root */
	ck_assert_int_eq(owner(root, false, h.inode, exe), root);
	kill(root, SIGKILL);
	close(fd), close(p[0]), close(p[1]);
}
END_TEST

/* Gone before the lookup: no one, not even the pid it had. */
START_TEST(test_capture_inode_owner_gone)
{
	char exe[PATH_MAX] = "x";
	int p[2];
	struct held h;

	ck_assert_int_eq(pipe(p), 0);
	spawn(body_socket, p[1]);
	h = told(p[0]);
	kill(h.pid, SIGKILL);
	ck_assert_int_eq(waitpid(h.pid, NULL, 0), h.pid);
	ck_assert_int_eq(owner(getpid(), true, h.inode, exe), 0);
	ck_assert_str_eq(exe, "");
	ck_assert_int_eq(owner(getpid(), true, 0, exe), 0);
	close(p[0]), close(p[1]);
}
END_TEST

/* The window between finding the holder and reading its executable. */
static pid_t victim, usurper;
static bool reuse; /* give the victim's pid to a new process of another executable */

/* Sets ns_last_pid so that the next process made gets pid (root only).
 * Returns true so. */
static bool next_pid(pid_t pid)
{
	char text[32];
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
	int n = snprintf(text, sizeof text, "%ld", (long)pid - 1);
	bool ok = fd >= 0 && write(fd, text, (size_t)n) == n;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* capture_window: the holder ends there and, with reuse, another process
 * (sleep) takes its pid and has run its executable by the time the
 * lookup goes on. */
static void end_victim(pid_t pid)
{
	char path[64], exe[PATH_MAX];

	if (pid != victim)
		return;
	kill(victim, SIGKILL);
	ck_assert_int_eq(waitpid(victim, NULL, 0), victim);
	if (!reuse || !next_pid(victim))
		return;
	usurper = fork();
	if (usurper == 0) {
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	started_add(usurper);
	snprintf(path, sizeof path, "/proc/%ld/exe", (long)usurper);
	for (int i = 0; i < 1000; i++) { /* until it has run sleep */
		ssize_t n = readlink(path, exe, sizeof exe - 1);

		if (n > 0 && (exe[n] = 0, strstr(exe, "sleep")))
			break;
		usleep(1000);
	}
}

/* Alone, the holder that ended is not named; with its pid taken, neither
 * is the process that took it. */
START_TEST(test_capture_inode_owner_window)
{
	char exe[PATH_MAX];
	int p[2];
	struct held h;
	pid_t got;

	reuse = _i == 1;
	if (reuse && geteuid() != 0)
		return;
	ck_assert_int_eq(pipe(p), 0);
	spawn(body_socket, p[1]);
	h = told(p[0]);
	victim = h.pid, usurper = 0;
	capture_window = end_victim;
	got = owner(getpid(), true, h.inode, exe);
	capture_window = NULL;
	if (reuse && usurper != victim)
		fprintf(stderr, "check_capture: pid %ld went to %ld, not reused; the case is weaker\n",
			(long)victim, (long)usurper);
	ck_assert_int_eq(got, 0);
	ck_assert_str_eq(exe, "");
	if (usurper > 0)
		kill(usurper, SIGKILL);
	close(p[0]), close(p[1]);
}
END_TEST

/* Two holders (a socket shared across fork): the lower pid is named; when
 * it ends in the window, the other, which still holds it. */
START_TEST(test_capture_inode_owner_shared)
{
	char exe[PATH_MAX];
	int p[2];
	struct held a, b;

	ck_assert_int_eq(pipe(p), 0);
	spawn(body_shared, p[1]);
	a = told(p[0]);
	b = told(p[0]);
	ck_assert_uint_eq(a.inode, b.inode);
	if (a.pid > b.pid) {
		struct held t = a;

		a = b, b = t;
	}
	ck_assert_int_eq(owner(getpid(), true, a.inode, exe), a.pid);
	victim = a.pid, reuse = false;
	capture_window = end_victim;
	ck_assert_int_eq(owner(getpid(), true, a.inode, exe), b.pid);
	capture_window = NULL;
	ck_assert_str_eq(exe, self_exe);
	kill(b.pid, SIGKILL);
	close(p[0]), close(p[1]);
}
END_TEST

Suite *suite_capture(void)
{
	Suite *s = suite_create("capture");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_capture_diag_inode_exact);
	tcase_add_test(tc, test_capture_diag_inode_dual_stack);
	tcase_add_loop_test(tc, test_capture_udp_peer_connected, 0,
			    (int)(sizeof peer_cases / sizeof peer_cases[0]));
	tcase_add_test(tc, test_capture_udp_peer_dual_stack);
	tcase_add_loop_test(tc, test_capture_inode_owner_tree, 0,
			    (int)(sizeof owner_cases / sizeof owner_cases[0]));
	tcase_add_test(tc, test_capture_inode_owner_many);
	tcase_add_test(tc, test_capture_inode_owner_outside_tree);
	tcase_add_test(tc, test_capture_inode_owner_gone);
	tcase_add_loop_test(tc, test_capture_inode_owner_window, 0, 2);
	tcase_add_test(tc, test_capture_inode_owner_shared);
	suite_add_tcase(s, tc);
	return s;
}
