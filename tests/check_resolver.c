/* check_resolver.c: unit tests of broker/resolver.c: the worker pool with
 * the stub lookup, and numeric getaddrinfo. */
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A lookup that hangs until released, as one whose name servers never answer. */
static int hang_fd[2] = { -1, -1 };

static int hanging_lookup(const char *name, int family, struct proto_addr *out, int max, int *n)
{
	char c;

	if (strcmp(name, "hang.test") == 0) {
		(void)!read(hang_fd[0], &c, 1); /* returns when the write end closes */
		return EAI_AGAIN;
	}
	return stub_lookup(name, family, out, max, n);
}

/* One process whose lookups hang holds no more than its share of the
 * workers: another process's lookup is answered while they hang. */
START_TEST(test_resolver_stuck_holder_leaves_others_served)
{
	struct resolver *r;
	struct resolver_job *job, *got, *next;
	struct pollfd pfd;
	int seen = 0, other = 0;

	ck_assert_int_eq(pipe(hang_fd), 0);
	r = resolver_new(4, hanging_lookup);
	ck_assert_ptr_nonnull(r);
	for (int i = 0; i < 6; i++) {
		job = calloc(1, sizeof *job);
		job->holder = 100;
		strcpy(job->name, "hang.test");
		ck_assert_int_eq(resolver_submit(r, job), 0);
	}
	job = calloc(1, sizeof *job);
	job->holder = 200;
	job->msgid = 7;
	strcpy(job->name, "pub.test");
	ck_assert_int_eq(resolver_submit(r, job), 0);
	pfd.fd = resolver_fd(r);
	pfd.events = POLLIN;
	ck_assert_msg(poll(&pfd, 1, 5000) == 1, "the other process's lookup waits behind the hung ones");
	for (got = resolver_take(r); got; got = next) {
		next = got->next;
		other += got->msgid == 7 && got->eai == 0;
		seen++;
		free(got);
	}
	ck_assert_int_eq(other, 1);
	ck_assert_int_eq(seen, 1); /* and nothing of the hung holder's */
	close(hang_fd[1]); /* release the hung lookups: all six finish */
	while (seen < 7) {
		ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
		for (got = resolver_take(r); got; got = next) {
			next = got->next;
			ck_assert_int_eq(got->eai, EAI_AGAIN);
			seen++;
			free(got);
		}
	}
	resolver_free(r);
	close(hang_fd[0]);
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
	tcase_add_test(tc, test_resolver_stuck_holder_leaves_others_served);
	tcase_add_test(tc, test_resolver_getaddrinfo_numeric);
	suite_add_tcase(s, tc);
	return s;
}
