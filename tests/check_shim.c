/* check_shim.c: the preload library's decision code, called directly (not
 * preloaded). Most tests replace the broker with a stub that answers from a
 * table and counts questions, and send real packets on loopback to see what
 * got through; the connection tests run a small SOCK_SEQPACKET broker in a
 * thread to exercise timeouts, stale answers, stolen descriptors, restarts
 * and fork. Check runs each test in its own process, so thread-local state
 * (connection, datagram cache) starts empty every time. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shim/shim.h"
#include "../policy/hostsfile.h"
#include "suites.h"

/* ---- the stub broker and what it saw ---- */

/* A generation page as the broker makes it, writable here so that a test
 * can move its generation; the shim maps its own read-only copy. */
static struct proto_page *test_page;

static struct {
	int calls;
	int fail_errno;             /* nonzero: unreachable, with this errno */
	struct proto_ask last;
	struct proto_verdict answer;
	uint16_t deny_port;         /* nonzero: deny only this port, allow others */
	int handover;               /* a descriptor to hand over with the answer, or -1 */
	struct sockaddr_in *mutate; /* set: the program's address, rewritten while it asks */
	uint16_t mutate_port;       /* the port another thread would put there */
} stub;

static int stub_ask(const struct proto_ask *ask, struct proto_verdict *v, int *fd)
{
	stub.calls++;
	stub.last = *ask;
	if (stub.mutate != NULL)
		stub.mutate->sin_port = stub.mutate_port;
	if (stub.fail_errno) {
		errno = stub.fail_errno;
		return -1;
	}
	*v = stub.answer;
	v->gen = test_page ? test_page->generation : 0; /* decided now, as a broker's */
	if (fd != NULL) {
		*fd = stub.handover;
		stub.handover = -1;
	}
	if (stub.deny_port && ask->port != stub.deny_port)
		v->action = PROTO_ALLOW;
	return 0;
}

static void answer(int action, int err, const char *rule, const char *name)
{
	memset(&stub.answer, 0, sizeof stub.answer);
	stub.answer.action = (uint8_t)action;
	stub.answer.err = err;
	stub.answer.ttl_ms = 10000;
	snprintf(stub.answer.rule, sizeof stub.answer.rule, "%s", rule);
	snprintf(stub.answer.name, sizeof stub.answer.name, "%s", name);
}

static void add_addr(const char *text)
{
	struct proto_addr *a = &stub.answer.addrs[stub.answer.naddr++];

	a->family = strchr(text, ':') ? 6 : 4;
	ck_assert_int_eq(inet_pton(a->family == 4 ? AF_INET : AF_INET6, text, a->bytes), 1);
}

/* stderr goes to a file the tests read back. */
static FILE *errfile;


/* The page's lock word (proto.h). */
#define page_word() (*(uint32_t *)((char *)test_page + PROTO_PAGE_LOCK_OFFSET))

static void page_give(void)
{
	int fd = memfd_create("test-generation", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, PROTO_PAGE_SIZE), 0);
	test_page = mmap(NULL, PROTO_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(test_page, MAP_FAILED);
	test_page->magic = PROTO_PAGE_MAGIC;
	test_page->version = PROTO_VERSION;
	test_page->generation = 7;
	page_word() = (uint32_t)syscall(SYS_gettid); /* its broker lives: this thread holds it */
	shim_page_take(fd);
	ck_assert_uint_eq(shim_page_gen(), 7);
}

/* The stub's NOTEs: how many, the last, and whether the next is refused. */
static struct {
	int calls, refuse;
	struct proto_ask last;
	int action;
} note;

static int stub_note(const struct proto_ask *ask, int action)
{
	if (note.refuse)
		return -1;
	note.calls++;
	note.last = *ask;
	note.action = action;
	return 0;
}

static void setup_nopage(void)
{
	shim_init();
	memset(&note, 0, sizeof note);
	shim_note = stub_note;
	memset(&stub, 0, sizeof stub);
	stub.handover = -1;
	answer(PROTO_ALLOW, 0, "ok", "");
	shim_ask = stub_ask;
	shim_config.log = SHIM_LOG_DENY;
	shim_config.fail_open = false;
	shim_config.timeout_ms = 3000;
	snprintf(shim_config.socket_path, sizeof shim_config.socket_path, "/nonexistent/broker.sock");
	errfile = tmpfile();
	ck_assert_ptr_nonnull(errfile);
	dup2(fileno(errfile), STDERR_FILENO);
}

static void setup(void)
{
	setup_nopage();
	page_give();
}

static void teardown(void)
{
	fclose(errfile);
}

/* What the shim wrote to stderr so far. */
static const char *errtext(void)
{
	static char buf[4096];
	ssize_t n = pread(fileno(errfile), buf, sizeof buf - 1, 0);

	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- loopback peers ---- */

static struct sockaddr_in loop4(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/* A bound loopback socket of type; *sin gets its address. */
static int bound(int type, struct sockaddr_in *sin)
{
	socklen_t len = sizeof *sin;
	int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);

	ck_assert_int_ge(fd, 0);
	*sin = loop4(0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)sin, sizeof *sin), 0);
	if (type == SOCK_STREAM)
		ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

/* Datagrams waiting on fd, read without blocking. */
static int drain(int fd)
{
	char b[64];
	int n = 0;

	usleep(20000);
	while (recv(fd, b, sizeof b, MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

/* ---- connect ---- */

START_TEST(connect_allowed_reaches_the_server)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(stub.last.op, PROTO_OP_CONNECT);
	ck_assert_int_eq(stub.last.l4, PROTO_L4_TCP);
	ck_assert_int_eq(stub.last.addr.family, 4);
	ck_assert_mem_eq(stub.last.addr.bytes, "\x7f\0\0\x01", 4);
	ck_assert_int_eq(stub.last.port, ntohs(srv.sin_port));
	ck_assert_str_eq(errtext(), "");
	usleep(10000);
	ck_assert_int_ge(accept(lfd, NULL, NULL), 0);
}
END_TEST

START_TEST(connect_denied_with_rule_errno_and_one_line)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char want[128];

	answer(PROTO_DENY, ECONNREFUSED, "no-example", "example.com");
	errno = 0;
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	snprintf(want, sizeof want, "egress: denied connect to example.com:%u (rule no-example)\n",
		 ntohs(srv.sin_port));
	ck_assert_str_eq(errtext(), want);
	usleep(10000);
	ck_assert_int_eq(accept(lfd, NULL, NULL), -1); /* nothing reached the server */
}
END_TEST

START_TEST(denial_without_a_name_shows_the_address)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
	answer(PROTO_DENY, EACCES, "default", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&sin6, sizeof sin6), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_str_eq(errtext(), "egress: denied connect to [2001:db8::7]:443 (rule default)\n");
}
END_TEST

START_TEST(out_of_range_errno_becomes_eperm)
{
	struct sockaddr_in dst = loop4(9);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	answer(PROTO_DENY, 100000, "odd", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EPERM);
}
END_TEST

START_TEST(log_off_is_silent_and_log_all_shows_allows)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	int fd;

	(void)lfd;
	shim_config.log = SHIM_LOG_OFF;
	answer(PROTO_DENY, EACCES, "r", "");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), -1);
	ck_assert_str_eq(errtext(), "");

	shim_config.log = SHIM_LOG_ALL;
	answer(PROTO_ALLOW, 0, "local", "localhost");
	test_page->generation++; /* the policy changed, as a reload says */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
	ck_assert_ptr_nonnull(strstr(errtext(), "egress: allowed connect to localhost:"));
	ck_assert_ptr_nonnull(strstr(errtext(), "(rule local)"));
}
END_TEST

/* A loopback connection to lfd's listener, as the broker would hand over. */
static int handover_to(const struct sockaddr_in *srv)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_eq(shim_real.connect(fd, (const struct sockaddr *)srv, sizeof *srv), 0);
	return fd;
}

START_TEST(rewrite_puts_the_connected_socket_in_place)
{
	struct sockaddr_in srv, peer;
	int lfd = bound(SOCK_STREAM, &srv), one = 1, v, afd;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 dst = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	socklen_t len = sizeof peer, vl = sizeof v;
	char b[8];

	inet_pton(AF_INET6, "::ffff:198.18.0.7", &dst.sin6_addr);
	ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);
	ck_assert_int_eq(fcntl(fd, F_SETFD, FD_CLOEXEC), 0);
	answer(PROTO_REWRITE, 0, "via-proxy", "api.example.com");
	stub.handover = handover_to(&srv);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	ck_assert_int_eq(stub.last.flags, PROTO_ASK_INET6); /* a blocking IPv6 socket */
	/* the same descriptor now talks to the listener */
	ck_assert_int_eq(write(fd, "hi", 2), 2);
	usleep(10000);
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_eq(read(afd, b, sizeof b), 2);
	/* options and flags survived */
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* getpeername tells what the program asked for, in its own family */
	struct sockaddr_in6 got;
	socklen_t gl = sizeof got;
	ck_assert_int_eq(shim_getpeername(fd, (struct sockaddr *)&got, &gl), 0);
	ck_assert_uint_eq(gl, sizeof got);
	ck_assert_mem_eq(&got, &dst, sizeof dst);
	/* and so does a dup of the descriptor: the same socket */
	int dupfd = dup(fd);
	gl = sizeof got;
	ck_assert_int_eq(shim_getpeername(dupfd, (struct sockaddr *)&got, &gl), 0);
	ck_assert_mem_eq(&got, &dst, sizeof dst);
	/* a connect again is the kernel's EISCONN, not a second hand-over */
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EISCONN);
	ck_assert_int_eq(stub.calls, 1);
	/* a plain socket gets its real peer */
	int other = handover_to(&srv);
	ck_assert_int_eq(shim_getpeername(other, (struct sockaddr *)&peer, &len), 0);
	ck_assert_int_eq(peer.sin_port, srv.sin_port);
	ck_assert_str_eq(errtext(), "");
}
END_TEST

START_TEST(rewrite_of_a_nonblocking_connect_is_in_progress)
{
	struct sockaddr_in srv, dst = loop4(80);
	int lfd = bound(SOCK_STREAM, &srv);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), err;
	socklen_t el = sizeof err;
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	(void)lfd;
	answer(PROTO_REWRITE, 0, "r", "");
	stub.handover = handover_to(&srv);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EINPROGRESS);
	ck_assert_int_eq(stub.last.flags, PROTO_ASK_NONBLOCK);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(poll(&p, 1, 1000), 1);
	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el), 0);
	ck_assert_int_eq(err, 0);
}
END_TEST

START_TEST(rewrite_without_a_socket_is_denied)
{
	struct sockaddr_in dst = loop4(9);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	answer(PROTO_REWRITE, 0, "via-proxy", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_ptr_nonnull(strstr(errtext(), "rule via-proxy: unusable broker answer"));
}
END_TEST

START_TEST(transport_failure_has_its_errno_and_a_line)
{
	struct sockaddr_in dst = loop4(443);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	answer(PROTO_FAIL, EACCES, "via-proxy", "api.example.com");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_str_eq(errtext(), "egress: connect to api.example.com:443 failed in the transport: "
				    "Permission denied (rule via-proxy)\n");
}
END_TEST

START_TEST(fastopen_rewrite_sends_the_data)
{
	struct sockaddr_in srv, dst = loop4(443);
	int lfd = bound(SOCK_STREAM, &srv), afd;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char b[8];

	answer(PROTO_REWRITE, 0, "r", "");
	stub.handover = handover_to(&srv);
	ck_assert_int_eq(shim_sendto(fd, "abc", 3, MSG_FASTOPEN, (struct sockaddr *)&dst, sizeof dst),
			 3);
	usleep(10000);
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_eq(read(afd, b, sizeof b), 3);
}
END_TEST

START_TEST(unix_sockets_pass_through)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/nonexistent/x.sock" };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	answer(PROTO_DENY, EACCES, "all", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&sun, sizeof sun), -1);
	ck_assert_int_eq(errno, ENOENT); /* the kernel's answer, not ours */
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

START_TEST(short_or_null_addresses_pass_through)
{
	struct sockaddr_in dst = loop4(9);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	answer(PROTO_DENY, EACCES, "all", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, 4), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(shim_connect(fd, NULL, 0), -1);
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

START_TEST(mapped_ipv6_is_judged_as_ipv4)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = srv.sin_port };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	(void)lfd;
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	answer(PROTO_DENY, EACCES, "loop", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&sin6, sizeof sin6), -1);
	ck_assert_int_eq(stub.last.addr.family, 4);
	ck_assert_mem_eq(stub.last.addr.bytes, "\x7f\0\0\x01", 4);
	ck_assert_ptr_nonnull(strstr(errtext(), "to 127.0.0.1:"));
}
END_TEST

START_TEST(udp_connect_is_judged_as_send)
{
	struct sockaddr_in dst = loop4(53);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	ck_assert_int_eq(stub.last.op, PROTO_OP_SEND);
	ck_assert_int_eq(stub.last.l4, PROTO_L4_UDP);
	ck_assert_int_eq(stub.last.port, 53);
}
END_TEST

START_TEST(unreachable_broker_denies_with_one_line)
{
	struct sockaddr_in dst = loop4(9);

	stub.fail_errno = ECONNREFUSED;
	for (int i = 0; i < 3; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		errno = 0;
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
		ck_assert_int_eq(errno, EPERM);
		close(fd);
	}
	ck_assert_int_eq(stub.calls, 3);
	ck_assert_str_eq(errtext(), "egress: broker unreachable at /nonexistent/broker.sock; "
				    "connect to 127.0.0.1:9 denied\n");
}
END_TEST

START_TEST(unreachable_line_again_in_a_forked_child)
{
	struct sockaddr_in dst = loop4(9);
	int fd = socket(AF_INET, SOCK_STREAM, 0), status;
	pid_t pid;

	stub.fail_errno = ECONNREFUSED;
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	pid = fork();
	if (pid == 0)
		_exit(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst) == -1 ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(count_lines(errtext()), 2);
}
END_TEST

START_TEST(fail_open_allows_and_says_so)
{
	struct sockaddr_in dst = loop4(9);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	stub.fail_errno = ETIMEDOUT;
	shim_config.fail_open = true;
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	ck_assert_ptr_nonnull(strstr(errtext(), "ALLOWED UNCHECKED"));
}
END_TEST

START_TEST(version_mismatch_denies_even_with_fail_open)
{
	struct sockaddr_in dst = loop4(9);
	struct addrinfo *res = NULL;
	char want[256];

	stub.fail_errno = EPROTONOSUPPORT;
	shim_config.fail_open = true; /* for an unreachable broker only */
	for (int i = 0; i < 2; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		errno = 0;
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
		ck_assert_int_eq(errno, EPERM);
		close(fd);
	}
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "443", NULL, &res), EAI_FAIL);
	ck_assert_ptr_null(res);
	snprintf(want, sizeof want,
		 "egress: broker at /nonexistent/broker.sock speaks another protocol version "
		 "(shim v%d); connect to 127.0.0.1:9 denied\n",
		 PROTO_VERSION);
	ck_assert_str_eq(errtext(), want);

	/* an unreachable broker is another story, told once too */
	stub.fail_errno = ECONNREFUSED;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	ck_assert_int_eq(count_lines(errtext()), 2);
	ck_assert_ptr_nonnull(strstr(errtext(), "ALLOWED UNCHECKED"));
}
END_TEST

/* ---- datagrams ---- */

START_TEST(datagram_verdicts_are_cached_for_their_ttl)
{
	struct sockaddr_in rcv;
	int rfd = bound(SOCK_DGRAM, &rcv);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), 1);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(drain(rfd), 50);

	shim_cache_clear(); /* an expired entry asks again */
	ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), 1);
	ck_assert_int_eq(stub.calls, 2);
}
END_TEST

START_TEST(ttl_zero_is_not_cached)
{
	struct sockaddr_in rcv;
	int rfd = bound(SOCK_DGRAM, &rcv);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	(void)rfd;
	stub.answer.ttl_ms = 0;
	for (int i = 0; i < 3; i++)
		shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv);
	ck_assert_int_eq(stub.calls, 3);
}
END_TEST

/* ---- connect verdicts from the cache ---- */

/* A connect allowed once is applied from the cache the next times: the
 * real connect is made, and the broker is told each time (a NOTE of the
 * same destination and action), never asked again. */
START_TEST(connect_verdicts_are_cached_and_noted)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);

	shim_config.log = SHIM_LOG_ALL; /* each one says so, cached or not */
	for (int i = 0; i < 5; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
		ck_assert_int_ge(accept(lfd, NULL, NULL), 0);
		close(fd);
	}
	ck_assert_int_eq(count_lines(errtext()), 5);
	ck_assert_ptr_nonnull(strstr(errtext(), "egress: allowed connect to 127.0.0.1:"));
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(note.calls, 4);
	ck_assert_int_eq(note.action, PROTO_ALLOW);
	ck_assert_int_eq(note.last.op, PROTO_OP_CONNECT);
	ck_assert_int_eq(note.last.port, ntohs(srv.sin_port));
}
END_TEST

/* A cached denial fails as the broker said, with its line, every time. */
START_TEST(connect_denials_are_cached_with_their_line)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);

	(void)lfd;
	answer(PROTO_DENY, EACCES, "no-b", "");
	for (int i = 0; i < 3; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		errno = 0;
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), -1);
		ck_assert_int_eq(errno, EACCES);
		close(fd);
	}
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(note.calls, 2);
	ck_assert_int_eq(note.action, PROTO_DENY);
	ck_assert_int_eq(count_lines(errtext()), 3);
	ck_assert_ptr_nonnull(strstr(errtext(), "(rule no-b)"));
}
END_TEST

/* A connect of a new socket to srv, closed after: what shim_connect returned. */
static int connect_once(const struct sockaddr_in *srv)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), r;

	r = shim_connect(fd, (const struct sockaddr *)srv, sizeof *srv);
	close(fd);
	return r;
}

/* A moved generation (a reload), a NOTE that cannot go out, a verdict
 * without ttl and one of an older generation are each asked again. */
START_TEST(connect_cache_misses_when_it_must)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);

	(void)lfd;
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 1);
	test_page->generation++; /* a reload: the broker now says deny */
	answer(PROTO_DENY, EPERM, "now-denied", "");
	ck_assert_int_eq(connect_once(&srv), -1);
	ck_assert_int_eq(stub.calls, 2);
	test_page->generation++;
	answer(PROTO_ALLOW, 0, "ok", "");
	ck_assert_int_eq(connect_once(&srv), 0);
	note.refuse = 1; /* the broker cannot be told: asked instead */
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 4);
	note.refuse = 0;
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 4);
	test_page->generation++;
	stub.answer.ttl_ms = 0; /* not to keep */
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 6);
}
END_TEST

/* A rewrite (a socket handed over) is never kept: each connect asks. */
START_TEST(rewrites_are_not_cached)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);

	answer(PROTO_REWRITE, 0, "rw", "rw.test");
	for (int i = 0; i < 2; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		stub.handover = handover_to(&srv);
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
		close(fd);
	}
	(void)lfd;
	ck_assert_int_eq(stub.calls, 2);
	ck_assert_int_eq(note.calls, 0);
}
END_TEST

/* A fork child asks for its own verdicts: what it does is its own. */
START_TEST(a_fork_child_asks_anew)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv), fd, st;
	pid_t pid;

	(void)lfd;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
	close(fd);
	pid = fork();
	if (pid == 0) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		_exit(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv) == 0 && stub.calls == 2 &&
		      note.calls == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* Once the broker's loop thread has ended (the kernel marks its robust
 * lock), nothing kept is applied: every attempt asks, and fails closed. */
START_TEST(a_dead_brokers_verdicts_are_not_applied)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	uint32_t alive = page_word();

	(void)lfd;
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 1);
	page_word() = alive | PROTO_PAGE_OWNER_DIED; /* killed */
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 2);
	page_word() = 0; /* ended, its lock released */
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 3);
	ck_assert_int_eq(note.calls, 1);
}
END_TEST

/* A page of another broker (one restarted on the same socket) replaces
 * the one in use, and what was kept from the old one is stale. */
START_TEST(another_brokers_page_replaces)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	struct proto_page *old = test_page;

	(void)lfd;
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 1);
	page_give(); /* the new broker's */
	test_page->generation = old->generation + 1;
	ck_assert_uint_eq(shim_page_gen(), test_page->generation);
	old->generation = test_page->generation; /* the old page no longer counts */
	ck_assert_int_eq(connect_once(&srv), 0);
	ck_assert_int_eq(stub.calls, 2);
}
END_TEST

/* A datagram the broker takes instead (a relay's association) names the
 * sending socket's port: an unbound socket is bound after the verdict, as
 * its send would bind it, and asks again with PROTO_ASK_SOURCE (not a new
 * attempt); another socket to the same destination asks for itself. */
START_TEST(relayed_datagrams_name_their_socket)
{
	struct sockaddr_in rcv, own;
	socklen_t len = sizeof own;
	int rfd = bound(SOCK_DGRAM, &rcv), relay = bound(SOCK_DGRAM, &own);
	int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);

	(void)rfd;
	answer(PROTO_ALLOW, 0, "relay", "");
	stub.answer.port = ntohs(own.sin_port); /* the association: relay's port */
	stub.answer.naddr = 1;
	stub.answer.addrs[0] = (struct proto_addr){ .family = 4, .bytes = { 127, 0, 0, 1 } };
	ck_assert_int_eq(shim_sendto(a, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), 1);
	ck_assert_int_eq(stub.calls, 2);
	ck_assert(stub.last.flags & PROTO_ASK_SOURCE);
	ck_assert_int_eq(getsockname(a, (struct sockaddr *)&own, &len), 0);
	ck_assert_uint_ne(ntohs(own.sin_port), 0);
	ck_assert_uint_eq(stub.last.src_port, ntohs(own.sin_port));
	ck_assert_int_eq(drain(relay), 1); /* it went to the association */
	ck_assert_int_eq(shim_sendto(a, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), 1);
	ck_assert_int_eq(stub.calls, 2); /* the same socket: from the cache */
	ck_assert_int_eq(shim_sendto(b, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), 1);
	ck_assert_int_eq(stub.calls, 3); /* another socket: asks, naming its port at once */
	ck_assert(!(stub.last.flags & PROTO_ASK_SOURCE));
	ck_assert_uint_ne(stub.last.src_port, 0);
	ck_assert_uint_ne(stub.last.src_port, ntohs(own.sin_port));
	ck_assert_int_eq(drain(relay), 2);
}
END_TEST

/* Without the broker's page nothing is kept: every attempt asks. */
START_TEST(no_page_no_cache)
{
	struct sockaddr_in srv, rcv;
	int lfd = bound(SOCK_STREAM, &srv), rfd = bound(SOCK_DGRAM, &rcv);
	int ufd = socket(AF_INET, SOCK_DGRAM, 0);

	(void)lfd;
	(void)rfd;
	for (int i = 0; i < 2; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
		close(fd);
		ck_assert_int_eq(shim_sendto(ufd, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), 1);
	}
	ck_assert_int_eq(stub.calls, 4);
}
END_TEST

/* What the shim maps is the broker's page and nothing else: a descriptor
 * that is not one (a socket, a short file, another magic) is closed and
 * nothing is cached. */
START_TEST(only_a_page_is_taken)
{
	int sv[2], fd = memfd_create("short", MFD_CLOEXEC), bad = memfd_create("bad", MFD_CLOEXEC);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	shim_page_take(sv[0]);
	ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1); /* closed */
	ck_assert_int_eq(ftruncate(fd, 16), 0);
	shim_page_take(fd);
	ck_assert_int_eq(ftruncate(bad, PROTO_PAGE_SIZE), 0); /* zeroes: no magic */
	shim_page_take(bad);
	ck_assert_uint_eq(shim_page_gen(), 0);
	close(sv[1]);
}
END_TEST

/* ---- the datagram cache, interrupted ---- */

static uint16_t src_unused; /* a lookup's port of the asking socket, not looked at here */

/* What the cache's clock stub does once, from inside a lookup or a store,
 * as a signal handler of the thread would. */
static struct {
	enum { HOOK_NONE, HOOK_STORE, HOOK_LOOKUP } what;
	struct proto_addr addr;
	uint16_t port;
	struct proto_verdict v; /* HOOK_STORE: what it stores */
	bool found;             /* HOOK_LOOKUP: what it found */
	struct proto_verdict seen;
} hook;

static long hook_clock(void)
{
	int what = hook.what;

	hook.what = HOOK_NONE; /* once: the store below reads the clock too */
	if (what == HOOK_STORE)
		shim_cache_store(&hook.addr, hook.port, PROTO_OP_SEND, PROTO_L4_UDP, &hook.v, 0);
	else if (what == HOOK_LOOKUP)
		hook.found = shim_cache_lookup(&hook.addr, hook.port, PROTO_OP_SEND, PROTO_L4_UDP, &hook.seen, &src_unused);
	return proto_now_ms();
}

static struct proto_verdict verdict(int action)
{
	struct proto_verdict v = { .action = (uint8_t)action, .ttl_ms = 60000,
				   .gen = test_page->generation };

	v.err = action == PROTO_DENY ? ECONNREFUSED : 0;
	return v;
}

/* Finds a port for 127.0.0.1 whose entry takes the slot of (a, port):
 * stored, it evicts the other. Leaves the cache empty. */
static uint16_t colliding_port(const struct proto_addr *a, uint16_t port)
{
	struct proto_verdict v = verdict(PROTO_DENY), out;

	for (uint16_t p = 1; p < 2000; p++) {
		if (p == port)
			continue;
		shim_cache_clear();
		shim_cache_store(a, port, PROTO_OP_SEND, PROTO_L4_UDP, &v, 0);
		shim_cache_store(a, p, PROTO_OP_SEND, PROTO_L4_UDP, &v, 0);
		if (!shim_cache_lookup(a, port, PROTO_OP_SEND, PROTO_L4_UDP, &out, &src_unused)) {
			shim_cache_clear();
			return p;
		}
	}
	ck_abort_msg("no colliding port");
	return 0;
}

static void cache_setup(void)
{
	setup();
	memset(&hook, 0, sizeof hook);
	shim_cache_clear();
	shim_cache_clock = hook_clock;
}

static void cache_teardown(void)
{
	shim_cache_clock = proto_now_ms;
	teardown();
}

/* A cached denial is being read when a handler stores an allow for
 * another destination into the same slot: the read is a miss (the caller
 * asks the broker), never the other's allow. */
START_TEST(shim_cache_lookup_interrupted_by_a_store_misses)
{
	struct proto_addr a = { .family = 4, .bytes = { 127, 0, 0, 1 } };
	struct proto_verdict deny = verdict(PROTO_DENY), out;
	uint16_t other = colliding_port(&a, 53);

	shim_cache_store(&a, 53, PROTO_OP_SEND, PROTO_L4_UDP, &deny, 0);
	hook.what = HOOK_STORE;
	hook.addr = a;
	hook.port = other;
	hook.v = verdict(PROTO_ALLOW);
	memset(&out, 0, sizeof out);
	bool found = shim_cache_lookup(&a, 53, PROTO_OP_SEND, PROTO_L4_UDP, &out, &src_unused);
	ck_assert_int_eq(hook.what, HOOK_NONE); /* the handler did run inside the read */
	ck_assert_msg(!found || out.action == PROTO_DENY, "a cached denial read as action %d",
		      out.action);
	ck_assert(!found);
	/* what the handler stored is whole */
	ck_assert(shim_cache_lookup(&a, other, PROTO_OP_SEND, PROTO_L4_UDP, &out, &src_unused));
	ck_assert_int_eq(out.action, PROTO_ALLOW);
}
END_TEST

/* A handler that reads the slot being written misses; one that stores
 * into it skips its store; the interrupted store ends whole. */
START_TEST(shim_cache_store_interrupted_stays_whole)
{
	struct proto_addr a = { .family = 4, .bytes = { 127, 0, 0, 1 } };
	struct proto_verdict deny = verdict(PROTO_DENY), out;
	uint16_t other = colliding_port(&a, 53);

	/* a read of the old entry while the new one is being written */
	shim_cache_store(&a, other, PROTO_OP_SEND, PROTO_L4_UDP, &deny, 0);
	hook.what = HOOK_LOOKUP;
	hook.addr = a;
	hook.port = other;
	shim_cache_store(&a, 53, PROTO_OP_SEND, PROTO_L4_UDP, &deny, 0);
	ck_assert_int_eq(hook.what, HOOK_NONE);
	ck_assert(!hook.found);

	/* a store into the slot while it is being written */
	hook.what = HOOK_STORE;
	hook.port = other;
	hook.v = verdict(PROTO_ALLOW);
	shim_cache_store(&a, 53, PROTO_OP_SEND, PROTO_L4_UDP, &deny, 0);
	ck_assert_int_eq(hook.what, HOOK_NONE);
	ck_assert(shim_cache_lookup(&a, 53, PROTO_OP_SEND, PROTO_L4_UDP, &out, &src_unused));
	ck_assert_int_eq(out.action, PROTO_DENY);
	ck_assert_int_eq(out.err, ECONNREFUSED);
	ck_assert(!shim_cache_lookup(&a, other, PROTO_OP_SEND, PROTO_L4_UDP, &out, &src_unused));

	/* and the slot is usable again */
	shim_cache_store(&a, other, PROTO_OP_SEND, PROTO_L4_UDP, &hook.v, 0);
	ck_assert(shim_cache_lookup(&a, other, PROTO_OP_SEND, PROTO_L4_UDP, &out, &src_unused));
	ck_assert_int_eq(out.action, PROTO_ALLOW);
}
END_TEST

/* ---- the lines that say why nothing was asked ---- */

static const struct {
	int err;
	bool fail_open;
	bool allowed;
	const char *line;
} unanswered[] = {
	{ EACCES, false, false,
	  "egress: broker at /nonexistent/broker.sock refused this process (Permission denied, "
	  "uid %u); connect to 127.0.0.1:9 denied\n" },
	{ EACCES, true, false,
	  "egress: broker at /nonexistent/broker.sock refused this process (Permission denied, "
	  "uid %u); connect to 127.0.0.1:9 denied\n" },
	{ EPERM, true, false,
	  "egress: broker at /nonexistent/broker.sock refused this process (Operation not "
	  "permitted, uid %u); connect to 127.0.0.1:9 denied\n" },
	{ EMFILE, false, false,
	  "egress: no free descriptor to ask the broker (Too many open files); connect to "
	  "127.0.0.1:9 denied\n" },
	{ ENFILE, true, false,
	  "egress: no free descriptor to ask the broker (Too many open files in system); "
	  "connect to 127.0.0.1:9 denied\n" },
	{ ECONNREFUSED, true, true,
	  "egress: broker unreachable at /nonexistent/broker.sock; connect to 127.0.0.1:9 "
	  "ALLOWED UNCHECKED (EGRESS_FAIL=open)\n" },
};

/* Each reason has its line, once per process; a refused process and one
 * out of descriptors are denied whatever EGRESS_FAIL says. */
START_TEST(shim_log_unanswered_tells_the_reason)
{
	char want[512];

	shim_config.fail_open = unanswered[_i].fail_open;
	for (int n = 0; n < 3; n++)
		ck_assert_int_eq(shim_log_unanswered("connect to 127.0.0.1:9", unanswered[_i].err),
				 unanswered[_i].allowed);
	snprintf(want, sizeof want, unanswered[_i].line, (unsigned)getuid());
	ck_assert_str_eq(errtext(), want);
}
END_TEST

/* The shim's own formatter (no stdio: it may run in a signal handler). */
START_TEST(shim_log_line_formats_without_stdio)
{
	char big[600];

	shim_log_line("a %s %d %d %u %ld %lu %zu %c %%|", "s", -42, 0, 7u, -1234567890123L,
		      18446744073709551615UL, (size_t)99, 'c');
	ck_assert_str_eq(errtext(), "a s -42 0 7 -1234567890123 18446744073709551615 99 c %|\n");
	size_t first = strlen(errtext());

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	shim_log_line("%s", big);
	ck_assert_int_eq(strlen(errtext()), first + 512); /* cut to one 512-byte line */
	ck_assert_int_eq(errtext()[strlen(errtext()) - 1], '\n');
}
END_TEST

START_TEST(denied_datagrams_never_arrive)
{
	struct sockaddr_in rcv;
	int rfd = bound(SOCK_DGRAM, &rcv);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr mh = { .msg_name = &rcv, .msg_namelen = sizeof rcv, .msg_iov = &iov,
			     .msg_iovlen = 1 };

	answer(PROTO_DENY, ENETUNREACH, "no-udp", "");
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&rcv, sizeof rcv), -1);
		ck_assert_int_eq(errno, ENETUNREACH);
		ck_assert_int_eq(shim_sendmsg(fd, &mh, 0), -1);
		ck_assert_int_eq(errno, ENETUNREACH);
	}
	ck_assert_int_eq(stub.calls, 1); /* cached denial */
	ck_assert_int_eq(count_lines(errtext()), 1);
	ck_assert_int_eq(drain(rfd), 0);
}
END_TEST

/* A datagram to port 53 with a verdict that names a port goes to that
 * port of the address of the socket's family (the broker's lookup stub);
 * its answer is received as from the name server asked, by recvfrom,
 * recvmsg and recvmmsg, and getpeername of a connected one shows it. */
START_TEST(dns_queries_go_to_the_stub)
{
	struct sockaddr_in stubaddr, ns = { .sin_family = AF_INET, .sin_port = htons(53) }, from;
	int sfd = bound(SOCK_DGRAM, &stubaddr), fd = socket(AF_INET, SOCK_DGRAM, 0);
	socklen_t fl = sizeof from;
	struct sockaddr_storage peer, src;
	char buf[16];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
	struct msghdr mh = { .msg_name = &src, .msg_namelen = sizeof src, .msg_iov = &iov,
			     .msg_iovlen = 1 };
	struct mmsghdr mm = { .msg_hdr = mh };

	inet_pton(AF_INET, "192.0.2.1", &ns.sin_addr);
	answer(PROTO_ALLOW, 0, "dns", "");
	stub.answer.ttl_ms = 0;
	add_addr("::1");
	add_addr("127.0.0.1");
	stub.answer.port = ntohs(stubaddr.sin_port);
	ck_assert_int_eq(shim_sendto(fd, "q", 1, 0, (struct sockaddr *)&ns, sizeof ns), 1);
	ck_assert_int_eq(recvfrom(sfd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), 1);
	/* the stub answers (sendto is the hook here too: a plain allow for it);
	 * the program sees the name server */
	stub.answer.port = 0;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(sendto(sfd, "a", 1, 0, (struct sockaddr *)&from, fl), 1);
	fl = sizeof from;
	ck_assert_int_eq(shim_recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), 1);
	ck_assert_int_eq(fl, sizeof ns);
	ck_assert_int_eq(memcmp(&from, &ns, sizeof ns), 0);
	ck_assert_int_eq(shim_recvmsg(fd, &mh, 0), 1);
	ck_assert_int_eq(memcmp(&src, &ns, sizeof ns), 0);
	memset(&src, 0, sizeof src);
	ck_assert_int_eq(shim_recvmmsg(fd, &mm, 1, 0, NULL), 1);
	ck_assert_int_eq(memcmp(&src, &ns, sizeof ns), 0);
	/* connected: to the stub, its peer the name server */
	stub.answer.port = ntohs(stubaddr.sin_port);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&ns, sizeof ns), 0);
	fl = sizeof peer;
	ck_assert_int_eq(shim_getpeername(fd, (struct sockaddr *)&peer, &fl), 0);
	ck_assert_int_eq(memcmp(&peer, &ns, sizeof ns), 0);
	ck_assert_int_eq(send(fd, "q", 1, 0), 1);
	ck_assert_int_eq(drain(sfd), 1);
	/* connected elsewhere again: a datagram socket may */
	answer(PROTO_ALLOW, 0, "ok", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&stubaddr, sizeof stubaddr), 0);
	close(fd);
	close(sfd);
}
END_TEST

START_TEST(sendmsg_without_a_name_passes_through)
{
	struct sockaddr_in rcv;
	int rfd = bound(SOCK_DGRAM, &rcv);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&rcv, sizeof rcv), 0);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(shim_sendmsg(fd, &mh, 0), 1);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(drain(rfd), 1);
}
END_TEST

/* Fills vec[0..n) with one-iov messages to a, but message at to b. */
static void fill_vec(struct mmsghdr *vec, int n, struct sockaddr_in *a, struct sockaddr_in *b,
		     int at, struct iovec *iov)
{
	memset(vec, 0, (size_t)n * sizeof *vec);
	for (int i = 0; i < n; i++) {
		vec[i].msg_hdr.msg_name = i == at ? b : a;
		vec[i].msg_hdr.msg_namelen = sizeof *a;
		vec[i].msg_hdr.msg_iov = iov;
		vec[i].msg_hdr.msg_iovlen = 1;
	}
}

START_TEST(sendmmsg_sends_the_allowed_prefix)
{
	struct sockaddr_in a, b;
	int afd = bound(SOCK_DGRAM, &a), bfd = bound(SOCK_DGRAM, &b);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct mmsghdr vec[3];

	fill_vec(vec, 3, &a, &b, 1, &iov);
	answer(PROTO_DENY, EACCES, "not-b", "");
	stub.deny_port = ntohs(b.sin_port);
	ck_assert_int_eq(shim_sendmmsg(fd, vec, 3, 0), 1);
	ck_assert_int_eq(drain(afd), 1);
	ck_assert_int_eq(drain(bfd), 0);

	/* a denied first message fails the call with the rule's errno */
	ck_assert_int_eq(shim_sendmmsg(fd, vec + 1, 2, 0), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(drain(afd), 0);
	ck_assert_int_eq(drain(bfd), 0);
}
END_TEST

START_TEST(short_ipv6_address_is_judged)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	int fd = socket(AF_INET6, SOCK_STREAM, 0), ufd = socket(AF_INET6, SOCK_DGRAM, 0);

	/* the kernel takes RFC 2133's 24-byte sockaddr_in6, without a scope id */
	sin6.sin6_addr = in6addr_loopback;
	answer(PROTO_DENY, EACCES, "no-v6", "");
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&sin6, SHIM_SIN6_LEN_MIN), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(stub.last.addr.family, 6);
	ck_assert_int_eq(shim_sendto(ufd, "x", 1, 0, (struct sockaddr *)&sin6, SHIM_SIN6_LEN_MIN),
			 -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(stub.calls, 2);
	/* one byte less, and the kernel refuses it itself */
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&sin6, SHIM_SIN6_LEN_MIN - 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(stub.calls, 2);
}
END_TEST

START_TEST(unspec_datagram_destination_is_judged_as_ipv4)
{
	struct sockaddr_in rcv, dst;
	int rfd = bound(SOCK_DGRAM, &rcv);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr mh = { .msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &iov,
			     .msg_iovlen = 1 };

	/* an IPv4 UDP socket sends to an AF_UNSPEC address as if it were AF_INET */
	dst = rcv;
	dst.sin_family = AF_UNSPEC;
	answer(PROTO_DENY, EACCES, "no-udp", "");
	ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(stub.last.addr.family, 4);
	ck_assert_int_eq(stub.last.port, ntohs(rcv.sin_port));
	ck_assert_int_eq(shim_sendmsg(fd, &mh, 0), -1);
	ck_assert_int_eq(drain(rfd), 0);

	answer(PROTO_ALLOW, 0, "ok", "");
	shim_cache_clear();
	ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof dst), 1);
	ck_assert_int_eq(drain(rfd), 1);

	/* a connect to AF_UNSPEC is a disconnect: nothing to judge */
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	ck_assert_int_eq(stub.calls, 2);
}
END_TEST

/* The stub plays another thread of the program: while the shim asks, it
 * points the program's address at a port the verdict was not about. */
START_TEST(the_judged_address_is_the_one_used)
{
	struct sockaddr_in a, b, dst;
	int afd = bound(SOCK_DGRAM, &a), bfd = bound(SOCK_DGRAM, &b);
	int la, lb, fd;
	struct sockaddr_in ta, tb;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr mh = { .msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &iov,
			     .msg_iovlen = 1 };
	struct mmsghdr vec[2];

	stub.mutate = &dst;
	stub.mutate_port = b.sin_port;
	answer(PROTO_DENY, EACCES, "only-a", "");
	stub.answer.ttl_ms = 0; /* every send asks, and the stub moves the port each time */
	stub.deny_port = ntohs(b.sin_port);

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	dst = a;
	ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof dst), 1);
	dst = a;
	ck_assert_int_eq(shim_sendmsg(fd, &mh, 0), 1);
	memset(vec, 0, sizeof vec);
	vec[0].msg_hdr = mh;
	vec[1].msg_hdr = mh;
	/* the second message is read after the first one's verdict moved it */
	dst = a;
	ck_assert_int_eq(shim_sendmmsg(fd, vec, 2, 0), 1);
	ck_assert_int_eq(vec[0].msg_len, 1);
	ck_assert_int_eq(drain(afd), 3);
	ck_assert_int_eq(drain(bfd), 0);

	la = bound(SOCK_STREAM, &ta);
	lb = bound(SOCK_STREAM, &tb);
	stub.mutate_port = tb.sin_port;
	stub.deny_port = ntohs(tb.sin_port);
	dst = ta;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	usleep(10000);
	ck_assert_int_ge(accept(la, NULL, NULL), 0);
	ck_assert_int_eq(accept(lb, NULL, NULL), -1);
}
END_TEST

START_TEST(sendmmsg_of_many_messages_judges_each)
{
	enum { N = 150 }; /* more than one chunk of the hook */
	struct sockaddr_in a, b;
	int afd = bound(SOCK_DGRAM, &a), bfd = bound(SOCK_DGRAM, &b);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1 << 20;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	static struct mmsghdr vec[N];

	setsockopt(afd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
	fill_vec(vec, N, &a, &b, 130, &iov);
	answer(PROTO_DENY, EACCES, "not-b", "");
	stub.deny_port = ntohs(b.sin_port);
	ck_assert_int_eq(shim_sendmmsg(fd, vec, N, 0), 130);
	ck_assert_int_eq(vec[129].msg_len, 1);
	ck_assert_int_eq(vec[130].msg_len, 0);
	ck_assert_int_eq(drain(afd), 130);
	ck_assert_int_eq(drain(bfd), 0);
}
END_TEST

START_TEST(fastopen_sendto_is_a_connect)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)lfd;
	answer(PROTO_DENY, EACCES, "no-tfo", "");
	ck_assert_int_eq(shim_sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&srv, sizeof srv),
			 -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(stub.last.op, PROTO_OP_CONNECT);
	ck_assert_ptr_nonnull(strstr(errtext(), "denied connect to 127.0.0.1:"));
}
END_TEST

START_TEST(stream_sendto_without_fastopen_is_not_judged)
{
	struct sockaddr_in srv, dst = loop4(9);
	int lfd = bound(SOCK_STREAM, &srv);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)lfd;
	ck_assert_int_eq(shim_real.connect(fd, (struct sockaddr *)&srv, sizeof srv), 0);
	answer(PROTO_DENY, EACCES, "all", "");
	/* a connected TCP socket ignores the address; so does the shim */
	ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof dst), 1);
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

START_TEST(non_socket_descriptors_pass_through)
{
	struct sockaddr_in dst = loop4(9);
	int fd = open("/dev/null", O_WRONLY);

	ck_assert_int_eq(shim_sendto(fd, "x", 1, 0, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, ENOTSOCK);
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

/* ---- getaddrinfo ---- */

static int count_ai(const struct addrinfo *ai, int family, int socktype)
{
	int n = 0;

	for (; ai; ai = ai->ai_next)
		n += (family == 0 || ai->ai_family == family) &&
		     (socktype == 0 || ai->ai_socktype == socktype);
	return n;
}

START_TEST(gai_null_hints_gives_both_families_and_socktypes)
{
	struct addrinfo *res = NULL;

	answer(PROTO_ALLOW, 0, "api", "");
	add_addr("192.0.2.1");
	add_addr("2001:db8::1");
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "443", NULL, &res), 0);
	ck_assert_int_eq(stub.last.op, PROTO_OP_RESOLVE);
	ck_assert_str_eq(stub.last.name, "api.example.com");
	ck_assert_int_eq(stub.last.port, 443);
	ck_assert_int_eq(stub.last.family, 0);
	ck_assert_int_eq(count_ai(res, AF_INET, SOCK_STREAM), 1);
	ck_assert_int_eq(count_ai(res, AF_INET, SOCK_DGRAM), 1);
	ck_assert_int_eq(count_ai(res, AF_INET6, SOCK_STREAM), 1);
	ck_assert_int_eq(count_ai(res, 0, SOCK_RAW), 0); /* a service excludes raw */
	ck_assert_int_eq(res->ai_family, AF_INET);       /* the broker's order */
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 443);
	ck_assert_ptr_null(res->ai_canonname);
	shim_freeaddrinfo(res);
}
END_TEST

START_TEST(gai_family_and_socktype_hints)
{
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;

	add_addr("192.0.2.1");
	add_addr("2001:db8::1");
	add_addr("192.0.2.2");
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", NULL, &h, &res), 0);
	ck_assert_int_eq(stub.last.family, 4);
	ck_assert_int_eq(stub.last.l4, PROTO_L4_TCP);
	ck_assert_int_eq(count_ai(res, 0, 0), 2);
	ck_assert_int_eq(count_ai(res, AF_INET, SOCK_STREAM), 2);
	shim_freeaddrinfo(res);

	h.ai_family = AF_INET6;
	h.ai_socktype = SOCK_DGRAM;
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "53", &h, &res), 0);
	ck_assert_int_eq(stub.last.family, 6);
	ck_assert_int_eq(stub.last.l4, PROTO_L4_UDP);
	ck_assert_int_eq(count_ai(res, 0, 0), 1);
	ck_assert_int_eq(count_ai(res, AF_INET6, SOCK_DGRAM), 1);
	shim_freeaddrinfo(res);
}
END_TEST

START_TEST(gai_v4mapped_and_all)
{
	struct addrinfo h = { .ai_family = AF_INET6, .ai_flags = AI_V4MAPPED,
			      .ai_socktype = SOCK_STREAM }, *res;
	char text[INET6_ADDRSTRLEN];

	add_addr("192.0.2.1");
	ck_assert_int_eq(shim_getaddrinfo("v4only.example", NULL, &h, &res), 0);
	ck_assert_int_eq(stub.last.family, 0); /* AAAA alone would not do: ask for both */
	ck_assert_int_eq(res->ai_family, AF_INET6);
	inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, text, sizeof text);
	ck_assert_str_eq(text, "::ffff:192.0.2.1");
	shim_freeaddrinfo(res);

	/* with an IPv6 answer, V4MAPPED adds nothing unless AI_ALL */
	add_addr("2001:db8::1");
	ck_assert_int_eq(shim_getaddrinfo("both.example", NULL, &h, &res), 0);
	ck_assert_int_eq(count_ai(res, 0, 0), 1);
	shim_freeaddrinfo(res);
	h.ai_flags |= AI_ALL;
	ck_assert_int_eq(shim_getaddrinfo("both.example", NULL, &h, &res), 0);
	ck_assert_int_eq(count_ai(res, AF_INET6, 0), 2);
	shim_freeaddrinfo(res);

	/* AF_INET6 without V4MAPPED and an IPv4-only answer */
	h.ai_flags = 0;
	stub.answer.naddr = 1;
	ck_assert_int_eq(shim_getaddrinfo("v4only.example", NULL, &h, &res), EAI_ADDRFAMILY);
}
END_TEST

START_TEST(gai_canonname_and_trailing_dot)
{
	struct addrinfo h = { .ai_flags = AI_CANONNAME, .ai_socktype = SOCK_STREAM }, *res;

	add_addr("192.0.2.1");
	ck_assert_int_eq(shim_getaddrinfo("Api.Example.com", "80", &h, &res), 0);
	ck_assert_str_eq(res->ai_canonname, "Api.Example.com");
	shim_freeaddrinfo(res);
	ck_assert_int_eq(shim_getaddrinfo("api.example.com.", "80", &h, &res), 0);
	ck_assert_str_eq(stub.last.name, "api.example.com.");
	shim_freeaddrinfo(res);
}
END_TEST

START_TEST(gai_denied_gives_eai_noname_and_a_line)
{
	struct addrinfo *res = NULL;

	answer(PROTO_DENY, EACCES, "no-paste", "");
	ck_assert_int_eq(shim_getaddrinfo("paste.example", "443", NULL, &res), EAI_NONAME);
	ck_assert_ptr_null(res);
	ck_assert_str_eq(errtext(), "egress: denied resolve of paste.example (rule no-paste)\n");

	/* a broker that says which EAI_* code gets it, when it is a real one */
	answer(PROTO_DENY, EAI_FAIL, "x", "");
	ck_assert_int_eq(shim_getaddrinfo("paste.example", "443", NULL, &res), EAI_FAIL);
	answer(PROTO_DENY, -12345, "x", "");
	ck_assert_int_eq(shim_getaddrinfo("paste.example", "443", NULL, &res), EAI_NONAME);
}
END_TEST

START_TEST(gai_allowed_without_addresses)
{
	struct addrinfo *res = NULL;

	answer(PROTO_ALLOW, EAI_NODATA, "ok", "");
	ck_assert_int_eq(shim_getaddrinfo("empty.example", NULL, NULL, &res), EAI_NODATA);
	answer(PROTO_ALLOW, 0, "ok", "");
	ck_assert_int_eq(shim_getaddrinfo("empty.example", NULL, NULL, &res), EAI_NONAME);
}
END_TEST

START_TEST(gai_unreachable_is_eai_again)
{
	struct addrinfo *res = NULL;

	stub.fail_errno = ETIMEDOUT;
	errno = 0;
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "443", NULL, &res), EAI_AGAIN);
	ck_assert_int_eq(errno, 0); /* EAI_AGAIN is not EAI_SYSTEM: errno untouched */
	ck_assert_ptr_nonnull(strstr(errtext(), "resolve of api.example.com denied"));
}
END_TEST

START_TEST(gai_numeric_hosts_are_not_asked)
{
	struct addrinfo *res;
	struct addrinfo h = { .ai_flags = AI_NUMERICHOST };

	ck_assert_int_eq(shim_getaddrinfo("127.0.0.1", "80", NULL, &res), 0);
	ck_assert_int_eq(res->ai_family, AF_INET);
	shim_freeaddrinfo(res);
	ck_assert_int_eq(shim_getaddrinfo("::1", "80", NULL, &res), 0);
	ck_assert_int_eq(res->ai_family, AF_INET6);
	shim_freeaddrinfo(res);
	ck_assert_int_eq(stub.calls, 0);

	/* AI_NUMERICHOST with a name: libc's answer, no question */
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "80", &h, &res), EAI_NONAME);
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

START_TEST(gai_bad_arguments)
{
	struct addrinfo *res;
	struct addrinfo h = { .ai_flags = AI_NUMERICSERV };
	char longname[300];

	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	ck_assert_int_eq(shim_getaddrinfo(longname, NULL, NULL, &res), EAI_NONAME);
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "99999", NULL, &res), EAI_SERVICE);
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "https", &h, &res), EAI_NONAME);
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "no-such-service-x", NULL, &res),
			 EAI_SERVICE);
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

START_TEST(freeaddrinfo_takes_libc_lists_too)
{
	struct addrinfo *res;

	/* a list from libc goes back to libc (ASan would see a bad free) */
	ck_assert_int_eq(shim_getaddrinfo(NULL, "80", NULL, &res), 0);
	shim_freeaddrinfo(res);
	shim_freeaddrinfo(NULL);
}
END_TEST

/* ---- a real broker socket: a SOCK_SEQPACKET server in a thread ---- */

enum fake_mode {
	FAKE_ANSWER,
	FAKE_STALE_FIRST,
	FAKE_SILENT,
	FAKE_OTHER_VERSION, /* ERROR "unknown version", in a header of the next version */
	FAKE_VERSION_ERROR, /* ERROR "unknown version", in a header of ours */
	FAKE_SIGNAL,        /* the first question: SIGUSR1 to fake.signal_tid, then the answer */
};

static struct {
	char dir[64], path[108];
	int lfd;
	enum fake_mode mode;
	int accepts, asks;   /* under lock */
	pid_t last_pid;
	pid_t signal_tid;    /* FAKE_SIGNAL: the thread to interrupt, once */
	int stop[2];         /* a byte on stop[1] ends the thread */
	pthread_t thread;
	pthread_mutex_t lock;
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void fake_answer(int cfd, const struct proto_msg *q)
{
	struct proto_msg m = { .type = PROTO_VERDICT, .id = q->id };
	uint8_t buf[1024];
	ssize_t n;

	m.u.verdict.action = PROTO_ALLOW;
	snprintf(m.u.verdict.rule, sizeof m.u.verdict.rule, "fake");
	if (fake.mode == FAKE_SIGNAL) {
		/* each answer names its question's port */
		snprintf(m.u.verdict.rule, sizeof m.u.verdict.rule, "port-%u", q->u.ask.port);
		if (fake.signal_tid) {
			syscall(SYS_tgkill, getpid(), fake.signal_tid, SIGUSR1);
			fake.signal_tid = 0;
		}
	}
	if (fake.mode == FAKE_OTHER_VERSION || fake.mode == FAKE_VERSION_ERROR) {
		m.type = PROTO_ERROR; /* what the broker answers a shim of another build */
		m.u.error = PROTO_E_VERSION;
		n = proto_encode(&m, buf, sizeof buf);
		if (fake.mode == FAKE_OTHER_VERSION)
			buf[1] = PROTO_VERSION + 1;
		send(cfd, buf, (size_t)n, MSG_NOSIGNAL);
		return;
	}
	if (fake.mode == FAKE_STALE_FIRST) {
		m.id = q->id - 1; /* an answer to an earlier question, then the right one */
		m.u.verdict.action = PROTO_DENY;
		n = proto_encode(&m, buf, sizeof buf);
		send(cfd, buf, (size_t)n, MSG_NOSIGNAL);
		m.id = q->id;
		m.u.verdict.action = PROTO_ALLOW;
	}
	n = proto_encode(&m, buf, sizeof buf);
	send(cfd, buf, (size_t)n, MSG_NOSIGNAL);
}

static void *fake_run(void *unused)
{
	struct pollfd p[34];
	int n = 2;

	(void)unused;
	p[0] = (struct pollfd){ .fd = fake.stop[0], .events = POLLIN };
	p[1] = (struct pollfd){ .fd = fake.lfd, .events = POLLIN };
	for (;;) {
		if (poll(p, (nfds_t)n, -1) < 0)
			continue;
		if (p[0].revents)
			break;
		if (p[1].revents && n < 34) {
			int cfd = accept(fake.lfd, NULL, NULL);
			struct ucred cr;
			socklen_t cl = sizeof cr;
			if (cfd >= 0) {
				getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
				pthread_mutex_lock(&fake.lock);
				fake.accepts++;
				fake.last_pid = cr.pid;
				pthread_mutex_unlock(&fake.lock);
				p[n++] = (struct pollfd){ .fd = cfd, .events = POLLIN };
			}
		}
		for (int i = 2; i < n; i++) {
			uint8_t buf[1024];
			struct proto_msg m;
			ssize_t r;
			if (!p[i].revents)
				continue;
			r = recv(p[i].fd, buf, sizeof buf, 0);
			if (r <= 0) {
				close(p[i].fd);
				p[i--] = p[--n];
				continue;
			}
			if (proto_decode(buf, (size_t)r, &m) != 0)
				continue;
			pthread_mutex_lock(&fake.lock);
			fake.asks++;
			pthread_mutex_unlock(&fake.lock);
			if (fake.mode != FAKE_SILENT)
				fake_answer(p[i].fd, &m);
		}
	}
	for (int i = 2; i < n; i++)
		close(p[i].fd);
	return NULL;
}

static void fake_start(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	fake.lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ck_assert_int_ge(fake.lfd, 0);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", fake.path);
	unlink(fake.path);
	ck_assert_int_eq(bind(fake.lfd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fake.lfd, 64), 0);
	ck_assert_int_eq(pipe(fake.stop), 0);
	ck_assert_int_eq(pthread_create(&fake.thread, NULL, fake_run, NULL), 0);
}

/* Stops the server and closes its socket and every connection it had. */
static void fake_stop(void)
{
	ck_assert_int_eq(write(fake.stop[1], "x", 1), 1);
	pthread_join(fake.thread, NULL);
	close(fake.lfd);
	close(fake.stop[0]);
	close(fake.stop[1]);
}

static int fake_count(int *what)
{
	int v;

	pthread_mutex_lock(&fake.lock);
	v = *what;
	pthread_mutex_unlock(&fake.lock);
	return v;
}

static void setup_fake(void)
{
	setup();
	shim_ask = shim_client_ask;
	snprintf(fake.dir, sizeof fake.dir, "/tmp/egress-check-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fake.dir));
	snprintf(fake.path, sizeof fake.path, "%s/broker.sock", fake.dir);
	snprintf(shim_config.socket_path, sizeof shim_config.socket_path, "%s", fake.path);
	fake.mode = FAKE_ANSWER;
	fake.accepts = fake.asks = 0;
	fake_start();
}

static void teardown_fake(void)
{
	fake_stop();
	unlink(fake.path);
	rmdir(fake.dir);
	teardown();
}

static int ask_once(struct proto_verdict *v)
{
	struct proto_ask ask = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .port = 443 };

	ask.addr.family = 4;
	memcpy(ask.addr.bytes, "\xc0\x00\x02\x01", 4);
	return shim_client_ask(&ask, v, NULL);
}

/* True when fd is a connected socket (the shim's spare one is not). */
static bool connected(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* The broker connection's descriptor: the one connected socket at or above
 * 900. */
static int broker_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (fd >= 900 && fd != dirfd(d) && connected(fd))
			found = fd;
	}
	closedir(d);
	return found;
}

START_TEST(broker_connection_is_lazy_high_and_cloexec)
{
	struct proto_verdict v;

	ck_assert_int_eq(fake_count(&fake.accepts), 0); /* shim_init connected nothing */
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_int_eq(v.action, PROTO_ALLOW);
	ck_assert_str_eq(v.rule, "fake");
	int fd = broker_fd();
	ck_assert_int_ge(fd, 900);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_int_eq(fake_count(&fake.accepts), 1); /* one connection, reused */
	ck_assert_int_eq(fake_count(&fake.asks), 2);
}
END_TEST

START_TEST(stale_answers_are_skipped)
{
	struct proto_verdict v;

	fake.mode = FAKE_STALE_FIRST;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(ask_once(&v), 0);
		ck_assert_int_eq(v.action, PROTO_ALLOW);
	}
}
END_TEST

START_TEST(silent_broker_times_out_and_denies)
{
	struct sockaddr_in dst = loop4(9);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct proto_verdict v;

	fake.mode = FAKE_SILENT;
	shim_config.timeout_ms = 200;
	ck_assert_int_eq(ask_once(&v), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_ptr_nonnull(strstr(errtext(), "broker unreachable at /tmp/egress-check-"));

	/* a late answer on the old connection is never taken: it was dropped */
	fake.mode = FAKE_ANSWER;
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_int_eq(fake_count(&fake.accepts), 3);
}
END_TEST

/* A broker of another build, answering in its version (loop 0) or in ours
 * (loop 1): denied with EPERM whatever EGRESS_FAIL says, and one line that
 * says so, not "unreachable". */
START_TEST(broker_of_another_version_is_reported_as_such)
{
	struct sockaddr_in dst = loop4(9);
	struct proto_verdict v;
	char want[256];

	fake.mode = _i == 0 ? FAKE_OTHER_VERSION : FAKE_VERSION_ERROR;
	ck_assert_int_eq(ask_once(&v), -1);
	ck_assert_int_eq(errno, EPROTONOSUPPORT);
	shim_config.fail_open = true;
	for (int i = 0; i < 2; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		errno = 0;
		ck_assert_int_eq(shim_connect(fd, (struct sockaddr *)&dst, sizeof dst), -1);
		ck_assert_int_eq(errno, EPERM);
		close(fd);
	}
	snprintf(want, sizeof want,
		 "egress: broker at %s speaks another protocol version (shim v%d); "
		 "connect to 127.0.0.1:9 denied\n",
		 fake.path, PROTO_VERSION);
	ck_assert_str_eq(errtext(), want);
	ck_assert_int_eq(fake_count(&fake.asks), 3); /* asked every time, never retried */
	ck_assert_int_eq(fake_count(&fake.accepts), 3);
}
END_TEST

START_TEST(descriptor_taken_by_the_program_is_left_alone)
{
	struct proto_verdict v;
	int pfd[2];
	char b[16];

	ck_assert_int_eq(ask_once(&v), 0);
	int fd = broker_fd();
	ck_assert_int_ge(fd, 900);
	/* the program closes everything high and reuses the number for a pipe */
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(dup2(pfd[1], fd), fd);
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_int_eq(fcntl(pfd[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(read(pfd[0], b, sizeof b), -1); /* nothing written into the pipe */
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(fcntl(fd, F_GETFD), 0);         /* and the program's fd still open */
	ck_assert_int_eq(fake_count(&fake.accepts), 2);

	/* closed outright */
	close(broker_fd());
	ck_assert_int_eq(ask_once(&v), 0);
}
END_TEST

START_TEST(broker_restart_is_survived)
{
	struct proto_verdict v;

	ck_assert_int_eq(ask_once(&v), 0);
	fake_stop();
	ck_assert_int_eq(ask_once(&v), -1); /* gone: refused, at once */
	fake_start();
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_int_eq(v.action, PROTO_ALLOW);
}
END_TEST

START_TEST(forked_child_opens_its_own_connection)
{
	struct proto_verdict v;
	int status;
	pid_t pid;

	ck_assert_int_eq(ask_once(&v), 0);
	pid = fork();
	if (pid == 0)
		_exit(ask_once(&v) == 0 && v.action == PROTO_ALLOW ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(fake_count(&fake.accepts), 2);
	ck_assert_int_eq(fake_count(&fake.last_pid), pid);
	ck_assert_int_eq(ask_once(&v), 0); /* the parent's connection still works */
	ck_assert_int_eq(fake_count(&fake.accepts), 2);
}
END_TEST

/* The SIGUSR1 handler of signal_during_an_ask_gets_its_own_answer: asks
 * about port 80 while the interrupted code asks about 443. */
static volatile sig_atomic_t handler_rc = 1;
static struct proto_verdict handler_v;

static void ask_in_handler(int signo)
{
	struct proto_ask ask = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .port = 80 };

	(void)signo;
	ask.addr.family = 4;
	memcpy(ask.addr.bytes, "\xc0\x00\x02\x01", 4);
	handler_rc = shim_client_ask(&ask, &handler_v, NULL);
}

/* A signal handler that asks while its thread waits for the broker's
 * answer: each gets its own answer, at once (no timeout), and the
 * thread's connection goes on serving it. */
START_TEST(signal_during_an_ask_gets_its_own_answer)
{
	struct sigaction sa = { .sa_handler = ask_in_handler };
	struct proto_verdict v;

	sigaction(SIGUSR1, &sa, NULL);
	shim_config.timeout_ms = 1000;
	fake.mode = FAKE_SIGNAL;
	fake.signal_tid = (pid_t)syscall(SYS_gettid);
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_str_eq(v.rule, "port-443");
	ck_assert_int_eq(handler_rc, 0);
	ck_assert_str_eq(handler_v.rule, "port-80");
	ck_assert_int_eq(fake_count(&fake.asks), 2);
	ck_assert_int_eq(fake_count(&fake.accepts), 2); /* the handler's own, closed */
	ck_assert_int_eq(ask_once(&v), 0);
	ck_assert_str_eq(v.rule, "port-443");
	ck_assert_int_eq(fake_count(&fake.accepts), 2);
}
END_TEST

static void *thread_ask(void *out)
{
	struct proto_verdict v;

	*(int *)out = ask_once(&v);
	return NULL;
}

START_TEST(each_thread_has_its_connection)
{
	pthread_t t[4];
	int rc[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_ask, &rc[i]);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(rc[i], 0);
	}
	ck_assert_int_eq(fake_count(&fake.accepts), 4);
	ck_assert_int_eq(broker_fd(), -1); /* closed when each thread ended */
}
END_TEST

/* ---- lookups besides getaddrinfo, and libc's own connects (h8b) ---- */

#include <arpa/nameser.h>
#include <resolv.h>

int __connect(int fd, const struct sockaddr *sa, socklen_t len);

START_TEST(gai_empty_service_is_port_zero)
{
	struct addrinfo h = { .ai_socktype = SOCK_STREAM }, *res;

	add_addr("192.0.2.1");
	ck_assert_int_eq(shim_getaddrinfo("api.example.com", "", &h, &res), 0);
	ck_assert_int_eq(stub.last.port, 0);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 0);
	shim_freeaddrinfo(res);
}
END_TEST

START_TEST(gethostbyname2_r_builds_the_answer_in_the_buffer)
{
	struct hostent he, *r;
	char buf[512], text[INET6_ADDRSTRLEN];
	int herr = -1;

	add_addr("192.0.2.1");
	add_addr("2001:db8::1");
	add_addr("192.0.2.2");
	ck_assert_int_eq(shim_gethostbyname2_r("api.example.com", AF_INET, &he, buf, sizeof buf, &r,
					       &herr), 0);
	ck_assert_ptr_eq(r, &he);
	ck_assert_int_eq(stub.last.op, PROTO_OP_RESOLVE);
	ck_assert_int_eq(stub.last.family, 4);
	ck_assert_str_eq(he.h_name, "api.example.com");
	ck_assert_int_eq(he.h_length, 4);
	ck_assert_ptr_null(he.h_aliases[0]);
	ck_assert_str_eq(inet_ntop(AF_INET, he.h_addr_list[0], text, sizeof text), "192.0.2.1");
	ck_assert_str_eq(inet_ntop(AF_INET, he.h_addr_list[1], text, sizeof text), "192.0.2.2");
	ck_assert_ptr_null(he.h_addr_list[2]);
	ck_assert(he.h_name >= buf && he.h_name < buf + sizeof buf);

	ck_assert_int_eq(shim_gethostbyname2_r("api.example.com", AF_INET6, &he, buf, sizeof buf, &r,
					       &herr), 0);
	ck_assert_int_eq(stub.last.family, 6);
	ck_assert_int_eq(he.h_addrtype, AF_INET6);
	ck_assert_str_eq(inet_ntop(AF_INET6, he.h_addr_list[0], text, sizeof text), "2001:db8::1");
	ck_assert_ptr_null(he.h_addr_list[1]);

	/* too small a buffer: ERANGE, as libc's, so the caller grows it */
	ck_assert_int_eq(shim_gethostbyname2_r("api.example.com", AF_INET, &he, buf, 16, &r, &herr),
			 ERANGE);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(herr, NETDB_INTERNAL);
}
END_TEST

START_TEST(gethostbyname_denied_is_host_not_found)
{
	struct hostent he, *r = &he;
	char buf[512];
	int herr = 0;

	answer(PROTO_DENY, EAI_NONAME, "no-paste", "");
	ck_assert_ptr_null(gethostbyname("paste.example"));
	ck_assert_int_eq(h_errno, HOST_NOT_FOUND);
	ck_assert_int_eq(stub.calls, 1);
	ck_assert_int_eq(gethostbyname_r("paste.example", &he, buf, sizeof buf, &r, &herr), 0);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(herr, HOST_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(errtext(), "denied resolve of paste.example (rule no-paste)"));

	stub.fail_errno = ECONNREFUSED; /* broker gone: TRY_AGAIN, never libc's own lookup */
	ck_assert_int_eq(gethostbyname_r("api.example.com", &he, buf, sizeof buf, &r, &herr), EAGAIN);
	ck_assert_int_eq(herr, TRY_AGAIN);
	ck_assert_int_eq(gethostbyname2_r("api.example.com", AF_UNIX, &he, buf, sizeof buf, &r, &herr),
			 EAFNOSUPPORT);
}
END_TEST

START_TEST(gethostbyname_numeric_is_not_asked)
{
	struct hostent *he = gethostbyname("192.0.2.9");
	char text[INET_ADDRSTRLEN];

	ck_assert_ptr_nonnull(he);
	ck_assert_str_eq(inet_ntop(AF_INET, he->h_addr_list[0], text, sizeof text), "192.0.2.9");
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

START_TEST(getaddrinfo_a_judges_each_request)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct gaicb a = { .ar_name = "paste.example", .ar_request = &hints };
	struct gaicb b = { .ar_name = "api.example.com", .ar_service = "443", .ar_request = &hints };
	struct gaicb *list[3] = { &a, NULL, &b };

	stub.deny_port = 0;
	answer(PROTO_DENY, EAI_NONAME, "no", "");
	ck_assert_int_eq(shim_getaddrinfo_a(GAI_WAIT, list, 1, NULL), 0);
	ck_assert_int_eq(gai_error(&a), EAI_NONAME);
	ck_assert_ptr_null(a.ar_result);
	answer(PROTO_ALLOW, 0, "ok", "");
	add_addr("192.0.2.1");
	ck_assert_int_eq(shim_getaddrinfo_a(GAI_NOWAIT, list, 3, NULL), 0);
	ck_assert_int_eq(stub.calls, 3);
	ck_assert_int_eq(gai_error(&b), 0);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)b.ar_result->ai_addr)->sin_port), 443);
	ck_assert_int_eq(gai_cancel(&b), EAI_ALLDONE); /* finished, as libc sees it */
	shim_freeaddrinfo(a.ar_result);
	shim_freeaddrinfo(b.ar_result);
	ck_assert_int_eq(shim_getaddrinfo_a(42, list, 1, NULL), EAI_SYSTEM);
}
END_TEST

/* Reverse lookups: the hosts file's names, else none (no query made). */
START_TEST(getnameinfo_makes_no_reverse_lookup)
{
	struct sockaddr_in sin = loop4(80);
	char host[NI_MAXHOST], serv[32], dir[64], path[128];
	struct hostent he, *r;
	char buf[512];
	int herr;

	FILE *f;

	snprintf(dir, sizeof dir, "/tmp/check_shim.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/hosts", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("127.0.0.1 lo.example lo\n", f);
	fclose(f);
	shim_hosts_path = "/nonexistent/hosts";
	ck_assert_int_eq(shim_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
					  sizeof serv, NI_NUMERICSERV), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_str_eq(serv, "80");
	ck_assert_int_eq(shim_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL,
					  0, NI_NAMEREQD), EAI_NONAME);
	ck_assert_int_eq(shim_gethostbyaddr_r(&sin.sin_addr, 4, AF_INET, &he, buf, sizeof buf, &r,
					      &herr), 0);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(herr, HOST_NOT_FOUND);
	shim_hosts_path = path;
	ck_assert_int_eq(shim_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
					  sizeof serv, NI_NAMEREQD | NI_NUMERICSERV), 0);
	ck_assert_str_eq(host, "lo.example");
	ck_assert_str_eq(serv, "80");
	ck_assert_int_eq(shim_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, 5, NULL, 0, 0),
			 EAI_OVERFLOW);
	ck_assert_int_eq(shim_gethostbyaddr_r(&sin.sin_addr, 4, AF_INET, &he, buf, sizeof buf, &r,
					      &herr), 0);
	ck_assert_ptr_eq(r, &he);
	ck_assert_str_eq(he.h_name, "lo.example");
	ck_assert_str_eq(he.h_aliases[0], "lo");
	ck_assert_ptr_null(he.h_aliases[1]);
	ck_assert_int_eq(memcmp(he.h_addr_list[0], &sin.sin_addr, 4), 0);
	ck_assert_ptr_null(he.h_addr_list[1]);
	ck_assert_int_eq(shim_gethostbyaddr_r(&sin.sin_addr, 4, AF_INET, &he, buf, 16, &r, &herr),
			 ERANGE);
	shim_hosts_path = HOSTSFILE_ETC;
	ck_assert_int_eq(stub.calls, 0);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* The addresses of a DNS answer, as text separated by spaces (parsed here:
 * ns_initparse lives in libresolv, which check_shim does not link). */
static const char *answer_addrs(const unsigned char *ans, int n)
{
	static char out[256];
	const unsigned char *p = ans + 12, *end = ans + n;
	char text[INET6_ADDRSTRLEN];
	int an = ans[6] << 8 | ans[7], k;

	out[0] = 0;
	k = dn_skipname(p, end);
	ck_assert_int_ge(k, 0);
	p += k + 4;
	for (int i = 0; i < an; i++) {
		k = dn_skipname(p, end);
		ck_assert_int_ge(k, 0);
		p += k;
		ck_assert(p + 10 <= end);
		int type = p[0] << 8 | p[1], rdlen = p[8] << 8 | p[9];
		p += 10;
		ck_assert(p + rdlen <= end);
		inet_ntop(type == ns_t_a ? AF_INET : AF_INET6, p, text, sizeof text);
		snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? " " : "", text);
		p += rdlen;
	}
	return out;
}

START_TEST(res_query_answers_from_the_broker)
{
	unsigned char ans[512];
	int n;

	add_addr("192.0.2.1");
	add_addr("192.0.2.2");
	n = shim_res_query(NULL, "api.example.com", ns_c_in, ns_t_a, ans, sizeof ans, "res_query");
	ck_assert_int_gt(n, 0);
	ck_assert_str_eq(stub.last.name, "api.example.com");
	ck_assert_int_eq(stub.last.family, 4);
	ck_assert_str_eq(answer_addrs(ans, n), "192.0.2.1 192.0.2.2");

	/* room for one record: TC set, one answer */
	n = shim_res_query(NULL, "api.example.com", ns_c_in, ns_t_a, ans, 12 + 17 + 4 + 16, "res_query");
	ck_assert_int_gt(n, 0);
	ck_assert(ans[2] & 0x02);
	ck_assert_str_eq(answer_addrs(ans, n), "192.0.2.1");

	answer(PROTO_DENY, EAI_NONAME, "no", "");
	h_errno = 0;
	ck_assert_int_eq(shim_res_query(&_res, "paste.example", ns_c_in, ns_t_a, ans, sizeof ans,
					"res_query"), -1);
	ck_assert_int_eq(h_errno, HOST_NOT_FOUND);
	ck_assert_int_eq(_res.res_h_errno, HOST_NOT_FOUND);
}
END_TEST

START_TEST(res_query_of_other_types_is_refused_unasked)
{
	unsigned char ans[512];
	static const int types[] = { ns_t_txt, ns_t_mx, ns_t_srv, ns_t_ptr, ns_t_any, ns_t_cname };

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		h_errno = 0;
		ck_assert_int_eq(shim_res_query(NULL, "api.example.com", ns_c_in, types[i], ans,
						sizeof ans, "res_query"), -1);
		ck_assert_int_eq(h_errno, HOST_NOT_FOUND);
	}
	ck_assert_int_eq(shim_res_query(NULL, "api.example.com", ns_c_chaos, ns_t_a, ans, sizeof ans,
					"res_query"), -1);
	ck_assert_int_eq(stub.calls, 0);
	ck_assert_ptr_nonnull(strstr(errtext(), "egress: res_query of api.example.com (class 1, type 16) "
						"is not mediated; denied\n"));
}
END_TEST

START_TEST(res_send_reads_the_question_or_refuses)
{
	unsigned char q[512], ans[512];
	int n = res_mkquery(ns_o_query, "api.example.com", ns_c_in, ns_t_aaaa, NULL, 0, NULL, q,
			    sizeof q);

	ck_assert_int_gt(n, 0);
	add_addr("2001:db8::1");
	ck_assert_int_gt(shim_res_send(NULL, q, n, ans, sizeof ans, "res_send"), 0);
	ck_assert_str_eq(stub.last.name, "api.example.com");
	ck_assert_int_eq(stub.last.family, 6);
	ck_assert_int_eq(ans[0] << 8 | ans[1], q[0] << 8 | q[1]); /* the query's id */

	/* not one plain query: a response, two questions, a cut packet, garbage */
	q[2] |= 0x80;
	ck_assert_int_eq(shim_res_send(NULL, q, n, ans, sizeof ans, "res_send"), -1);
	q[2] &= 0x7f;
	q[5] = 2;
	ck_assert_int_eq(shim_res_send(NULL, q, n, ans, sizeof ans, "res_send"), -1);
	q[5] = 1;
	ck_assert_int_eq(shim_res_send(NULL, q, n - 3, ans, sizeof ans, "res_send"), -1);
	ck_assert_int_eq(shim_res_send(NULL, q, 5, ans, sizeof ans, "res_send"), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	ck_assert_int_eq(stub.calls, 1);
}
END_TEST

START_TEST(dunder_connect_is_judged_as_connect)
{
	struct sockaddr_in srv;
	int lfd = bound(SOCK_STREAM, &srv), fd = socket(AF_INET, SOCK_STREAM, 0);

	answer(PROTO_DENY, ECONNREFUSED, "no", "");
	ck_assert_int_eq(__connect(fd, (struct sockaddr *)&srv, sizeof srv), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	ck_assert_int_eq(stub.last.op, PROTO_OP_CONNECT);
	ck_assert_int_eq(stub.last.port, ntohs(srv.sin_port));
	ck_assert_int_lt(accept(lfd, NULL, NULL), 0); /* nothing arrived */
	close(fd);
	close(lfd);
}
END_TEST

START_TEST(rcmd_is_refused_with_a_line)
{
	char host[] = "localhost", *ahost = host;

	errno = 0;
	ck_assert_int_eq(rcmd(&ahost, htons(514), "u", "u", "true", NULL), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ruserok("localhost", 0, "u", "u"), -1);
	ck_assert_str_eq(errtext(), "egress: rcmd is not mediated; denied\n"
				    "egress: ruserok is not mediated; denied\n");
	ck_assert_int_eq(stub.calls, 0);
}
END_TEST

static void add_lookup_tests(Suite *s)
{
	TCase *tl = tcase_create("lookups");

	tcase_add_checked_fixture(tl, setup, teardown);
	tcase_add_test(tl, gai_empty_service_is_port_zero);
	tcase_add_test(tl, gethostbyname2_r_builds_the_answer_in_the_buffer);
	tcase_add_test(tl, gethostbyname_denied_is_host_not_found);
	tcase_add_test(tl, gethostbyname_numeric_is_not_asked);
	tcase_add_test(tl, getaddrinfo_a_judges_each_request);
	tcase_add_test(tl, getnameinfo_makes_no_reverse_lookup);
	tcase_add_test(tl, res_query_answers_from_the_broker);
	tcase_add_test(tl, res_query_of_other_types_is_refused_unasked);
	tcase_add_test(tl, res_send_reads_the_question_or_refuses);
	tcase_add_test(tl, dunder_connect_is_judged_as_connect);
	tcase_add_test(tl, rcmd_is_refused_with_a_line);
	suite_add_tcase(s, tl);
}

Suite *suite_shim(void)
{
	Suite *s = suite_create("shim");
	TCase *tc = tcase_create("stub");
	TCase *tb = tcase_create("broker-socket");
	TCase *tcache = tcase_create("cache");
	TCase *tnopage = tcase_create("nopage");
	TCase *tlog = tcase_create("log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, connect_allowed_reaches_the_server);
	tcase_add_test(tc, connect_denied_with_rule_errno_and_one_line);
	tcase_add_test(tc, denial_without_a_name_shows_the_address);
	tcase_add_test(tc, out_of_range_errno_becomes_eperm);
	tcase_add_test(tc, log_off_is_silent_and_log_all_shows_allows);
	tcase_add_test(tc, rewrite_puts_the_connected_socket_in_place);
	tcase_add_test(tc, rewrite_of_a_nonblocking_connect_is_in_progress);
	tcase_add_test(tc, rewrite_without_a_socket_is_denied);
	tcase_add_test(tc, transport_failure_has_its_errno_and_a_line);
	tcase_add_test(tc, fastopen_rewrite_sends_the_data);
	tcase_add_test(tc, unix_sockets_pass_through);
	tcase_add_test(tc, short_or_null_addresses_pass_through);
	tcase_add_test(tc, mapped_ipv6_is_judged_as_ipv4);
	tcase_add_test(tc, udp_connect_is_judged_as_send);
	tcase_add_test(tc, unreachable_broker_denies_with_one_line);
	tcase_add_test(tc, unreachable_line_again_in_a_forked_child);
	tcase_add_test(tc, fail_open_allows_and_says_so);
	tcase_add_test(tc, version_mismatch_denies_even_with_fail_open);
	tcase_add_test(tc, datagram_verdicts_are_cached_for_their_ttl);
	tcase_add_test(tc, connect_verdicts_are_cached_and_noted);
	tcase_add_test(tc, connect_denials_are_cached_with_their_line);
	tcase_add_test(tc, connect_cache_misses_when_it_must);
	tcase_add_test(tc, rewrites_are_not_cached);
	tcase_add_test(tc, a_fork_child_asks_anew);
	tcase_add_test(tc, another_brokers_page_replaces);
	tcase_add_test(tc, a_dead_brokers_verdicts_are_not_applied);
	tcase_add_test(tc, relayed_datagrams_name_their_socket);
	tcase_add_test(tc, ttl_zero_is_not_cached);
	tcase_add_test(tc, denied_datagrams_never_arrive);
	tcase_add_test(tc, dns_queries_go_to_the_stub);
	tcase_add_test(tc, sendmsg_without_a_name_passes_through);
	tcase_add_test(tc, sendmmsg_sends_the_allowed_prefix);
	tcase_add_test(tc, short_ipv6_address_is_judged);
	tcase_add_test(tc, unspec_datagram_destination_is_judged_as_ipv4);
	tcase_add_test(tc, the_judged_address_is_the_one_used);
	tcase_add_test(tc, sendmmsg_of_many_messages_judges_each);
	tcase_add_test(tc, fastopen_sendto_is_a_connect);
	tcase_add_test(tc, stream_sendto_without_fastopen_is_not_judged);
	tcase_add_test(tc, non_socket_descriptors_pass_through);
	tcase_add_test(tc, gai_null_hints_gives_both_families_and_socktypes);
	tcase_add_test(tc, gai_family_and_socktype_hints);
	tcase_add_test(tc, gai_v4mapped_and_all);
	tcase_add_test(tc, gai_canonname_and_trailing_dot);
	tcase_add_test(tc, gai_denied_gives_eai_noname_and_a_line);
	tcase_add_test(tc, gai_allowed_without_addresses);
	tcase_add_test(tc, gai_unreachable_is_eai_again);
	tcase_add_test(tc, gai_numeric_hosts_are_not_asked);
	tcase_add_test(tc, gai_bad_arguments);
	tcase_add_test(tc, freeaddrinfo_takes_libc_lists_too);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tnopage, setup_nopage, teardown);
	tcase_add_test(tnopage, no_page_no_cache);
	tcase_add_test(tnopage, only_a_page_is_taken);
	suite_add_tcase(s, tnopage);
	tcase_add_checked_fixture(tcache, cache_setup, cache_teardown);
	tcase_add_test(tcache, shim_cache_lookup_interrupted_by_a_store_misses);
	tcase_add_test(tcache, shim_cache_store_interrupted_stays_whole);
	suite_add_tcase(s, tcache);

	tcase_add_checked_fixture(tlog, setup, teardown);
	tcase_add_loop_test(tlog, shim_log_unanswered_tells_the_reason, 0,
			    (int)(sizeof unanswered / sizeof unanswered[0]));
	tcase_add_test(tlog, shim_log_line_formats_without_stdio);
	suite_add_tcase(s, tlog);

	tcase_add_checked_fixture(tb, setup_fake, teardown_fake);
	tcase_add_test(tb, broker_connection_is_lazy_high_and_cloexec);
	tcase_add_test(tb, stale_answers_are_skipped);
	tcase_add_test(tb, silent_broker_times_out_and_denies);
	tcase_add_loop_test(tb, broker_of_another_version_is_reported_as_such, 0, 2);
	tcase_add_test(tb, descriptor_taken_by_the_program_is_left_alone);
	tcase_add_test(tb, broker_restart_is_survived);
	tcase_add_test(tb, forked_child_opens_its_own_connection);
	tcase_add_test(tb, each_thread_has_its_connection);
	tcase_add_test(tb, signal_during_an_ask_gets_its_own_answer);
	suite_add_tcase(s, tb);
	add_lookup_tests(s);
	return s;
}
