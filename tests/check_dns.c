/* check_dns.c: unit tests of policy/dns.c, the DNS questions and answers
 * the broker's stub and the shim's res_* hooks read and write. */
#include <string.h>

#include "dns.h"
#include "suites.h"
#include "testlib.h"

/* A query for name (dotted) of type, id 0x1234 with RD, into buf. Returns
 * its length. */
static size_t query(uint8_t *buf, const char *name, uint16_t type)
{
	size_t off = 12;

	memset(buf, 0, 12);
	buf[0] = 0x12, buf[1] = 0x34, buf[2] = 0x01, buf[5] = 1;
	for (const char *p = name; *p;) {
		size_t l = strcspn(p, ".");
		buf[off++] = (uint8_t)l;
		memcpy(buf + off, p, l);
		off += l;
		p += l + (p[l] == '.');
	}
	buf[off++] = 0;
	buf[off++] = (uint8_t)(type >> 8), buf[off++] = (uint8_t)type;
	buf[off++] = 0, buf[off++] = DNS_CLASS_IN;
	return off;
}

START_TEST(test_dns_parse_query_reads_the_question)
{
	uint8_t buf[DNS_MSG_MAX];
	struct dns_question q;
	size_t n = query(buf, "api.example.com", DNS_TYPE_AAAA);

	ck_assert_int_eq(dns_parse_query(buf, n, &q), 0);
	ck_assert_str_eq(q.name, "api.example.com");
	ck_assert_uint_eq(q.qtype, DNS_TYPE_AAAA);
	ck_assert_uint_eq(q.qclass, DNS_CLASS_IN);
	ck_assert_uint_eq(q.id, 0x1234);
	ck_assert_uint_eq(q.qlen, n);
}
END_TEST

START_TEST(test_dns_parse_query_refuses_what_reads_two_ways)
{
	uint8_t buf[DNS_MSG_MAX];
	struct dns_question q;
	size_t n = query(buf, "a.example", DNS_TYPE_A);

	for (size_t cut = 0; cut < n; cut++) /* every truncation */
		ck_assert_int_eq(dns_parse_query(buf, cut, &q), -1);
	buf[2] |= 0x80; /* a response */
	ck_assert_int_eq(dns_parse_query(buf, n, &q), -1);
	buf[2] &= 0x7f;
	buf[5] = 2; /* two questions */
	ck_assert_int_eq(dns_parse_query(buf, n, &q), -1);
	buf[5] = 1;
	buf[12] = 0xc0; /* a compression pointer */
	ck_assert_int_eq(dns_parse_query(buf, n, &q), -1);
	n = query(buf, "a.example", DNS_TYPE_A);
	buf[13] = '.'; /* a dot inside a label: "a" would read as ".example"'s sibling */
	ck_assert_int_eq(dns_parse_query(buf, n, &q), -1);
	buf[13] = 0;
	ck_assert_int_eq(dns_parse_query(buf, n, &q), -1);
}
END_TEST

START_TEST(test_dns_build_answer_records_of_the_type_asked)
{
	uint8_t buf[DNS_MSG_MAX], out[DNS_MSG_MAX];
	struct proto_addr addrs[2] = { A("198.18.0.7"), A("2001:db8::1") };
	struct dns_question q;
	size_t n = query(buf, "web.test", DNS_TYPE_A);
	int len;

	ck_assert_int_eq(dns_parse_query(buf, n, &q), 0);
	len = dns_build_answer(buf, &q, DNS_NOERROR, addrs, 2, 60, out, sizeof out);
	ck_assert_int_eq(len, (int)n + 16);
	ck_assert_uint_eq(out[2] & 0x80, 0x80);              /* a response */
	ck_assert_uint_eq(out[3] & 0x0f, DNS_NOERROR);
	ck_assert_uint_eq(out[7], 1);                        /* one record: the A */
	ck_assert_int_eq(memcmp(out + n + 12, addrs[0].bytes, 4), 0);
	ck_assert_uint_eq(out[n + 9], 60);                   /* ttl */
	len = dns_build_answer(buf, &q, DNS_NXDOMAIN, addrs, 2, 60, out, sizeof out);
	ck_assert_int_eq(len, (int)n);
	ck_assert_uint_eq(out[3] & 0x0f, DNS_NXDOMAIN);
	ck_assert_uint_eq(out[7], 0);
	len = dns_build_answer(buf, &q, DNS_NOERROR, addrs, 2, 60, out, n + 4); /* no room */
	ck_assert_int_eq(len, (int)n);
	ck_assert_uint_eq(out[2] & 0x02, 0x02);              /* TC */
	ck_assert_int_eq(dns_build_answer(buf, &q, DNS_NOERROR, addrs, 2, 60, out, n - 1), -1);
}
END_TEST

Suite *suite_dns(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("dns");

	tcase_add_test(tc, test_dns_parse_query_reads_the_question);
	tcase_add_test(tc, test_dns_parse_query_refuses_what_reads_two_ways);
	tcase_add_test(tc, test_dns_build_answer_records_of_the_type_asked);
	suite_add_tcase(s, tc);
	return s;
}
