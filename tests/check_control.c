/* check_control.c: unit tests of broker/control.c: the socket path, the
 * status text and JSON, a request with no broker. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

START_TEST(test_control_socket_path_lookup)
{
	char out[128];

	unsetenv("EGRESS_SOCKET");
	ck_assert_int_eq(control_socket_path(NULL, out, sizeof out), 0);
	ck_assert_str_eq(out, "/run/egress/broker.sock");
	setenv("EGRESS_SOCKET", "/tmp/env.sock", 1);
	ck_assert_int_eq(control_socket_path(NULL, out, sizeof out), 0);
	ck_assert_str_eq(out, "/tmp/env.sock");
	ck_assert_int_eq(control_socket_path("/tmp/opt.sock", out, sizeof out), 0);
	ck_assert_str_eq(out, "/tmp/opt.sock");
	setenv("EGRESS_SOCKET", "", 1);
	ck_assert_int_eq(control_socket_path(NULL, out, sizeof out), 0);
	ck_assert_str_eq(out, "/run/egress/broker.sock");
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = 0;
	ck_assert_int_eq(control_socket_path(longp, out, sizeof out), -1);
}
END_TEST

/* A status with a few of everything. */
static void sample_info(struct control_info *ci, struct stats *st)
{
	struct proto_addr a = A("10.1.2.3");

	stats_init(st);
	st->allow = 40;
	st->deny = 5;
	st->resolve = 12;
	st->connect = 30;
	st->send = 3;
	st->clients_now = 3;
	st->clients_total = 17;
	for (int i = 0; i < 4; i++)
		stats_denied(st, NULL, &a, 22, PROTO_L4_TCP);
	stats_denied(st, "evil.example.com", NULL, 443, PROTO_L4_TCP);
	stats_dropped(st, &(struct nflog_counts){ .dropped = 100, .lost = 2, .unitemised = 30 });
	stats_dropped(st, &(struct nflog_counts){ .dropped = 1, .malformed = 1 });
	memset(ci, 0, sizeof *ci);
	ci->pid = 1234;
	ci->uptime_s = 192;
	ci->socket = "/tmp/b.sock";
	ci->policy_path = "/p/policy.ini";
	ci->sha256 = "ab12";
	ci->rules = 12;
	ci->loaded_at.tv_sec = 1795341600;
	ci->audit_path = "/p/audit.jsonl";
	ci->audit_error = "No space left on device";
	ci->audit_failures = 2;
	ci->stats = st;
}

START_TEST(test_control_status_text_lines)
{
	struct control_info ci;
	struct stats st;
	char out[4096];

	sample_info(&ci, &st);
	control_status_text(&ci, out, sizeof out);
	ck_assert_ptr_nonnull(strstr(out, "egress-broker 0.1, pid 1234, up 3m12s\n"));
	ck_assert_ptr_nonnull(strstr(out, "socket:   /tmp/b.sock\n"));
	ck_assert_ptr_nonnull(strstr(out, "policy:   /p/policy.ini (12 rules, sha256 ab12, loaded "
					  "2026-11-22T10:00:00Z)\n"));
	ck_assert_ptr_nonnull(strstr(out, "last reload error: none\n"));
	ck_assert_ptr_nonnull(strstr(out, "audit:    /p/audit.jsonl (error: No space left"));
	ck_assert_ptr_nonnull(strstr(out, "clients:  3 connected, 17 total\n"));
	ck_assert_ptr_nonnull(strstr(out, "decisions: 40 allow, 5 deny, 0 rewrite (12 resolve, 30 "
					  "connect, 3 send); 0 malformed messages\n"));
	ck_assert_ptr_nonnull(strstr(out, "dropped datagrams: 101 in isolated namespaces (2 lost "
					  "before they were read, 30 not itemised in the audit log); "
					  "1 malformed NFLOG messages\n"));
	ck_assert_ptr_nonnull(strstr(out, "top denied:\n  10.1.2.3:22 tcp          4\n"
					  "  evil.example.com:443 tcp 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "isolation: off (not started with --isolate)\n"));
	stats_free(&st);
}
END_TEST

/* The sandboxes of an --isolate broker: how many, each listed up to the
 * list's length, the rest counted. */
START_TEST(test_control_status_sandboxes)
{
	static const struct control_sandbox sb[2] = { { 41, 3, 2 }, { 42, 0, 1 } };
	struct control_info ci;
	struct stats st;
	char out[4096];

	sample_info(&ci, &st);
	ci.isolate = true;
	ci.sandboxes = sb;
	ci.nsandboxes = 2;
	ci.sandboxes_active = 3;
	ci.sandboxes_total = 7;
	control_status_text(&ci, out, sizeof out);
	ck_assert_ptr_nonnull(strstr(out, "isolation: 3 sandboxes capturing, 7 since start\n"
					  "  sandbox pid 41: 3 connections, 2 queries captured\n"
					  "  sandbox pid 42: 0 connections, 1 queries captured\n"
					  "  and 1 more\n"));
	control_status_json(&ci, out, sizeof out);
	ck_assert_ptr_nonnull(strstr(out, "\"socket\":\"/tmp/b.sock\",\"isolate\":true,\"policy\":"));
	ck_assert_ptr_nonnull(strstr(out, "\"sandboxes\":{\"active\":3,\"total\":7,\"list\":["
					  "{\"pid\":41,\"connections\":3,\"queries\":2},"
					  "{\"pid\":42,\"connections\":0,\"queries\":1}]}"));
	ci.sandboxes_active = ci.nsandboxes = 1;
	control_status_text(&ci, out, sizeof out);
	ck_assert_ptr_nonnull(strstr(out, "isolation: 1 sandbox capturing, 7 since start\n"));
	stats_free(&st);
}
END_TEST

START_TEST(test_control_status_json_keys)
{
	struct control_info ci;
	struct stats st;
	char out[4096];

	sample_info(&ci, &st);
	ci.last_error = "p.ini:3: bad \"key\"";
	control_status_json(&ci, out, sizeof out);
	ck_assert(strncmp(out, "{\"version\":\"0.1\",\"pid\":1234,\"uptime_s\":192,", 43) == 0);
	ck_assert_ptr_nonnull(strstr(out, "\"policy\":{\"path\":\"/p/policy.ini\",\"sha256\":\"ab12\","
					  "\"rules\":12,\"loaded_at\":\"2026-11-22T10:00:00Z\","
					  "\"last_error\":\"p.ini:3: bad \\\"key\\\"\"}"));
	ck_assert_ptr_nonnull(strstr(out, "\"clients\":{\"connected\":3,\"total\":17}"));
	ck_assert_ptr_nonnull(strstr(out, "\"malformed\":0}"));
	ck_assert_ptr_nonnull(strstr(out, "\"dropped\":{\"datagrams\":101,\"lost\":2,"
					  "\"unitemised\":30,\"malformed\":1}"));
	ck_assert_ptr_nonnull(strstr(out, "\"top_denied\":[{\"destination\":\"10.1.2.3:22\","
					  "\"proto\":\"tcp\",\"count\":4},"));
	ck_assert_ptr_nonnull(strstr(out, "]}\n"));
	stats_free(&st);
}
END_TEST

static const struct {
	const char *arg;
	int rc;
} mode_cases[] = {
	{ "0666", 0 },	{ "660", 0 },	  { "0600", 0 },  { "0777", 0 }, { "0400", -1 },
	{ "0644x", -1 }, { "", -1 },	  { "01777", -1 }, { "0060", -1 }, { "8", -1 },
	{ "-1", -1 },
};

START_TEST(test_control_socket_mode_table)
{
	char err[256] = "";

	ck_assert_int_eq(control_socket_mode(mode_cases[_i].arg, err, sizeof err), mode_cases[_i].rc);
	if (mode_cases[_i].rc < 0)
		ck_assert_ptr_nonnull(strstr(err, "octal mode"));
	ck_assert_int_eq(control_socket_mode("0660", err, sizeof err), 0); /* the default again */
}
END_TEST

/* The socket gets the mode asked for (and the default otherwise), and
 * control_unlisten removes it. */
START_TEST(test_control_listen_applies_the_mode)
{
	char dir[64], path[128], err[256];
	struct listener ln;
	struct stat st;

	tmpdir(dir);
	snprintf(path, sizeof path, "%s/b.sock", dir);
	ck_assert_int_eq(control_socket_mode("0666", err, sizeof err), 0);
	ck_assert_msg(control_listen(path, &ln, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0666);
	control_unlisten(&ln);
	ck_assert_int_ne(access(path, F_OK), 0);
	ck_assert_int_eq(control_socket_mode("0660", err, sizeof err), 0);
	ck_assert_msg(control_listen(path, &ln, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	control_unlisten(&ln);
	rmdir(dir);
}
END_TEST

Suite *suite_control(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");

	tcase_add_test(tc, test_control_socket_path_lookup);
	tcase_add_test(tc, test_control_status_text_lines);
	tcase_add_test(tc, test_control_status_json_keys);
	tcase_add_test(tc, test_control_status_sandboxes);
	tcase_add_loop_test(tc, test_control_socket_mode_table, 0,
			    sizeof mode_cases / sizeof mode_cases[0]);
	tcase_add_test(tc, test_control_listen_applies_the_mode);
	suite_add_tcase(s, tc);
	return s;
}
