/* check_transport.c: unit tests of broker/transport.c: whole rewritten
 * connects through a server on a socketpair (the fixture in testlib.c), to
 * real loopback listeners and a fake proxy (threads of this test), with the
 * descriptor the broker hands over checked end to end. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

/* A loopback listener; returns its socket, *port its port. */
static int listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A fake HTTP proxy: accepts one connection, reads the request into
 * request[], answers answer and keeps the connection open briefly. */
struct fake_proxy {
	int lfd;
	uint16_t port;
	const char *answer;
	char request[512];
	pthread_t thread;
};

static void *proxy_run(void *arg)
{
	struct fake_proxy *p = arg;
	int fd = accept(p->lfd, NULL, NULL);
	size_t n = 0;

	if (fd < 0)
		return NULL;
	while (n < sizeof p->request - 1 && !strstr(p->request, "\r\n\r\n")) {
		ssize_t r = read(fd, p->request + n, sizeof p->request - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		p->request[n] = 0;
	}
	(void)!write(fd, p->answer, strlen(p->answer));
	usleep(100 * 1000);
	close(fd);
	return NULL;
}

static void proxy_start(struct fake_proxy *p, const char *answer)
{
	memset(p, 0, sizeof *p);
	p->answer = answer;
	p->lfd = listener(&p->port);
	ck_assert_int_eq(pthread_create(&p->thread, NULL, proxy_run, p), 0);
}

static void proxy_stop(struct fake_proxy *p)
{
	pthread_join(p->thread, NULL);
	close(p->lfd);
}

static int no_dns(const char *name, int family, struct proto_addr *out, int max, int *n)
{
	(void)family;
	(void)max;
	if (strcmp(name, "meta.test") == 0) { /* a public name that resolves to metadata */
		out[0] = A("169.254.169.254");
		*n = 1;
		return 0;
	}
	return EAI_NONAME;
}

/* Opens the fixture on the policy fmt, its %u replaced by port. */
static void rewrite_open(struct fixture *f, const char *fmt, unsigned port)
{
	char text[1024];

	snprintf(text, sizeof text, fmt, port);
	fixture_open(f, text, no_dns);
}

/* Runs the loop until an answer arrives; *fd gets a descriptor it carried. */
static void next_answer(struct fixture *f, struct proto_msg *m, int *fd)
{
	ck_assert_int_eq(pump_fd(f, m, fd), 0);
	ck_assert_int_eq(m->type, PROTO_VERDICT);
}

/* How many times needle occurs in hay. */
static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Resolves name through the broker (with the ASK flags given); returns the
 * one address it answered as text, and checks whether it is synthetic. */
static void resolve_one(struct fixture *f, const char *name, uint8_t flags, bool synthetic,
			char *text, size_t cap)
{
	struct proto_msg m;
	int fd;

	send_ask(f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, name, flags, 0);
	next_answer(f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(m.u.verdict.err, 0);
	ck_assert_int_eq(m.u.verdict.naddr, 1);
	ck_assert(synth_is(&m.u.verdict.addrs[0]) == synthetic);
	policy_addr_format(&m.u.verdict.addrs[0], text, cap);
}

static void resolve_synth(struct fixture *f, const char *name, char *text, size_t cap)
{
	resolve_one(f, name, 0, true, text, cap);
}

static const char *rw_policy = "[egress]\ndefault = deny\ntimeout = 2\n"
			       "[hosts]\nrw.test = 127.0.0.1\n"
			       "[rule \"rw\"]\nhost = rw.test, meta.test, gone.test\naction = rewrite\n"
			       "private = allow\n"
			       "[rule \"relay\"]\nhost = relay.test\naction = rewrite\n"
			       "transport = relay\nlimit = 4K\n"
			       "[rule \"proxied\"]\nhost = px.test, px.localhost\naction = rewrite\n"
			       "transport = http://127.0.0.1:%u\n";

START_TEST(test_rewrite_resolve_is_synthetic)
{
	struct fixture f;
	struct proto_msg m;
	char a[64], b[64];
	int fd;

	rewrite_open(&f, rw_policy, 1);
	resolve_synth(&f, "px.test", a, sizeof a);
	resolve_synth(&f, "PX.test.", b, sizeof b);
	ck_assert_str_eq(a, b);
	/* IPv6 only: nothing, so the program falls back to IPv4 */
	send_ask(&f, 2, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, "px.test", 0, 6);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.naddr, 0);
	ck_assert_int_eq(m.u.verdict.err, EAI_NODATA);
	/* a synthetic address this process was never given */
	send_ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "198.18.0.9", 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(m.u.verdict.err, ENETUNREACH);
	ck_assert_str_eq(m.u.verdict.rule, "synthetic");
	/* a datagram to a name an HTTP proxy carries: one it cannot */
	send_ask(&f, 4, PROTO_OP_SEND, PROTO_L4_UDP, 443, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(m.u.verdict.err, EPROTONOSUPPORT);
	ck_assert_uint_eq(server_lookups(f.s), 0); /* px.test never went to DNS */
	fixture_close(&f);
}
END_TEST

/* What is for this machine is never synthetic, even through a proxy: the
 * names of loopback, and a lookup for binding. */
START_TEST(test_rewrite_local_stays_local)
{
	struct fixture f;
	char a[64];

	rewrite_open(&f, rw_policy, 1);
	resolve_one(&f, "rw.test", PROTO_ASK_PASSIVE, false, a, sizeof a);
	ck_assert_str_eq(a, "127.0.0.1");
	ck_assert_uint_eq(server_lookups(f.s), 0); /* from [hosts] */
	/* px.localhost and a passive px.test go to the resolver (none here) */
	send_ask(&f, 2, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, "px.localhost", 0, 0);
	send_ask(&f, 3, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, "px.test", PROTO_ASK_PASSIVE, 0);
	for (int i = 0; i < 2; i++) {
		struct proto_msg m;
		int fd;

		next_answer(&f, &m, &fd);
		ck_assert_int_eq(m.u.verdict.naddr, 0);
		ck_assert_int_eq(m.u.verdict.err, EAI_NONAME);
	}
	ck_assert_uint_eq(server_lookups(f.s), 2);
	fixture_close(&f);
}
END_TEST

/* The direct transport: the name is looked up when the program looks it
 * up, and a connect or datagram to one of its addresses is the program's
 * own, recorded as a rewrite. */
START_TEST(test_rewrite_direct_is_the_programs_own)
{
	char a[64], log[8192];
	struct fixture f;
	struct proto_msg m;
	int fd;

	rewrite_open(&f, rw_policy, 1);
	resolve_one(&f, "rw.test", 0, false, a, sizeof a);
	ck_assert_str_eq(a, "127.0.0.1");
	send_ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, a, PROTO_ASK_NONBLOCK, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_ALLOW);
	ck_assert_str_eq(m.u.verdict.name, "rw.test");
	ck_assert_uint_gt(m.u.verdict.ttl_ms, 0);
	{ /* no socket comes with it: only the generation page, the first time */
		struct stat st;
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(fstat(fd, &st), 0);
		ck_assert(S_ISREG(st.st_mode));
		ck_assert_int_eq(st.st_size, PROTO_PAGE_SIZE);
		close(fd);
	}
	send_ask(&f, 3, PROTO_OP_SEND, PROTO_L4_UDP, 9, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_ALLOW);
	ck_assert_uint_gt(m.u.verdict.ttl_ms, 0);
	/* a name that does not exist fails at its lookup, not at connect */
	send_ask(&f, 4, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, "gone.test", 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.naddr, 0);
	ck_assert_int_eq(m.u.verdict.err, EAI_NONAME);
	read_file(f.audit, log, sizeof log);
	ck_assert_ptr_nonnull(strstr(log, "\"op\":\"connect\",\"name\":\"rw.test\""));
	ck_assert_int_eq(count(log, "\"action\":\"rewrite\""), 4);
	ck_assert_int_eq(count(log, "\"transport\":\"direct\""), 4);
	fixture_close(&f);
}
END_TEST

/* A synthetic address whose rule now says direct (the policy changed since
 * the lookup) leads only to its name: the broker connects, and a
 * nonblocking connect gets the broker's socket while it is still
 * connecting, so the program's own poll sees the outcome. */
START_TEST(test_rewrite_synthetic_direct_hands_over)
{
	static const char *direct = "[egress]\ndefault = deny\n[hosts]\npx.test = 127.0.0.1\n"
				    "[rule \"proxied\"]\nhost = px.test\naction = rewrite\n"
				    "private = allow\n";
	struct fixture f;
	struct proto_msg m;
	uint16_t port;
	int lfd = listener(&port), fd, afd, err;
	socklen_t el = sizeof err;
	char a[64], b[4], msg[256];
	struct pollfd pfd;
	FILE *pf;

	rewrite_open(&f, rw_policy, 1);
	resolve_synth(&f, "px.test", a, sizeof a);
	pf = fopen(f.policy, "w");
	ck_assert_ptr_nonnull(pf);
	fputs(direct, pf);
	fclose(pf);
	ck_assert_int_eq(server_reload(f.s, msg, sizeof msg), 0);
	/* blocking: the connected socket, no relay in between */
	send_ask(&f, 5, PROTO_OP_CONNECT, PROTO_L4_TCP, port, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_PENDING);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_REWRITE);
	ck_assert_str_eq(m.u.verdict.name, "px.test");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "hey", 3), 3);
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_eq(read(afd, b, sizeof b), 3);
	close(afd);
	close(fd);
	/* nonblocking, to a port nobody listens on: handed over connecting,
	 * and the program itself learns of the refusal */
	close(lfd);
	send_ask(&f, 6, PROTO_OP_CONNECT, PROTO_L4_TCP, port, a, PROTO_ASK_NONBLOCK, 0);
	do
		next_answer(&f, &m, &fd);
	while (m.u.verdict.action == PROTO_PENDING);
	ck_assert_int_eq(m.u.verdict.action, PROTO_REWRITE);
	ck_assert_int_ge(fd, 0);
	pfd.fd = fd;
	pfd.events = POLLOUT;
	ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el), 0);
	ck_assert_int_eq(err, ECONNREFUSED);
	close(fd);
	ck_assert_int_eq(server_relay_stats(f.s)->total, 0);
	fixture_close(&f);
}
END_TEST

START_TEST(test_rewrite_private_resolution_fails)
{
	struct fixture f;
	struct proto_msg m;
	int fd;

	/* meta.test resolves only to the metadata address, which no rule
	 * opens: the lookup finds nothing the name may reach */
	rewrite_open(&f, "[egress]\ndefault = deny\n"
		      "[rule \"rw\"]\nhost = meta.test\naction = rewrite\n", 1);
	send_ask(&f, 6, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, "meta.test", 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(m.u.verdict.err, EAI_NONAME);
	ck_assert_uint_eq(server_lookups(f.s), 1);
	fixture_close(&f);
}
END_TEST

START_TEST(test_rewrite_nonblocking_relay_counts_and_limits)
{
	struct fixture f;
	struct proto_msg m;
	uint16_t port;
	struct pollfd pfd = { .events = POLLOUT };
	int lfd, fd, afd;
	char a[64], big[8192];

	lfd = listener(&port);
	rewrite_open(&f, "[egress]\ndefault = deny\n[hosts]\nrelay.test = 127.0.0.1\n"
		      "[rule \"relay\"]\nhost = relay.test\naction = rewrite\ntransport = relay\n"
		      "limit = 4K\n", 0);
	resolve_one(&f, "relay.test", 0, false, a, sizeof a); /* looked up now, as direct */
	send_ask(&f, 7, PROTO_OP_CONNECT, PROTO_L4_TCP, port, a, PROTO_ASK_NONBLOCK, 0);
	next_answer(&f, &m, &fd); /* at once, before any upstream */
	ck_assert_int_eq(m.u.verdict.action, PROTO_REWRITE);
	ck_assert_int_ge(fd, 0);
	/* held in progress until the relay's upstream connect is done */
	pfd.fd = fd;
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	for (int i = 0; i < 20; i++)
		server_run_once(f.s, 10);
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	ck_assert(pfd.revents == POLLOUT);
	ck_assert_int_eq(write(fd, "0123456789", 10), 10);
	for (int i = 0; i < 20; i++)
		server_run_once(f.s, 10);
	afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_eq(read(afd, big, sizeof big), 10);
	ck_assert_int_eq(write(afd, "abc", 3), 3);
	for (int i = 0; i < 20; i++)
		server_run_once(f.s, 10);
	ck_assert_int_eq(read(fd, big, sizeof big), 3);
	ck_assert_uint_eq(server_relay_stats(f.s)->sent, 10);
	ck_assert_uint_eq(server_relay_stats(f.s)->received, 3);
	ck_assert_uint_eq(server_relay_stats(f.s)->active, 1);
	/* over the limit: cut */
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(write(fd, big, sizeof big), (ssize_t)sizeof big);
	for (int i = 0; i < 20; i++)
		server_run_once(f.s, 10);
	ck_assert_uint_eq(server_relay_stats(f.s)->active, 0);
	ck_assert_int_lt(read(fd, big, sizeof big), 1); /* reset or EOF */
	close(fd);
	close(afd);
	close(lfd);
	fixture_close(&f);
}
END_TEST

START_TEST(test_rewrite_http_proxy_answers)
{
	static const struct {
		const char *answer;
		int action, err;
	} cases[] = {
		{ "HTTP/1.1 200 Connection established\r\n\r\n", PROTO_REWRITE, 0 },
		{ "HTTP/1.1 403 Forbidden\r\n\r\n", PROTO_FAIL, EACCES },
		{ "HTTP/1.0 502 Bad Gateway\r\n\r\n", PROTO_FAIL, ECONNREFUSED },
		{ "SSH-2.0-OpenSSH\r\n\r\n", PROTO_FAIL, EPROTO },
	};
	struct fake_proxy p;
	struct fixture f;
	struct proto_msg m;
	char a[64];
	int fd;

	proxy_start(&p, cases[_i].answer);
	rewrite_open(&f, rw_policy, p.port);
	resolve_synth(&f, "px.test", a, sizeof a);
	send_ask(&f, 8, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_PENDING);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, cases[_i].action);
	ck_assert_int_eq(m.u.verdict.err, cases[_i].err);
	ck_assert_int_eq(fd >= 0, cases[_i].action == PROTO_REWRITE);
	ck_assert_str_eq(p.request, "CONNECT px.test:443 HTTP/1.1\r\nHost: px.test:443\r\n\r\n");
	if (fd >= 0)
		close(fd);
	proxy_stop(&p);
	ck_assert_uint_eq(server_lookups(f.s), 0);
	fixture_close(&f);
}
END_TEST

START_TEST(test_rewrite_proxy_down_and_timeout)
{
	struct fixture f;
	struct proto_msg m;
	uint16_t port;
	int lfd = listener(&port), fd; /* never accepts, never answers */
	char a[64];

	rewrite_open(&f, rw_policy, 1);
	resolve_synth(&f, "px.test", a, sizeof a);
	send_ask(&f, 9, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, a, 0, 0);
	next_answer(&f, &m, &fd);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_FAIL);
	ck_assert_int_eq(m.u.verdict.err, ECONNREFUSED);
	fixture_close(&f);

	rewrite_open(&f, rw_policy, port);
	resolve_synth(&f, "px.test", a, sizeof a);
	send_ask(&f, 10, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_PENDING);
	for (int i = 0; i < 300 && recv(f.fd, a, 1, MSG_PEEK | MSG_DONTWAIT) < 0; i++)
		server_run_once(f.s, 20); /* timeout = 2: the tick fails it */
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_FAIL);
	ck_assert_int_eq(m.u.verdict.err, ETIMEDOUT);
	close(lfd);
	fixture_close(&f);
}
END_TEST

Suite *suite_transport(void)
{
	Suite *s = suite_create("transport");
	TCase *tc = tcase_create("rewrite");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_rewrite_resolve_is_synthetic);
	tcase_add_test(tc, test_rewrite_local_stays_local);
	tcase_add_test(tc, test_rewrite_direct_is_the_programs_own);
	tcase_add_test(tc, test_rewrite_synthetic_direct_hands_over);
	tcase_add_test(tc, test_rewrite_private_resolution_fails);
	tcase_add_test(tc, test_rewrite_nonblocking_relay_counts_and_limits);
	tcase_add_loop_test(tc, test_rewrite_http_proxy_answers, 0, 4);
	tcase_add_test(tc, test_rewrite_proxy_down_and_timeout);
	suite_add_tcase(s, tc);
	return s;
}
