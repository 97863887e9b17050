/* suites.h: every Check suite, one constructor per module. */
#ifndef EGRESS_SUITES_H
#define EGRESS_SUITES_H

#include <check.h>

Suite *suite_proto(void);
Suite *suite_policy(void);
Suite *suite_broker(void);
Suite *suite_shim(void);
Suite *suite_transport(void);

#endif
