/* check_server.c: unit tests of broker/server.c: request handling through a
 * socketpair client (the fixture in testlib.c), control requests, malformed
 * clients, the listening socket. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

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
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 0);
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
	ck_assert_uint_eq(a.u.verdict.ttl_ms, 0);
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
	suite_add_tcase(s, tc);
	return s;
}
