/* check_upstream.c: unit tests of broker/upstream.c: the HTTP CONNECT and
 * SOCKS5 handshake codec. */
#include <errno.h>
#include <string.h>

#include "suites.h"
#include "testlib.h"
#include "../broker/broker.h"

START_TEST(test_upstream_http_request)
{
	struct policy_transport t = { .kind = POLICY_HTTP };
	char out[600];

	ck_assert_int_gt(upstream_http_request(out, sizeof out, "api.example.com", 443, &t), 0);
	ck_assert_str_eq(out, "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n");
	ck_assert_int_gt(upstream_http_request(out, sizeof out, "2001:db8::1", 80, &t), 0);
	ck_assert_str_eq(out, "CONNECT [2001:db8::1]:80 HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n");
	t.auth = true;
	strcpy(t.user, "Aladdin");
	strcpy(t.pass, "open sesame");
	ck_assert_int_gt(upstream_http_request(out, sizeof out, "a.b", 1, &t), 0);
	ck_assert_str_eq(out, "CONNECT a.b:1 HTTP/1.1\r\nHost: a.b:1\r\n"
			      "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
	/* nothing can be smuggled into the request line */
	ck_assert_int_eq(upstream_http_request(out, sizeof out, "a.b\r\nX: y", 1, &t), -1);
	ck_assert_int_eq(upstream_http_request(out, sizeof out, "a b", 1, &t), -1);
	ck_assert_int_eq(upstream_http_request(out, 20, "api.example.com", 443, &t), -1);
}
END_TEST

START_TEST(test_upstream_http_response_split)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nBANNER";
	size_t hdr = strlen(ok) - strlen("BANNER");
	char reason[64];
	int status;

	for (size_t len = 0; len < hdr; len++)
		ck_assert_int_eq(upstream_http_response(ok, len, &status, reason, sizeof reason), 0);
	for (size_t len = hdr; len <= strlen(ok); len++) {
		ck_assert_int_eq(upstream_http_response(ok, len, &status, reason, sizeof reason),
				 (int)hdr); /* the banner is left for the program */
		ck_assert_int_eq(status, 200);
		ck_assert_str_eq(reason, "Connection established");
	}
	ck_assert_int_eq(upstream_http_response("HTTP/1.0 403 Forbidden\n\n", 24, &status, reason,
						sizeof reason), 24);
	ck_assert_int_eq(status, 403);
	ck_assert_int_eq(upstream_http_response("SSH-2.0-x\r\n\r\n", 13, &status, reason,
						sizeof reason), -1);
	ck_assert_int_eq(upstream_http_response("HTTP/1.1 20 x\r\n\r\n", 17, &status, reason,
						sizeof reason), -1);
	ck_assert_int_eq(upstream_http_response("HTTP/1.1 200 a\x01\x7f\r\n\r\n", 20, &status,
						reason, sizeof reason), 20);
	ck_assert_str_eq(reason, "a??"); /* only printable bytes reach the audit log */
}
END_TEST

START_TEST(test_upstream_http_response_too_long)
{
	static char big[UPSTREAM_HTTP_MAX];
	char reason[8];
	int status;

	memset(big, 'a', sizeof big);
	memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
	ck_assert_int_eq(upstream_http_response(big, sizeof big, &status, reason, sizeof reason), -1);
}
END_TEST

static const struct {
	int status, err;
} http_errnos[] = {
	{ 200, 0 }, { 204, 0 }, { 403, EACCES }, { 407, EACCES }, { 504, ETIMEDOUT },
	{ 400, ECONNREFUSED }, { 404, ECONNREFUSED }, { 500, ECONNREFUSED }, { 502, ECONNREFUSED },
	{ 503, ECONNREFUSED }, { 301, ECONNREFUSED },
};

START_TEST(test_upstream_http_errno)
{
	ck_assert_int_eq(upstream_http_errno(http_errnos[_i].status), http_errnos[_i].err);
}
END_TEST

START_TEST(test_upstream_socks5_messages)
{
	struct policy_transport t = { .kind = POLICY_SOCKS5 };
	struct proto_addr a4 = A("10.1.2.3"), a6 = A("2001:db8::1");
	uint8_t out[600];
	int method, status;

	ck_assert_int_eq(upstream_socks5_greeting(out, sizeof out, &t), 3);
	ck_assert_mem_eq(out, "\x05\x01\x00", 3);
	t.auth = true;
	strcpy(t.user, "me");
	strcpy(t.pass, "pw");
	ck_assert_int_eq(upstream_socks5_greeting(out, sizeof out, &t), 4);
	ck_assert_mem_eq(out, "\x05\x02\x00\x02", 4);
	ck_assert_int_eq(upstream_socks5_auth(out, sizeof out, &t), 7);
	ck_assert_mem_eq(out, "\x01\x02me\x02pw", 7);

	ck_assert_int_eq(upstream_socks5_method_reply((const uint8_t *)"\x05", 1, &method), 0);
	ck_assert_int_eq(upstream_socks5_method_reply((const uint8_t *)"\x05\x02", 2, &method), 2);
	ck_assert_int_eq(method, 2);
	ck_assert_int_eq(upstream_socks5_method_reply((const uint8_t *)"\x04\x00", 2, &method), -1);
	ck_assert_int_eq(upstream_socks5_auth_reply((const uint8_t *)"\x01\x01", 2, &status), 2);
	ck_assert_int_eq(status, 1);
	ck_assert_int_eq(upstream_socks5_auth_reply((const uint8_t *)"\x05\x00", 2, &status), -1);

	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, "api.example.com", &a4, 443), 22);
	ck_assert_mem_eq(out, "\x05\x01\x00\x03\x0f" "api.example.com" "\x01\xbb", 22);
	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, NULL, &a4, 80), 10);
	ck_assert_mem_eq(out, "\x05\x01\x00\x01\x0a\x01\x02\x03\x00\x50", 10);
	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, NULL, &a6, 80), 22);
	ck_assert_int_eq(out[3], 4);
	ck_assert_int_eq(upstream_socks5_connect(out, sizeof out, "a.b:1\r\n", &a4, 80), -1);
}
END_TEST

/* Every reply, cut at every length, asks for more until it is whole. */
START_TEST(test_upstream_socks5_reply_split)
{
	static const struct {
		size_t len;
		const char *bytes;
		int rep;
	} replies[] = {
		{ 10, "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38", 0 },
		{ 22, "\x05\x05\x00\x04" "0123456789abcdef" "\x00\x50", 5 },
		{ 11, "\x05\x02\x00\x03\x04" "host" "\x00\x50", 2 },
	};

	for (size_t r = 0; r < sizeof replies / sizeof replies[0]; r++) {
		const uint8_t *b = (const uint8_t *)replies[r].bytes;
		size_t need;
		int rep = -1;

		for (size_t len = 0; len < replies[r].len; len++) {
			ck_assert_int_eq(upstream_socks5_connect_reply(b, len, &rep, &need), 0);
			ck_assert_uint_gt(need, len);
			ck_assert_uint_le(need, replies[r].len);
		}
		ck_assert_int_eq(upstream_socks5_connect_reply(b, replies[r].len, &rep, &need),
				 (int)replies[r].len);
		ck_assert_int_eq(rep, replies[r].rep);
	}
	{
		size_t need;
		int rep;
		ck_assert_int_eq(upstream_socks5_connect_reply((const uint8_t *)"\x05\x00\x00\x09\x00",
							       5, &rep, &need), -1);
		ck_assert_int_eq(upstream_socks5_connect_reply((const uint8_t *)"\x04\x00\x00\x01\x00",
							       5, &rep, &need), -1);
	}
}
END_TEST

START_TEST(test_upstream_socks5_errno)
{
	static const int want[] = { 0, ECONNREFUSED, EACCES, ENETUNREACH, EHOSTUNREACH,
				    ECONNREFUSED, ETIMEDOUT, EPROTO, EPROTO, ECONNREFUSED };

	for (int rep = 0; rep < 10; rep++)
		ck_assert_int_eq(upstream_socks5_errno(rep), want[rep]);
	ck_assert_str_eq(upstream_socks5_reply_text(5), "connection refused");
	ck_assert_str_eq(upstream_socks5_reply_text(200), "unknown");
}
END_TEST

START_TEST(test_upstream_name_ok)
{
	char long_name[300];

	ck_assert(upstream_name_ok("api.example.com"));
	ck_assert(upstream_name_ok("a_b-c.d"));
	ck_assert(!upstream_name_ok(""));
	ck_assert(!upstream_name_ok("a..b"));
	ck_assert(!upstream_name_ok(".a"));
	ck_assert(!upstream_name_ok("a."));
	ck_assert(!upstream_name_ok("a b"));
	ck_assert(!upstream_name_ok("a:1"));
	ck_assert(!upstream_name_ok("u@h"));
	ck_assert(!upstream_name_ok("a/b"));
	memset(long_name, 'a', sizeof long_name);
	long_name[64] = 0;
	ck_assert(!upstream_name_ok(long_name)); /* a 64-byte label */
	for (int i = 0; i < 254; i++)
		long_name[i] = i % 50 == 49 ? '.' : 'a';
	long_name[253] = 0;
	ck_assert(upstream_name_ok(long_name)); /* 253 bytes */
	long_name[253] = 'a';
	long_name[254] = 0;
	ck_assert(!upstream_name_ok(long_name)); /* 254 bytes */
}
END_TEST

/* SOCKS5 for datagrams: UDP ASSOCIATE, the relay's address in its reply,
 * and the header each datagram carries both ways. */
START_TEST(test_upstream_socks5_udp)
{
	static const uint8_t assoc[] = { 5, 3, 0, 1, 0, 0, 0, 0, 0, 0 };
	static const uint8_t reply4[] = { 5, 0, 0, 1, 127, 0, 0, 1, 0x2b, 0x67 };
	static const uint8_t reply6[] = { 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
					  0, 0, 0, 0, 0, 0, 0, 1, 0, 53 };
	static const uint8_t named[] = { 5, 0, 0, 3, 1, 'r', 0, 53 };
	uint8_t out[400], dgram[64];
	struct proto_addr a = { .family = 4, .bytes = { 10, 0, 0, 9 } }, b;
	uint16_t port;
	int n;

	ck_assert_int_eq(upstream_socks5_udp_associate(out, sizeof out), (int)sizeof assoc);
	ck_assert_int_eq(memcmp(out, assoc, sizeof assoc), 0);
	ck_assert_int_eq(upstream_socks5_udp_associate(out, 4), -1);
	ck_assert_int_eq(upstream_socks5_bound(reply4, sizeof reply4, &b, &port), 0);
	ck_assert_int_eq(b.family, 4);
	ck_assert_int_eq(b.bytes[0], 127);
	ck_assert_uint_eq(port, 0x2b67);
	ck_assert_int_eq(upstream_socks5_bound(reply6, sizeof reply6, &b, &port), 0);
	ck_assert_int_eq(b.family, 6);
	ck_assert_uint_eq(port, 53);
	ck_assert_int_eq(upstream_socks5_bound(reply6, sizeof reply6 - 1, &b, &port), -1);
	ck_assert_int_eq(upstream_socks5_bound(named, sizeof named, &b, &port), -1);
	/* the header: by name (remote DNS), or by address */
	n = upstream_socks5_udp_header(out, sizeof out, "dns.example", NULL, 53);
	ck_assert_int_eq(n, 3 + 1 + 1 + 11 + 2);
	ck_assert_int_eq(out[3], 3);
	ck_assert_int_eq(memcmp(out + 5, "dns.example", 11), 0);
	ck_assert_int_eq(upstream_socks5_udp_header(out, sizeof out, "Not A Name", NULL, 53), -1);
	n = upstream_socks5_udp_header(out, sizeof out, NULL, &a, 123);
	ck_assert_int_eq(n, 10);
	ck_assert_int_eq(out[3], 1);
	ck_assert_int_eq(out[8], 0);
	ck_assert_int_eq(out[9], 123);
	/* a datagram back: where its data starts */
	memcpy(dgram, out, (size_t)n);
	memcpy(dgram + n, "pong", 4);
	ck_assert_int_eq(upstream_socks5_udp_data(dgram, (size_t)n + 4), n);
	ck_assert_int_eq(upstream_socks5_udp_data(dgram, (size_t)n - 1), -1); /* short */
	dgram[2] = 1;                                                        /* a fragment */
	ck_assert_int_eq(upstream_socks5_udp_data(dgram, (size_t)n + 4), -1);
	dgram[2] = 0;
	dgram[3] = 9; /* no such address type */
	ck_assert_int_eq(upstream_socks5_udp_data(dgram, (size_t)n + 4), -1);
}
END_TEST

Suite *suite_upstream(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc = tcase_create("upstream");

	tcase_add_test(tc, test_upstream_http_request);
	tcase_add_test(tc, test_upstream_http_response_split);
	tcase_add_test(tc, test_upstream_http_response_too_long);
	tcase_add_loop_test(tc, test_upstream_http_errno, 0,
			    sizeof http_errnos / sizeof http_errnos[0]);
	tcase_add_test(tc, test_upstream_socks5_messages);
	tcase_add_test(tc, test_upstream_socks5_reply_split);
	tcase_add_test(tc, test_upstream_socks5_errno);
	tcase_add_test(tc, test_upstream_socks5_udp);
	tcase_add_test(tc, test_upstream_name_ok);
	suite_add_tcase(s, tc);
	return s;
}
