/* check_audit.c: unit tests of broker/audit.c: audit lines, the log file and
 * its recreation, the names of codes. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

START_TEST(test_audit_format_connect_deny)
{
	struct proto_addr a = A("93.184.216.34");
	struct audit_event ev = {
		.time = { 1795341600, 123000000 }, .pid = 123, .uid = 1000, .exe = "/usr/bin/curl",
		.op = PROTO_OP_CONNECT, .name = "example.com", .addr = &a, .port = 443,
		.l4 = PROTO_L4_TCP, .action = PROTO_DENY, .rule = "default", .err = "EPERM",
	};
	char line[1024];
	int n = audit_format(&ev, line, sizeof line);

	ck_assert_str_eq(line,
			 "{\"time\":\"2026-11-22T10:00:00.123Z\",\"pid\":123,\"uid\":1000,"
			 "\"exe\":\"/usr/bin/curl\",\"op\":\"connect\",\"name\":\"example.com\","
			 "\"addr\":\"93.184.216.34\",\"port\":443,\"proto\":\"tcp\","
			 "\"action\":\"deny\",\"rule\":\"default\",\"errno\":\"EPERM\"}\n");
	ck_assert_int_eq(n, (int)strlen(line));
}
END_TEST

START_TEST(test_audit_format_resolve_nulls)
{
	struct audit_event ev = {
		.time = { 0, 0 }, .pid = 7, .uid = 0, .exe = NULL, .op = PROTO_OP_RESOLVE,
		.name = "we\"ird\x01", .addr = NULL, .port = 0, .l4 = PROTO_L4_ANY,
		.action = PROTO_ALLOW, .rule = "r", .err = NULL,
	};
	char line[1024];

	ck_assert_int_gt(audit_format(&ev, line, sizeof line), 0);
	ck_assert_str_eq(line,
			 "{\"time\":\"1970-01-01T00:00:00.000Z\",\"pid\":7,\"uid\":0,\"exe\":null,"
			 "\"op\":\"resolve\",\"name\":\"we\\\"ird\\u0001\",\"addr\":null,\"port\":0,"
			 "\"proto\":\"any\",\"action\":\"allow\",\"rule\":\"r\",\"errno\":null}\n");
	ck_assert_int_eq(audit_format(&ev, line, 20), -1);
}
END_TEST

START_TEST(test_audit_format_ipv6_udp)
{
	struct proto_addr a = A("2001:db8::1");
	struct audit_event ev = {
		.op = PROTO_OP_SEND, .addr = &a, .port = 53, .l4 = PROTO_L4_UDP,
		.action = PROTO_ALLOW, .rule = "dns",
	};
	char line[1024];

	ck_assert_int_gt(audit_format(&ev, line, sizeof line), 0);
	ck_assert_ptr_nonnull(strstr(line, "\"addr\":\"2001:db8::1\",\"port\":53,\"proto\":\"udp\""));
	ck_assert_ptr_nonnull(strstr(line, "\"op\":\"send\""));
}
END_TEST

START_TEST(test_audit_format_dropped_packets)
{
	struct proto_addr a = A("10.9.9.9");
	struct audit_event ev = {
		.time = { 0, 0 }, .pid = 0, .uid = 65534, .op = PROTO_OP_SEND, .addr = &a,
		.port = 444, .l4 = PROTO_L4_ANY, .action = PROTO_DENY, .rule = "isolated",
		.err = "EPERM", .captured = true, .count = 12, .ipproto = IPPROTO_UDPLITE,
	};
	char line[1024];

	ck_assert_int_gt(audit_format(&ev, line, sizeof line), 0);
	ck_assert_ptr_nonnull(strstr(line, "\"proto\":\"any\",\"action\":\"deny\",\"rule\":\"isolated\","
					   "\"errno\":\"EPERM\",\"ipproto\":136,\"count\":12,"
					   "\"captured\":true}\n"));
}
END_TEST

START_TEST(test_audit_write_appends_lines)
{
	struct audit a;
	struct audit_event ev = { .op = PROTO_OP_CONNECT, .action = PROTO_ALLOW, .rule = "x" };
	char dir[64], path[128], text[4096];

	tmpdir(dir);
	write_file(dir, "audit.jsonl", "old\n", path, sizeof path);
	audit_init(&a);
	ck_assert_int_eq(audit_open(&a, path), 0);
	ck_assert_int_eq(audit_write(&a, &ev), 0);
	ck_assert_int_eq(audit_reopen(&a), 0);
	ck_assert_int_eq(audit_write(&a, &ev), 0);
	audit_close(&a);
	read_file(path, text, sizeof text);
	ck_assert(strncmp(text, "old\n{\"time\"", 11) == 0);
	ck_assert_ptr_nonnull(strstr(strchr(text + 4, '\n') + 1, "\"rule\":\"x\""));
	ck_assert_uint_eq(a.written, 2);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_audit_write_failure_counted)
{
	struct audit a;
	struct audit_event ev = { .op = PROTO_OP_CONNECT, .action = PROTO_DENY, .rule = "x" };

	audit_init(&a);
	ck_assert_int_eq(audit_open(&a, "/dev/full"), 0);
	ck_assert_int_eq(audit_write(&a, &ev), -1);
	ck_assert_int_eq(audit_write(&a, &ev), -1);
	ck_assert_int_eq(a.err, ENOSPC);
	ck_assert_uint_eq(a.failures, 2);
	/* A path that cannot be opened is retried on each event. */
	ck_assert_int_eq(audit_open(&a, "/nonexistent-dir/audit.jsonl"), -1);
	ck_assert_int_eq(a.err, ENOENT);
	ck_assert_int_eq(audit_write(&a, &ev), -1);
	ck_assert_uint_eq(a.failures, 3);
	/* No audit log: nothing to do, nothing fails. */
	ck_assert_int_eq(audit_open(&a, NULL), 0);
	ck_assert_int_eq(audit_write(&a, &ev), 0);
	ck_assert_int_eq(a.err, 0);
	audit_close(&a);
}
END_TEST

/* A log removed under the broker is noticed and recreated, so that events
 * do not go on into an unlinked file nobody can read. */
START_TEST(test_audit_check_recreates_removed_log)
{
	char dir[] = "/tmp/check_audit.XXXXXX", path[64], line[256];
	struct proto_addr a = { .family = 4, .bytes = { 192, 0, 2, 1 } };
	struct audit_event ev = { .op = PROTO_OP_CONNECT, .addr = &a, .port = 443,
				  .l4 = PROTO_L4_TCP, .action = PROTO_ALLOW, .rule = "r" };
	struct audit au;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/audit.jsonl", dir);
	audit_init(&au);
	ck_assert_int_eq(audit_open(&au, path), 0);
	ck_assert_int_eq(audit_check(&au), 0);
	ck_assert_uint_eq(au.reopened, 0);
	ck_assert_int_eq(audit_write(&au, &ev), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(audit_check(&au), 0);
	ck_assert_uint_eq(au.reopened, 1);
	ck_assert_int_eq(audit_write(&au, &ev), 0);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_ptr_nonnull(strstr(line, "\"addr\":\"192.0.2.1\""));
	ck_assert_ptr_null(fgets(line, sizeof line, f)); /* only the event after the removal */
	fclose(f);
	audit_close(&au);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_audit_eai_name_known)
{
	ck_assert_str_eq(audit_eai_name(EAI_NONAME), "EAI_NONAME");
	ck_assert_str_eq(audit_eai_name(EAI_AGAIN), "EAI_AGAIN");
	ck_assert_str_eq(audit_eai_name(EAI_FAIL), "EAI_FAIL");
	ck_assert_str_eq(audit_eai_name(12345), "EAI_?");
}
END_TEST

Suite *suite_audit(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("audit");

	tcase_add_test(tc, test_audit_format_connect_deny);
	tcase_add_test(tc, test_audit_format_resolve_nulls);
	tcase_add_test(tc, test_audit_format_dropped_packets);
	tcase_add_test(tc, test_audit_format_ipv6_udp);
	tcase_add_test(tc, test_audit_write_appends_lines);
	tcase_add_test(tc, test_audit_write_failure_counted);
	tcase_add_test(tc, test_audit_check_recreates_removed_log);
	tcase_add_test(tc, test_audit_eai_name_known);
	suite_add_tcase(s, tc);
	return s;
}
