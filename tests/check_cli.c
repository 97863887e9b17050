/* check_cli.c: unit tests of broker/cli.c: target parsing and the check
 * command, as tables. */
#include <netdb.h>
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
	{ "https://api.example.com/v1/models?x=1", 0, false, "api.example.com", 443 },
	{ "http://user:pw@Example.com:8080/", 0, false, "example.com", 8080 },
	{ "ssh://git@github.com/org/repo.git", 0, false, "github.com", 22 },
	{ "http://[2001:db8::1]/", 0, true, "2001:db8::1", 80 },
	{ "HTTPS://10.0.0.1", 0, true, "10.0.0.1", 443 },
	{ "gopher://example.com/", -1, false, NULL, 0 },
	{ "https:///path", -1, false, NULL, 0 },
	{ "https://example.com:99999/", -1, false, NULL, 0 },
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
				"[rule \"multi\"]\n"
				"host = multi.example\n"
				"action = allow\n"
				"[rule \"proxied\"]\n"
				"host = proxied.example\n"
				"action = rewrite\n"
				"[rule \"ssh\"]\n"
				"host = git.example\n"
				"port = 22, 443, 8000-8100\n"
				"action = allow\n"
				"[hosts]\n"
				"build-cache.internal = 10.0.0.7\n"
				"sneaky.example = 169.254.169.254\n"
				"multi.example = 169.254.169.254, 93.184.216.34\n";

static const struct {
	const char *target;
	bool udp;
	int rc;
	const char *line;
} check_cases[] = {
	{ "169.254.169.254:80", false, 1, "deny ECONNREFUSED (rule no-metadata)" },
	{ "api.example.com:443", false, 0, "allow (rule model-api)" },
	/* a name the policy denies fails at its lookup, as in the daemon */
	{ "api.example.com:80", false, 1, "deny EAI_NONAME (rule default)" },
	{ "build-cache.internal:8080", false, 0, "allow (rule cache)" },
	/* its one address is dropped at the lookup, so the name does not resolve */
	{ "sneaky.example:80", false, 1, "deny EAI_NONAME (rule no-metadata)" },
	/* a datagram to port 53 is a DNS query, whatever its address */
	{ "192.0.2.53:53", true, 0,
	  "rewrite via the lookup stub (rule dns: a DNS query; the name it asks for is judged)" },
	{ "192.0.2.53:53", false, 1, "deny EPERM (rule default)" },
	{ "bad name", false, 2, NULL },
	/* the denied address of two is dropped; the program gets the other */
	{ "multi.example:443", false, 0, "allow (rule multi)" },
	{ "proxied.example:443", false, 0, "rewrite via direct (rule proxied)" },
	/* the direct transport sends a datagram as the program would */
	{ "proxied.example:443", true, 0, "rewrite via direct (rule proxied)" },
	/* without a port: which ports the matching rule covers */
	{ "api.example.com", false, 0, "allow (rule model-api) on port 443 only" },
	{ "git.example", false, 0, "allow (rule ssh) on ports 22, 443, 8000-8100 only" },
	{ "multi.example", false, 0, "allow (rule multi) on any port" },
	{ "https://git.example/org/repo", false, 0, "allow (rule ssh)" },
	{ "http://git.example/", false, 1, "deny EAI_NONAME (rule default)" },
};

/* True for the targets that are names outside [hosts]. */
static bool judged_by_name(const char *target)
{
	return strstr(target, "api.") || strstr(target, "git.") || strstr(target, "proxied.");
}

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
	ck_assert(by_name == (judged_by_name(check_cases[_i].target) && rc != 2));
	ck_assert_int_eq(rc, check_cases[_i].rc);
	if (check_cases[_i].line)
		ck_assert_str_eq(out, check_cases[_i].line);
	policy_free(p);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* The daemon's DNS for the agreement test: public addresses for the names
 * that are not in [hosts]. */
static int public_lookup(const char *name, int family, struct proto_addr *out, int max, int *n)
{
	(void)name;
	if (family == 6 || max < 1)
		return EAI_NONAME;
	out[0] = A("203.0.113.10");
	*n = 1;
	return 0;
}

/* True when the last event in the audit log at path was recorded as a
 * rewrite: a rewrite through the direct transport is answered as an allow
 * (the program's own socket connects), and only the record says rewrite. */
static bool last_recorded_rewrite(const char *path)
{
	char buf[65536], *last;
	size_t n = read_file(path, buf, sizeof buf);

	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	last = strrchr(buf, '\n');
	return strstr(last ? last : buf, "\"action\":\"rewrite\"") != NULL;
}

/* Writes what the daemon answered (and, for an allow, recorded) as check
 * writes it, up to the rule: "allow (rule R", "deny ENAME (rule R" or
 * "rewrite (rule R". */
static void daemon_line(const struct proto_verdict *v, bool resolve, bool rewrite, char *out,
			size_t cap)
{
	if (v->action == PROTO_DENY || v->err)
		snprintf(out, cap, "deny %s (rule %s",
			 resolve ? audit_eai_name(v->err) : policy_errno_name(v->err), v->rule);
	else if (v->action == PROTO_PENDING || v->action == PROTO_REWRITE || rewrite)
		snprintf(out, cap, "rewrite (rule %s", v->rule);
	else
		snprintf(out, cap, "allow (rule %s", v->rule);
}

/* The same for check's line: its transport and any reason after the rule
 * left out. */
static void check_line(const char *line, char *out, size_t cap)
{
	const char *rule = strstr(line, " (rule ");
	int verdict, rlen;

	ck_assert_ptr_nonnull(rule);
	verdict = strncmp(line, "rewrite", 7) == 0 ? 7 : (int)(rule - line);
	rlen = (int)strcspn(rule + 7, ":)");
	snprintf(out, cap, "%.*s (rule %.*s", verdict, line, rlen, rule + 7);
}

/* Every case of the check table, asked of a running broker as a program
 * would ask (a lookup, then a connect or send to the first address it
 * got), gets the verdict and the rule that check prints. */
START_TEST(test_cli_check_agrees_with_daemon)
{
	const char *target = check_cases[_i].target;
	bool udp = check_cases[_i].udp, by_name;
	char name[PROTO_NAME_MAX + 1], err[256], out[512], want[600], got[600], text[64];
	int op = udp ? PROTO_OP_SEND : PROTO_OP_CONNECT, l4 = udp ? PROTO_L4_UDP : PROTO_L4_TCP;
	struct fixture f;
	struct proto_addr addr;
	struct proto_msg ans;
	struct policy *p;
	bool is_addr;
	uint16_t port;

	if (check_cases[_i].rc == 2)
		return;
	fixture_open(&f, cli_policy, public_lookup);
	p = policy_load(f.policy, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_ne(cli_check(p, target, udp, NULL, out, sizeof out, &by_name), 2);
	check_line(out, want, sizeof want);
	ck_assert_int_eq(cli_parse_target(target, name, sizeof name, &addr, &is_addr, &port, err,
					  sizeof err),
			 0);
	if (!is_addr) {
		ask(&f, 1, PROTO_OP_RESOLVE, l4, port, name, &ans);
		if (ans.u.verdict.action == PROTO_DENY || ans.u.verdict.err) {
			daemon_line(&ans.u.verdict, true, false, got, sizeof got);
			goto compare;
		}
		ck_assert_int_gt(ans.u.verdict.naddr, 0);
		addr = ans.u.verdict.addrs[0];
	}
	policy_addr_format(&addr, text, sizeof text);
	ask(&f, 2, op, l4, port, text, &ans);
	daemon_line(&ans.u.verdict, false, last_recorded_rewrite(f.audit), got, sizeof got);
compare:
	ck_assert_str_eq(got, want);
	policy_free(p);
	fixture_close(&f);
}
END_TEST

Suite *suite_cli(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_add_loop_test(tc, test_cli_parse_target_table, 0,
			    sizeof target_cases / sizeof target_cases[0]);
	tcase_add_loop_test(tc, test_cli_check_table, 0, sizeof check_cases / sizeof check_cases[0]);
	tcase_add_loop_test(tc, test_cli_check_agrees_with_daemon, 0,
			    sizeof check_cases / sizeof check_cases[0]);
	suite_add_tcase(s, tc);
	return s;
}
