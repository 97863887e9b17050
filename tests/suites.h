/* suites.h: every Check suite, one constructor per module. */
#ifndef EGRESS_SUITES_H
#define EGRESS_SUITES_H

#include <check.h>

Suite *suite_proto(void);
Suite *suite_policy(void);
Suite *suite_table(void);
Suite *suite_sha256(void);
Suite *suite_buf(void);
Suite *suite_audit(void);
Suite *suite_addrmap(void);
Suite *suite_stats(void);
Suite *suite_control(void);
Suite *suite_ctl(void);
Suite *suite_dns(void);
Suite *suite_cli(void);
Suite *suite_resolver(void);
Suite *suite_server(void);
Suite *suite_synth(void);
Suite *suite_upstream(void);
Suite *suite_transport(void);
Suite *suite_nflog(void);
Suite *suite_capture(void);
Suite *suite_hostsfile(void);
Suite *suite_shim(void);

#endif
