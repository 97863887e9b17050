/* check_ctl.c: unit tests of broker/ctl.c, the client side of status and
 * reload. A broker that answers is tested in check_server.c. */
#include <errno.h>

#include "suites.h"
#include "testlib.h"

START_TEST(test_ctl_request_no_broker)
{
	char text[64], err[256];
	int status;

	ck_assert_int_eq(ctl_request("/nonexistent/b.sock", PROTO_CTL_STATUS, &status, text, sizeof text,
				     err, sizeof err),
			 -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_str_eq(err, "");
}
END_TEST

Suite *suite_ctl(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");

	tcase_add_test(tc, test_ctl_request_no_broker);
	suite_add_tcase(s, tc);
	return s;
}
