/* check_broker.c: unit tests of the broker's modules: SHA-256, JSON text,
 * audit lines, name memory, stats, control status, the check command, the
 * resolver pool, and request handling through a socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

/* ---------------------------------------------------------------- helpers */

/* Creates a private temporary directory; its path stays in dir. */
static void tmpdir(char dir[64])
{
	strcpy(dir, "/tmp/check_broker.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Writes text to dir/name and returns the path in out. */
static void write_file(const char *dir, const char *name, const char *text, char *out, size_t cap)
{
	FILE *f;

	snprintf(out, cap, "%s/%s", dir, name);
	f = fopen(out, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* Reads the whole file at path into buf; returns its length. */
static size_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, cap - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	buf[n] = 0;
	return (size_t)n;
}

/* ----------------------------------------------------------------- sha256 */

static const struct {
	const char *in;
	const char *hex;
} sha_vectors[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
	  "lmnopqrsmnopqrstnopqrstu",
	  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
};

START_TEST(test_sha256_hex_vectors)
{
	char hex[65];

	sha256_hex(sha_vectors[_i].in, strlen(sha_vectors[_i].in), hex);
	ck_assert_str_eq(hex, sha_vectors[_i].hex);
}
END_TEST

START_TEST(test_sha256_update_million_a)
{
	struct sha256 c;
	uint8_t d[32];
	char chunk[1001], hex[65];
	static const char digits[] = "0123456789abcdef";

	memset(chunk, 'a', sizeof chunk);
	sha256_init(&c);
	for (int i = 0; i < 1000; i++)
		sha256_update(&c, chunk, i % 2 ? 999 : 1001); /* odd splits across blocks */
	sha256_final(&c, d);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = 0;
	ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(test_sha256_file_matches_bytes)
{
	char dir[64], path[128], a[65], b[65];
	const char *text = "[egress]\ndefault = deny\n";

	tmpdir(dir);
	write_file(dir, "p.ini", text, path, sizeof path);
	ck_assert_int_eq(sha256_file(path, a), 0);
	sha256_hex(text, strlen(text), b);
	ck_assert_str_eq(a, b);
	unlink(path);
	ck_assert_int_eq(sha256_file(path, a), -1);
	rmdir(dir);
}
END_TEST

/* -------------------------------------------------------------------- buf */

static const struct {
	const char *in;
	const char *out;
} json_cases[] = {
	{ "plain", "\"plain\"" },
	{ "a\"b", "\"a\\\"b\"" },
	{ "back\\slash", "\"back\\\\slash\"" },
	{ "l1\nl2\r\t", "\"l1\\nl2\\r\\t\"" },
	{ "\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"" },
	{ "caf\xc3\xa9", "\"caf\\u00c3\\u00a9\"" },
	{ "\b\f", "\"\\b\\f\"" },
	{ "", "\"\"" },
};

START_TEST(test_buf_json_str_escapes)
{
	char mem[128];
	struct buf b;

	buf_init(&b, mem, sizeof mem);
	buf_json_str(&b, json_cases[_i].in);
	ck_assert(!b.overflow);
	ck_assert_str_eq(mem, json_cases[_i].out);
}
END_TEST

START_TEST(test_buf_json_str_null)
{
	char mem[16];
	struct buf b;

	buf_init(&b, mem, sizeof mem);
	buf_json_str(&b, NULL);
	ck_assert_str_eq(mem, "null");
}
END_TEST

START_TEST(test_buf_printf_overflow)
{
	char mem[8];
	struct buf b;

	buf_init(&b, mem, sizeof mem);
	buf_printf(&b, "%s", "abc");
	ck_assert(!b.overflow);
	buf_printf(&b, "%s", "defghij");
	ck_assert(b.overflow);
	ck_assert_str_eq(mem, "abcdefg");
	ck_assert_uint_eq(b.len, 7);
	buf_json_str(&b, "x");
	ck_assert_str_eq(mem, "abcdefg");
}
END_TEST

START_TEST(test_buf_time_format)
{
	struct timespec ts = { .tv_sec = 1795341600, .tv_nsec = 123456789 }; /* 2026-11-22T10:00:00 */
	char mem[64];
	struct buf b;

	buf_init(&b, mem, sizeof mem);
	buf_time(&b, &ts, true);
	ck_assert_str_eq(mem, "2026-11-22T10:00:00.123Z");
	buf_init(&b, mem, sizeof mem);
	buf_time(&b, &ts, false);
	ck_assert_str_eq(mem, "2026-11-22T10:00:00Z");
}
END_TEST

/* ------------------------------------------------------------------ audit */

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
	ck_assert_str_eq(audit_l4_name(PROTO_L4_ANY), "any");
	ck_assert_str_eq(audit_action_name(PROTO_REWRITE), "rewrite");
}
END_TEST

/* ----------------------------------------------------------------- memory */

static bool all_alive(pid_t pid)
{
	(void)pid;
	return true;
}

START_TEST(test_memory_lookup_most_recent_wins)
{
	struct addrmap *m = addrmap_new(0);
	struct proto_addr a = A("93.184.216.34");
	char name[PROTO_NAME_MAX + 1];
	bool fh = true;

	ck_assert_int_eq(addrmap_attach(m, 100, 5, 0), 0);
	ck_assert(!addrmap_lookup(m, 100, 1, &a, 0, name, sizeof name, &fh));
	addrmap_record(m, 100, &a, "one.example", false, 1);
	addrmap_record(m, 100, &a, "two.example", true, 2);
	ck_assert(addrmap_lookup(m, 100, 1, &a, 3, name, sizeof name, &fh));
	ck_assert_str_eq(name, "two.example");
	ck_assert(fh);
	ck_assert_uint_eq(addrmap_entries(m), 1);
	/* Another process does not see it. */
	ck_assert(!addrmap_lookup(m, 200, 1, &a, 3, name, sizeof name, NULL));
	addrmap_free(m);
}
END_TEST

START_TEST(test_memory_lookup_parent_fallback)
{
	struct addrmap *m = addrmap_new(0);
	struct proto_addr a = A("10.0.0.7"), b = A("10.0.0.8");
	char name[PROTO_NAME_MAX + 1];

	addrmap_attach(m, 100, 0, 0);
	addrmap_record(m, 100, &a, "parent.example", false, 0);
	addrmap_attach(m, 101, 0, 0);
	addrmap_record(m, 101, &b, "child.example", false, 0);
	ck_assert(addrmap_lookup(m, 101, 100, &a, 1, name, sizeof name, NULL));
	ck_assert_str_eq(name, "parent.example");
	ck_assert(addrmap_lookup(m, 101, 100, &b, 1, name, sizeof name, NULL));
	ck_assert_str_eq(name, "child.example");
	/* The parent does not see its child's names. */
	ck_assert(!addrmap_lookup(m, 100, 1, &b, 1, name, sizeof name, NULL));
	addrmap_free(m);
}
END_TEST

START_TEST(test_memory_lookup_ipv4_key_ignores_padding)
{
	struct addrmap *m = addrmap_new(0);
	struct proto_addr a = A("1.2.3.4"), b = a;
	char name[PROTO_NAME_MAX + 1];

	b.bytes[10] = 0xff; /* garbage past the fourth byte */
	addrmap_record(m, 100, &b, "x.example", false, 0);
	ck_assert(addrmap_lookup(m, 100, 0, &a, 0, name, sizeof name, NULL));
	addrmap_free(m);
}
END_TEST

START_TEST(test_memory_record_evicts_least_recent)
{
	struct addrmap *m = addrmap_new(3);
	struct proto_addr a[4] = { A("1.1.1.1"), A("2.2.2.2"), A("3.3.3.3"), A("4.4.4.4") };
	char name[PROTO_NAME_MAX + 1];

	for (int i = 0; i < 3; i++)
		addrmap_record(m, 100, &a[i], "n.example", false, i);
	/* Using 1.1.1.1 makes 2.2.2.2 the least recent. */
	ck_assert(addrmap_lookup(m, 100, 0, &a[0], 5, name, sizeof name, NULL));
	addrmap_record(m, 100, &a[3], "n.example", false, 6);
	ck_assert_uint_eq(addrmap_entries(m), 3);
	ck_assert(addrmap_lookup(m, 100, 0, &a[0], 7, name, sizeof name, NULL));
	ck_assert(!addrmap_lookup(m, 100, 0, &a[1], 7, name, sizeof name, NULL));
	ck_assert(addrmap_lookup(m, 100, 0, &a[3], 7, name, sizeof name, NULL));
	addrmap_free(m);
}
END_TEST

START_TEST(test_memory_gc_returns_to_baseline)
{
	struct addrmap *m = addrmap_new(0);
	struct proto_addr a = A("1.1.1.1");

	addrmap_attach(m, 100, 0, 0);
	addrmap_attach(m, 100, 0, 0); /* two threads */
	addrmap_record(m, 100, &a, "n.example", false, 0);
	ck_assert_uint_eq(addrmap_gc(m, 10, all_dead), 0); /* still connected */
	addrmap_detach(m, 100, 10);
	addrmap_detach(m, 100, 10);
	ck_assert_uint_eq(addrmap_pids(m), 1); /* a child may still connect */
	ck_assert_uint_eq(addrmap_gc(m, 20, all_alive), 0);
	ck_assert_uint_eq(addrmap_gc(m, 30, all_dead), 1);
	ck_assert_uint_eq(addrmap_pids(m), 0);
	ck_assert_uint_eq(addrmap_entries(m), 0);
	/* A process that never resolved leaves nothing behind. */
	addrmap_attach(m, 200, 0, 40);
	addrmap_detach(m, 200, 40);
	ck_assert_uint_eq(addrmap_pids(m), 0);
	addrmap_free(m);
}
END_TEST

START_TEST(test_memory_gc_drops_idle)
{
	struct addrmap *m = addrmap_new(0);
	struct proto_addr a = A("1.1.1.1"), b = A("2.2.2.2");
	char name[PROTO_NAME_MAX + 1];

	addrmap_attach(m, 100, 0, 0);
	addrmap_record(m, 100, &a, "old.example", false, 0);
	addrmap_record(m, 100, &b, "new.example", false, ADDRMAP_IDLE_S);
	ck_assert_uint_eq(addrmap_gc(m, ADDRMAP_IDLE_S + 1, all_alive), 0);
	ck_assert(!addrmap_lookup(m, 100, 0, &a, ADDRMAP_IDLE_S + 1, name, sizeof name, NULL));
	ck_assert(addrmap_lookup(m, 100, 0, &b, ADDRMAP_IDLE_S + 1, name, sizeof name, NULL));
	addrmap_detach(m, 100, ADDRMAP_IDLE_S + 1);
	ck_assert_uint_eq(addrmap_gc(m, 3 * ADDRMAP_IDLE_S, all_alive), 1);
	ck_assert_uint_eq(addrmap_entries(m), 0);
	addrmap_free(m);
}
END_TEST

START_TEST(test_memory_attach_reused_pid_flushes)
{
	struct addrmap *m = addrmap_new(0);
	struct proto_addr a = A("1.1.1.1");
	char name[PROTO_NAME_MAX + 1];

	addrmap_attach(m, 100, 1111, 0);
	addrmap_record(m, 100, &a, "n.example", false, 0);
	addrmap_detach(m, 100, 0);
	addrmap_attach(m, 100, 1111, 1); /* same process again */
	ck_assert(addrmap_lookup(m, 100, 0, &a, 1, name, sizeof name, NULL));
	addrmap_detach(m, 100, 1);
	addrmap_attach(m, 100, 2222, 2); /* another process, same pid */
	ck_assert(!addrmap_lookup(m, 100, 0, &a, 2, name, sizeof name, NULL));
	ck_assert_uint_eq(addrmap_entries(m), 0);
	addrmap_free(m);
}
END_TEST

/* ------------------------------------------------------------------ stats */

START_TEST(test_stats_decision_counts)
{
	struct stats s;

	stats_init(&s);
	stats_decision(&s, PROTO_OP_RESOLVE, PROTO_ALLOW);
	stats_decision(&s, PROTO_OP_CONNECT, PROTO_DENY);
	stats_decision(&s, PROTO_OP_SEND, PROTO_REWRITE);
	stats_decision(&s, PROTO_OP_CONNECT, PROTO_ALLOW);
	ck_assert_uint_eq(s.allow, 2);
	ck_assert_uint_eq(s.deny, 1);
	ck_assert_uint_eq(s.rewrite, 1);
	ck_assert_uint_eq(s.resolve, 1);
	ck_assert_uint_eq(s.connect, 2);
	ck_assert_uint_eq(s.send, 1);
	stats_free(&s);
}
END_TEST

START_TEST(test_stats_top_denied_order)
{
	struct stats s;
	struct stats_top top[10];
	struct proto_addr a = A("10.1.2.3"), b = A("2001:db8::1");

	stats_init(&s);
	for (int i = 0; i < 4; i++)
		stats_denied(&s, NULL, &a, 22, PROTO_L4_TCP);
	stats_denied(&s, "evil.example.com", &a, 443, PROTO_L4_TCP);
	stats_denied(&s, NULL, &b, 53, PROTO_L4_UDP);
	stats_denied(&s, NULL, &b, 53, PROTO_L4_UDP);
	stats_denied(&s, NULL, &b, 53, PROTO_L4_TCP);
	ck_assert_uint_eq(stats_top_denied(&s, top, 10), 4);
	ck_assert_str_eq(top[0].dest, "10.1.2.3:22");
	ck_assert_uint_eq(top[0].count, 4);
	ck_assert_str_eq(top[1].dest, "[2001:db8::1]:53");
	ck_assert_int_eq(top[1].l4, PROTO_L4_UDP);
	ck_assert_uint_eq(top[1].count, 2);
	ck_assert_uint_eq(stats_top_denied(&s, top, 1), 1);
	stats_free(&s);
}
END_TEST

START_TEST(test_stats_denied_bounded)
{
	struct stats s;
	struct stats_top top[2];
	struct proto_addr a = A("10.0.0.1");

	stats_init(&s);
	for (int i = 0; i < 5; i++)
		stats_denied(&s, "hot.example", NULL, 443, PROTO_L4_TCP);
	for (int i = 0; i < STATS_DENIED_MAX + 50; i++)
		stats_denied(&s, NULL, &a, (uint16_t)(i + 1), PROTO_L4_TCP);
	ck_assert_uint_eq(s.ndenied, STATS_DENIED_MAX);
	ck_assert_uint_eq(stats_top_denied(&s, top, 2), 2);
	ck_assert_str_eq(top[0].dest, "hot.example:443");
	ck_assert_uint_eq(top[0].count, 5);
	stats_free(&s);
}
END_TEST

START_TEST(test_stats_dest_printable)
{
	char out[STATS_DEST_MAX];

	stats_dest("bad\x1b[31mname", NULL, 80, out, sizeof out);
	ck_assert_str_eq(out, "bad?[31mname:80");
}
END_TEST

/* ---------------------------------------------------------------- control */

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
	ck_assert_ptr_nonnull(strstr(out, "top denied:\n  10.1.2.3:22 tcp          4\n"
					  "  evil.example.com:443 tcp 1\n"));
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
	ck_assert_ptr_nonnull(strstr(out, "\"top_denied\":[{\"destination\":\"10.1.2.3:22\","
					  "\"proto\":\"tcp\",\"count\":4},"));
	ck_assert_ptr_nonnull(strstr(out, "]}\n"));
	stats_free(&st);
}
END_TEST

START_TEST(test_control_request_no_broker)
{
	char text[64], err[256];
	int status;

	ck_assert_int_eq(control_request("/nonexistent/b.sock", PROTO_CTL_STATUS, &status, text,
					 sizeof text, err, sizeof err),
			 -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_str_eq(err, "");
}
END_TEST

/* -------------------------------------------------------------------- cli */

static const struct {
	const char *in;
	int rc;
	bool is_addr;
	const char *host; /* name, or formatted address */
	uint16_t port;
} target_cases[] = {
	{ "example.com", 0, false, "example.com", 0 },
	{ "Example.COM.:443", 0, false, "example.com", 443 },
	{ "10.1.2.3:22", 0, true, "10.1.2.3", 22 },
	{ "[2001:db8::1]:53", 0, true, "2001:db8::1", 53 },
	{ "[::ffff:10.0.0.1]:80", 0, true, "10.0.0.1", 80 },
	{ "2001:db8::2", 0, true, "2001:db8::2", 0 },
	{ "[2001:db8::1]", 0, true, "2001:db8::1", 0 },
	{ "example.com:0", -1, false, NULL, 0 },
	{ "example.com:65536", -1, false, NULL, 0 },
	{ "example.com:", -1, false, NULL, 0 },
	{ "exa mple.com", -1, false, NULL, 0 },
	{ "[10.0.0.1]:80", -1, false, NULL, 0 },
	{ "[2001:db8::1]x", -1, false, NULL, 0 },
	{ ":80", -1, false, NULL, 0 },
};

START_TEST(test_cli_parse_target_table)
{
	char name[PROTO_NAME_MAX + 1] = "", err[256], fmt[64];
	struct proto_addr a;
	bool is_addr;
	uint16_t port;
	int rc = cli_parse_target(target_cases[_i].in, name, sizeof name, &a, &is_addr, &port, err,
				  sizeof err);

	ck_assert_int_eq(rc, target_cases[_i].rc);
	if (rc < 0)
		return;
	ck_assert_int_eq(is_addr, target_cases[_i].is_addr);
	ck_assert_uint_eq(port, target_cases[_i].port);
	if (is_addr) {
		policy_addr_format(&a, fmt, sizeof fmt);
		ck_assert_str_eq(fmt, target_cases[_i].host);
	} else {
		ck_assert_str_eq(name, target_cases[_i].host);
	}
}
END_TEST

static const char *cli_policy = "[egress]\n"
				"default = deny\n"
				"private = deny\n"
				"[rule \"no-metadata\"]\n"
				"cidr = 169.254.169.254/32\n"
				"action = deny\n"
				"errno = ECONNREFUSED\n"
				"[rule \"model-api\"]\n"
				"host = api.example.com\n"
				"port = 443\n"
				"action = allow\n"
				"[rule \"cache\"]\n"
				"host = build-cache.internal, sneaky.example\n"
				"action = allow\n"
				"[rule \"dns\"]\n"
				"cidr = 192.0.2.53/32\n"
				"proto = udp\n"
				"action = allow\n"
				"[hosts]\n"
				"build-cache.internal = 10.0.0.7\n"
				"sneaky.example = 169.254.169.254\n";

static const struct {
	const char *target;
	bool udp;
	int rc;
	const char *line;
} check_cases[] = {
	{ "169.254.169.254:80", false, 1, "deny ECONNREFUSED (rule no-metadata)" },
	{ "api.example.com:443", false, 0, "allow (rule model-api)" },
	{ "api.example.com:80", false, 1, "deny EPERM (rule default)" },
	{ "build-cache.internal:8080", false, 0, "allow (rule cache)" },
	{ "sneaky.example:80", false, 1, "deny ECONNREFUSED (rule no-metadata)" },
	{ "192.0.2.53:53", true, 0, "allow (rule dns)" },
	{ "192.0.2.53:53", false, 1, "deny EPERM (rule default)" },
	{ "bad name", false, 2, NULL },
};

START_TEST(test_cli_check_table)
{
	char dir[64], path[128], err[POLICY_ERR_MAX], out[512];
	struct policy *p;
	bool by_name;
	int rc;

	tmpdir(dir);
	write_file(dir, "p.ini", cli_policy, path, sizeof path);
	p = policy_load(path, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	rc = cli_check(p, check_cases[_i].target, check_cases[_i].udp, NULL, out, sizeof out,
		       &by_name);
	ck_assert(by_name == (strncmp(check_cases[_i].target, "api.", 4) == 0 && rc != 2));
	ck_assert_int_eq(rc, check_cases[_i].rc);
	if (check_cases[_i].line)
		ck_assert_str_eq(out, check_cases[_i].line);
	policy_free(p);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* --------------------------------------------------------------- resolver */

/* Test DNS: fixed answers, no network. */
static int stub_lookup(const char *name, int family, struct proto_addr *out, int max, int *n)
{
	static const struct {
		const char *name;
		const char *addrs[4];
	} table[] = {
		{ "pub.test", { "93.184.216.34", "2606:2800:220:1::1", "93.184.216.34",
				"::ffff:93.184.216.34" } },
		{ "priv.test", { "10.1.2.3", "fd00::1" } },
		{ "mixed.test", { "10.1.2.3", "93.184.216.35" } },
		{ "slow.test", { "93.184.216.36" } },
	};

	if (strcmp(name, "fail.test") == 0)
		return EAI_AGAIN;
	if (strcmp(name, "slow.test") == 0)
		usleep(200 * 1000);
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strcmp(name, table[i].name))
			continue;
		*n = 0;
		for (int j = 0; j < 4 && table[i].addrs[j] && *n < max; j++) {
			struct proto_addr a;

			memset(&a, 0, sizeof a);
			policy_addr_parse(table[i].addrs[j], &a);
			if (!family || (family == a.family && !strchr(table[i].addrs[j], '.')) ||
			    (family == 4 && a.family == 4))
				out[(*n)++] = a;
		}
		return *n ? 0 : EAI_NONAME;
	}
	return EAI_NONAME;
}

START_TEST(test_resolver_submit_and_take)
{
	struct resolver *r = resolver_new(2, stub_lookup);
	struct resolver_job *job, *got = NULL;
	struct pollfd pfd;
	int seen = 0;

	ck_assert_ptr_nonnull(r);
	for (int i = 0; i < 3; i++) {
		job = calloc(1, sizeof *job);
		job->msgid = (uint32_t)i;
		strcpy(job->ask.name, i == 2 ? "fail.test" : "pub.test");
		ck_assert_int_eq(resolver_submit(r, job), 0);
	}
	pfd.fd = resolver_fd(r);
	pfd.events = POLLIN;
	while (seen < 3) {
		ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
		for (got = resolver_take(r); got; got = job) {
			job = got->next;
			if (got->msgid == 2) {
				ck_assert_int_eq(got->eai, EAI_AGAIN);
			} else {
				ck_assert_int_eq(got->eai, 0);
				ck_assert_int_eq(got->naddr, 4);
			}
			seen++;
			free(got);
		}
	}
	resolver_free(r);
}
END_TEST

START_TEST(test_resolver_free_with_queued_jobs)
{
	struct resolver *r = resolver_new(1, stub_lookup);

	for (int i = 0; i < 5; i++) {
		struct resolver_job *job = calloc(1, sizeof *job);

		strcpy(job->ask.name, "slow.test");
		ck_assert_int_eq(resolver_submit(r, job), 0);
	}
	resolver_free(r); /* joins the worker, frees the rest: no leak */
}
END_TEST

START_TEST(test_resolver_getaddrinfo_numeric)
{
	struct proto_addr out[4];
	int n = 0;

	ck_assert_int_eq(resolver_getaddrinfo("127.0.0.1", 0, out, 4, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(out[0].family, 4);
	ck_assert_int_eq(out[0].bytes[0], 127);
	ck_assert_int_ne(resolver_getaddrinfo("127.0.0.1", 6, out, 4, &n), 0);
}
END_TEST

/* ----------------------------------------------------------------- server */

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

/* A broker without a listening socket, and one client on a socketpair. */
struct fixture {
	char dir[64];
	char policy[128];
	char audit[128];
	struct server *s;
	int fd; /* our end */
};

static void fixture_open(struct fixture *f)
{
	struct server_config cfg = { 0 };
	char err[POLICY_ERR_MAX];
	int sv[2];

	tmpdir(f->dir);
	write_file(f->dir, "p.ini", server_policy, f->policy, sizeof f->policy);
	snprintf(f->audit, sizeof f->audit, "%s/audit.jsonl", f->dir);
	cfg.policy_path = f->policy;
	cfg.socket_path = "/tmp/not-listening.sock";
	cfg.audit_path = f->audit;
	cfg.lookup = stub_lookup;
	f->s = server_new(&cfg, err, sizeof err);
	ck_assert_msg(f->s != NULL, "%s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(server_add_client(f->s, sv[0]), 0);
	f->fd = sv[1];
}

static void fixture_close(struct fixture *f)
{
	if (f->fd >= 0)
		close(f->fd);
	server_free(f->s);
	unlink(f->policy);
	unlink(f->audit);
	rmdir(f->dir);
}

static void send_msg(int fd, const struct proto_msg *m)
{
	uint8_t buf[PROTO_MSG_MAX];
	ssize_t n = proto_encode(m, buf, sizeof buf);

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(send(fd, buf, (size_t)n, 0), n);
}

/* Runs the loop until an answer arrives on fd. Returns 0 with it in m, or
 * -1 when fd was closed by the broker. */
static int pump(struct fixture *f, struct proto_msg *m)
{
	static uint8_t buf[PROTO_MSG_MAX];

	for (int i = 0; i < 200; i++) {
		ssize_t n = recv(f->fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n > 0) {
			ck_assert_int_eq(proto_decode(buf, (size_t)n, m), 0);
			return 0;
		}
		if (n == 0)
			return -1;
		ck_assert_int_ge(server_run_once(f->s, 20), 0);
	}
	ck_abort_msg("no answer");
	return -1;
}

static void ask(struct fixture *f, uint32_t id, int op, int l4, uint16_t port, const char *target,
		struct proto_msg *ans)
{
	struct proto_msg m;

	memset(&m, 0, sizeof m);
	m.type = PROTO_ASK;
	m.id = id;
	m.u.ask.op = (uint8_t)op;
	m.u.ask.l4 = (uint8_t)l4;
	m.u.ask.port = port;
	if (op == PROTO_OP_RESOLVE)
		snprintf(m.u.ask.name, sizeof m.u.ask.name, "%s", target);
	else
		m.u.ask.addr = A(target);
	send_msg(f->fd, &m);
	ck_assert_int_eq(pump(f, ans), 0);
	ck_assert_int_eq(ans->type, PROTO_VERDICT);
	ck_assert_uint_eq(ans->id, id);
}

START_TEST(test_server_resolve_filters_and_remembers)
{
	struct fixture f;
	struct proto_msg a;
	char fmt[64];

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

START_TEST(test_server_resolve_hosts_and_family)
{
	struct fixture f;
	struct proto_msg m, a;

	fixture_open(&f);
	ask(&f, 1, PROTO_OP_RESOLVE, PROTO_L4_TCP, 80, "cache.test", &a);
	ck_assert_int_eq(a.u.verdict.action, PROTO_ALLOW);
	ck_assert_int_eq(a.u.verdict.naddr, 1);
	ck_assert_str_eq(a.u.verdict.rule, "cache");
	ask(&f, 2, PROTO_OP_SEND, PROTO_L4_UDP, 53, "10.0.0.7", &a);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

	fixture_open(&f);
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

Suite *suite_broker(void)
{
	Suite *s = suite_create("broker");
	TCase *tc;

	tc = tcase_create("sha256");
	tcase_add_loop_test(tc, test_sha256_hex_vectors, 0,
			    sizeof sha_vectors / sizeof sha_vectors[0]);
	tcase_add_test(tc, test_sha256_update_million_a);
	tcase_add_test(tc, test_sha256_file_matches_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("buf");
	tcase_add_loop_test(tc, test_buf_json_str_escapes, 0,
			    sizeof json_cases / sizeof json_cases[0]);
	tcase_add_test(tc, test_buf_json_str_null);
	tcase_add_test(tc, test_buf_printf_overflow);
	tcase_add_test(tc, test_buf_time_format);
	suite_add_tcase(s, tc);

	tc = tcase_create("audit");
	tcase_add_test(tc, test_audit_format_connect_deny);
	tcase_add_test(tc, test_audit_format_resolve_nulls);
	tcase_add_test(tc, test_audit_format_ipv6_udp);
	tcase_add_test(tc, test_audit_write_appends_lines);
	tcase_add_test(tc, test_audit_write_failure_counted);
	tcase_add_test(tc, test_audit_check_recreates_removed_log);
	tcase_add_test(tc, test_audit_eai_name_known);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_add_test(tc, test_memory_lookup_most_recent_wins);
	tcase_add_test(tc, test_memory_lookup_parent_fallback);
	tcase_add_test(tc, test_memory_lookup_ipv4_key_ignores_padding);
	tcase_add_test(tc, test_memory_record_evicts_least_recent);
	tcase_add_test(tc, test_memory_gc_returns_to_baseline);
	tcase_add_test(tc, test_memory_gc_drops_idle);
	tcase_add_test(tc, test_memory_attach_reused_pid_flushes);
	suite_add_tcase(s, tc);

	tc = tcase_create("stats");
	tcase_add_test(tc, test_stats_decision_counts);
	tcase_add_test(tc, test_stats_top_denied_order);
	tcase_add_test(tc, test_stats_denied_bounded);
	tcase_add_test(tc, test_stats_dest_printable);
	suite_add_tcase(s, tc);

	tc = tcase_create("control");
	tcase_add_test(tc, test_control_socket_path_lookup);
	tcase_add_test(tc, test_control_status_text_lines);
	tcase_add_test(tc, test_control_status_json_keys);
	tcase_add_test(tc, test_control_request_no_broker);
	suite_add_tcase(s, tc);

	tc = tcase_create("cli");
	tcase_add_loop_test(tc, test_cli_parse_target_table, 0,
			    sizeof target_cases / sizeof target_cases[0]);
	tcase_add_loop_test(tc, test_cli_check_table, 0, sizeof check_cases / sizeof check_cases[0]);
	suite_add_tcase(s, tc);

	tc = tcase_create("resolver");
	tcase_add_test(tc, test_resolver_submit_and_take);
	tcase_add_test(tc, test_resolver_free_with_queued_jobs);
	tcase_add_test(tc, test_resolver_getaddrinfo_numeric);
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_server_resolve_filters_and_remembers);
	tcase_add_test(tc, test_server_resolve_private_dropped);
	tcase_add_test(tc, test_server_resolve_deny_and_errors);
	tcase_add_test(tc, test_server_resolve_hosts_and_family);
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
