/* fuzz_upstream.c: libFuzzer target for what proxies answer: the HTTP
 * CONNECT response parser and the SOCKS5 reply parsers (and the header of
 * a datagram from a SOCKS5 relay), fed the same input
 * at every split point the broker may see (it reads in pieces), which must
 * all agree with the whole. */
#include <stdlib.h>

#include "../../broker/broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char reason[64];
	int status, rep, whole;
	size_t need;

	whole = upstream_http_response((const char *)data, len, &status, reason, sizeof reason);
	if (whole > (int)len || (whole > 0 && (status < 100 || status > 599)))
		abort();
	for (size_t cut = 0; whole > 0 && cut < (size_t)whole; cut++)
		if (upstream_http_response((const char *)data, cut, &status, reason, sizeof reason) != 0)
			abort(); /* complete before its end */

	whole = upstream_socks5_connect_reply(data, len, &rep, &need);
	if (whole > (int)len || (whole == 0 && need <= len))
		abort();
	for (size_t cut = 0; whole > 0 && cut < (size_t)whole; cut++)
		if (upstream_socks5_connect_reply(data, cut, &rep, &need) != 0 || need <= cut)
			abort();
	upstream_socks5_method_reply(data, len, &rep);
	upstream_socks5_auth_reply(data, len, &rep);
	{
		struct proto_addr a;
		uint16_t port;
		int h = upstream_socks5_udp_data(data, len);

		if (h > (int)len || h == 0)
			abort(); /* a header longer than the datagram, or none */
		if (upstream_socks5_bound(data, len, &a, &port) == 0 && a.family != 4 &&
		    a.family != 6)
			abort();
	}
	return 0;
}
