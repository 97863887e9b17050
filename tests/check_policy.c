/* check_policy.c: unit tests of the policy library: names, addresses,
 * errno names, the policy file loader and its errors, decisions, [hosts],
 * and a 10,000-rule file checked against a linear reference. */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"
#include "suites.h"

/* ---------------------------------------------------------------- helpers */

/* Writes text to a new temporary file. Returns its path (malloc'd). */
static char *tmp_write(const char *text)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;
	size_t len = strlen(text);

	if (!dir || !*dir)
		dir = "/tmp";
	ck_assert(asprintf(&path, "%s/egress-policy-XXXXXX", dir) > 0);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Loads text as a policy file; the temporary file is gone on return. */
static struct policy *load_text(const char *text, char *err, size_t errlen)
{
	char *path = tmp_write(text);
	struct policy *p = policy_load(path, err, errlen);

	unlink(path);
	free(path);
	return p;
}

static struct proto_addr addr_of(const char *s)
{
	struct proto_addr a;

	ck_assert_msg(policy_addr_parse(s, &a) == 0, "parse %s", s);
	policy_addr_canonical(&a);
	return a;
}

/* ---------------------------------------------------------------- names */

static const struct {
	const char *in;
	int rc;
	const char *out;
} name_cases[] = {
	{ "api.example.com", 0, "api.example.com" },
	{ "API.Example.COM", 0, "api.example.com" },
	{ "github.com.", 0, "github.com" },
	{ "localhost", 0, "localhost" },
	{ "_dmarc.x-y.example", 0, "_dmarc.x-y.example" },
	{ "a", 0, "a" },
	{ "", -1, NULL },
	{ ".", -1, NULL },
	{ "github.com..", -1, NULL },
	{ "a..b", -1, NULL },
	{ ".a", -1, NULL },
	{ "a b", -1, NULL },
	{ "a*b", -1, NULL },
	{ "*.example.com", -1, NULL },
	{ "caf\xc3\xa9.com", -1, NULL },
	{ "a/b", -1, NULL },
	{ "a:80", -1, NULL },
};

START_TEST(test_policy_name_normalise_table)
{
	char out[PROTO_NAME_MAX + 1];
	int rc = policy_name_normalise(name_cases[_i].in, out, sizeof out);

	ck_assert_msg(rc == name_cases[_i].rc, "\"%s\": rc %d", name_cases[_i].in, rc);
	if (rc == 0)
		ck_assert_str_eq(out, name_cases[_i].out);
}
END_TEST

START_TEST(test_policy_name_normalise_lengths)
{
	char in[400], out[PROTO_NAME_MAX + 1];

	/* 63-byte label fine, 64 not. */
	memset(in, 'a', 63);
	strcpy(in + 63, ".com");
	ck_assert_int_eq(policy_name_normalise(in, out, sizeof out), 0);
	memset(in, 'a', 64);
	strcpy(in + 64, ".com");
	ck_assert_int_eq(policy_name_normalise(in, out, sizeof out), -1);

	/* 253 bytes fine (also with its trailing dot), 254 not. */
	for (int i = 0; i < 253; i++)
		in[i] = i % 2 ? '.' : 'a';
	in[253] = 0;
	ck_assert_int_eq(policy_name_normalise(in, out, sizeof out), 0);
	ck_assert_uint_eq(strlen(out), 253);
	in[253] = '.';
	in[254] = 0;
	ck_assert_int_eq(policy_name_normalise(in, out, sizeof out), 0);
	in[253] = 'b';
	ck_assert_int_eq(policy_name_normalise(in, out, sizeof out), -1);

	/* Output buffer too small. */
	ck_assert_int_eq(policy_name_normalise("abc", out, 3), -1);
	ck_assert_int_eq(policy_name_normalise("abc", out, 4), 0);
}
END_TEST

/* ------------------------------------------------------------ addresses */

static const struct {
	const char *in;
	int rc;
	int family;        /* after canonicalisation */
	const char *text;  /* policy_addr_format after canonicalisation */
	bool private;
} addr_cases[] = {
	{ "1.2.3.4", 0, 4, "1.2.3.4", false },
	{ "8.8.8.8", 0, 4, "8.8.8.8", false },
	{ "0.0.0.0", 0, 4, "0.0.0.0", true },
	{ "0.1.2.3", 0, 4, "0.1.2.3", true },
	{ "127.0.0.1", 0, 4, "127.0.0.1", true },
	{ "10.255.0.1", 0, 4, "10.255.0.1", true },
	{ "172.15.255.255", 0, 4, "172.15.255.255", false },
	{ "172.16.0.1", 0, 4, "172.16.0.1", true },
	{ "172.31.255.255", 0, 4, "172.31.255.255", true },
	{ "172.32.0.0", 0, 4, "172.32.0.0", false },
	{ "192.168.1.1", 0, 4, "192.168.1.1", true },
	{ "192.169.0.1", 0, 4, "192.169.0.1", false },
	{ "169.254.169.254", 0, 4, "169.254.169.254", true },
	{ "100.64.0.1", 0, 4, "100.64.0.1", true },
	{ "100.127.255.255", 0, 4, "100.127.255.255", true },
	{ "100.128.0.0", 0, 4, "100.128.0.0", false },
	{ "224.0.0.1", 0, 4, "224.0.0.1", true },
	{ "239.255.255.255", 0, 4, "239.255.255.255", true },
	{ "240.0.0.1", 0, 4, "240.0.0.1", false },
	{ "255.255.255.255", 0, 4, "255.255.255.255", true },
	{ "2001:db8::1", 0, 6, "2001:db8::1", false },
	{ "2606:4700::1111", 0, 6, "2606:4700::1111", false },
	{ "::", 0, 6, "::", true },
	{ "::1", 0, 6, "::1", true },
	{ "::2", 0, 4, "0.0.0.2", true },
	{ "fc00::1", 0, 6, "fc00::1", true },
	{ "fdff:ffff::1", 0, 6, "fdff:ffff::1", true },
	{ "fe80::1", 0, 6, "fe80::1", true },
	{ "febf::1", 0, 6, "febf::1", true },
	{ "fec0::1", 0, 6, "fec0::1", false },
	{ "ff02::1", 0, 6, "ff02::1", true },
	{ "::ffff:127.0.0.1", 0, 4, "127.0.0.1", true },
	{ "::ffff:8.8.8.8", 0, 4, "8.8.8.8", false },
	{ "::ffff:a9fe:a9fe", 0, 4, "169.254.169.254", true },
	{ "::8.8.8.8", 0, 4, "8.8.8.8", false },
	{ "::127.0.0.1", 0, 4, "127.0.0.1", true },
	{ "::ffff:0:8.8.8.8", 0, 6, "::ffff:0:808:808", false }, /* SIIT, not mapped */
	/* translation and tunnel prefixes: private when the IPv4 inside is */
	{ "::ffff:0:127.0.0.1", 0, 6, "::ffff:0:7f00:1", true },
	{ "64:ff9b::7f00:1", 0, 6, "64:ff9b::7f00:1", true },
	{ "64:ff9b::a9fe:a9fe", 0, 6, "64:ff9b::a9fe:a9fe", true },
	{ "64:ff9b::10.1.2.3", 0, 6, "64:ff9b::a01:203", true },
	{ "64:ff9b::8.8.8.8", 0, 6, "64:ff9b::808:808", false },
	{ "64:ff9b:1::7f00:1", 0, 6, "64:ff9b:1::7f00:1", false }, /* local-use /48: not decoded */
	{ "2002:7f00:1::1", 0, 6, "2002:7f00:1::1", true },
	{ "2002:c0a8:101::", 0, 6, "2002:c0a8:101::", true },
	{ "2002:a9fe:a9fe:1::5", 0, 6, "2002:a9fe:a9fe:1::5", true },
	{ "2002:808:808::1", 0, 6, "2002:808:808::1", false },
	/* Teredo: server 65.54.227.120, client stored inverted */
	{ "2001:0:4136:e378:8000:63bf:3fff:fdd2", 0, 6, "2001:0:4136:e378:8000:63bf:3fff:fdd2",
	  false },
	{ "2001:0:4136:e378:8000:63bf:80ff:fffe", 0, 6, "2001:0:4136:e378:8000:63bf:80ff:fffe",
	  true },
	{ "2001:0:a00:1:8000:63bf:3fff:fdd2", 0, 6, "2001:0:a00:1:8000:63bf:3fff:fdd2", true },
	{ "2001:1::7f00:1", 0, 6, "2001:1::7f00:1", false },
	{ "1.2.3", -1, 0, NULL, false },
	{ "1.2.3.4.5", -1, 0, NULL, false },
	{ "01.2.3.4", -1, 0, NULL, false },
	{ "0x7f.0.0.1", -1, 0, NULL, false },
	{ "2130706433", -1, 0, NULL, false },
	{ "256.1.1.1", -1, 0, NULL, false },
	{ " 1.2.3.4", -1, 0, NULL, false },
	{ "1.2.3.4/32", -1, 0, NULL, false },
	{ "[::1]", -1, 0, NULL, false },
	{ "fe80::1%eth0", -1, 0, NULL, false },
	{ "example.com", -1, 0, NULL, false },
	{ "", -1, 0, NULL, false },
};

START_TEST(test_policy_addr_parse_table)
{
	struct proto_addr a;
	char text[64];
	int rc = policy_addr_parse(addr_cases[_i].in, &a);

	ck_assert_msg(rc == addr_cases[_i].rc, "\"%s\": rc %d", addr_cases[_i].in, rc);
	if (rc)
		return;
	policy_addr_canonical(&a);
	ck_assert_int_eq(a.family, addr_cases[_i].family);
	policy_addr_format(&a, text, sizeof text);
	ck_assert_str_eq(text, addr_cases[_i].text);
	ck_assert_msg(policy_addr_private(&a) == addr_cases[_i].private, "%s private",
		      addr_cases[_i].in);
}
END_TEST

START_TEST(test_policy_addr_canonical_leaves_v6)
{
	struct proto_addr a;

	/* A mapped form is private even when handed over uncanonicalised. */
	ck_assert_int_eq(policy_addr_parse("::ffff:10.0.0.1", &a), 0);
	ck_assert_int_eq(a.family, 6);
	ck_assert(policy_addr_private(&a));
	policy_addr_canonical(&a);
	ck_assert_int_eq(a.family, 4);
	for (int i = 4; i < 16; i++)
		ck_assert_int_eq(a.bytes[i], 0);
	/* Canonicalising twice changes nothing. */
	policy_addr_canonical(&a);
	ck_assert_int_eq(a.family, 4);
	ck_assert_int_eq(a.bytes[0], 10);
	ck_assert_int_eq(a.bytes[3], 1);
}
END_TEST

START_TEST(test_policy_addr_format_small)
{
	struct proto_addr a = addr_of("192.168.100.200");
	char buf[8];

	policy_addr_format(&a, buf, sizeof buf);
	ck_assert_str_eq(buf, "192.168");
	a.family = 9;
	policy_addr_format(&a, buf, sizeof buf);
	ck_assert_str_eq(buf, "?");
}
END_TEST

/* ---------------------------------------------------------------- errno */

static const struct {
	const char *name;
	int value;
} errno_cases[] = {
	{ "EPERM", EPERM },
	{ "EACCES", EACCES },
	{ "ECONNREFUSED", ECONNREFUSED },
	{ "ECONNRESET", ECONNRESET },
	{ "ENETUNREACH", ENETUNREACH },
	{ "EHOSTUNREACH", EHOSTUNREACH },
	{ "ETIMEDOUT", ETIMEDOUT },
	{ "EADDRNOTAVAIL", EADDRNOTAVAIL },
	{ "ENETDOWN", ENETDOWN },
	{ "EAFNOSUPPORT", EAFNOSUPPORT },
	{ "EPROTO", EPROTO },
};

START_TEST(test_policy_errno_parse_names)
{
	ck_assert_int_eq(policy_errno_parse(errno_cases[_i].name), errno_cases[_i].value);
	ck_assert_str_eq(policy_errno_name(errno_cases[_i].value), errno_cases[_i].name);
}
END_TEST

START_TEST(test_policy_errno_parse_numbers)
{
	ck_assert_int_eq(policy_errno_parse("1"), 1);
	ck_assert_int_eq(policy_errno_parse("111"), 111);
	ck_assert_int_eq(policy_errno_parse("4095"), 4095);
	ck_assert_int_eq(policy_errno_parse("0"), -1);
	ck_assert_int_eq(policy_errno_parse("4096"), -1);
	ck_assert_int_eq(policy_errno_parse("-1"), -1);
	ck_assert_int_eq(policy_errno_parse("12x"), -1);
	ck_assert_int_eq(policy_errno_parse("99999999999999999999"), -1);
	ck_assert_int_eq(policy_errno_parse("eperm"), -1);
	ck_assert_int_eq(policy_errno_parse("EBOGUS"), -1);
	ck_assert_int_eq(policy_errno_parse(""), -1);
	ck_assert_str_eq(policy_errno_name(0), "E?");
	ck_assert_str_eq(policy_errno_name(4000), "E?");
}
END_TEST

/* ---------------------------------------------------------------- load */

START_TEST(test_policy_load_defaults)
{
	char err[POLICY_ERR_MAX];
	struct policy *p = load_text("; nothing but a comment\n", err, sizeof err);
	struct policy_request req = { .op = PROTO_OP_RESOLVE, .name = "example.com" };
	struct policy_verdict v;

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_eq(policy_rule_count(p), 0);
	ck_assert_uint_eq(policy_ttl_ms(p), POLICY_DEFAULT_TTL_MS);
	ck_assert_ptr_null(policy_audit_path(p));
	ck_assert_ptr_nonnull(strstr(policy_path(p), "egress-policy-"));
	policy_decide(p, &req, &v);
	ck_assert_int_eq(v.action, PROTO_DENY);
	ck_assert_int_eq(v.err, EPERM);
	ck_assert_str_eq(v.rule, "default");
	policy_free(p);
	policy_free(NULL);
}
END_TEST

START_TEST(test_policy_load_egress_keys)
{
	char err[POLICY_ERR_MAX];
	struct policy *p = load_text("[egress]\n"
				     "default = deny ; comment\n"
				     "private = deny\n"
				     "transport = direct\n"
				     "audit = /var/log/egress/audit.jsonl\n"
				     "cache_ttl = 0\n"
				     "errno = 113\n"
				     "[rule \"r1\"]\n"
				     "action = deny\n"
				     "[rule \"R-2.x_y\"]\n"
				     "action = allow\n",
				     err, sizeof err);
	struct policy_request req = { .op = PROTO_OP_CONNECT };
	struct policy_verdict v;

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_str_eq(policy_audit_path(p), "/var/log/egress/audit.jsonl");
	ck_assert_uint_eq(policy_ttl_ms(p), 0);
	ck_assert_uint_eq(policy_rule_count(p), 2);
	policy_decide(p, &req, &v);
	ck_assert_str_eq(v.rule, "r1");
	ck_assert_int_eq(v.err, EPERM);
	policy_free(p);

	p = load_text("[egress]\ncache_ttl = 3600\nerrno = EHOSTUNREACH\n", err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_eq(policy_ttl_ms(p), 3600000);
	policy_decide(p, &req, &v);
	ck_assert_str_eq(v.rule, "default");
	ck_assert_int_eq(v.err, EHOSTUNREACH);
	policy_free(p);
}
END_TEST

START_TEST(test_policy_load_example)
{
	char err[POLICY_ERR_MAX];
	struct policy *p = policy_load("policy/example.ini", err, sizeof err);
	struct proto_addr out[4], meta = addr_of("169.254.169.254"), pub = addr_of("93.184.216.34");
	struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .port = 443,
				      .name = "api.example.com", .addr = &pub };
	struct policy_verdict v;

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_eq(policy_rule_count(p), 4);
	policy_decide(p, &req, &v);
	ck_assert_str_eq(v.rule, "model-api");
	ck_assert_int_eq(v.action, PROTO_ALLOW);
	req.addr = &meta;
	policy_decide(p, &req, &v);
	ck_assert_str_eq(v.rule, "no-metadata");
	ck_assert_int_eq(v.err, ECONNREFUSED);
	ck_assert_int_eq(policy_hosts_lookup(p, "build-cache.internal", out, 4), 1);
	policy_free(p);
}
END_TEST

/* Each bad file and the line and message its error must carry. */
static const struct {
	const char *text;
	unsigned line;
	const char *msg;
} bad_cases[] = {
	{ "foo = 1\n", 1, "key foo outside a section" },
	{ "[bogus]\n", 1, "unknown section [bogus]" },
	{ "[egress\n", 1, "without ']'" },
	{ "[egress] x\n", 1, "text after the section header" },
	{ "[egress]\n  [hosts]\n", 2, "section header must start the line" },
	{ "[egress]\nfoo = 1\n", 2, "unknown key foo in [egress]" },
	{ "[egress]\njunk\n", 2, "syntax error" },
	{ "[egress]\ndefault = maybe\n", 2, "default must be allow, deny or rewrite" },
	{ "[egress]\ndefault = deny\ndefault = allow\n", 3, "duplicate key default" },
	{ "[egress]\nprivate = open\n", 2, "private must be allow or deny" },
	{ "[egress]\nunix = run/x.sock\n", 2, "unix: \"run/x.sock\" is not an absolute path" },
	{ "[egress]\nunix = /a,,/b\n", 2, "empty entry in unix" },
	{ "[egress]\ntransport = tunnel\n", 2, "transport must be direct, relay, http://" },
	{ "[egress]\ntransport = https://p:443\n", 2, "transport must be direct" },
	{ "[egress]\ntransport = socks5://127.0.0.1\n", 2, "needs host:port" },
	{ "[egress]\ntransport = socks5://:1080\n", 2, "needs host:port" },
	{ "[egress]\ntransport = http://p:0\n", 2, "port must be 1..65535" },
	{ "[egress]\ntransport = http://p:99999\n", 2, "port must be 1..65535" },
	{ "[egress]\ntransport = http://p:80x\n", 2, "port must be 1..65535" },
	{ "[egress]\ntransport = http://bad host:80\n", 2, "needs host:port" },
	{ "[egress]\ntransport = http://[::1:80\n", 2, "bad [IPv6]:port" },
	{ "[egress]\ntransport = socks5://secretuser@p:1080\n", 2, "credentials must be" },
	{ "[egress]\ntransport = socks5://u:sec%zzret@p:1080\n", 2, "credentials must be" },
	{ "[egress]\ntimeout = 0\n", 2, "timeout must be 1..300 seconds" },
	{ "[egress]\ntimeout = 301\n", 2, "timeout must be 1..300 seconds" },
	{ "[rule \"a\"]\nhost = a.com\ntransport = relay\naction = allow\n", 1,
	  "transport and limit need action = rewrite" },
	{ "[rule \"a\"]\nhost = a.com\naction = deny\nlimit = 1M\n", 4,
	  "transport and limit need action = rewrite" },
	{ "[rule \"a\"]\nhost = a.com\naction = rewrite\nlimit = 1T\n", 4, "limit must be" },
	{ "[rule \"a\"]\nhost = a.com\naction = rewrite\nlimit = 0\n", 4, "limit must be" },
	{ "[rule \"a\"]\nhost = a.com\naction = rewrite\nlimit = 2048G\n", 4, "limit must be" },
	{ "[rule \"a\"]\nhost = a.com\naction = rewrite\ntransport = ftp://x:1\n", 4,
	  "transport must be" },
	{ "[rule \"a\"]\nhost = a.com\naction = rewrite\ntransport = relay\ntransport = relay\n",
	  5, "duplicate key transport" },
	{ "[egress]\ncache_ttl = 3601\n", 2, "cache_ttl must be 0..3600" },
	{ "[egress]\ncache_ttl = -1\n", 2, "cache_ttl" },
	{ "[egress]\ncache_ttl = 10s\n", 2, "cache_ttl" },
	{ "[egress]\nerrno = EWHAT\n", 2, "unknown errno \"EWHAT\"" },
	{ "[egress]\naudit =\n", 2, "audit needs a file name" },
	{ "[rule a]\naction = allow\n", 1, "rule section must be [rule \"name\"]" },
	{ "[rule \"\"]\naction = allow\n", 1, "rule name must be 1..63" },
	{ "[rule \"a b\"]\naction = allow\n", 1, "has a character other than" },
	{ "[rule \"a\\\"b\"]\naction = allow\n", 1, "has a character other than" },
	{ "[rule \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]\n"
	  "action = allow\n",
	  1, "rule name must be 1..63" },
	{ "[rule \"default\"]\naction = allow\n", 1, "is reserved" },
	{ "[rule \"private\"]\naction = allow\n", 1, "is reserved" },
	{ "[rule \"a\"]\nhost = x.com\naction = allow\n[rule \"a\"]\naction = deny\n", 4,
	  "duplicate rule name \"a\"" },
	{ "[rule \"a\"]\nhost = x.com\n\n[rule \"b\"]\naction = allow\n", 1,
	  "rule \"a\" has no action" },
	{ "[egress]\n[rule \"z\"]\nhost = a.com\n", 2, "rule \"z\" has no action" },
	{ "[rule \"empty\"]\n", 1, "rule \"empty\" has no action" },
	{ "[rule \"a\"]\naction = allow\naction = deny\n", 3, "duplicate key action" },
	{ "[rule \"a\"]\naction = maybe\n", 2, "action must be allow, deny or rewrite" },
	{ "[rule \"a\"]\nfoo = bar\naction = allow\n", 2, "unknown key foo in rule \"a\"" },
	{ "[rule \"a\"]\nhost = a..b\naction = allow\n", 2, "bad host \"a..b\"" },
	{ "[rule \"a\"]\nhost = *\naction = allow\n", 2, "bad host \"*\"" },
	{ "[rule \"a\"]\nhost = *.\naction = allow\n", 2, "bad host \"*.\"" },
	{ "[rule \"a\"]\nhost = a.*.com\naction = allow\n", 2, "bad host" },
	{ "[rule \"a\"]\nhost = **.com\naction = allow\n", 2, "bad host" },
	{ "[rule \"a\"]\nhost = a.com,,b.com\naction = allow\n", 2, "empty entry in host" },
	{ "[rule \"a\"]\nhost = a.com,\naction = allow\n", 2, "empty entry in host" },
	{ "[rule \"a\"]\nport = 0\naction = allow\n", 2, "bad port \"0\"" },
	{ "[rule \"a\"]\nport = 65536\naction = allow\n", 2, "bad port \"65536\"" },
	{ "[rule \"a\"]\nport = 100-50\naction = allow\n", 2, "bad port \"100-50\"" },
	{ "[rule \"a\"]\nport = 80-\naction = allow\n", 2, "bad port" },
	{ "[rule \"a\"]\nport = https\naction = allow\n", 2, "bad port \"https\"" },
	{ "[rule \"a\"]\nport = +80\naction = allow\n", 2, "bad port" },
	{ "[rule \"a\"]\ncidr = 10.0.0.1/8\naction = allow\n", 2, "host bits set" },
	{ "[rule \"a\"]\ncidr = 10.0.0.0/33\naction = allow\n", 2, "bad prefix length" },
	{ "[rule \"a\"]\ncidr = 10.0.0.0/\naction = allow\n", 2, "bad prefix length" },
	{ "[rule \"a\"]\ncidr = 2001:db8::/129\naction = allow\n", 2, "bad prefix length" },
	{ "[rule \"a\"]\ncidr = 2001:db8::1/32\naction = allow\n", 2, "host bits set" },
	{ "[rule \"a\"]\ncidr = 10.0.0/8\naction = allow\n", 2, "bad address" },
	{ "[rule \"a\"]\ncidr = example.com\naction = allow\n", 2, "bad cidr \"example.com\"" },
	{ "[rule \"a\"]\nproto = icmp\naction = allow\n", 2, "proto must be tcp or udp" },
	{ "[rule \"a\"]\nprivate = maybe\naction = allow\n", 2, "private must be allow or deny" },
	{ "[rule \"a\"]\nerrno = ENOPE\naction = deny\n", 2, "unknown errno \"ENOPE\"" },
	{ "[rule \"a\"]\nerrno = 0\naction = deny\n", 2, "unknown errno \"0\"" },
	{ "[hosts]\nx.internal = not-an-ip\n", 2, "bad address \"not-an-ip\"" },
	{ "[hosts]\n*.internal = 10.0.0.1\n", 2, "bad host name \"*.internal\"" },
	{ "[hosts]\nx.internal = 10.0.0.1, 10.0.0.300\n", 2, "bad address \"10.0.0.300\"" },
	{ "; ok\n[egress]\n\n[rule \"a\"]\naction = allow\nhost = "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  ".bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com\n",
	  6, "line longer than" },
};

START_TEST(test_policy_load_bad)
{
	char err[POLICY_ERR_MAX], want[POLICY_ERR_MAX];
	char *path = tmp_write(bad_cases[_i].text);
	struct policy *p = policy_load(path, err, sizeof err);

	ck_assert_msg(p == NULL, "case %d loaded", _i);
	snprintf(want, sizeof want, "%s:%u: ", path, bad_cases[_i].line);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "case %d: got \"%s\", want \"%s...\"",
		      _i, err, want);
	ck_assert_msg(strstr(err + strlen(want), bad_cases[_i].msg), "case %d: got \"%s\"", _i,
		      err);
	unlink(path);
	free(path);
}
END_TEST

/* No error message repeats a proxy password. */
/* A line whose text fits but whose run of line ends does not: only the text
 * may reach inih's line buffer (the fuzzer's crash: "[egress]" then 300
 * CRs overran it). */
START_TEST(test_policy_load_many_line_ends)
{
	char text[1024], err[POLICY_ERR_MAX];
	struct policy *p;
	size_t n = (size_t)snprintf(text, sizeof text, "[egress]");

	memset(text + n, '\r', 600);
	snprintf(text + n + 600, sizeof text - n - 600, "\ndefault = allow\n");
	p = load_text(text, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	policy_free(p);
}
END_TEST

START_TEST(test_policy_load_bad_never_shows_password)
{
	char err[POLICY_ERR_MAX];
	char *path = tmp_write("[egress]\ntransport = socks5://user:hunter2@p:99999\n");

	ck_assert_ptr_null(policy_load(path, err, sizeof err));
	ck_assert_ptr_null(strstr(err, "hunter2"));
	ck_assert_ptr_nonnull(strstr(err, "port must be"));
	unlink(path);
	free(path);
}
END_TEST

/* Transports parse into their parts and print without credentials. */
static const struct {
	const char *url;
	int kind;
	const char *host;
	unsigned port;
	const char *user, *pass;
	const char *text;
} transport_cases[] = {
	{ "direct", POLICY_DIRECT, "", 0, NULL, NULL, "direct" },
	{ "relay", POLICY_RELAY, "", 0, NULL, NULL, "relay" },
	{ "http://127.0.0.1:8888", POLICY_HTTP, "127.0.0.1", 8888, NULL, NULL,
	  "http://127.0.0.1:8888" },
	{ "http://proxy.corp:3128/", POLICY_HTTP, "proxy.corp", 3128, NULL, NULL,
	  "http://proxy.corp:3128" },
	{ "socks5://[::1]:1080", POLICY_SOCKS5, "::1", 1080, NULL, NULL, "socks5://[::1]:1080" },
	{ "socks5://me:s3cr%40t:x@10.0.0.1:1080", POLICY_SOCKS5, "10.0.0.1", 1080, "me", "s3cr@t:x",
	  "socks5://***@10.0.0.1:1080" },
	{ "http://a%3Ab:p@h:1", POLICY_HTTP, "h", 1, "a:b", "p", "http://***@h:1" },
};

START_TEST(test_policy_transport_parse)
{
	struct policy_transport t;
	const char *why = NULL;
	char text[300];

	ck_assert_int_eq(policy_transport_parse(transport_cases[_i].url, &t, &why), 0);
	ck_assert_int_eq(t.kind, transport_cases[_i].kind);
	ck_assert_str_eq(t.host, transport_cases[_i].host);
	ck_assert_uint_eq(t.port, transport_cases[_i].port);
	ck_assert(t.auth == (transport_cases[_i].user != NULL));
	if (t.auth) {
		ck_assert_str_eq(t.user, transport_cases[_i].user);
		ck_assert_str_eq(t.pass, transport_cases[_i].pass);
	}
	policy_transport_text(&t, text, sizeof text);
	ck_assert_str_eq(text, transport_cases[_i].text);
}
END_TEST

/* A rewrite verdict carries the rule's transport and limit, or the
 * [egress] transport. */
START_TEST(test_policy_rewrite_verdicts)
{
	char err[POLICY_ERR_MAX];
	char *path = tmp_write("[egress]\ndefault = rewrite\ntransport = socks5://127.0.0.1:1080\n"
			       "timeout = 3\n\n[rule \"r\"]\nhost = a.com\naction = rewrite\n"
			       "transport = relay\nlimit = 64K\n\n[rule \"h\"]\nhost = b.com\n"
			       "action = rewrite\n");
	struct policy *p = policy_load(path, err, sizeof err);
	struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .port = 443 };
	struct policy_verdict v;

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_eq(policy_timeout_ms(p), 3000);
	ck_assert_int_eq(policy_transport(p)->kind, POLICY_SOCKS5);
	req.name = "a.com";
	policy_decide(p, &req, &v);
	ck_assert_int_eq(v.action, PROTO_REWRITE);
	ck_assert_int_eq(v.transport->kind, POLICY_RELAY);
	ck_assert_uint_eq(v.limit, 65536);
	req.name = "b.com";
	policy_decide(p, &req, &v);
	ck_assert_str_eq(v.rule, "h");
	ck_assert_int_eq(v.transport->kind, POLICY_SOCKS5);
	ck_assert_uint_eq(v.limit, 0);
	req.name = "c.com";
	policy_decide(p, &req, &v);
	ck_assert_str_eq(v.rule, "default");
	ck_assert_int_eq(v.action, PROTO_REWRITE);
	ck_assert_int_eq(v.transport->kind, POLICY_SOCKS5);
	policy_free(p);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_policy_load_missing_file)
{
	char err[POLICY_ERR_MAX];

	ck_assert_ptr_null(policy_load("/nonexistent/egress.ini", err, sizeof err));
	ck_assert_str_eq(err, "/nonexistent/egress.ini: No such file or directory");
	/* No room for a message is fine too. */
	ck_assert_ptr_null(policy_load("/nonexistent/egress.ini", NULL, 0));
}
END_TEST

START_TEST(test_policy_load_small_err_buffer)
{
	char err[8];

	ck_assert_ptr_null(load_text("[egress]\nfoo = 1\n", err, sizeof err));
	ck_assert_uint_eq(strlen(err), sizeof err - 1);
}
END_TEST

START_TEST(test_policy_load_appends_lists)
{
	char err[POLICY_ERR_MAX];
	struct policy *p = load_text("[rule \"a\"]\n"
				     "host = a.com\n"
				     "host = b.com\n"
				     "  c.com\n" /* an inih continuation line */
				     "port = 80\n"
				     "port = 443\n"
				     "action = allow\n",
				     err, sizeof err);
	static const struct {
		const char *name;
		uint16_t port;
		const char *rule;
	} cases[] = {
		{ "a.com", 80, "a" }, { "b.com", 443, "a" },   { "c.com", 443, "a" },
		{ "d.com", 443, "default" }, { "a.com", 8080, "default" },
	};

	ck_assert_msg(p != NULL, "%s", err);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP,
					      .name = cases[i].name, .port = cases[i].port };
		struct policy_verdict v;

		policy_decide(p, &req, &v);
		ck_assert_msg(strcmp(v.rule, cases[i].rule) == 0, "%s:%u -> %s", cases[i].name,
			      cases[i].port, v.rule);
	}
	policy_free(p);
}
END_TEST

/* ---------------------------------------------------------------- decide */

static const char decide_policy[] =
	"[egress]\n"
	"default = deny\n"
	"errno = EACCES\n"
	"\n"
	"[rule \"no-metadata\"]\n"
	"cidr = 169.254.169.254\n"
	"action = deny\n"
	"errno = ECONNREFUSED\n"
	"\n"
	"[rule \"no-ssh\"]\n"
	"host = api.example.com\n"
	"port = 22\n"
	"action = deny\n"
	"errno = ECONNRESET\n"
	"\n"
	"[rule \"no-quic\"]\n"
	"host = api.example.com\n"
	"proto = udp\n"
	"action = deny\n"
	"\n"
	"[rule \"api\"]\n"
	"host = API.example.com.\n"
	"port = 443, 8000-8100\n"
	"proto = tcp\n"
	"action = allow\n"
	"\n"
	"[rule \"code\"]\n"
	"host = *.GitHub.com., github.com\n"
	"action = allow\n"
	"\n"
	"[rule \"lan\"]\n"
	"cidr = 10.0.0.0/8, 2001:db8::/32\n"
	"action = allow\n"
	"\n"
	"[rule \"mapped\"]\n"
	"cidr = ::ffff:192.0.2.0/120\n"
	"action = allow\n"
	"\n"
	"[rule \"numeric\"]\n"
	"host = 198.51.100.7, 172.16.5.5, 2001:db9::7\n"
	"action = allow\n"
	"\n"
	"[rule \"both\"]\n"
	"host = both.example.net\n"
	"cidr = 203.0.113.0/24, 192.168.7.0/24\n"
	"port = 443\n"
	"action = allow\n"
	"\n"
	"[rule \"tools\"]\n"
	"host = tools.example.org\n"
	"exe = /usr/bin/curl, python3*\n"
	"action = allow\n"
	"\n"
	"[rule \"dns\"]\n"
	"proto = udp\n"
	"port = 53\n"
	"exe = dnsclient\n"
	"action = allow\n"
	"\n"
	"[rule \"intranet\"]\n"
	"host = intranet.corp\n"
	"private = allow\n"
	"action = allow\n"
	"\n"
	"[rule \"build\"]\n"
	"host = build.internal\n"
	"action = allow\n"
	"\n"
	"[rule \"late-deny\"]\n"
	"host = *.example.com\n"
	"action = deny\n"
	"errno = 99\n"
	"\n"
	"[hosts]\n"
	"build.internal = 172.20.0.7\n";

#define TCP PROTO_L4_TCP
#define UDP PROTO_L4_UDP
#define ANY PROTO_L4_ANY
#define ALLOW PROTO_ALLOW
#define DENY PROTO_DENY

static const struct {
	const char *name; /* NULL: no name */
	const char *addr; /* NULL: no address */
	uint16_t port;
	int l4;
	const char *exe;
	bool from_hosts;
	int action;
	int err;
	const char *rule;
} decide_cases[] = {
	/* ports, ranges, proto */
	{ "api.example.com", "93.184.216.34", 443, TCP, NULL, false, ALLOW, 0, "api" },
	{ "api.example.com", "93.184.216.34", 8000, TCP, NULL, false, ALLOW, 0, "api" },
	{ "api.example.com", "93.184.216.34", 8100, TCP, NULL, false, ALLOW, 0, "api" },
	{ "api.example.com", "93.184.216.34", 8101, TCP, NULL, false, DENY, 99, "late-deny" },
	{ "api.example.com", "93.184.216.34", 80, TCP, NULL, false, DENY, 99, "late-deny" },
	{ "api.example.com", "93.184.216.34", 22, TCP, NULL, false, DENY, ECONNRESET, "no-ssh" },
	{ "api.example.com", "93.184.216.34", 443, UDP, NULL, false, DENY, EPERM, "no-quic" },
	/* resolve-time relaxation: deny rules with port/proto are skipped (they
	 * deny the connect, with their errno), allow ones match */
	{ "api.example.com", NULL, 0, ANY, NULL, false, ALLOW, 0, "api" },
	{ "api.example.com", NULL, 22, ANY, NULL, false, DENY, 99, "late-deny" },
	{ "api.example.com", NULL, 443, ANY, NULL, false, ALLOW, 0, "api" },
	{ "api.example.com", NULL, 0, UDP, NULL, false, DENY, 99, "late-deny" },
	{ "api.example.com", NULL, 0, TCP, NULL, false, ALLOW, 0, "api" },
	{ "www.example.com", NULL, 0, ANY, NULL, false, DENY, 99, "late-deny" },
	{ "unknown.test", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	/* wildcards, case, trailing dots */
	{ "github.com", NULL, 0, ANY, NULL, false, ALLOW, 0, "code" },
	{ "x.github.com", NULL, 0, ANY, NULL, false, ALLOW, 0, "code" },
	{ "a.b.c.github.com", NULL, 0, ANY, NULL, false, ALLOW, 0, "code" },
	{ "xgithub.com", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	{ "github.com.evil.test", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	{ "github.co", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	{ "com", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	{ "example.com", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	{ "X.GitHub.COM.", NULL, 0, ANY, NULL, false, ALLOW, 0, "code" }, /* not normalised */
	{ "api.example.com.", "93.184.216.34", 443, TCP, NULL, false, ALLOW, 0, "api" },
	/* CIDR v4/v6, mapped, numeric host entries */
	{ NULL, "10.1.2.3", 443, TCP, NULL, false, ALLOW, 0, "lan" },
	{ NULL, "::ffff:10.1.2.3", 443, TCP, NULL, false, ALLOW, 0, "lan" },
	{ NULL, "::10.1.2.3", 443, TCP, NULL, false, ALLOW, 0, "lan" },
	{ NULL, "11.1.2.3", 443, TCP, NULL, false, DENY, EACCES, "default" },
	{ NULL, "2001:db8:ffff::1", 443, TCP, NULL, false, ALLOW, 0, "lan" },
	{ NULL, "2001:db9::1", 443, TCP, NULL, false, DENY, EACCES, "default" },
	{ NULL, "192.0.2.200", 443, TCP, NULL, false, ALLOW, 0, "mapped" },
	{ NULL, "::ffff:192.0.2.1", 443, TCP, NULL, false, ALLOW, 0, "mapped" },
	{ NULL, "192.0.3.1", 443, TCP, NULL, false, DENY, EACCES, "default" },
	{ NULL, "198.51.100.7", 1, UDP, NULL, false, ALLOW, 0, "numeric" },
	{ NULL, "198.51.100.8", 1, UDP, NULL, false, DENY, EACCES, "default" },
	{ NULL, "2001:db9::7", 1, UDP, NULL, false, ALLOW, 0, "numeric" },
	{ "198.51.100.7", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	/* host OR cidr, then port */
	{ "both.example.net", "93.184.216.34", 443, TCP, NULL, false, ALLOW, 0, "both" },
	{ "other.test", "203.0.113.9", 443, TCP, NULL, false, ALLOW, 0, "both" },
	{ NULL, "203.0.113.9", 443, TCP, NULL, false, ALLOW, 0, "both" },
	{ NULL, "203.0.113.9", 80, TCP, NULL, false, DENY, EACCES, "default" },
	{ "both.example.net", NULL, 0, ANY, NULL, false, ALLOW, 0, "both" },
	/* exe */
	{ "tools.example.org", NULL, 0, ANY, "/usr/bin/curl", false, ALLOW, 0, "tools" },
	{ "tools.example.org", NULL, 0, ANY, "/usr/local/bin/curl", false, DENY, EACCES, "default" },
	{ "tools.example.org", NULL, 0, ANY, "/usr/bin/python3.11", false, ALLOW, 0, "tools" },
	{ "tools.example.org", NULL, 0, ANY, "/opt/py/python3", false, ALLOW, 0, "tools" },
	{ "tools.example.org", NULL, 0, ANY, "/usr/bin/python2", false, DENY, EACCES, "default" },
	{ "tools.example.org", NULL, 0, ANY, "python3", false, ALLOW, 0, "tools" },
	{ "tools.example.org", NULL, 0, ANY, NULL, false, DENY, EACCES, "default" },
	/* rules without host or cidr */
	{ NULL, "8.8.8.8", 53, UDP, "/usr/bin/dnsclient", false, ALLOW, 0, "dns" },
	{ "dns.google", NULL, 53, UDP, "/usr/bin/dnsclient", false, ALLOW, 0, "dns" },
	{ NULL, "8.8.8.8", 53, TCP, "/usr/bin/dnsclient", false, DENY, EACCES, "default" },
	{ NULL, "8.8.8.8", 53, UDP, "/usr/bin/other", false, DENY, EACCES, "default" },
	{ NULL, "8.8.8.8", 0, ANY, "/usr/bin/dnsclient", false, ALLOW, 0, "dns" },
	{ "anything.test", NULL, 0, ANY, "/usr/bin/dnsclient", false, ALLOW, 0, "dns" },
	/* private-range protection */
	{ NULL, "169.254.169.254", 80, TCP, NULL, false, DENY, ECONNREFUSED, "no-metadata" },
	{ "x.github.com", "169.254.169.254", 443, TCP, NULL, false, DENY, ECONNREFUSED,
	  "no-metadata" },
	{ "x.github.com", "169.254.1.1", 443, TCP, NULL, false, DENY, EPERM, "private" },
	{ "github.com", "127.0.0.1", 443, TCP, NULL, false, DENY, EPERM, "private" },
	{ "github.com", "::1", 443, TCP, NULL, false, DENY, EPERM, "private" },
	{ "github.com", "::ffff:192.168.0.1", 443, TCP, NULL, false, DENY, EPERM, "private" },
	{ "github.com", "fd00::1", 443, TCP, NULL, false, DENY, EPERM, "private" },
	{ "github.com", "140.82.112.3", 443, TCP, NULL, false, ALLOW, 0, "code" },
	{ NULL, "192.168.1.1", 53, UDP, "/usr/bin/dnsclient", false, DENY, EPERM, "private" },
	{ NULL, "172.16.5.5", 9, TCP, NULL, false, ALLOW, 0, "numeric" },
	{ NULL, "192.168.7.7", 443, TCP, NULL, false, ALLOW, 0, "both" },
	{ "both.example.net", "192.168.8.8", 443, TCP, NULL, false, DENY, EPERM, "private" },
	{ "intranet.corp", "192.168.1.10", 443, TCP, NULL, false, ALLOW, 0, "intranet" },
	{ "intranet.corp", "fe80::1", 443, TCP, NULL, false, ALLOW, 0, "intranet" },
	{ "build.internal", "172.20.0.7", 80, TCP, NULL, true, ALLOW, 0, "build" },
	{ "build.internal", "172.20.0.7", 80, TCP, NULL, false, DENY, EPERM, "private" },
	{ "www.example.com", "127.0.0.1", 80, TCP, NULL, false, DENY, 99, "late-deny" },
	{ NULL, "127.0.0.1", 80, TCP, NULL, false, DENY, EACCES, "default" },
};

static struct policy *decide_p; /* decide_policy, loaded by the fixture */

static void decide_setup(void)
{
	char err[POLICY_ERR_MAX];

	decide_p = load_text(decide_policy, err, sizeof err);
	ck_assert_msg(decide_p != NULL, "%s", err);
}

static void decide_teardown(void)
{
	policy_free(decide_p);
	decide_p = NULL;
}

START_TEST(test_policy_decide_table)
{
	struct proto_addr a;
	struct policy_request req = { .op = PROTO_OP_CONNECT };
	struct policy_verdict v;

	req.name = decide_cases[_i].name;
	if (decide_cases[_i].addr) {
		a = addr_of(decide_cases[_i].addr);
		req.addr = &a;
	} else {
		req.op = PROTO_OP_RESOLVE;
	}
	req.port = decide_cases[_i].port;
	req.l4 = decide_cases[_i].l4;
	req.exe = decide_cases[_i].exe;
	req.from_hosts = decide_cases[_i].from_hosts;
	policy_decide(decide_p, &req, &v);
	ck_assert_msg(v.action == decide_cases[_i].action && v.err == decide_cases[_i].err &&
			      strcmp(v.rule, decide_cases[_i].rule) == 0,
		      "case %d (%s %s %u): got %d/%d/%s, want %d/%d/%s", _i,
		      decide_cases[_i].name ? decide_cases[_i].name : "-",
		      decide_cases[_i].addr ? decide_cases[_i].addr : "-", decide_cases[_i].port,
		      v.action, v.err, v.rule, decide_cases[_i].action, decide_cases[_i].err,
		      decide_cases[_i].rule);
}
END_TEST

/* A long candidate list is split by port and by exe name: first match must
 * still win, for single ports, lists, small and wide ranges, rules without
 * ports, shadowed rules, literal and glob exe patterns, an unknown exe, and
 * requests without a port (a resolve). The same rules with only p1..p5
 * before them (13 rules, split as well since lists are split from 8; the
 * random sets below compare short, unsplit lists with a linear walk) must
 * decide the same. */
START_TEST(test_policy_decide_split)
{
	static const struct {
		uint16_t port;
		int l4;
		const char *exe;
		int action;
		const char *rule;
	} cases[] = {
		{ 1001, TCP, "/usr/bin/git", ALLOW, "p1" }, /* before the exe rule */
		{ 1020, TCP, NULL, ALLOW, "p20" },
		{ 1005, TCP, NULL, ALLOW, "p5" },           /* not the later, shadowed "again5" */
		{ 1021, TCP, NULL, ALLOW, "multi" },
		{ 3000, TCP, NULL, DENY, "wide" },          /* wide comes before multi */
		{ 1999, TCP, NULL, DENY, "any" },
		{ 1030, UDP, NULL, ALLOW, "udp-range" },
		{ 1030, TCP, NULL, DENY, "any" },
		{ 80, TCP, "/usr/bin/git", ALLOW, "git" },
		{ 80, TCP, "/usr/bin/curl", ALLOW, "curl-path" },
		{ 80, TCP, "/opt/curl", DENY, "any" },      /* the path names another curl */
		{ 80, TCP, "/usr/bin/python3", ALLOW, "glob" },
		{ 80, TCP, NULL, DENY, "any" },
		{ 0, TCP, NULL, ALLOW, "p1" },              /* a resolve: port-restricted allows match */
	};
	char text[8192], err[POLICY_ERR_MAX];
	size_t off = 0;

	for (int split = 0; split < 2; split++) {
		off = 0;
		/* with split = 0, only p1..p5 come before the others: 13 rules in all */
		for (int i = 1; i <= (split ? 20 : 5); i++)
			off += (size_t)snprintf(text + off, sizeof text - off,
						"[rule \"p%d\"]\nhost = h.test\nport = %d\naction = allow\n",
						i, 1000 + i);
		off += (size_t)snprintf(text + off, sizeof text - off,
					"[rule \"again5\"]\nhost = h.test\nport = 1005\naction = deny\n"
					"[rule \"wide\"]\nhost = h.test\nport = 2000-9000\naction = deny\n"
					"[rule \"multi\"]\nhost = h.test\nport = 3000, 1021\naction = allow\n"
					"[rule \"udp-range\"]\nhost = h.test\nport = 1025-1035\nproto = udp\n"
					"action = allow\n"
					"[rule \"git\"]\nhost = h.test\nexe = git\naction = allow\n"
					"[rule \"curl-path\"]\nhost = h.test\nexe = /usr/bin/curl\n"
					"action = allow\n"
					"[rule \"glob\"]\nhost = h.test\nexe = py*\naction = allow\n"
					"[rule \"any\"]\nhost = h.test\naction = deny\n");
		struct policy *p = load_text(text, err, sizeof err);

		ck_assert_msg(p != NULL, "%s", err);
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = cases[i].l4,
						      .port = cases[i].port, .name = "h.test",
						      .exe = cases[i].exe };
			struct policy_verdict v;

			if (!split && cases[i].port == 1020)
				continue; /* p20 is not there unsplit */
			if (cases[i].port == 0)
				req.op = PROTO_OP_RESOLVE;
			policy_decide(p, &req, &v);
			ck_assert_msg(v.action == cases[i].action && strcmp(v.rule, cases[i].rule) == 0,
				      "split %d, port %u: got %d %s", split, cases[i].port, v.action,
				      v.rule);
		}
		policy_free(p);
	}
}
END_TEST

/* "default = allow" never opens a private address; "private = allow" does. */
START_TEST(test_policy_decide_default_allow_private)
{
	static const struct {
		const char *policy;
		const char *addr;
		bool from_hosts;
		int action;
		const char *rule;
	} cases[] = {
		{ "[egress]\ndefault = allow\n", "1.1.1.1", false, ALLOW, "default" },
		{ "[egress]\ndefault = allow\n", "127.0.0.1", false, DENY, "private" },
		{ "[egress]\ndefault = allow\n", "169.254.169.254", false, DENY, "private" },
		{ "[egress]\ndefault = allow\n", "::ffff:169.254.169.254", false, DENY, "private" },
		{ "[egress]\ndefault = allow\n", "64:ff9b::a9fe:a9fe", false, DENY, "private" },
		{ "[egress]\ndefault = allow\n", "2002:a9fe:a9fe::1", false, DENY, "private" },
		{ "[egress]\ndefault = allow\n", "64:ff9b::101:101", false, ALLOW, "default" },
		{ "[egress]\ndefault = allow\n", "10.0.0.7", true, ALLOW, "default" },
		{ "[egress]\ndefault = allow\nprivate = allow\n", "127.0.0.1", false, ALLOW,
		  "default" },
		{ "[egress]\nprivate = allow\n[rule \"n\"]\nhost = x.test\naction = allow\n",
		  "169.254.169.254", false, ALLOW, "n" },
		{ "[egress]\nprivate = allow\n", "127.0.0.1", false, DENY, "default" },
		{ "[rule \"n\"]\nhost = x.test\nprivate = deny\naction = allow\n", "10.0.0.1",
		  false, DENY, "private" },
		{ "[rule \"n\"]\nhost = x.test\nprivate = deny\naction = allow\n", "10.0.0.1",
		  true, ALLOW, "n" },
#define CIDR(c) "[rule \"c\"]\ncidr = " c "\naction = allow\n"
		/* a cidr opens a private address only if no wider than its range */
		{ CIDR("0.0.0.0/0"), "169.254.169.254", false, DENY, "private" },
		{ CIDR("0.0.0.0/0"), "127.0.0.1", false, DENY, "private" },
		{ CIDR("0.0.0.0/0"), "1.1.1.1", false, ALLOW, "c" },
		{ CIDR("128.0.0.0/1"), "192.168.1.1", false, DENY, "private" },
		{ CIDR("169.254.0.0/16"), "169.254.169.254", false, ALLOW, "c" },
		{ CIDR("169.254.169.254/32"), "169.254.169.254", false, ALLOW, "c" },
		{ CIDR("10.0.0.0/8"), "10.0.0.1", false, ALLOW, "c" },
		{ CIDR("10.0.0.0/7"), "10.0.0.1", false, DENY, "private" },
		{ CIDR("0.0.0.0/0, 10.0.0.0/8"), "10.0.0.1", false, ALLOW, "c" },
		{ CIDR("::/0"), "::1", false, DENY, "private" },
		{ CIDR("::/0"), "2001:db8::1", false, ALLOW, "c" },
		{ CIDR("::1/128"), "::1", false, ALLOW, "c" },
		{ CIDR("fc00::/7"), "fd00::1", false, ALLOW, "c" },
		{ CIDR("64:ff9b::/96"), "64:ff9b::a9fe:a9fe", false, DENY, "private" },
		{ CIDR("64:ff9b::a9fe:a9fe/128"), "64:ff9b::a9fe:a9fe", false, ALLOW, "c" },
#undef CIDR
	};
	char err[POLICY_ERR_MAX];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy *p = load_text(cases[i].policy, err, sizeof err);
		struct proto_addr a = addr_of(cases[i].addr);
		struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = TCP, .port = 443,
					      .name = "x.test", .addr = &a,
					      .from_hosts = cases[i].from_hosts };
		struct policy_verdict v;

		ck_assert_msg(p != NULL, "%s", err);
		policy_decide(p, &req, &v);
		ck_assert_msg(v.action == cases[i].action && strcmp(v.rule, cases[i].rule) == 0,
			      "case %zu: got %d %s", i, v.action, v.rule);
		ck_assert_int_eq(v.err, v.action == DENY ? EPERM : 0);
		policy_free(p);
	}
}
END_TEST

/* ---------------------------------------------------------------- hosts */

START_TEST(test_policy_hosts_lookup_table)
{
	char err[POLICY_ERR_MAX], text[64];
	struct policy *p = load_text("[hosts]\n"
				     "build-cache.internal = 10.0.0.7\n"
				     "Build-Cache.Internal. = 2001:db8::7, 10.0.0.8\n"
				     "build-cache.internal = 10.0.0.7\n" /* repeat: no duplicate */
				     "mapped.internal = ::ffff:10.9.9.9\n",
				     err, sizeof err);
	struct proto_addr out[8];

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(policy_hosts_lookup(p, "build-cache.internal", out, 8), 3);
	policy_addr_format(&out[0], text, sizeof text);
	ck_assert_str_eq(text, "10.0.0.7");
	policy_addr_format(&out[1], text, sizeof text);
	ck_assert_str_eq(text, "2001:db8::7");
	policy_addr_format(&out[2], text, sizeof text);
	ck_assert_str_eq(text, "10.0.0.8");
	ck_assert_int_eq(policy_hosts_lookup(p, "build-cache.internal", out, 2), 2);
	ck_assert_int_eq(policy_hosts_lookup(p, "build-cache.internal", out, 0), 0);
	ck_assert_int_eq(policy_hosts_lookup(p, "mapped.internal", out, 8), 1);
	ck_assert_int_eq(out[0].family, 4);
	ck_assert_int_eq(policy_hosts_lookup(p, "other.internal", out, 8), 0);
	ck_assert_int_eq(policy_hosts_lookup(p, "internal", out, 8), 0);
	ck_assert_int_eq(policy_rule_count(p), 0);
	policy_free(p);
}
END_TEST

/* ------------------------------------------------------- 10,000 rules */

#define BIG_RULES 10000

/* One generated rule, as a linear reference understands it. */
struct big_rule {
	int kind;          /* 0 exact, 1 wildcard, 2 cidr v4, 3 exe, 4 exact + port */
	char host[64];     /* exact name or wildcard suffix */
	uint32_t net;      /* cidr network, host order */
	unsigned len;      /* cidr prefix length */
	char exe[16];      /* exe base name */
	uint16_t port;     /* 0 any */
	int action;
};

static struct big_rule *big_generate(char **text)
{
	struct big_rule *g = calloc(BIG_RULES, sizeof *g);
	size_t cap = (size_t)BIG_RULES * 128, used = 0;
	char *t = malloc(cap);

	ck_assert(g && t);
	used += (size_t)snprintf(t, cap, "[egress]\ndefault = deny\n");
	for (int i = 0; i < BIG_RULES; i++) {
		struct big_rule *r = &g[i];
		char line[160];

		r->kind = i % 5;
		r->action = i % 2 ? PROTO_DENY : PROTO_ALLOW;
		switch (r->kind) {
		case 0:
			snprintf(r->host, sizeof r->host, "n%d.example.com", i);
			snprintf(line, sizeof line, "host = %s", r->host);
			break;
		case 1: /* the same suffix recurs every 1000 rules */
			snprintf(r->host, sizeof r->host, "w%d.example.net", i % 1000);
			snprintf(line, sizeof line, "host = *.%s", r->host);
			break;
		case 2:
			if (i % 3 == 0) { /* /16, recurring every 256 such rules */
				r->net = 12u << 24 | (uint32_t)(i % 256) << 16;
				r->len = 16;
			} else {
				r->net = 11u << 24 | (uint32_t)((i / 256) % 256) << 16 |
					 (uint32_t)(i % 256) << 8;
				r->len = 24;
			}
			snprintf(line, sizeof line, "cidr = %u.%u.%u.%u/%u", r->net >> 24,
				 (r->net >> 16) & 255, (r->net >> 8) & 255, r->net & 255, r->len);
			break;
		case 3:
			snprintf(r->exe, sizeof r->exe, "tool%d", i % 2000);
			snprintf(line, sizeof line, "exe = %s", r->exe);
			break;
		default: /* shadowed by rule i - 4 except on its port */
			snprintf(r->host, sizeof r->host, "n%d.example.com", i - 4);
			r->port = 443;
			snprintf(line, sizeof line, "host = %s\nport = 443", r->host);
			break;
		}
		ck_assert(used + 200 < cap);
		used += (size_t)snprintf(t + used, cap - used, "[rule \"r%d\"]\n%s\naction = %s\n", i,
					 line, r->action == PROTO_ALLOW ? "allow" : "deny");
	}
	*text = t;
	return g;
}

/* The first generated rule matching, by a linear walk; -1 for none. */
static int big_reference(const struct big_rule *g, const char *name, uint32_t addr, bool has_addr,
			 const char *exe, uint16_t port)
{
	for (int i = 0; i < BIG_RULES; i++) {
		const struct big_rule *r = &g[i];
		bool m = false;

		switch (r->kind) {
		case 0:
		case 4:
			m = name && strcmp(name, r->host) == 0;
			break;
		case 1: {
			size_t n = name ? strlen(name) : 0, s = strlen(r->host);

			m = n > s + 1 && name[n - s - 1] == '.' && strcmp(name + n - s, r->host) == 0;
			break;
		}
		case 2:
			m = has_addr && (addr & (0xffffffffu << (32 - r->len))) == r->net;
			break;
		case 3:
			m = exe && strcmp(exe, r->exe) == 0;
			break;
		}
		if (m && r->port && !(port ? port == r->port : r->action != PROTO_DENY))
			m = false;
		if (m)
			return i;
	}
	return -1;
}

START_TEST(test_policy_decide_10000_rules)
{
	char *text, err[POLICY_ERR_MAX], name[128], exe[32], want[32];
	struct big_rule *g = big_generate(&text);
	struct policy *p = load_text(text, err, sizeof err);
	unsigned seed = 12345;
	int checked = 0, matched = 0;

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_eq(policy_rule_count(p), BIG_RULES);
	for (int q = 0; q < 4000; q++) {
		struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP };
		struct proto_addr a;
		struct policy_verdict v;
		uint32_t addr = 0;
		int k, ref;

		seed = seed * 1103515245u + 12345u;
		k = (int)((seed >> 8) % 12000);
		switch (q % 6) {
		case 0:
			snprintf(name, sizeof name, "n%d.example.com", k);
			req.name = name;
			break;
		case 1:
			snprintf(name, sizeof name, "%s.w%d.example.net", q % 2 ? "a" : "a.b",
				 k % 1100);
			req.name = name;
			break;
		case 2:
			snprintf(name, sizeof name, "w%d.example.net", k % 1000);
			req.name = name; /* a wildcard's own suffix: no match */
			break;
		case 3:
			addr = (q % 2 ? 11u : 12u) << 24 | (uint32_t)(k % 50) << 16 |
			       (uint32_t)(k % 256) << 8 | 9;
			break;
		case 4:
			snprintf(exe, sizeof exe, "/usr/bin/tool%d", k % 2100);
			req.exe = exe;
			snprintf(name, sizeof name, "nothing%d.test", k);
			req.name = name;
			break;
		case 5: /* name, address and exe together: the earliest wins */
			snprintf(name, sizeof name, "n%d.example.com", k / 5 * 5);
			req.name = name;
			addr = 11u << 24 | (uint32_t)(k / 256 % 40) << 16 | (uint32_t)(k % 256) << 8;
			snprintf(exe, sizeof exe, "tool%d", k % 2000);
			req.exe = exe;
			break;
		}
		req.port = q % 3 == 0 ? 443 : q % 3 == 1 ? 80 : 0;
		if (req.port == 0)
			req.l4 = PROTO_L4_ANY;
		if (addr) {
			memset(&a, 0, sizeof a);
			a.family = 4;
			a.bytes[0] = (uint8_t)(addr >> 24);
			a.bytes[1] = (uint8_t)(addr >> 16);
			a.bytes[2] = (uint8_t)(addr >> 8);
			a.bytes[3] = (uint8_t)addr;
			req.addr = &a;
		}
		ref = big_reference(g, req.name, addr, addr != 0,
				    req.exe ? strrchr(req.exe, '/') ? strrchr(req.exe, '/') + 1 : req.exe
					    : NULL,
				    req.port);
		policy_decide(p, &req, &v);
		if (ref < 0) {
			ck_assert_msg(strcmp(v.rule, "default") == 0, "query %d: got %s, want default",
				      q, v.rule);
		} else {
			snprintf(want, sizeof want, "r%d", ref);
			ck_assert_msg(strcmp(v.rule, want) == 0, "query %d: got %s, want %s", q, v.rule,
				      want);
			ck_assert_int_eq(v.action, g[ref].action);
			matched++;
		}
		checked++;
	}
	ck_assert_int_eq(checked, 4000);
	ck_assert_msg(matched > 1000, "only %d queries matched a rule", matched);

	/* First match among duplicates: w1 is named by r1, r1001, ... r9001. */
	{
		struct policy_request req = { .op = PROTO_OP_RESOLVE, .name = "x.w1.example.net" };
		struct policy_verdict v;

		policy_decide(p, &req, &v);
		ck_assert_str_eq(v.rule, "r1");
	}
	policy_free(p);
	free(text);
	free(g);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------- random rule sets */

/* A differential test: random rule sets, written as policy files and also
 * kept as plain data, and random requests judged both by policy_decide and
 * by ref_decide below, a straightforward first-match walk over the rules
 * in file order that uses no index. Names, wildcards, cidrs (IPv4, IPv6,
 * IPv4-mapped, numeric hosts), ports and ranges (narrow ones are indexed
 * by port, wide ones not), proto, literal and glob exe patterns, rules for
 * any destination, private ranges (rule and [egress] private, [hosts]
 * addresses); the small pools make long candidate lists, which are split. */

#define RND_HOSTS 3
#define RND_CIDRS 3
#define RND_PORTS 3
#define RND_EXES 2

struct rnd_rule {
	int action;
	int err;
	bool private_allow;
	char hosts[RND_HOSTS][48];   /* exact, or "*.suffix" */
	int nhosts;
	struct proto_addr nets[RND_CIDRS]; /* canonical, host bits zero */
	unsigned lens[RND_CIDRS];
	int ncidrs;
	unsigned lo[RND_PORTS], hi[RND_PORTS];
	int nports;
	unsigned l4;                 /* bit 1 << PROTO_L4_TCP, 1 << PROTO_L4_UDP; 0 any */
	char exes[RND_EXES][24];
	int nexes;
	uint64_t limit;              /* rewrite: limit, 0 none */
	int transport;               /* rewrite: its own transport's kind, 0 none */
};

struct rnd_set {
	struct rnd_rule *r;
	int n;
	int dflt;
	int dflt_err;
	bool private_allow;
};

static unsigned rnd_next(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17; /* xorshift64 */
	return (unsigned)(*s >> 16);
}

#define RND(s, n) (rnd_next(s) % (unsigned)(n))

static const char *const rnd_v4[] = {
	"10.0.0.1", "10.0.1.7", "10.1.0.1", "192.168.1.5", "203.0.113.9", "203.0.113.200",
	"198.51.100.1", "169.254.169.254", "127.0.0.1", "8.8.8.8", "100.64.1.1", "0.0.0.0",
};
static const char *const rnd_v6[] = {
	"2001:db8::1", "2001:db8:0:1::5", "2001:db8:1::9", "fd00::1", "fe80::1", "::1",
	"2606:4700::1111", "64:ff9b::a9fe:a9fe",
};
static const char *const rnd_exe[] = {
	"/usr/bin/curl", "/usr/bin/git", "/opt/tool/bin/git", "/usr/bin/python3", "node",
};

/* Writes a name of the pool (n0..n5 under z0..z2 under test, and
 * one-label names) to out. */
static void rnd_name(uint64_t *s, char *out, size_t cap)
{
	switch (RND(s, 4)) {
	case 0: snprintf(out, cap, "z%u.test", RND(s, 3)); break;
	case 1: snprintf(out, cap, "test"); break;
	default: snprintf(out, cap, "n%u.z%u.test", RND(s, 6), RND(s, 3)); break;
	}
}

/* Picks an address of the pools into a (canonical). */
static void rnd_addr(uint64_t *s, struct proto_addr *a)
{
	char buf[64];

	switch (RND(s, 6)) {
	case 0: case 1: case 2:
		ck_assert(policy_addr_parse(rnd_v4[RND(s, N(rnd_v4))], a) == 0);
		break;
	case 3:
		snprintf(buf, sizeof buf, "::ffff:%s", rnd_v4[RND(s, N(rnd_v4))]);
		ck_assert(policy_addr_parse(buf, a) == 0);
		break;
	default:
		ck_assert(policy_addr_parse(rnd_v6[RND(s, N(rnd_v6))], a) == 0);
	}
	policy_addr_canonical(a);
}

/* Zeroes the bits of b beyond the first len. */
static void rnd_mask(uint8_t *b, unsigned len)
{
	for (unsigned i = 0; i < 16; i++)
		b[i] = len >= 8 * (i + 1) ? b[i] : len <= 8 * i ? 0 : (uint8_t)(b[i] & 0xff << (8 - len % 8));
}

/* Makes rule i of a random set, appending its section to text. */
static void rnd_rule_make(uint64_t *s, struct rnd_rule *r, int i, char *text, size_t cap,
			  size_t *used)
{
	static const char *const act[] = { "", "allow", "deny", "rewrite" };
	static const unsigned plens4[] = { 0, 8, 16, 24, 31, 32 };
	static const unsigned plens6[] = { 0, 16, 32, 48, 64, 120, 128 };
	char *t = text + *used;
	size_t left = cap - *used;
	int n = 0;

	memset(r, 0, sizeof *r);
	n += snprintf(t + n, left - (size_t)n, "[rule \"r%d\"]\n", i);
	if (RND(s, 10)) { /* one in ten has no destination */
		int nh = (int)RND(s, RND_HOSTS + 1), nc = (int)RND(s, RND_CIDRS + 1);

		if (!nh && !nc)
			nh = 1;
		for (int k = 0; k < nh; k++) {
			char name[40];

			rnd_name(s, name, sizeof name);
			if (RND(s, 3) == 0)
				snprintf(r->hosts[k], sizeof r->hosts[k], "*.%s", name);
			else
				snprintf(r->hosts[k], sizeof r->hosts[k], "%s", name);
			n += snprintf(t + n, left - (size_t)n, "host = %s\n", r->hosts[k]);
		}
		r->nhosts = nh;
		for (int k = 0; k < nc; k++) {
			struct proto_addr a;
			char txt[64];
			bool host = RND(s, 5) == 0, mapped = false;
			unsigned len;

			rnd_addr(s, &a);
			len = a.family == 4 ? plens4[RND(s, N(plens4))] : plens6[RND(s, N(plens6))];
			if (host)
				len = a.family == 4 ? 32 : 128;
			rnd_mask(a.bytes, len);
			r->nets[k] = a;
			r->lens[k] = len;
			if (a.family == 4 && !host && RND(s, 4) == 0)
				mapped = true; /* ::ffff:a.b.c.d/(96 + len) */
			policy_addr_format(&a, txt, sizeof txt);
			if (host)
				n += snprintf(t + n, left - (size_t)n, "host = %s\n", txt);
			else if (mapped)
				n += snprintf(t + n, left - (size_t)n, "cidr = ::ffff:%s/%u\n", txt, 96 + len);
			else
				n += snprintf(t + n, left - (size_t)n, "cidr = %s/%u\n", txt, len);
		}
		r->ncidrs = nc;
	}
	if (RND(s, 3)) {
		r->nports = 1 + (int)RND(s, RND_PORTS);
		for (int k = 0; k < r->nports; k++) {
			unsigned kind = RND(s, 4);

			r->lo[k] = 440 + RND(s, 10);
			r->hi[k] = kind == 0 ? r->lo[k] + RND(s, 8) : kind == 1 ? r->lo[k] + 100 : r->lo[k];
			if (r->lo[k] == r->hi[k])
				n += snprintf(t + n, left - (size_t)n, "port = %u\n", r->lo[k]);
			else
				n += snprintf(t + n, left - (size_t)n, "port = %u-%u\n", r->lo[k], r->hi[k]);
		}
	}
	switch (RND(s, 6)) {
	case 0: r->l4 = 1u << PROTO_L4_TCP; n += snprintf(t + n, left - (size_t)n, "proto = tcp\n"); break;
	case 1: r->l4 = 1u << PROTO_L4_UDP; n += snprintf(t + n, left - (size_t)n, "proto = udp\n"); break;
	case 2:
		r->l4 = 1u << PROTO_L4_TCP | 1u << PROTO_L4_UDP;
		n += snprintf(t + n, left - (size_t)n, "proto = udp, tcp\n");
		break;
	}
	if (RND(s, 3) == 0) {
		static const char *const pats[] = { "git", "curl", "/usr/bin/git", "/usr/bin/curl",
						    "py*", "/usr/*/git", "n?de", "python3", "/opt/*" };

		r->nexes = 1 + (int)RND(s, RND_EXES);
		for (int k = 0; k < r->nexes; k++) {
			snprintf(r->exes[k], sizeof r->exes[k], "%s", pats[RND(s, N(pats))]);
			n += snprintf(t + n, left - (size_t)n, "exe = %s\n", r->exes[k]);
		}
	}
	r->action = 1 + (int)RND(s, 3);
	n += snprintf(t + n, left - (size_t)n, "action = %s\n", act[r->action]);
	r->err = EPERM;
	if (r->action == PROTO_DENY && RND(s, 3) == 0) {
		r->err = ECONNREFUSED;
		n += snprintf(t + n, left - (size_t)n, "errno = ECONNREFUSED\n");
	}
	if (r->action == PROTO_REWRITE && RND(s, 3) == 0) {
		r->limit = 65536;
		n += snprintf(t + n, left - (size_t)n, "limit = 64K\n");
	}
	if (r->action == PROTO_REWRITE && RND(s, 3) == 0) {
		r->transport = POLICY_RELAY;
		n += snprintf(t + n, left - (size_t)n, "transport = relay\n");
	}
	if (RND(s, 8) == 0) {
		r->private_allow = RND(s, 2);
		n += snprintf(t + n, left - (size_t)n, "private = %s\n", r->private_allow ? "allow" : "deny");
	}
	ck_assert((size_t)n < left);
	*used += (size_t)n;
}

/* True when the first len bits of a and net agree. */
static bool rnd_in(const struct proto_addr *a, const struct proto_addr *net, unsigned len)
{
	struct proto_addr m = *a;

	if (a->family != net->family)
		return false;
	rnd_mask(m.bytes, len);
	return memcmp(m.bytes, net->bytes, 16) == 0;
}

/* The verdict by a linear walk in file order: the reference. */
static void ref_decide(const struct rnd_set *set, const struct policy_request *req,
		       struct policy_verdict *v, int *hit_out)
{
	const char *name = req->name, *base = NULL;
	int hit = -1, alen = -1;
	unsigned plen;

	if (req->exe)
		base = strrchr(req->exe, '/') ? strrchr(req->exe, '/') + 1 : req->exe;
	for (int i = 0; i < set->n && hit < 0; i++) {
		const struct rnd_rule *r = &set->r[i];
		bool dest = !r->nhosts && !r->ncidrs, ok;
		int len = -1;

		for (int k = 0; k < r->nhosts && name; k++) {
			const char *h = r->hosts[k];

			if (h[0] == '*') {
				size_t nl = strlen(name), sl = strlen(h + 2);

				dest |= nl > sl + 1 && name[nl - sl - 1] == '.' && !strcmp(name + nl - sl, h + 2);
			} else {
				dest |= !strcmp(name, h);
			}
		}
		for (int k = 0; k < r->ncidrs && req->addr; k++) {
			if (rnd_in(req->addr, &r->nets[k], r->lens[k])) {
				dest = true;
				if ((int)r->lens[k] > len)
					len = (int)r->lens[k];
			}
		}
		if (!dest)
			continue;
		if ((r->nports || r->l4) && r->action == PROTO_DENY && req->op == PROTO_OP_RESOLVE)
			continue;
		ok = !r->nports || (req->port == 0 && r->action != PROTO_DENY);
		for (int k = 0; k < r->nports && req->port; k++)
			ok |= req->port >= r->lo[k] && req->port <= r->hi[k];
		if (!ok)
			continue;
		if (r->l4 && (req->l4 == PROTO_L4_ANY ? r->action == PROTO_DENY
						      : !(r->l4 & (1u << req->l4))))
			continue;
		ok = !r->nexes;
		for (int k = 0; k < r->nexes && base; k++)
			ok |= strchr(r->exes[k], '/') ? fnmatch(r->exes[k], req->exe, FNM_PATHNAME) == 0
						      : fnmatch(r->exes[k], base, 0) == 0;
		if (!ok)
			continue;
		hit = i;
		alen = len;
	}
	*hit_out = hit;
	v->limit = 0;
	v->transport = NULL;
	if (hit >= 0) {
		v->action = set->r[hit].action;
		v->err = v->action == PROTO_DENY ? set->r[hit].err : 0;
		v->limit = set->r[hit].limit;
		v->transport = set->r[hit].transport ? (const void *)1 : NULL; /* its own */
	} else {
		v->action = set->dflt;
		v->err = v->action == PROTO_DENY ? set->dflt_err : 0;
	}
	plen = req->addr ? policy_addr_private_len(req->addr) : 0;
	if (v->action != PROTO_DENY && plen && alen < (int)plen &&
	    !(hit >= 0 && set->r[hit].private_allow) && !set->private_allow && !req->from_hosts) {
		v->action = PROTO_DENY;
		v->err = EPERM;
		hit = -2;
		*hit_out = hit;
	}
}

START_TEST(test_policy_decide_random_sets)
{
	static const char *const dflt[] = { "", "allow", "deny", "rewrite" };
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	size_t cap = 1 << 20;
	char *text = malloc(cap), err[POLICY_ERR_MAX], name[64], want[16];
	int matched = 0, privates = 0, decided = 0;

	ck_assert(text);
	for (int set_i = 0; set_i < 120; set_i++) {
		struct rnd_set set;
		size_t used = 0;
		struct policy *p;

		set.n = 1 + (int)RND(&seed, set_i % 4 == 3 ? 1500 : 120);
		set.r = calloc((size_t)set.n, sizeof *set.r);
		set.dflt = 1 + (int)RND(&seed, 3);
		set.dflt_err = RND(&seed, 2) ? EPERM : EHOSTUNREACH;
		set.private_allow = RND(&seed, 10) == 0;
		ck_assert(set.r);
		used += (size_t)snprintf(text, cap, "[egress]\ndefault = %s\nerrno = %s\nprivate = %s\n"
					 "[hosts]\nn1.z1.test = 10.0.0.1\n",
					 dflt[set.dflt], set.dflt_err == EPERM ? "EPERM" : "EHOSTUNREACH",
					 set.private_allow ? "allow" : "deny");
		for (int i = 0; i < set.n; i++)
			rnd_rule_make(&seed, &set.r[i], i, text, cap, &used);
		p = load_text(text, err, sizeof err);
		ck_assert_msg(p != NULL, "set %d: %s", set_i, err);
		for (int q = 0; q < 600; q++) {
			static const int ops[] = { PROTO_OP_CONNECT, PROTO_OP_SEND, PROTO_OP_RESOLVE };
			static const int l4s[] = { PROTO_L4_TCP, PROTO_L4_UDP, PROTO_L4_ANY };
			struct policy_request req = { .op = ops[RND(&seed, 3)], .l4 = l4s[RND(&seed, 3)] };
			struct proto_addr a;
			struct policy_verdict v, w;
			int ref;

			if (RND(&seed, 4)) {
				rnd_name(&seed, name, sizeof name);
				if (RND(&seed, 3) == 0) { /* a subdomain of a pool name */
					memmove(name + 2, name, strlen(name) + 1);
					memcpy(name, "x.", 2);
				}
				req.name = name;
			}
			if (req.op != PROTO_OP_RESOLVE || RND(&seed, 8) == 0) {
				rnd_addr(&seed, &a);
				req.addr = &a;
			}
			req.port = RND(&seed, 5) ? (uint16_t)(438 + RND(&seed, 120)) : 0;
			if (RND(&seed, 3))
				req.exe = rnd_exe[RND(&seed, N(rnd_exe))];
			req.from_hosts = RND(&seed, 10) == 0;
			ref_decide(&set, &req, &w, &ref);
			policy_decide(p, &req, &v);
			if (ref >= 0)
				snprintf(want, sizeof want, "r%d", ref);
			else
				snprintf(want, sizeof want, "%s", ref == -2 ? "private" : "default");
			/* a rule's own transport, or the [egress] one (direct) */
			ck_assert_int_eq(v.transport->kind, w.transport ? POLICY_RELAY : POLICY_DIRECT);
			ck_assert_msg(ref < 0 || v.limit == w.limit, "set %d query %d: limit %llu",
				      set_i, q, (unsigned long long)v.limit);
			ck_assert_msg(v.action == w.action && v.err == w.err && strcmp(v.rule, want) == 0,
				      "set %d query %d (%s, port %u, op %d, l4 %d, exe %s): got %d/%d/%s, "
				      "want %d/%d/%s", set_i, q, req.name ? req.name : "-", req.port, req.op,
				      req.l4, req.exe ? req.exe : "-", v.action, v.err, v.rule, w.action,
				      w.err, want);
			matched += ref >= 0;
			privates += ref == -2;
			decided++;
		}
		policy_free(p);
		free(set.r);
	}
	free(text);
	ck_assert_int_eq(decided, 120 * 600);
	ck_assert_msg(matched > decided / 4 && privates > 100, "matched %d, private %d of %d",
		      matched, privates, decided);
}
END_TEST

/* ---------------------------------------------------------------- suite */

/* [egress] unix: the host sockets an isolated program may reach, by path
 * or glob (a * does not cross a /); the key may be given more than once. */
START_TEST(test_policy_unix_globs)
{
	char err[POLICY_ERR_MAX], *path;
	struct policy *p;

	path = tmp_write("[egress]\nunix = /run/user/*/gnupg/S.gpg-agent, /tmp/ssh-*/agent.*\n"
			 "unix = /var/run/app.sock\n");
	p = policy_load(path, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert(policy_unix_allowed(p, "/run/user/1000/gnupg/S.gpg-agent"));
	ck_assert(policy_unix_allowed(p, "/tmp/ssh-XXXXabc/agent.123"));
	ck_assert(policy_unix_allowed(p, "/var/run/app.sock"));
	ck_assert(!policy_unix_allowed(p, "/run/user/1000/x/gnupg/S.gpg-agent"));
	ck_assert(!policy_unix_allowed(p, "/run/docker.sock"));
	ck_assert(!policy_unix_allowed(p, "/var/run/app.sock2"));
	policy_free(p);
	unlink(path);
	free(path);
	path = tmp_write("[egress]\ndefault = deny\n");
	p = policy_load(path, err, sizeof err);
	ck_assert(!policy_unix_allowed(p, "/run/docker.sock")); /* none named: none */
	policy_free(p);
	unlink(path);
	free(path);
}
END_TEST

Suite *suite_policy(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase_create("name");
	tcase_add_loop_test(tc, test_policy_name_normalise_table, 0, N(name_cases));
	tcase_add_test(tc, test_policy_name_normalise_lengths);
	suite_add_tcase(s, tc);

	tc = tcase_create("addr");
	tcase_add_loop_test(tc, test_policy_addr_parse_table, 0, N(addr_cases));
	tcase_add_test(tc, test_policy_addr_canonical_leaves_v6);
	tcase_add_test(tc, test_policy_addr_format_small);
	suite_add_tcase(s, tc);

	tc = tcase_create("errno");
	tcase_add_loop_test(tc, test_policy_errno_parse_names, 0, N(errno_cases));
	tcase_add_test(tc, test_policy_errno_parse_numbers);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_test(tc, test_policy_load_defaults);
	tcase_add_test(tc, test_policy_load_egress_keys);
	tcase_add_test(tc, test_policy_load_example);
	tcase_add_loop_test(tc, test_policy_load_bad, 0, N(bad_cases));
	tcase_add_test(tc, test_policy_unix_globs);
	tcase_add_test(tc, test_policy_load_bad_never_shows_password);
	tcase_add_test(tc, test_policy_load_many_line_ends);
	tcase_add_loop_test(tc, test_policy_transport_parse, 0,
			    sizeof transport_cases / sizeof transport_cases[0]);
	tcase_add_test(tc, test_policy_rewrite_verdicts);
	tcase_add_test(tc, test_policy_load_missing_file);
	tcase_add_test(tc, test_policy_load_small_err_buffer);
	tcase_add_test(tc, test_policy_load_appends_lists);
	suite_add_tcase(s, tc);

	tc = tcase_create("decide_table");
	tcase_add_checked_fixture(tc, decide_setup, decide_teardown);
	tcase_add_loop_test(tc, test_policy_decide_table, 0, N(decide_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("decide");
	tcase_add_test(tc, test_policy_decide_default_allow_private);
	tcase_add_test(tc, test_policy_decide_split);
	tcase_add_test(tc, test_policy_hosts_lookup_table);
	tcase_add_test(tc, test_policy_decide_10000_rules);
	tcase_add_test(tc, test_policy_decide_random_sets);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
