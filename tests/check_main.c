/* check_main.c: runs the Check suites. Built twice: check_egress (codec,
 * policy, broker) and, with -DCHECK_SHIM, check_shim (the preload library's
 * decision code against a stubbed broker). */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
	SRunner *sr;
	int failed;

#ifdef CHECK_SHIM
	sr = srunner_create(suite_shim());
#else
	sr = srunner_create(suite_proto());
	srunner_add_suite(sr, suite_policy());
	srunner_add_suite(sr, suite_table());
	srunner_add_suite(sr, suite_sha256());
	srunner_add_suite(sr, suite_buf());
	srunner_add_suite(sr, suite_audit());
	srunner_add_suite(sr, suite_addrmap());
	srunner_add_suite(sr, suite_stats());
	srunner_add_suite(sr, suite_control());
	srunner_add_suite(sr, suite_ctl());
	srunner_add_suite(sr, suite_dns());
	srunner_add_suite(sr, suite_cli());
	srunner_add_suite(sr, suite_resolver());
	srunner_add_suite(sr, suite_server());
	srunner_add_suite(sr, suite_synth());
	srunner_add_suite(sr, suite_upstream());
	srunner_add_suite(sr, suite_transport());
	srunner_add_suite(sr, suite_nflog());
	srunner_add_suite(sr, suite_capture());
	srunner_add_suite(sr, suite_hostsfile());
#endif
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
