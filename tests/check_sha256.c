/* check_sha256.c: unit tests of broker/sha256.c: the digest of known
 * vectors, of a long input fed in pieces, and of a file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

static const struct {
	const char *in;
	const char *hex;
} sha_vectors[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
	  "lmnopqrsmnopqrstnopqrstu",
	  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
};

START_TEST(test_sha256_hex_vectors)
{
	char hex[65];

	sha256_hex(sha_vectors[_i].in, strlen(sha_vectors[_i].in), hex);
	ck_assert_str_eq(hex, sha_vectors[_i].hex);
}
END_TEST

START_TEST(test_sha256_update_million_a)
{
	struct sha256 c;
	uint8_t d[32];
	char chunk[1001], hex[65];
	static const char digits[] = "0123456789abcdef";

	memset(chunk, 'a', sizeof chunk);
	sha256_init(&c);
	for (int i = 0; i < 1000; i++)
		sha256_update(&c, chunk, i % 2 ? 999 : 1001); /* odd splits across blocks */
	sha256_final(&c, d);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = 0;
	ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(test_sha256_file_matches_bytes)
{
	char dir[64], path[128], a[65], b[65];
	const char *text = "[egress]\ndefault = deny\n";

	tmpdir(dir);
	write_file(dir, "p.ini", text, path, sizeof path);
	ck_assert_int_eq(sha256_file(path, a), 0);
	sha256_hex(text, strlen(text), b);
	ck_assert_str_eq(a, b);
	unlink(path);
	ck_assert_int_eq(sha256_file(path, a), -1);
	rmdir(dir);
}
END_TEST

Suite *suite_sha256(void)
{
	Suite *s = suite_create("sha256");
	TCase *tc = tcase_create("sha256");

	tcase_add_loop_test(tc, test_sha256_hex_vectors, 0,
			    sizeof sha_vectors / sizeof sha_vectors[0]);
	tcase_add_test(tc, test_sha256_update_million_a);
	tcase_add_test(tc, test_sha256_file_matches_bytes);
	suite_add_tcase(s, tc);
	return s;
}
