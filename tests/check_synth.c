/* check_synth.c: unit tests of broker/synth.c: the synthetic address map of
 * rewritten names. */
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

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

/* An isolated namespace's map goes with its capture, alone. */
START_TEST(test_synth_forget)
{
	struct synth *s = synth_new(8);
	struct proto_addr a, b;
	char name[PROTO_NAME_MAX + 1];

	ck_assert_int_eq(synth_map(s, 10, "a.example", &a), 0);
	ck_assert_int_eq(synth_map(s, 11, "b.example", &b), 0);
	synth_forget(s, 10);
	synth_forget(s, 12); /* none: nothing happens */
	ck_assert(!synth_lookup(s, 10, 0, &a, name, sizeof name));
	ck_assert(synth_lookup(s, 11, 0, &b, name, sizeof name));
	ck_assert_str_eq(name, "b.example");
	ck_assert_uint_eq(synth_entries(s), 1);
	synth_free(s);
}
END_TEST

Suite *suite_synth(void)
{
	Suite *s = suite_create("synth");
	TCase *tc = tcase_create("synth");

	tcase_add_test(tc, test_synth_map);
	tcase_add_test(tc, test_synth_many_names_distinct);
	tcase_add_test(tc, test_synth_forget);
	suite_add_tcase(s, tc);
	return s;
}
