/* check_transport.c: rewrites in the broker: the synthetic address map,
 * the proxy handshake codec, and whole rewritten connects through a server
 * on a socketpair, to real loopback listeners and a fake proxy (threads of
 * this test), with the descriptor the broker hands over checked end to end. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

/* ------------------------------------------------------------------ synth */

START_TEST(test_synth_map)
{
	struct synth *s = synth_new(3);
	struct proto_addr a, b, again, c;
	char name[PROTO_NAME_MAX + 1];
	char text[64];

	ck_assert_int_eq(synth_map(s, 100, "api.example.com", &a), 0);
	ck_assert(synth_is(&a));
	policy_addr_format(&a, text, sizeof text);
	ck_assert_msg(strncmp(text, "198.18.", 7) == 0 || strncmp(text, "198.19.", 7) == 0, "%s",
		      text);
	ck_assert_int_eq(synth_map(s, 100, "api.example.com", &again), 0);
	ck_assert_mem_eq(&a, &again, sizeof a); /* stable */
	ck_assert_int_eq(synth_map(s, 200, "api.example.com", &c), 0);
	ck_assert_mem_eq(&a, &c, sizeof a); /* deterministic across processes */
	ck_assert_int_eq(synth_map(s, 100, "other.example.com", &b), 0);
	ck_assert(memcmp(&a, &b, sizeof a) != 0);

	ck_assert(synth_lookup(s, 100, 0, &a, name, sizeof name));
	ck_assert_str_eq(name, "api.example.com");
	ck_assert(synth_lookup(s, 100, 0, &b, name, sizeof name));
	ck_assert_str_eq(name, "other.example.com");
	ck_assert(!synth_lookup(s, 300, 0, &b, name, sizeof name));   /* another process's */
	ck_assert(synth_lookup(s, 300, 100, &b, name, sizeof name));  /* a child of 100 */
	ck_assert_uint_eq(synth_entries(s), 3);

	/* full: refused, never recycled */
	ck_assert_int_eq(synth_map(s, 100, "third.example.com", &c), 0);
	ck_assert_int_eq(synth_map(s, 100, "fourth.example.com", &c), -1);
	ck_assert(synth_lookup(s, 100, 0, &a, name, sizeof name));

	ck_assert_uint_eq(synth_gc(s, all_dead), 2);
	ck_assert_uint_eq(synth_entries(s), 0);
	ck_assert(!synth_is(&(struct proto_addr){ .family = 4, .bytes = { 198, 20, 0, 1 } }));
	synth_free(s);
}
END_TEST

/* Names that collide in the hash still get distinct addresses. */
START_TEST(test_synth_many_names_distinct)
{
	struct synth *s = synth_new(SYNTH_PER_PID_MAX);
	static struct proto_addr got[SYNTH_PER_PID_MAX];
	char name[32];

	for (int i = 0; i < SYNTH_PER_PID_MAX; i++) {
		snprintf(name, sizeof name, "n%d.example", i);
		ck_assert_int_eq(synth_map(s, 7, name, &got[i]), 0);
	}
	for (int i = 0; i < SYNTH_PER_PID_MAX; i++) {
		char back[PROTO_NAME_MAX + 1];
		snprintf(name, sizeof name, "n%d.example", i);
		ck_assert(synth_lookup(s, 7, 0, &got[i], back, sizeof back));
		ck_assert_str_eq(back, name);
	}
	synth_free(s);
}
END_TEST

/* --------------------------------------------------------------- upstream */

START_TEST(test_upstream_http_request)
{
	struct policy_transport t = { .kind = POLICY_HTTP };
	char out[600];

	ck_assert_int_gt(upstream_http_request(out, sizeof out, "api.example.com", 443, &t), 0);
	ck_assert_str_eq(out, "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n");
	ck_assert_int_gt(upstream_http_request(out, sizeof out, "2001:db8::1", 80, &t), 0);
	ck_assert_str_eq(out, "CONNECT [2001:db8::1]:80 HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n");
	t.auth = true;
	strcpy(t.user, "Aladdin");
	strcpy(t.pass, "open sesame");
	ck_assert_int_gt(upstream_http_request(out, sizeof out, "a.b", 1, &t), 0);
	ck_assert_str_eq(out, "CONNECT a.b:1 HTTP/1.1\r\nHost: a.b:1\r\n"
			      "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
	/* nothing can be smuggled into the request line */
	ck_assert_int_eq(upstream_http_request(out, sizeof out, "a.b\r\nX: y", 1, &t), -1);
	ck_assert_int_eq(upstream_http_request(out, sizeof out, "a b", 1, &t), -1);
	ck_assert_int_eq(upstream_http_request(out, 20, "api.example.com", 443, &t), -1);
}
END_TEST

START_TEST(test_upstream_http_response_split)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nBANNER";
	size_t hdr = strlen(ok) - strlen("BANNER");
	char reason[64];
	int status;

	for (size_t len = 0; len < hdr; len++)
		ck_assert_int_eq(upstream_http_response(ok, len, &status, reason, sizeof reason), 0);
	for (size_t len = hdr; len <= strlen(ok); len++) {
		ck_assert_int_eq(upstream_http_response(ok, len, &status, reason, sizeof reason),
				 (int)hdr); /* the banner is left for the program */
		ck_assert_int_eq(status, 200);
		ck_assert_str_eq(reason, "Connection established");
	}
	ck_assert_int_eq(upstream_http_response("HTTP/1.0 403 Forbidden\n\n", 24, &status, reason,
						sizeof reason), 24);
	ck_assert_int_eq(status, 403);
	ck_assert_int_eq(upstream_http_response("SSH-2.0-x\r\n\r\n", 13, &status, reason,
						sizeof reason), -1);
	ck_assert_int_eq(upstream_http_response("HTTP/1.1 20 x\r\n\r\n", 17, &status, reason,
						sizeof reason), -1);
	ck_assert_int_eq(upstream_http_response("HTTP/1.1 200 a\x01\x7f\r\n\r\n", 20, &status,
						reason, sizeof reason), 20);
	ck_assert_str_eq(reason, "a??"); /* only printable bytes reach the audit log */
}
END_TEST

START_TEST(test_upstream_http_response_too_long)
{
	static char big[UPSTREAM_HTTP_MAX];
	char reason[8];
	int status;

	memset(big, 'a', sizeof big);
	memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
	ck_assert_int_eq(upstream_http_response(big, sizeof big, &status, reason, sizeof reason), -1);
}
END_TEST

static const struct {
	int status, err;
} http_errnos[] = {
	{ 200, 0 }, { 204, 0 }, { 403, EACCES }, { 407, EACCES }, { 504, ETIMEDOUT },
	{ 400, ECONNREFUSED }, { 404, ECONNREFUSED }, { 500, ECONNREFUSED }, { 502, ECONNREFUSED },
	{ 503, ECONNREFUSED }, { 301, ECONNREFUSED },
};

START_TEST(test_upstream_http_errno)
{
	ck_assert_int_eq(upstream_http_errno(http_errnos[_i].status), http_errnos[_i].err);
}
END_TEST

START_TEST(test_upstream_socks5_messages)
{
	struct policy_transport t = { .kind = POLICY_SOCKS5 };
	struct proto_addr a4 = A("10.1.2.3"), a6 = A("2001:db8::1");
	uint8_t out[600];
	int method, status;

	ck_assert_int_eq(upstream_socks5_greeting(out, sizeof out, &t), 3);
	ck_assert_mem_eq(out, "\x05\x01\x00", 3);
	t.auth = true;
	strcpy(t.user, "me");
	strcpy(t.pass, "pw");
	ck_assert_int_eq(upstream_socks5_greeting(out, sizeof out, &t), 4);
	ck_assert_mem_eq(out, "\x05\x02\x00\x02", 4);
	ck_assert_int_eq(upstream_socks5_auth(out, sizeof out, &t), 7);
	ck_assert_mem_eq(out, "\x01\x02me\x02pw", 7);

	ck_assert_int_eq(upstream_socks5_method_reply((const uint8_t *)"\x05", 1, &method), 0);
	ck_assert_int_eq(upstream_socks5_method_reply((const uint8_t *)"\x05\x02", 2, &method), 2);
	ck_assert_int_eq(method, 2);
	ck_assert_int_eq(upstream_socks5_method_reply((const uint8_t *)"\x04\x00", 2, &method), -1);
	ck_assert_int_eq(upstream_socks5_auth_reply((const uint8_t *)"\x01\x01", 2, &status), 2);
	ck_assert_int_eq(status, 1);
	ck_assert_int_eq(upstream_socks5_auth_reply((const uint8_t *)"\x05\x00", 2, &status), -1);

	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, "api.example.com", &a4, 443), 22);
	ck_assert_mem_eq(out, "\x05\x01\x00\x03\x0f" "api.example.com" "\x01\xbb", 22);
	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, NULL, &a4, 80), 10);
	ck_assert_mem_eq(out, "\x05\x01\x00\x01\x0a\x01\x02\x03\x00\x50", 10);
	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, NULL, &a6, 80), 22);
	ck_assert_int_eq(out[3], 4);
	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, "a.b:1\r\n", &a4, 80), -1);
}
END_TEST

/* Every reply, cut at every length, asks for more until it is whole. */
START_TEST(test_upstream_socks5_reply_split)
{
	static const struct {
		size_t len;
		const char *bytes;
		int rep;
	} replies[] = {
		{ 10, "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38", 0 },
		{ 22, "\x05\x05\x00\x04" "0123456789abcdef" "\x00\x50", 5 },
		{ 11, "\x05\x02\x00\x03\x04" "host" "\x00\x50", 2 },
	};

	for (size_t r = 0; r < sizeof replies / sizeof replies[0]; r++) {
		const uint8_t *b = (const uint8_t *)replies[r].bytes;
		size_t need;
		int rep = -1;

		for (size_t len = 0; len < replies[r].len; len++) {
			ck_assert_int_eq(upstream_socks5_connect_reply(b, len, &rep, &need), 0);
			ck_assert_uint_gt(need, len);
			ck_assert_uint_le(need, replies[r].len);
		}
		ck_assert_int_eq(upstream_socks5_connect_reply(b, replies[r].len, &rep, &need),
				 (int)replies[r].len);
		ck_assert_int_eq(rep, replies[r].rep);
	}
	{
		size_t need;
		int rep;
		ck_assert_int_eq(upstream_socks5_connect_reply((const uint8_t *)"\x05\x00\x00\x09\x00",
							       5, &rep, &need), -1);
		ck_assert_int_eq(upstream_socks5_connect_reply((const uint8_t *)"\x04\x00\x00\x01\x00",
							       5, &rep, &need), -1);
	}
}
END_TEST

START_TEST(test_upstream_socks5_errno)
{
	static const int want[] = { 0, ECONNREFUSED, EACCES, ENETUNREACH, EHOSTUNREACH,
				    ECONNREFUSED, ETIMEDOUT, EPROTO, EPROTO, ECONNREFUSED };

	for (int rep = 0; rep < 10; rep++)
		ck_assert_int_eq(upstream_socks5_errno(rep), want[rep]);
	ck_assert_str_eq(upstream_socks5_reply_text(5), "connection refused");
	ck_assert_str_eq(upstream_socks5_reply_text(200), "unknown");
}
END_TEST

START_TEST(test_upstream_name_ok)
{
	char long_name[300];

	ck_assert(upstream_name_ok("api.example.com"));
	ck_assert(upstream_name_ok("a_b-c.d"));
	ck_assert(!upstream_name_ok(""));
	ck_assert(!upstream_name_ok("a..b"));
	ck_assert(!upstream_name_ok(".a"));
	ck_assert(!upstream_name_ok("a."));
	ck_assert(!upstream_name_ok("a b"));
	ck_assert(!upstream_name_ok("a:1"));
	ck_assert(!upstream_name_ok("u@h"));
	ck_assert(!upstream_name_ok("a/b"));
	memset(long_name, 'a', sizeof long_name);
	long_name[64] = 0;
	ck_assert(!upstream_name_ok(long_name)); /* a 64-byte label */
	for (int i = 0; i < 254; i++)
		long_name[i] = i % 50 == 49 ? '.' : 'a';
	long_name[253] = 0;
	ck_assert(upstream_name_ok(long_name)); /* 253 bytes */
	long_name[253] = 'a';
	long_name[254] = 0;
	ck_assert(!upstream_name_ok(long_name)); /* 254 bytes */
}
END_TEST

/* ----------------------------------------------------- rewritten connects */

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

struct rfix {
	char dir[64], policy[128], audit[128];
	struct server *s;
	int fd;
};

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

static void rfix_open(struct rfix *f, const char *fmt, unsigned port)
{
	struct server_config cfg = { 0 };
	char err[POLICY_ERR_MAX], text[1024];
	int sv[2];
	FILE *fp;

	snprintf(f->dir, sizeof f->dir, "/tmp/check_transport.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->policy, sizeof f->policy, "%s/p.ini", f->dir);
	snprintf(f->audit, sizeof f->audit, "%s/audit.jsonl", f->dir);
	snprintf(text, sizeof text, fmt, port);
	fp = fopen(f->policy, "w");
	fputs(text, fp);
	fclose(fp);
	cfg.policy_path = f->policy;
	cfg.audit_path = f->audit;
	cfg.lookup = no_dns;
	f->s = server_new(&cfg, err, sizeof err);
	ck_assert_msg(f->s != NULL, "%s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(server_add_client(f->s, sv[0]), 0);
	f->fd = sv[1];
}

static void rfix_close(struct rfix *f)
{
	close(f->fd);
	server_free(f->s);
	unlink(f->policy);
	unlink(f->audit);
	rmdir(f->dir);
}

/* Runs the loop until an answer arrives; *fd gets a descriptor it carried. */
static void next_answer(struct rfix *f, struct proto_msg *m, int *fd)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	uint8_t buf[1024];

	*fd = -1;
	for (int i = 0; i < 300; i++) {
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
				     .msg_controllen = sizeof ctl.space };
		ssize_t n = recvmsg(f->fd, &mh, MSG_DONTWAIT);

		if (n > 0) {
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			if (c && c->cmsg_type == SCM_RIGHTS)
				memcpy(fd, CMSG_DATA(c), sizeof *fd);
			ck_assert_int_eq(proto_decode(buf, (size_t)n, m), 0);
			ck_assert_int_eq(m->type, PROTO_VERDICT);
			return;
		}
		ck_assert_int_ge(server_run_once(f->s, 20), 0);
	}
	ck_abort_msg("no answer");
}

static void send_ask(struct rfix *f, uint32_t id, int op, int l4, uint16_t port, const char *target,
		     uint8_t flags, int family)
{
	struct proto_msg m;
	uint8_t buf[512];
	ssize_t n;

	memset(&m, 0, sizeof m);
	m.type = PROTO_ASK;
	m.id = id;
	m.u.ask.op = (uint8_t)op;
	m.u.ask.l4 = (uint8_t)l4;
	m.u.ask.port = port;
	m.u.ask.flags = flags;
	m.u.ask.family = (uint8_t)family;
	if (op == PROTO_OP_RESOLVE)
		snprintf(m.u.ask.name, sizeof m.u.ask.name, "%s", target);
	else
		m.u.ask.addr = A(target);
	n = proto_encode(&m, buf, sizeof buf);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(send(f->fd, buf, (size_t)n, 0), n);
}

/* Resolves name through the broker; returns its synthetic address as text. */
static void resolve_synth(struct rfix *f, const char *name, char *text, size_t cap)
{
	struct proto_msg m;
	int fd;

	send_ask(f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, name, 0, 0);
	next_answer(f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(m.u.verdict.naddr, 1);
	ck_assert(synth_is(&m.u.verdict.addrs[0]));
	policy_addr_format(&m.u.verdict.addrs[0], text, cap);
}

static const char *rw_policy = "[egress]\ndefault = deny\ntimeout = 2\n"
			       "[hosts]\nrw.test = 127.0.0.1\n"
			       "[rule \"rw\"]\nhost = rw.test, meta.test\naction = rewrite\n"
			       "[rule \"relay\"]\nhost = relay.test\naction = rewrite\n"
			       "transport = relay\nlimit = 4K\n"
			       "[rule \"proxied\"]\nhost = px.test\naction = rewrite\n"
			       "transport = http://127.0.0.1:%u\n";

START_TEST(test_rewrite_resolve_is_synthetic)
{
	struct rfix f;
	struct proto_msg m;
	char a[64], b[64];
	int fd;

	rfix_open(&f, rw_policy, 1);
	resolve_synth(&f, "rw.test", a, sizeof a);
	resolve_synth(&f, "RW.test.", b, sizeof b);
	ck_assert_str_eq(a, b);
	/* IPv6 only: nothing, so the program falls back to IPv4 */
	send_ask(&f, 2, PROTO_OP_RESOLVE, PROTO_L4_TCP, 0, "rw.test", 0, 6);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.naddr, 0);
	ck_assert_int_eq(m.u.verdict.err, EAI_NODATA);
	/* a synthetic address this process was never given */
	send_ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "198.18.0.9", 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(m.u.verdict.err, ENETUNREACH);
	ck_assert_str_eq(m.u.verdict.rule, "synthetic");
	/* a datagram to a rewritten name */
	send_ask(&f, 4, PROTO_OP_SEND, PROTO_L4_UDP, 53, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(m.u.verdict.err, EPERM);
	ck_assert_uint_eq(server_lookups(f.s), 0); /* rw.test never went to DNS */
	rfix_close(&f);
}
END_TEST

START_TEST(test_rewrite_blocking_direct_hands_over)
{
	struct rfix f;
	struct proto_msg m;
	uint16_t port;
	int lfd = listener(&port), fd, afd;
	char a[64], b[4];

	rfix_open(&f, rw_policy, 1);
	resolve_synth(&f, "rw.test", a, sizeof a);
	send_ask(&f, 5, PROTO_OP_CONNECT, PROTO_L4_TCP, port, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_PENDING);
	ck_assert_uint_eq(m.u.verdict.ttl_ms, 2000);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_REWRITE);
	ck_assert_str_eq(m.u.verdict.name, "rw.test");
	ck_assert_int_ge(fd, 0);
	/* the descriptor is connected to the listener: no relay in between */
	ck_assert_int_eq(write(fd, "hey", 3), 3);
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_eq(read(afd, b, sizeof b), 3);
	close(afd);
	close(fd);
	close(lfd);
	rfix_close(&f);
}
END_TEST

START_TEST(test_rewrite_private_resolution_fails)
{
	struct rfix f;
	struct proto_msg m;
	char a[64];
	int fd;

	rfix_open(&f, rw_policy, 1);
	resolve_synth(&f, "meta.test", a, sizeof a);
	send_ask(&f, 6, PROTO_OP_CONNECT, PROTO_L4_TCP, 80, a, 0, 0);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_PENDING);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_FAIL);
	ck_assert_int_eq(m.u.verdict.err, EPERM);
	ck_assert_int_eq(fd, -1);
	ck_assert_uint_eq(server_lookups(f.s), 1);
	rfix_close(&f);
}
END_TEST

START_TEST(test_rewrite_nonblocking_relay_counts_and_limits)
{
	struct rfix f;
	struct proto_msg m;
	uint16_t port;
	int lfd, fd, afd;
	char a[64], big[8192];

	lfd = listener(&port);
	rfix_open(&f, "[egress]\ndefault = deny\n[hosts]\nrelay.test = 127.0.0.1\n"
		      "[rule \"relay\"]\nhost = relay.test\naction = rewrite\ntransport = relay\n"
		      "limit = 4K\n", 0);
	resolve_synth(&f, "relay.test", a, sizeof a);
	send_ask(&f, 7, PROTO_OP_CONNECT, PROTO_L4_TCP, port, a, PROTO_ASK_NONBLOCK, 0);
	next_answer(&f, &m, &fd); /* at once, before any upstream */
	ck_assert_int_eq(m.u.verdict.action, PROTO_REWRITE);
	ck_assert_int_ge(fd, 0);
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
	rfix_close(&f);
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
	struct rfix f;
	struct proto_msg m;
	char a[64];
	int fd;

	proxy_start(&p, cases[_i].answer);
	rfix_open(&f, rw_policy, p.port);
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
	rfix_close(&f);
}
END_TEST

START_TEST(test_rewrite_proxy_down_and_timeout)
{
	struct rfix f;
	struct proto_msg m;
	uint16_t port;
	int lfd = listener(&port), fd; /* never accepts, never answers */
	char a[64];

	rfix_open(&f, rw_policy, 1);
	resolve_synth(&f, "px.test", a, sizeof a);
	send_ask(&f, 9, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, a, 0, 0);
	next_answer(&f, &m, &fd);
	next_answer(&f, &m, &fd);
	ck_assert_int_eq(m.u.verdict.action, PROTO_FAIL);
	ck_assert_int_eq(m.u.verdict.err, ECONNREFUSED);
	rfix_close(&f);

	rfix_open(&f, rw_policy, port);
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
	rfix_close(&f);
}
END_TEST

Suite *suite_transport(void)
{
	Suite *s = suite_create("transport");
	TCase *tc = tcase_create("synth");

	tcase_add_test(tc, test_synth_map);
	tcase_add_test(tc, test_synth_many_names_distinct);
	suite_add_tcase(s, tc);

	tc = tcase_create("upstream");
	tcase_add_test(tc, test_upstream_http_request);
	tcase_add_test(tc, test_upstream_http_response_split);
	tcase_add_test(tc, test_upstream_http_response_too_long);
	tcase_add_loop_test(tc, test_upstream_http_errno, 0,
			    sizeof http_errnos / sizeof http_errnos[0]);
	tcase_add_test(tc, test_upstream_socks5_messages);
	tcase_add_test(tc, test_upstream_socks5_reply_split);
	tcase_add_test(tc, test_upstream_socks5_errno);
	tcase_add_test(tc, test_upstream_name_ok);
	suite_add_tcase(s, tc);

	tc = tcase_create("rewrite");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_rewrite_resolve_is_synthetic);
	tcase_add_test(tc, test_rewrite_blocking_direct_hands_over);
	tcase_add_test(tc, test_rewrite_private_resolution_fails);
	tcase_add_test(tc, test_rewrite_nonblocking_relay_counts_and_limits);
	tcase_add_loop_test(tc, test_rewrite_http_proxy_answers, 0, 4);
	tcase_add_test(tc, test_rewrite_proxy_down_and_timeout);
	suite_add_tcase(s, tc);
	return s;
}
