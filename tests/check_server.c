/* check_server.c: unit tests of broker/server.c: request handling through a
 * socketpair client (the fixture in testlib.c), control requests, malformed
 * clients, the listening socket; and the captures of sandboxes, made by
 * child processes in network namespaces of their own. */
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/netlink.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"
#include "dns.h"

static const char *server_policy = "[egress]\n"
				   "default = deny\n"
				   "private = deny\n"
				   "cache_ttl = 7\n"
				   "[rule \"no-metadata\"]\n"
				   "cidr = 169.254.169.254/32\n"
				   "action = deny\n"
				   "errno = ECONNREFUSED\n"
				   "[rule \"pub\"]\n"
				   "host = pub.test, priv.test, mixed.test, fail.test, slow.test\n"
				   "action = allow\n"
				   "[rule \"cache\"]\n"
				   "host = cache.test\n"
				   "action = allow\n"
				   "[hosts]\n"
				   "cache.test = 10.0.0.7\n";

START_TEST(test_server_resolve_filters_and_remembers)
{
	struct fixture f;
	struct proto_msg a;
	char fmt[64];

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "PUB.test.", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(a.u.verdict.err, 0);
	ck_assert_str_eq(a.u.verdict.rule, "pub");
	ck_assert_int_eq(a.u.verdict.naddr, 2); /* duplicates and a mapped copy folded */
	policy_addr_format(&a.u.verdict.addrs[0], fmt, sizeof fmt);
	ck_assert_str_eq(fmt, "93.184.216.34");
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.34", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_str_eq(a.u.verdict.name, "pub.test");
	ck_assert_str_eq(a.u.verdict.rule, "pub");
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 7000); /* connect verdicts are kept too */
	ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "::ffff:93.184.216.34", &a);
	ck_assert_str_eq(a.u.verdict.name, "pub.test");
	ask(&f, 4, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.99", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(a.u.verdict.err, EPERM);
	ck_assert_str_eq(a.u.verdict.rule, "default");
	ck_assert_str_eq(a.u.verdict.name, "");
	ck_assert_uint_eq(addrmap_entries(server_addrmap(f.s)), 2);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_resolve_private_dropped)
{
	struct fixture f;
	struct proto_msg a;
	char fmt[64];

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_RESOLVE, PROTO_L4_ANY, 0, "priv.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(a.u.verdict.err, EAI_NONAME);
	ck_assert_str_eq(a.u.verdict.rule, "private");
	ask(&f, 2, PROTO_OP_RESOLVE, PROTO_L4_ANY, 0, "mixed.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(a.u.verdict.naddr, 1);
	policy_addr_format(&a.u.verdict.addrs[0], fmt, sizeof fmt);
	ck_assert_str_eq(fmt, "93.184.216.35");
	/* The dropped private address is not attributed to the name. */
	ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 80, "10.1.2.3", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_str_eq(a.u.verdict.name, "");
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_resolve_deny_and_errors)
{
	struct fixture f;
	struct proto_msg a;

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "other.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(a.u.verdict.err, EAI_NONAME);
	ck_assert_str_eq(a.u.verdict.rule, "default");
	ask(&f, 2, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "bad!name", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_str_eq(a.u.verdict.rule, "invalid-name");
	ask(&f, 3, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "fail.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(a.u.verdict.naddr, 0);
	ck_assert_int_eq(a.u.verdict.err, EAI_AGAIN);
	fixture_close(&f);
}
END_TEST

/* A datagram's denial is cached by the shim as long as its allow: both
 * carry the policy's cache_ttl; a connect's verdict carries none. */
START_TEST(test_server_send_deny_carries_ttl)
{
	struct fixture f;
	struct proto_msg a;

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_SEND, PROTO_L4_UDP, 5353, "93.184.216.34", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_str_eq(a.u.verdict.rule, "default");
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 7000);
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.34", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 7000);
	fixture_close(&f);
}
END_TEST

/* A datagram to port 53 is a DNS query: whatever the policy says of its
 * address, it goes to the lookup stub (the answer names its addresses and
 * port), which judges the name it asks for; recorded as such. */
START_TEST(test_server_dns_query_goes_to_the_stub)
{
	struct fixture f;
	struct proto_msg a;
	char log[4096];

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_SEND, PROTO_L4_UDP, 53, "93.184.216.34", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_str_eq(a.u.verdict.rule, "dns");
	ck_assert_uint_gt(a.u.verdict.port, 0);
	ck_assert_int_ge(a.u.verdict.naddr, 1);
	ck_assert_int_eq(a.u.verdict.addrs[0].family, 4);
	ck_assert_int_eq(a.u.verdict.addrs[0].bytes[0], 127);
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 0); /* asked each time: each query is recorded */
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 53, "93.184.216.34", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY); /* TCP is judged by its address */
	read_file(f.audit, log, sizeof log);
	ck_assert_ptr_nonnull(strstr(log, "\"rule\":\"dns\",\"errno\":null,\"transport\":\"dns\""));
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_resolve_hosts_and_family)
{
	struct fixture f;
	struct proto_msg m, a;

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 80, "cache.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(a.u.verdict.naddr, 1);
	ck_assert_str_eq(a.u.verdict.rule, "cache");
	ask(&f, 2, PROTO_OP_SEND, PROTO_L4_UDP, 5353, "10.0.0.7", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW); /* private, but from [hosts] */
	ck_assert_str_eq(a.u.verdict.name, "cache.test");
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 7000);
	/* Family 6 of a name whose [hosts] entry is IPv4 only. */
	memset(&m, 0, sizeof m);
	m.type = PROTO_ASK;
	m.id = 3;
	m.u.ask.op = PROTO_OP_RESOLVE;
	m.u.ask.family = 6;
	strcpy(m.u.ask.name, "cache.test");
	send_msg(f.fd, &m);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert_int_eq(a.u.verdict.naddr, 0);
	ck_assert_int_eq(a.u.verdict.err, EAI_NONAME);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_connect_metadata_errno)
{
	struct fixture f;
	struct proto_msg a;
	char text[8192];

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 80, "169.254.169.254", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	ck_assert_int_eq(a.u.verdict.err, ECONNREFUSED);
	ck_assert_str_eq(a.u.verdict.rule, "no-metadata");
	read_file(f.audit, text, sizeof text);
	ck_assert_ptr_nonnull(strstr(text, "\"op\":\"connect\",\"name\":null,\"addr\":\"169.254.169.254\","
					   "\"port\":80,\"proto\":\"tcp\",\"action\":\"deny\","
					   "\"rule\":\"no-metadata\",\"errno\":\"ECONNREFUSED\"}\n"));
	ck_assert_uint_eq(server_stats(f.s)->deny, 1);
	ck_assert_uint_eq(server_stats(f.s)->connect, 1);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_control_status)
{
	struct fixture f;
	struct proto_msg m, a;

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 22, "10.1.2.3", &a);
	memset(&m, 0, sizeof m);
	m.type = PROTO_CONTROL;
	m.id = 9;
	m.u.control.what = PROTO_CTL_STATUS;
	send_msg(f.fd, &m);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert_int_eq(a.type, PROTO_TEXT);
	ck_assert_uint_eq(a.id, 9);
	ck_assert_int_eq(a.u.text.status, 0);
	ck_assert_ptr_nonnull(strstr(a.u.text.text, "clients:  1 connected, 1 total\n"));
	ck_assert_ptr_nonnull(strstr(a.u.text.text, "  10.1.2.3:22 tcp 1\n"));
	m.u.control.what = PROTO_CTL_STATUS_JSON;
	send_msg(f.fd, &m);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert(strncmp(a.u.text.text, "{\"version\":", 11) == 0);
	ck_assert_ptr_nonnull(strstr(a.u.text.text, "\"socket\":\"/tmp/not-listening.sock\""));
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_control_reload)
{
	struct fixture f;
	struct proto_msg m, a;
	char msg[1024];
	FILE *pf;

	fixture_open(&f, server_policy, stub_lookup);
	memset(&m, 0, sizeof m);
	m.type = PROTO_CONTROL;
	m.id = 1;
	m.u.control.what = PROTO_CTL_RELOAD;
	send_msg(f.fd, &m);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert_int_eq(a.u.text.status, 0);
	ck_assert(strncmp(a.u.text.text, "reloaded ", 9) == 0);
	ck_assert_ptr_nonnull(strstr(a.u.text.text, "(3 rules, sha256 "));
	/* A broken file leaves the old policy in force. */
	pf = fopen(f.policy, "a");
	fputs("[rule \"x\"]\nnonsense = 1\n", pf);
	fclose(pf);
	ck_assert_int_eq(server_reload(f.s, msg, sizeof msg), -1);
	ck_assert_ptr_nonnull(strstr(msg, f.policy));
	ask(&f, 2, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "pub.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	m.u.control.what = PROTO_CTL_STATUS;
	send_msg(f.fd, &m);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert_ptr_nonnull(strstr(a.u.text.text, "last reload error: "));
	ck_assert_ptr_null(strstr(a.u.text.text, "last reload error: none"));
	/* A new rule set swaps in. */
	pf = fopen(f.policy, "w");
	fputs("[egress]\ndefault = allow\n", pf);
	fclose(pf);
	ck_assert_int_eq(server_reload(f.s, msg, sizeof msg), 0);
	ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.99", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_bad_version_answered_then_closed)
{
	struct fixture f;
	struct proto_msg m, a;
	uint8_t buf[64];
	ssize_t n;

	fixture_open(&f, server_policy, stub_lookup);
	memset(&m, 0, sizeof m);
	m.type = PROTO_CONTROL;
	m.id = 77;
	m.u.control.what = PROTO_CTL_STATUS;
	n = proto_encode(&m, buf, sizeof buf);
	buf[1] = PROTO_VERSION + 1;
	ck_assert_int_eq(send(f.fd, buf, (size_t)n, 0), n);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert_int_eq(a.type, PROTO_ERROR);
	ck_assert_uint_eq(a.id, 77);
	ck_assert_int_eq(a.u.error, PROTO_E_VERSION);
	ck_assert_int_eq(pump(&f, &a), -1);
	ck_assert_uint_eq(server_stats(f.s)->clients_now, 0);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_unknown_type_answered_then_closed)
{
	struct fixture f;
	struct proto_msg a;
	uint8_t buf[12] = { 'E', PROTO_VERSION, 42, 0, 5, 0, 0, 0, 0, 0, 0, 0 };

	fixture_open(&f, server_policy, stub_lookup);
	ck_assert_int_eq(send(f.fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
	ck_assert_int_eq(pump(&f, &a), 0);
	ck_assert_int_eq(a.type, PROTO_ERROR);
	ck_assert_uint_eq(a.id, 5);
	ck_assert_int_eq(a.u.error, PROTO_E_TYPE);
	ck_assert_int_eq(pump(&f, &a), -1);
	fixture_close(&f);
}
END_TEST

/* Messages a client must never send: each closes that client only. */
static const struct {
	const char *what;
	size_t len;
	uint8_t bytes[24];
} malformed_cases[] = {
	{ "short", 4, { 'E', PROTO_VERSION, 1, 0 } },
	{ "bad magic", 13, { 'X', 1, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1 } },
	{ "length lies", 13, { 'E', PROTO_VERSION, 3, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1 } },
	{ "bad control", 13, { 'E', PROTO_VERSION, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9 } },
	{ "verdict from client", 24, { 'E', PROTO_VERSION, 2, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1 } },
	{ "error from client", 16, { 'E', PROTO_VERSION, 5, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1 } },
};

START_TEST(test_server_malformed_closes_one_client)
{
	struct fixture f;
	struct proto_msg a;
	int sv[2];

	fixture_open(&f, server_policy, stub_lookup);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(server_add_client(f.s, sv[0]), 0);
	ck_assert_int_eq(send(sv[1], malformed_cases[_i].bytes, malformed_cases[_i].len, 0),
			 (ssize_t)malformed_cases[_i].len);
	for (int i = 0; i < 5; i++)
		server_run_once(f.s, 10);
	ck_assert_int_eq(recv(sv[1], &a, 1, MSG_DONTWAIT), 0); /* closed */
	ck_assert_uint_eq(server_stats(f.s)->malformed, 1);
	ck_assert_uint_eq(server_stats(f.s)->clients_now, 1);
	ask(&f, 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.99", &a); /* others carry on */
	close(sv[1]);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_truncated_message_closes)
{
	struct fixture f;
	uint8_t *big = calloc(1, PROTO_MSG_MAX + 100), c;

	fixture_open(&f, server_policy, stub_lookup);
	big[0] = 'E';
	big[1] = PROTO_VERSION;
	ck_assert_int_eq(send(f.fd, big, PROTO_MSG_MAX + 100, 0), PROTO_MSG_MAX + 100);
	for (int i = 0; i < 5; i++)
		server_run_once(f.s, 10);
	ck_assert_int_eq(recv(f.fd, &c, 1, MSG_DONTWAIT), 0);
	ck_assert_uint_eq(server_stats(f.s)->malformed, 1);
	free(big);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_resolve_client_gone)
{
	struct fixture f;
	struct proto_msg m;

	fixture_open(&f, server_policy, stub_lookup);
	memset(&m, 0, sizeof m);
	m.type = PROTO_ASK;
	m.id = 1;
	m.u.ask.op = PROTO_OP_RESOLVE;
	strcpy(m.u.ask.name, "slow.test");
	send_msg(f.fd, &m);
	server_run_once(f.s, 10); /* the job is queued */
	close(f.fd);
	f.fd = -1;
	for (int i = 0; i < 30; i++)
		server_run_once(f.s, 20); /* the result finds no client: dropped */
	ck_assert_uint_eq(server_stats(f.s)->clients_now, 0);
	ck_assert_uint_eq(server_stats(f.s)->resolve, 0);
	ck_assert_uint_eq(addrmap_entries(server_addrmap(f.s)), 0);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_close_returns_memory)
{
	struct fixture f;
	struct proto_msg a;

	fixture_open(&f, server_policy, stub_lookup);
	ck_assert_uint_eq(addrmap_pids(server_addrmap(f.s)), 1);
	ask(&f, 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.99", &a);
	close(f.fd);
	f.fd = -1;
	for (int i = 0; i < 5; i++)
		server_run_once(f.s, 10);
	ck_assert_uint_eq(server_stats(f.s)->clients_now, 0);
	ck_assert_uint_eq(addrmap_pids(server_addrmap(f.s)), 0);
	fixture_close(&f);
}
END_TEST

START_TEST(test_server_listen_socket_lifecycle)
{
	struct server_config cfg = { 0 };
	char dir[64], policy[128], sock[128], err[512];
	struct server *s, *s2;
	struct stat st;

	tmpdir(dir);
	write_file(dir, "p.ini", "[egress]\ndefault = deny\n", policy, sizeof policy);
	snprintf(sock, sizeof sock, "%s/sub/b.sock", dir);
	cfg.policy_path = policy;
	cfg.socket_path = sock;
	cfg.lookup = stub_lookup;
	s = server_new(&cfg, err, sizeof err);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(server_listen(s, err, sizeof err), 0);
	ck_assert_int_eq(lstat(sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0660);
	/* A second broker on the same path is refused. */
	s2 = server_new(&cfg, err, sizeof err);
	ck_assert_ptr_nonnull(s2);
	ck_assert_int_eq(server_listen(s2, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "another broker is running at"));
	server_free(s2);
	ck_assert_int_eq(lstat(sock, &st), 0); /* not removed by the loser */
	server_free(s);
	ck_assert_int_eq(lstat(sock, &st), -1);
	/* A plain file is not taken for a stale socket. */
	write_file(dir, "sub/b.sock", "x", sock, sizeof sock);
	s = server_new(&cfg, err, sizeof err);
	ck_assert_int_eq(server_listen(s, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a socket"));
	server_free(s);
	unlink(sock);
	snprintf(sock, sizeof sock, "%s/sub", dir);
	rmdir(sock);
	unlink(policy);
	rmdir(dir);
}
END_TEST

START_TEST(test_server_new_bad_policy)
{
	struct server_config cfg = { 0 };
	char dir[64], policy[128], err[512];

	tmpdir(dir);
	write_file(dir, "p.ini", "[egress]\ndefault = maybe\n", policy, sizeof policy);
	cfg.policy_path = policy;
	ck_assert_ptr_null(server_new(&cfg, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "p.ini:2"));
	unlink(policy);
	rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------- isolation */

/* The descriptors an nschild makes in its network namespace and hands over,
 * in this order. */
enum {
	NS_SANDBOX, NS_SANDBOX_PEER, /* a socketpair: the sandbox's connection and its end */
	NS_EARLY, NS_EARLY_PEER,     /* a program's, added before the capture */
	NS_LATE, NS_LATE_PEER,       /* a program's, added after it */
	NS_CAP,                      /* SANDBOX_CAPTURE_SOCKS capture sockets (no NFLOG): TCP, TCP, UDP :53, UDP, sock_diag */
	NS_UDP = NS_CAP + SANDBOX_CAPTURE_SOCKS, /* a program's UDP socket, for a DNS query */
	NS_TCP,                      /* a program's TCP socket, for a captured connection */
	NS_FDS
};

/* A process in a network namespace of its own (inside a user namespace too
 * when not root) that made the descriptors above there and lives until
 * ctl is closed. */
struct nschild {
	pid_t pid;
	int ctl;
	int fd[NS_FDS]; /* -1 once handed on or closed */
};

/* A socket of type on 127.0.0.1:port, listening when a stream; -1 on failure. */
static int lo_socket(int type, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 8) < 0))
		return -1;
	return fd;
}

/* The child: its namespace, loopback up, the descriptors (the capture
 * sockets as root inside, the rest as uid when uid is not 0), handed over
 * in one message; then it waits for ctl to close. */
static void nschild_main(int ctl, uid_t uid)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * NS_FDS)];
	} cm;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			     .msg_controllen = sizeof cm.space };
	struct ifreq ifr;
	int fd[NS_FDS], s;
	char c;

	/* what the test holds (another child's ends) is not the child's to keep open */
	for (int i = 3; i < 1024; i++)
		if (i != ctl)
			close(i);
	if (unshare(geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET) < 0)
		_exit(2);
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0))
		_exit(3);
	close(s);
	fd[NS_CAP] = lo_socket(SOCK_STREAM, 0);
	fd[NS_CAP + 1] = lo_socket(SOCK_STREAM, 0);
	fd[NS_CAP + 2] = lo_socket(SOCK_DGRAM, 53);
	fd[NS_CAP + 3] = lo_socket(SOCK_DGRAM, 0);
	fd[NS_CAP + SANDBOX_DIAG_FD] = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (uid && setresuid(uid, uid, uid) < 0)
		_exit(4);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, &fd[NS_SANDBOX]) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, &fd[NS_EARLY]) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, &fd[NS_LATE]) < 0)
		_exit(5);
	fd[NS_UDP] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	fd[NS_TCP] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	for (int i = 0; i < NS_FDS; i++)
		if (fd[i] < 0)
			_exit(6);
	memset(&cm, 0, sizeof cm);
	CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
	CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
	CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int) * NS_FDS);
	memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fd, sizeof fd);
	if (sendmsg(ctl, &mh, 0) != 1)
		_exit(7);
	for (int i = 0; i < NS_FDS; i++)
		close(fd[i]);
	while (read(ctl, &c, 1) > 0)
		;
	_exit(0);
}

/* Starts k (its descriptors made as uid, 0: root inside). Returns false,
 * with the reason on stderr, when this system gives no network namespace
 * to the test. */
static bool nschild_start(struct nschild *k, uid_t uid)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * NS_FDS)];
	} cm;
	char c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			     .msg_controllen = sizeof cm.space };
	int sv[2], st;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	k->pid = fork();
	ck_assert_int_ge(k->pid, 0);
	if (k->pid == 0) {
		close(sv[0]);
		nschild_main(sv[1], uid);
	}
	close(sv[1]);
	k->ctl = sv[0];
	if (recvmsg(k->ctl, &mh, MSG_CMSG_CLOEXEC) != 1) {
		close(k->ctl);
		waitpid(k->pid, &st, 0);
		fprintf(stderr, "check_server: no network namespace for the test (child status %d): "
				"isolation cases skipped\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return false;
	}
	ck_assert_ptr_nonnull(CMSG_FIRSTHDR(&mh));
	memcpy(k->fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof k->fd);
	return true;
}

/* Closes what k handed over and is still here, and ends k. */
static void nschild_end(struct nschild *k)
{
	for (int i = 0; i < NS_FDS; i++)
		if (k->fd[i] >= 0)
			close(k->fd[i]);
	close(k->ctl);
	waitpid(k->pid, NULL, 0);
}

/* Adds k's socket end i to the broker as a client, whose pid is k's. */
static void nschild_connect(struct fixture *f, struct nschild *k, int i)
{
	ck_assert_int_eq(server_add_client(f->s, k->fd[i]), 0);
	k->fd[i] = -1;
}

/* Runs the loop until a message arrives on fd (a client's end other than
 * f->fd), into m. Returns 0, or -1 when the broker closed fd. */
static int pump_from(struct fixture *f, int fd, struct proto_msg *m)
{
	int own = f->fd, rc;

	f->fd = fd;
	rc = pump(f, m);
	f->fd = own;
	return rc;
}

/* ask() from the client whose end is fd. */
static void ask_from(struct fixture *f, int fd, uint32_t id, int op, int l4, uint16_t port,
		     const char *target, struct proto_msg *ans)
{
	int own = f->fd;

	f->fd = fd;
	ask(f, id, op, l4, port, target, ans);
	f->fd = own;
}

/* Sends CONTROL what on fd, with the n descriptors fds as SCM_RIGHTS (the
 * sandbox's CAPTURE), and waits for the answer in m. */
static void control_from(struct fixture *f, int fd, int what, const int *fds, int n,
			 struct proto_msg *m)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * SANDBOX_CAPTURE_FDS)];
	} cm;
	uint8_t buf[PROTO_MSG_MAX];
	struct iovec iov = { .iov_base = buf };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct proto_msg q;
	ssize_t len;

	memset(&q, 0, sizeof q);
	q.type = PROTO_CONTROL;
	q.id = 5;
	q.u.control.what = (uint8_t)what;
	len = proto_encode(&q, buf, sizeof buf);
	ck_assert_int_gt(len, 0);
	iov.iov_len = (size_t)len;
	if (n > 0) {
		memset(&cm, 0, sizeof cm);
		mh.msg_control = cm.space;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, sizeof(int) * (size_t)n);
	}
	ck_assert_int_eq(sendmsg(fd, &mh, 0), len);
	ck_assert_int_eq(pump_from(f, fd, m), 0);
}

/* The sandbox k hands over its capture sockets; the answer's text. */
static const char *hand_over(struct fixture *f, struct nschild *k, struct proto_msg *m)
{
	control_from(f, k->fd[NS_SANDBOX_PEER], PROTO_CTL_CAPTURE, &k->fd[NS_CAP],
		     SANDBOX_CAPTURE_SOCKS, m);
	ck_assert_int_eq(m->type, PROTO_TEXT);
	return m->u.text.text;
}

/* The broker's status --json, asked from the test's own namespace. */
static const char *status_json(struct fixture *f, struct proto_msg *m)
{
	control_from(f, f->fd, PROTO_CTL_STATUS_JSON, NULL, 0, m);
	ck_assert_int_eq(m->type, PROTO_TEXT);
	return m->u.text.text;
}

static const char *iso_policy = "[egress]\n"
				"default = deny\n"
				"[rule \"pub\"]\n"
				"host = pub.test\n"
				"action = allow\n";

/* A query for pub.test, A, IN. */
static const uint8_t pub_query[] = {
	0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
	3, 'p', 'u', 'b', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
};

START_TEST(test_server_capture_per_netns)
{
	struct fixture f;
	struct nschild a, b;
	struct proto_msg m;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(53),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in lst;
	socklen_t len = sizeof lst;
	uint8_t reply[512];
	char want[256], text[8192];
	ssize_t n = -1;

	if (!nschild_start(&a, 0))
		return;
	ck_assert(nschild_start(&b, 0));
	fixture_open_isolated(&f, iso_policy, stub_lookup);
	nschild_connect(&f, &a, NS_SANDBOX);
	nschild_connect(&f, &a, NS_EARLY);
	nschild_connect(&f, &b, NS_SANDBOX);

	/* before its namespace is captured, a program there is not isolated */
	ask_from(&f, a.fd[NS_EARLY_PEER], 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, "127.0.0.1", &m);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	ck_assert_str_eq(m.u.verdict.rule, "default");

	ck_assert_str_eq(hand_over(&f, &a, &m), "capturing");
	ck_assert_int_eq(m.u.text.status, 0);
	/* a second capture of the same namespace is refused, with why */
	control_from(&f, a.fd[NS_SANDBOX_PEER], PROTO_CTL_CAPTURE, NULL, 0, &m);
	ck_assert_int_eq(m.u.text.status, 1);
	snprintf(want, sizeof want, "its network namespace is captured already (sandbox pid %ld)",
		 (long)a.pid);
	ck_assert_str_eq(m.u.text.text, want);
	/* and one from the broker's own namespace */
	control_from(&f, f.fd, PROTO_CTL_CAPTURE, NULL, 0, &m);
	ck_assert_int_eq(m.u.text.status, 1);
	ck_assert_ptr_nonnull(strstr(m.u.text.text, "is in the broker's own network namespace"));
	/* sockets of another namespace than the sandbox's */
	control_from(&f, b.fd[NS_SANDBOX_PEER], PROTO_CTL_CAPTURE, &a.fd[NS_CAP],
		     SANDBOX_CAPTURE_SOCKS, &m);
	ck_assert_int_eq(m.u.text.status, 1);
	ck_assert_str_eq(m.u.text.text, "capture socket 0 is not in the sandbox's network namespace");
	/* another namespace, not captured (one made inside a sandbox would be
	 * such), may not ask for status of a broker that takes captures */
	nschild_connect(&f, &b, NS_EARLY);
	control_from(&f, b.fd[NS_EARLY_PEER], PROTO_CTL_STATUS, NULL, 0, &m);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_int_eq(m.u.error, PROTO_E_DENIED);
	/* a second sandbox, in a namespace of its own, is taken too */
	ck_assert_str_eq(hand_over(&f, &b, &m), "capturing");

	/* the program that connected before the capture is isolated now (the
	 * denied loopback connect stays in its namespace), and so is one that
	 * connects after; neither may ask for status */
	ask_from(&f, a.fd[NS_EARLY_PEER], 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, "127.0.0.1", &m);
	ck_assert_int_eq(m.u.verdict.action, PROTO_ALLOW);
	ck_assert_str_eq(m.u.verdict.rule, "namespace");
	nschild_connect(&f, &a, NS_LATE);
	ask_from(&f, a.fd[NS_LATE_PEER], 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, "127.0.0.1", &m);
	ck_assert_str_eq(m.u.verdict.rule, "namespace");
	control_from(&f, a.fd[NS_LATE_PEER], PROTO_CTL_STATUS, NULL, 0, &m);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_int_eq(m.u.error, PROTO_E_DENIED);
	/* the test's own client is not isolated */
	ask(&f, 4, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, "127.0.0.1", &m);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);

	/* a DNS query in a's namespace reaches a's stub, a connection a's listener */
	ck_assert_int_eq(sendto(a.fd[NS_UDP], pub_query, sizeof pub_query, 0,
				(struct sockaddr *)&to, sizeof to), (ssize_t)sizeof pub_query);
	for (int i = 0; i < 100 && n < 0; i++) {
		server_run_once(f.s, 20);
		n = recv(a.fd[NS_UDP], reply, sizeof reply, MSG_DONTWAIT);
	}
	ck_assert_int_gt(n, (ssize_t)sizeof pub_query + 12);
	ck_assert_int_eq(reply[0], 0x12);
	ck_assert_int_eq(reply[3] & 0x0f, DNS_NOERROR);
	ck_assert_int_eq(reply[7], 1); /* one answer: pub.test's synthetic address */
	ck_assert_int_eq(reply[n - 4], 198);
	ck_assert_int_eq(getsockname(a.fd[NS_CAP], (struct sockaddr *)&lst, &len), 0);
	ck_assert_int_eq(connect(a.fd[NS_TCP], (struct sockaddr *)&lst, len), 0);
	for (int i = 0; i < 5; i++)
		server_run_once(f.s, 20);
	snprintf(want, sizeof want,
		 "\"isolate\":true,"); /* near the top */
	ck_assert_ptr_nonnull(strstr(status_json(&f, &m), want));
	snprintf(want, sizeof want,
		 "\"sandboxes\":{\"active\":2,\"total\":2,\"list\":[{\"pid\":%ld,\"connections\":1,"
		 "\"queries\":1},{\"pid\":%ld,\"connections\":0,\"queries\":0}]}",
		 (long)a.pid, (long)b.pid);
	ck_assert_ptr_nonnull(strstr(m.u.text.text, want));
	control_from(&f, f.fd, PROTO_CTL_STATUS, NULL, 0, &m);
	ck_assert_ptr_nonnull(strstr(m.u.text.text, "isolation: 2 sandboxes capturing, 2 since start\n"));
	snprintf(want, sizeof want, "  sandbox pid %ld: 1 connections, 1 queries captured\n",
		 (long)a.pid);
	ck_assert_ptr_nonnull(strstr(m.u.text.text, want));
	read_file(f.audit, text, sizeof text);
	ck_assert_ptr_nonnull(strstr(text, "\"op\":\"resolve\",\"name\":\"pub.test\",\"addr\":\"198."));
	ck_assert_ptr_nonnull(strstr(text, "\"rule\":\"pub\",\"errno\":null,\"captured\":true}"));

	/* a's capture ends with its connection; a's programs stay isolated */
	close(a.fd[NS_SANDBOX_PEER]);
	a.fd[NS_SANDBOX_PEER] = -1;
	for (int i = 0; i < 5; i++)
		server_run_once(f.s, 10);
	snprintf(want, sizeof want,
		 "\"sandboxes\":{\"active\":1,\"total\":2,\"list\":[{\"pid\":%ld,", (long)b.pid);
	ck_assert_ptr_nonnull(strstr(status_json(&f, &m), want));
	ask_from(&f, a.fd[NS_EARLY_PEER], 5, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, "127.0.0.1", &m);
	ck_assert_str_eq(m.u.verdict.rule, "namespace");
	fixture_close(&f);
	nschild_end(&a);
	nschild_end(&b);
}
END_TEST

/* A broker without --isolate takes no capture and isolates no one; one that
 * takes captures takes them from root and its own uid only. */
START_TEST(test_server_capture_refused)
{
	struct fixture f;
	struct nschild k;
	struct proto_msg m;

	if (!nschild_start(&k, 0))
		return;
	fixture_open(&f, iso_policy, stub_lookup);
	nschild_connect(&f, &k, NS_SANDBOX);
	ck_assert_str_eq(hand_over(&f, &k, &m), "this broker was not started with --isolate");
	ck_assert_int_eq(m.u.text.status, 1);
	ask_from(&f, k.fd[NS_SANDBOX_PEER], 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 9, "127.0.0.1", &m);
	ck_assert_int_eq(m.u.verdict.action, PROTO_DENY);
	control_from(&f, k.fd[NS_SANDBOX_PEER], PROTO_CTL_STATUS_JSON, NULL, 0, &m);
	ck_assert_int_eq(m.type, PROTO_TEXT); /* another namespace may ask for status here */
	ck_assert_ptr_nonnull(strstr(m.u.text.text, "\"isolate\":false,"));
	ck_assert_ptr_nonnull(strstr(m.u.text.text, "\"sandboxes\":{\"active\":0,\"total\":0,\"list\":[]}"));
	fixture_close(&f);
	nschild_end(&k);

	if (geteuid() != 0)
		return; /* another uid needs root */
	ck_assert(nschild_start(&k, 65534));
	fixture_open_isolated(&f, iso_policy, stub_lookup);
	nschild_connect(&f, &k, NS_SANDBOX);
	ck_assert_str_eq(hand_over(&f, &k, &m),
			 "uid 65534 may not hand over a capture (only root and uid 0)");
	fixture_close(&f);
	nschild_end(&k);
}
END_TEST

/* ------------------------------------------------------ cached verdicts */

/* The generation page comes with the first verdict that may be kept, and
 * with no other; it names the generation the verdict was decided in, and
 * nobody but the broker can write it: not through the descriptor, not by
 * a writable mapping, not by making a read-only one writable, not by
 * resizing it. */
START_TEST(test_server_generation_page)
{
	struct fixture f;
	struct proto_msg a;
	const struct proto_page *pg;
	void *w;
	int fd;

	fixture_open(&f, server_policy, stub_lookup);
	send_ask(&f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "pub.test", 0, 0);
	ck_assert_int_eq(pump_fd(&f, &a, &fd), 0);
	ck_assert_int_eq(fd, -1); /* a resolve is not kept */
	send_ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "93.184.216.34", 0, 0);
	ck_assert_int_eq(pump_fd(&f, &a, &fd), 0);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 7000);
	ck_assert_int_ge(fd, 0);
	pg = mmap(NULL, PROTO_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(pg, MAP_FAILED);
	ck_assert_uint_eq(pg->magic, PROTO_PAGE_MAGIC);
	ck_assert_uint_eq(pg->version, PROTO_VERSION);
	ck_assert_uint_eq(pg->generation, a.u.verdict.gen);
	ck_assert_uint_ne(a.u.verdict.gen, 0);
	/* its lock word names the thread that runs the loop: this one */
	ck_assert_uint_eq(*(const uint32_t *)((const char *)pg + PROTO_PAGE_LOCK_OFFSET) &
				  PROTO_PAGE_TID_MASK,
			  (uint32_t)syscall(SYS_gettid));

	errno = 0;
	ck_assert_int_eq(write(fd, "x", 1), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_ptr_eq(mmap(NULL, PROTO_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
			 MAP_FAILED);
	ck_assert_int_ne(mprotect((void *)pg, PROTO_PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_ne(ftruncate(fd, 0), 0);
	ck_assert_int_ne(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				   PROTO_PAGE_SIZE), 0);
	w = mmap(NULL, PROTO_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne(w, MAP_FAILED);
	((struct proto_page *)w)->generation = 0; /* a private copy: the page is untouched */
	ck_assert_uint_eq(pg->generation, a.u.verdict.gen);
	munmap(w, PROTO_PAGE_SIZE);
	close(fd);

	ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 80, "93.184.216.34", &a);
	send_ask(&f, 4, PROTO_OP_CONNECT, PROTO_L4_TCP, 80, "93.184.216.34", 0, 0);
	ck_assert_int_eq(pump_fd(&f, &a, &fd), 0);
	ck_assert_int_eq(fd, -1); /* once per connection */
	munmap((void *)pg, PROTO_PAGE_SIZE);
	fixture_close(&f);
}
END_TEST

/* The generation moves on a reload (before it is reported done) and
 * whenever an address comes to stand for another name; a lookup that
 * changes nothing leaves it. */
START_TEST(test_server_generation_moves)
{
	struct fixture f;
	struct proto_msg a;
	char msg[512];
	uint32_t g;

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	g = a.u.verdict.gen;
	ck_assert_uint_ne(g, 0);
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_uint_eq(a.u.verdict.gen, g);
	ck_assert_int_eq(server_reload(f.s, msg, sizeof msg), 0);
	ask(&f, 3, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_uint_gt(a.u.verdict.gen, g);
	g = a.u.verdict.gen;
	/* cache.test comes to stand for 10.0.0.7 in this process */
	ask(&f, 4, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "cache.test", &a);
	ask(&f, 5, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_str_eq(a.u.verdict.name, "cache.test");
	ck_assert_uint_gt(a.u.verdict.gen, g);
	g = a.u.verdict.gen;
	ask(&f, 6, PROTO_OP_RESOLVE, PROTO_L4_TCP, 443, "cache.test", &a);
	ask(&f, 7, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_uint_eq(a.u.verdict.gen, g);
	fixture_close(&f);
}
END_TEST

/* A NOTE is recorded as the connect asking would have been, marked
 * cached and counted, and answered with nothing; one whose action the
 * policy no longer gives is recorded as what happened, and moves the
 * generation. */
START_TEST(test_server_note_recorded)
{
	struct fixture f;
	struct proto_msg m = { .type = PROTO_NOTE }, a;
	struct control_info ci;
	char log[8192], *allow, *deny;
	uint32_t g;

	fixture_open(&f, server_policy, stub_lookup);
	ask(&f, 1, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_DENY);
	g = a.u.verdict.gen;
	m.u.note.ask.op = PROTO_OP_CONNECT;
	m.u.note.ask.l4 = PROTO_L4_TCP;
	m.u.note.ask.port = 443;
	m.u.note.ask.addr = A("10.0.0.7");
	m.u.note.action = PROTO_DENY;
	send_msg(f.fd, &m);
	m.u.note.action = PROTO_ALLOW; /* what the policy does not say */
	send_msg(f.fd, &m);
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_int_eq(a.id, 2); /* the NOTEs were not answered */
	ck_assert_uint_gt(a.u.verdict.gen, g);
	server_info(f.s, &ci);
	ck_assert_uint_eq(ci.stats->cached, 2);
	ck_assert_uint_eq(ci.stats->connect, 4);
	read_file(f.audit, log, sizeof log);
	deny = strstr(log, "\"action\":\"deny\",\"rule\":\"default\",\"errno\":\"EPERM\",\"cached\":true}");
	allow = strstr(log, "\"action\":\"allow\",\"rule\":\"cached\",\"errno\":null,\"cached\":true}");
	ck_assert_msg(deny && allow && deny < allow, "audit: %s", log);
	fixture_close(&f);
}
END_TEST

/* ------------------------------------------------------------ note rings */

/* A note ring as the shim makes it (seals: what to add), mapped here into
 * *r; its descriptor. */
static int ring_new(int seals, struct proto_ring **r)
{
	int fd = memfd_create("check-notes", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *p;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, PROTO_RING_SIZE), 0);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	p = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	*r = p;
	(*r)->magic = PROTO_RING_MAGIC;
	(*r)->version = PROTO_VERSION;
	return fd;
}

/* The NOTE of a connect to 10.0.0.7:443 the shim applied as action. */
static void note_of(int action, struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_NOTE;
	m->u.note.ask.op = PROTO_OP_CONNECT;
	m->u.note.ask.l4 = PROTO_L4_TCP;
	m->u.note.ask.port = 443;
	m->u.note.ask.addr = A("10.0.0.7");
	m->u.note.action = (uint8_t)action;
}

/* Sends m on fd with passfd as SCM_RIGHTS. */
static void send_msg_fd(int fd, const struct proto_msg *m, int passfd)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	uint8_t buf[256];
	struct iovec iov = { .iov_base = buf };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			     .msg_controllen = sizeof cm.space };
	ssize_t len = proto_encode(m, buf, sizeof buf);

	ck_assert_int_gt(len, 0);
	iov.iov_len = (size_t)len;
	memset(&cm, 0, sizeof cm);
	CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
	CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
	CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &passfd, sizeof passfd);
	ck_assert_int_eq(sendmsg(fd, &mh, 0), len);
}

/* Puts n NOTEs of action into r; the sum of what proto_ring_put said. */
static int ring_put_notes(struct proto_ring *r, int action, int n)
{
	struct proto_msg m;
	uint8_t buf[64];
	ssize_t len;
	int bells = 0;

	note_of(action, &m);
	len = proto_encode(&m, buf, sizeof buf);
	ck_assert_int_gt(len, 0);
	for (int i = 0; i < n; i++)
		bells += proto_ring_put(r, buf, (size_t)len);
	return bells;
}

static void send_bell(int fd)
{
	uint8_t bell[PROTO_HDR_LEN];

	ck_assert_int_eq(proto_encode_ring(bell, sizeof bell), PROTO_HDR_LEN);
	ck_assert_int_eq(send(fd, bell, sizeof bell, 0), PROTO_HDR_LEN);
}

/* Runs the loop until `cached` connects are counted (or 2 s). */
static unsigned long pump_cached(struct fixture *f, unsigned long cached)
{
	struct control_info ci;

	for (int i = 0; i < 100; i++) {
		server_info(f->s, &ci);
		if (ci.stats->cached >= cached)
			break;
		ck_assert_int_ge(server_run_once(f->s, 20), 0);
	}
	server_info(f->s, &ci);
	return ci.stats->cached;
}

/* The first NOTE brings the ring; NOTEs put there are recorded in order
 * once its bell rings (one bell for a run of them), before the client's
 * next question is, and when the client goes; the broker then says it
 * reads no more. */
START_TEST(test_server_note_ring)
{
	struct fixture f;
	struct proto_msg m, a;
	struct proto_ring *r;
	char log[16384], *p;
	int fd = ring_new(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, &r), n;

	fixture_open(&f, server_policy, stub_lookup);
	note_of(PROTO_DENY, &m);
	send_msg_fd(f.fd, &m, fd);
	close(fd);
	ck_assert_uint_eq(pump_cached(&f, 1), 1);
	ck_assert_uint_eq(r->state, PROTO_RING_READ);
	ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 3), 1); /* one bell for three */
	send_bell(f.fd);
	ck_assert_uint_eq(pump_cached(&f, 4), 4);
	ck_assert_uint_eq(r->tail, r->head);
	/* read before the question that follows them, bell or not */
	ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 1), 1);
	ck_assert_int_eq(ring_put_notes(r, PROTO_ALLOW, 1), 0); /* what the policy does not say */
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 80, "10.0.0.7", &a);
	ck_assert_uint_eq(pump_cached(&f, 0), 6);
	read_file(f.audit, log, sizeof log);
	p = strstr(log, "\"action\":\"allow\",\"rule\":\"cached\"");
	p = p ? strstr(p, "\"port\":80,") : NULL;
	ck_assert_msg(p && !strstr(p, "\"cached\":true"), "the ring's NOTEs before the question: %s",
		      log);
	/* the client goes with NOTEs unannounced: they are recorded */
	ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 2), 1);
	close(f.fd);
	f.fd = -1;
	ck_assert_uint_eq(pump_cached(&f, 8), 8);
	ck_assert_uint_eq(r->state, PROTO_RING_SHUT);
	ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 1), -1);
	read_file(f.audit, log, sizeof log);
	n = 0;
	for (p = log; (p = strstr(p, "\"cached\":true")); p++)
		n++;
	ck_assert_int_eq(n, 8);
	munmap(r, PROTO_RING_SIZE);
	fixture_close(&f);
}
END_TEST

/* A ring the broker could be made to fault on (not sealed against
 * shrinking), or of another version, is not taken: the NOTE that brought
 * it is recorded, the shim is never told to use it, and shrinking it
 * afterwards harms nothing. */
START_TEST(test_server_note_ring_refused)
{
	struct fixture f;
	struct proto_msg m, a;
	struct proto_ring *r, *old;
	int fd = ring_new(0, &r), fd2 = ring_new(F_SEAL_SHRINK, &old);

	fixture_open(&f, server_policy, stub_lookup);
	old->version = PROTO_VERSION - 1;
	note_of(PROTO_DENY, &m);
	send_msg_fd(f.fd, &m, fd);
	send_msg_fd(f.fd, &m, fd2);
	ck_assert_uint_eq(pump_cached(&f, 2), 2);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_uint_eq(old->state, PROTO_RING_NEW);
	munmap(r, PROTO_RING_SIZE);
	munmap(old, PROTO_RING_SIZE);
	close(fd);
	close(fd2);
	send_bell(f.fd); /* a bell without a ring: nothing to read */
	ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
	ck_assert_int_eq(a.id, 2);
	fixture_close(&f);
}
END_TEST

/* A ring the program wrote over (head far past tail, a slot's length out
 * of bounds, a slot that is not a NOTE) is let go: what came before the
 * damage is recorded, the shim is told (it sends its NOTEs again, and the
 * one that finds the ring let go is recorded), and the client is served. */
START_TEST(test_server_note_ring_broken)
{
	static const char *how[] = { "head", "length", "type" };

	for (size_t k = 0; k < sizeof how / sizeof how[0]; k++) {
		struct fixture f;
		struct proto_msg m, a;
		struct proto_ring *r;
		struct control_info ci;
		int fd = ring_new(F_SEAL_SHRINK, &r);
		uint32_t h;

		fixture_open(&f, server_policy, stub_lookup);
		note_of(PROTO_DENY, &m);
		send_msg_fd(f.fd, &m, fd);
		close(fd);
		ck_assert_uint_eq(pump_cached(&f, 1), 1);
		ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 2), 1);
		h = r->head;
		if (k == 0) {
			r->head = h + PROTO_RING_SLOTS + 1;
		} else {
			ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 1), 0);
			if (k == 1)
				r->slot[h & (PROTO_RING_SLOTS - 1)][0] = PROTO_RING_SLOT;
			else
				r->slot[h & (PROTO_RING_SLOTS - 1)][1 + 2] = PROTO_ASK;
		}
		send_bell(f.fd);
		ask(&f, 2, PROTO_OP_CONNECT, PROTO_L4_TCP, 443, "10.0.0.7", &a);
		ck_assert_msg(a.id == 2, "%s: the client is served", how[k]);
		server_info(f.s, &ci);
		ck_assert_uint_eq(ci.stats->malformed, 1);
		ck_assert_uint_eq(ci.stats->cached, k == 0 ? 1 : 3);
		ck_assert_uint_eq(r->state, PROTO_RING_SHUT);
		ck_assert_int_eq(ring_put_notes(r, PROTO_DENY, 1), -1);
		send_msg(f.fd, &m);
		ck_assert_uint_eq(pump_cached(&f, k == 0 ? 2 : 4), k == 0 ? 2 : 4);
		munmap(r, PROTO_RING_SIZE);
		fixture_close(&f);
	}
}
END_TEST

Suite *suite_server(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("server");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_server_resolve_filters_and_remembers);
	tcase_add_test(tc, test_server_resolve_private_dropped);
	tcase_add_test(tc, test_server_resolve_deny_and_errors);
	tcase_add_test(tc, test_server_resolve_hosts_and_family);
	tcase_add_test(tc, test_server_send_deny_carries_ttl);
	tcase_add_test(tc, test_server_dns_query_goes_to_the_stub);
	tcase_add_test(tc, test_server_connect_metadata_errno);
	tcase_add_test(tc, test_server_control_status);
	tcase_add_test(tc, test_server_control_reload);
	tcase_add_test(tc, test_server_bad_version_answered_then_closed);
	tcase_add_test(tc, test_server_unknown_type_answered_then_closed);
	tcase_add_loop_test(tc, test_server_malformed_closes_one_client, 0,
			    sizeof malformed_cases / sizeof malformed_cases[0]);
	tcase_add_test(tc, test_server_truncated_message_closes);
	tcase_add_test(tc, test_server_resolve_client_gone);
	tcase_add_test(tc, test_server_close_returns_memory);
	tcase_add_test(tc, test_server_listen_socket_lifecycle);
	tcase_add_test(tc, test_server_new_bad_policy);
	tcase_add_test(tc, test_server_generation_page);
	tcase_add_test(tc, test_server_generation_moves);
	tcase_add_test(tc, test_server_note_recorded);
	tcase_add_test(tc, test_server_note_ring);
	tcase_add_test(tc, test_server_note_ring_refused);
	tcase_add_test(tc, test_server_note_ring_broken);
	suite_add_tcase(s, tc);
	tc = tcase_create("isolate");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_server_capture_per_netns);
	tcase_add_test(tc, test_server_capture_refused);
	suite_add_tcase(s, tc);
	return s;
}
