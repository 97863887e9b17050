/* check_stats.c: unit tests of broker/stats.c: decision counts and the
 * bounded table of denied destinations. */
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

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

START_TEST(test_stats_denied_printable)
{
	struct stats st;
	struct stats_top top[1];

	stats_init(&st);
	stats_denied(&st, "bad\x1b[31mname", NULL, 80, PROTO_L4_TCP);
	ck_assert_uint_eq(stats_top_denied(&st, top, 1), 1);
	ck_assert_str_eq(top[0].dest, "bad?[31mname:80");
	stats_free(&st);
}
END_TEST

Suite *suite_stats(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_add_test(tc, test_stats_decision_counts);
	tcase_add_test(tc, test_stats_top_denied_order);
	tcase_add_test(tc, test_stats_denied_bounded);
	tcase_add_test(tc, test_stats_denied_printable);
	suite_add_tcase(s, tc);
	return s;
}
