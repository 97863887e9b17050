/* check_hostsfile.c: the hosts file reader (policy/hostsfile.c). */
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../policy/hostsfile.h"

static const char *hosts_text = "127.0.0.1\tlocalhost\n"
				"::1 localhost ip6-localhost # comment\n"
				"127.0.1.1 box.example Box\n"
				"127.0.0.5 mixed.test\n"
				"10.0.0.1 mixed.test lan.test\n"
				"# 127.0.0.1 commented.test\n"
				"not-an-address junk.test\n"
				"10.0.0.1 lan2.test\n";

/* A hosts file's loopback-only names: every entry of the name loopback. */
START_TEST(test_hostsfile_loopback_only)
{
	char dir[64], path[128];

	tmpdir(dir);
	write_file(dir, "hosts", hosts_text, path, sizeof path);
	ck_assert(hostsfile_loopback_only(path, "localhost"));
	ck_assert(hostsfile_loopback_only(path, "box.example"));
	ck_assert(hostsfile_loopback_only(path, "BOX")); /* names match without case */
	ck_assert(!hostsfile_loopback_only(path, "mixed.test"));
	ck_assert(!hostsfile_loopback_only(path, "lan.test"));
	ck_assert(!hostsfile_loopback_only(path, "commented.test"));
	ck_assert(!hostsfile_loopback_only(path, "junk.test"));
	ck_assert(!hostsfile_loopback_only(path, "absent.test"));
	ck_assert(!hostsfile_loopback_only("/nonexistent/hosts", "localhost"));
	unlink(path);
	rmdir(dir);
}
END_TEST

/* The names of an address: the first line's canonical name first, its
 * aliases, then later lines', at most max, in what fits. */
START_TEST(test_hostsfile_names)
{
	struct proto_addr a = { .family = 4, .bytes = { 10, 0, 0, 1 } };
	struct proto_addr lo6 = { .family = 6, .bytes = { [15] = 1 } };
	struct proto_addr mapped = { .family = 6, .bytes = { [10] = 0xff, [11] = 0xff, 127, 0, 1, 1 } };
	char dir[64], path[128], out[64];

	tmpdir(dir);
	write_file(dir, "hosts", hosts_text, path, sizeof path);
	ck_assert_int_eq(hostsfile_names(path, &a, out, sizeof out, 8), 3);
	ck_assert_str_eq(out, "mixed.test");
	ck_assert_str_eq(out + 11, "lan.test");
	ck_assert_str_eq(out + 20, "lan2.test");
	ck_assert_int_eq(hostsfile_names(path, &a, out, sizeof out, 1), 1);
	ck_assert_int_eq(hostsfile_names(path, &a, out, 12, 8), 1); /* what fits */
	ck_assert_int_eq(hostsfile_names(path, &lo6, out, sizeof out, 8), 2);
	ck_assert_str_eq(out, "localhost");
	ck_assert_int_eq(hostsfile_names(path, &mapped, out, sizeof out, 8), 2); /* as IPv4 */
	ck_assert_str_eq(out, "box.example");
	a.bytes[3] = 9;
	ck_assert_int_eq(hostsfile_names(path, &a, out, sizeof out, 8), 0);
	ck_assert_int_eq(hostsfile_names("/nonexistent/hosts", &lo6, out, sizeof out, 8), 0);
	unlink(path);
	rmdir(dir);
}
END_TEST

Suite *suite_hostsfile(void)
{
	Suite *s = suite_create("hostsfile");
	TCase *tc = tcase_create("read");

	tcase_add_test(tc, test_hostsfile_loopback_only);
	tcase_add_test(tc, test_hostsfile_names);
	suite_add_tcase(s, tc);
	return s;
}
