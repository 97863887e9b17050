/* fuzz_nflog.c: libFuzzer target for the NFLOG parser (broker/nflog.c),
 * which reads what the kernel sends for each packet an isolated namespace
 * drops, every length in it treated as hostile. Each packet it hands over
 * must be one it could frame within the input: an address family of 0, 4
 * or 6 that its addresses agree with, and no ports without a family; and
 * no more messages (packets and malformed ones) than the input can hold. */
#include <stdlib.h>

#include "../../broker/broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void check(void *ctx, const struct nflog_packet *p)
{
	(*(int *)ctx)++;
	if (p->family != 0 && p->family != 4 && p->family != 6)
		abort();
	if (p->family && (p->src.family != p->family || p->dst.family != p->family))
		abort();
	if (!p->family && (p->sport || p->dport || p->src.family || p->dst.family))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	unsigned bad;
	int seen = 0, n = nflog_parse(data, len, check, &seen, &bad);

	if (n != seen || (size_t)n + bad > len / 16 + 1)
		abort();
	return 0;
}
