/* check_addrmap.c: unit tests of broker/addrmap.c: the per-process map of
 * addresses to the names they were resolved from. */
#include <string.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

static bool all_alive(pid_t pid)
{
	(void)pid;
	return true;
}

START_TEST(test_addrmap_lookup_most_recent_wins)
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

START_TEST(test_addrmap_lookup_parent_fallback)
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

START_TEST(test_addrmap_lookup_ipv4_key_ignores_padding)
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

START_TEST(test_addrmap_record_evicts_least_recent)
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

START_TEST(test_addrmap_gc_returns_to_baseline)
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

START_TEST(test_addrmap_gc_drops_idle)
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

START_TEST(test_addrmap_attach_reused_pid_flushes)
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

Suite *suite_addrmap(void)
{
	Suite *s = suite_create("addrmap");
	TCase *tc = tcase_create("addrmap");

	tcase_add_test(tc, test_addrmap_lookup_most_recent_wins);
	tcase_add_test(tc, test_addrmap_lookup_parent_fallback);
	tcase_add_test(tc, test_addrmap_lookup_ipv4_key_ignores_padding);
	tcase_add_test(tc, test_addrmap_record_evicts_least_recent);
	tcase_add_test(tc, test_addrmap_gc_returns_to_baseline);
	tcase_add_test(tc, test_addrmap_gc_drops_idle);
	tcase_add_test(tc, test_addrmap_attach_reused_pid_flushes);
	suite_add_tcase(s, tc);
	return s;
}
