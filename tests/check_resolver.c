/* check_resolver.c: unit tests of broker/resolver.c: the worker pool with
 * the stub lookup, and numeric getaddrinfo. */
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

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
		strcpy(job->name, i == 2 ? "fail.test" : "pub.test");
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

		strcpy(job->name, "slow.test");
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

Suite *suite_resolver(void)
{
	Suite *s = suite_create("resolver");
	TCase *tc = tcase_create("resolver");

	tcase_add_test(tc, test_resolver_submit_and_take);
	tcase_add_test(tc, test_resolver_free_with_queued_jobs);
	tcase_add_test(tc, test_resolver_getaddrinfo_numeric);
	suite_add_tcase(s, tc);
	return s;
}
