/* check_cli.c: unit tests of broker/cli.c: target parsing and the check
 * command, as tables. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

static const struct {
	const char *in;
	int rc;
	bool is_addr;
	const char *host; /* name, or formatted address */
	uint16_t port;
} target_cases[] = {
	{ "example.com", 0, false, "example.com", 0 },
	{ "Example.COM.:443", 0, false, "example.com", 443 },
	{ "10.1.2.3:22", 0, true, "10.1.2.3", 22 },
	{ "[2001:db8::1]:53", 0, true, "2001:db8::1", 53 },
	{ "[::ffff:10.0.0.1]:80", 0, true, "10.0.0.1", 80 },
	{ "2001:db8::2", 0, true, "2001:db8::2", 0 },
	{ "[2001:db8::1]", 0, true, "2001:db8::1", 0 },
	{ "example.com:0", -1, false, NULL, 0 },
	{ "example.com:65536", -1, false, NULL, 0 },
	{ "example.com:", -1, false, NULL, 0 },
	{ "exa mple.com", -1, false, NULL, 0 },
	{ "[10.0.0.1]:80", -1, false, NULL, 0 },
	{ "[2001:db8::1]x", -1, false, NULL, 0 },
	{ ":80", -1, false, NULL, 0 },
};

START_TEST(test_cli_parse_target_table)
{
	char name[PROTO_NAME_MAX + 1] = "", err[256], fmt[64];
	struct proto_addr a;
	bool is_addr;
	uint16_t port;
	int rc = cli_parse_target(target_cases[_i].in, name, sizeof name, &a, &is_addr, &port, err,
				  sizeof err);

	ck_assert_int_eq(rc, target_cases[_i].rc);
	if (rc < 0)
		return;
	ck_assert_int_eq(is_addr, target_cases[_i].is_addr);
	ck_assert_uint_eq(port, target_cases[_i].port);
	if (is_addr) {
		policy_addr_format(&a, fmt, sizeof fmt);
		ck_assert_str_eq(fmt, target_cases[_i].host);
	} else {
		ck_assert_str_eq(name, target_cases[_i].host);
	}
}
END_TEST

static const char *cli_policy = "[egress]\n"
				"default = deny\n"
				"private = deny\n"
				"[rule \"no-metadata\"]\n"
				"cidr = 169.254.169.254/32\n"
				"action = deny\n"
				"errno = ECONNREFUSED\n"
				"[rule \"model-api\"]\n"
				"host = api.example.com\n"
				"port = 443\n"
				"action = allow\n"
				"[rule \"cache\"]\n"
				"host = build-cache.internal, sneaky.example\n"
				"action = allow\n"
				"[rule \"dns\"]\n"
				"cidr = 192.0.2.53/32\n"
				"proto = udp\n"
				"action = allow\n"
				"[hosts]\n"
				"build-cache.internal = 10.0.0.7\n"
				"sneaky.example = 169.254.169.254\n";

static const struct {
	const char *target;
	bool udp;
	int rc;
	const char *line;
} check_cases[] = {
	{ "169.254.169.254:80", false, 1, "deny ECONNREFUSED (rule no-metadata)" },
	{ "api.example.com:443", false, 0, "allow (rule model-api)" },
	{ "api.example.com:80", false, 1, "deny EPERM (rule default)" },
	{ "build-cache.internal:8080", false, 0, "allow (rule cache)" },
	{ "sneaky.example:80", false, 1, "deny ECONNREFUSED (rule no-metadata)" },
	{ "192.0.2.53:53", true, 0, "allow (rule dns)" },
	{ "192.0.2.53:53", false, 1, "deny EPERM (rule default)" },
	{ "bad name", false, 2, NULL },
};

START_TEST(test_cli_check_table)
{
	char dir[64], path[128], err[POLICY_ERR_MAX], out[512];
	struct policy *p;
	bool by_name;
	int rc;

	tmpdir(dir);
	write_file(dir, "p.ini", cli_policy, path, sizeof path);
	p = policy_load(path, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	rc = cli_check(p, check_cases[_i].target, check_cases[_i].udp, NULL, out, sizeof out,
		       &by_name);
	ck_assert(by_name == (strncmp(check_cases[_i].target, "api.", 4) == 0 && rc != 2));
	ck_assert_int_eq(rc, check_cases[_i].rc);
	if (check_cases[_i].line)
		ck_assert_str_eq(out, check_cases[_i].line);
	policy_free(p);
	unlink(path);
	rmdir(dir);
}
END_TEST

Suite *suite_cli(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_add_loop_test(tc, test_cli_parse_target_table, 0,
			    sizeof target_cases / sizeof target_cases[0]);
	tcase_add_loop_test(tc, test_cli_check_table, 0, sizeof check_cases / sizeof check_cases[0]);
	suite_add_tcase(s, tc);
	return s;
}
