/* check_buf.c: unit tests of broker/buf.c: JSON string escapes, bounded
 * printf, strings and numbers, time formatting. */
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

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
	{ "\"", "\"\\\"\"" },
	{ "ab\ncd\\", "\"ab\\ncd\\\\\"" },
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

START_TEST(test_buf_str_uint)
{
	static const unsigned long long v[] = { 0, 7, 10, 65535, 4294967295ull, 18446744073709551615ull };
	char mem[256], want[32];
	struct buf b;

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		buf_init(&b, mem, sizeof mem);
		buf_str(&b, "n=");
		buf_uint(&b, v[i]);
		snprintf(want, sizeof want, "n=%llu", v[i]);
		ck_assert_str_eq(mem, want);
	}
	buf_init(&b, mem, 6);
	buf_str(&b, "ab");
	buf_uint(&b, 123456);
	ck_assert(b.overflow);
	ck_assert_str_eq(mem, "ab123");
}
END_TEST

/* The date part is kept from one second to the next asked: each second,
 * a change of day and of year, and back, come out whole. */
START_TEST(test_buf_time_seconds)
{
	static const struct {
		time_t t;
		const char *s;
	} c[] = {
		{ 1795341600, "2026-11-22T10:00:00.000Z" }, { 1795341601, "2026-11-22T10:00:01.000Z" },
		{ 1798761599, "2026-12-31T23:59:59.000Z" }, { 1798761600, "2027-01-01T00:00:00.000Z" },
		{ 0, "1970-01-01T00:00:00.000Z" },          { 1795341600, "2026-11-22T10:00:00.000Z" },
		{ 951782400, "2000-02-29T00:00:00.000Z" },
	};
	char mem[64];
	struct buf b;

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct timespec ts = { .tv_sec = c[i].t, .tv_nsec = 999999 };

		buf_init(&b, mem, sizeof mem);
		buf_time(&b, &ts, true);
		ck_assert_str_eq(mem, c[i].s);
	}
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

Suite *suite_buf(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_loop_test(tc, test_buf_json_str_escapes, 0,
			    sizeof json_cases / sizeof json_cases[0]);
	tcase_add_test(tc, test_buf_json_str_null);
	tcase_add_test(tc, test_buf_printf_overflow);
	tcase_add_test(tc, test_buf_time_format);
	tcase_add_test(tc, test_buf_str_uint);
	tcase_add_test(tc, test_buf_time_seconds);
	suite_add_tcase(s, tc);
	return s;
}
