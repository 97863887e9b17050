/* fuzz_dns.c: libFuzzer target for the DNS question reader and the answer
 * writer (policy/dns.c), which read what a program in an isolated
 * namespace sends. A question read must give a name of at most
 * PROTO_NAME_MAX bytes without dots at its ends, and the answer to it must
 * fit its buffer and start with the query's id and question. */
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const struct proto_addr addrs[2] = { { .family = 4, .bytes = { 198, 18, 0, 1 } },
						    { .family = 6, .bytes = { 0x20, 0x01, 0x0d, 0xb8 } } };
	uint8_t out[DNS_MSG_MAX];
	struct dns_question q;
	size_t nl;
	int n;

	if (dns_parse_query(data, len, &q) != 0)
		return 0;
	nl = strlen(q.name);
	if (nl == 0 || nl > PROTO_NAME_MAX || q.name[0] == '.' || q.name[nl - 1] == '.' ||
	    q.qlen > len)
		abort();
	n = dns_build_answer(data, &q, DNS_NOERROR, addrs, 2, 60, out, sizeof out);
	if (q.qlen <= sizeof out && (n < (int)q.qlen || n > (int)sizeof out ||
				     memcmp(out, data, 2) != 0 ||
				     memcmp(out + 12, data + 12, q.qlen - 12) != 0))
		abort();
	return 0;
}
