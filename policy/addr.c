/* addr.c: numeric addresses: parsing, canonical form, private ranges, text. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int policy_addr_parse(const char *s, struct proto_addr *a)
{
	memset(a, 0, sizeof *a);
	if (!s)
		return -1;
	/* glibc's inet_pton takes only a.b.c.d in decimal, no leading zeros. */
	if (inet_pton(AF_INET, s, a->bytes) == 1) {
		a->family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->bytes) == 1) {
		a->family = 6;
		return 0;
	}
	memset(a, 0, sizeof *a);
	return -1;
}

/* True when the first n bytes of b are zero. */
static bool zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

void policy_addr_canonical(struct proto_addr *a)
{
	const uint8_t *b = a->bytes;

	if (proto_addr_unmap(a) || a->family != 6)
		return;
	/* ::a.b.c.d, except :: and ::1, which are IPv6 addresses of their own. */
	if (!zero(b, 12) || (zero(b + 12, 3) && b[15] <= 1))
		return;
	a->family = 4;
	memmove(a->bytes, a->bytes + 12, 4);
	memset(a->bytes + 4, 0, 12);
}

/* True when the first len bits of x equal those of net. */
static bool in_prefix(const uint8_t *x, const uint8_t *net, unsigned len)
{
	unsigned whole = len / 8, rest = len % 8;

	if (memcmp(x, net, whole))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (x[whole] & mask) == (net[whole] & mask);
}

/* Fills v4 with the IPv4 address that an IPv6 address of a translation or
 * tunnel prefix delivers to, and returns true: NAT64 64:ff9b::/96 and SIIT
 * ::ffff:0:0/96 (last 32 bits), 6to4 2002::/16 (bits 16-47, the relay),
 * Teredo 2001::/32 (the server in bits 32-63, the client inverted in the
 * last 32; either counts). Without this, 64:ff9b::a9fe:a9fe would pass as
 * a public address on a network with a NAT64 gateway. */
static int embedded_v4(const uint8_t *b, uint8_t v4[2][4])
{
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
	static const uint8_t siit[12] = { [8] = 0xff, [9] = 0xff };

	if (memcmp(b, nat64, 12) == 0 || memcmp(b, siit, 12) == 0) {
		memcpy(v4[0], b + 12, 4);
		return 1;
	}
	if (b[0] == 0x20 && b[1] == 0x02) {
		memcpy(v4[0], b + 2, 4);
		return 1;
	}
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
		memcpy(v4[0], b + 4, 4);
		for (int i = 0; i < 4; i++)
			v4[1][i] = (uint8_t)~b[12 + i];
		return 2;
	}
	return 0;
}

unsigned policy_addr_private_len(const struct proto_addr *in)
{
	static const struct {
		uint8_t family, len, net[16];
	} ranges[] = {
		{ 4, 8, { 0 } },
		{ 4, 8, { 127 } },
		{ 4, 8, { 10 } },
		{ 4, 12, { 172, 16 } },
		{ 4, 16, { 192, 168 } },
		{ 4, 16, { 169, 254 } },
		{ 4, 10, { 100, 64 } },
		{ 4, 4, { 224 } },
		{ 4, 32, { 255, 255, 255, 255 } },
		{ 6, 128, { 0 } },
		{ 6, 128, { [15] = 1 } },
		{ 6, 7, { 0xfc } },
		{ 6, 10, { 0xfe, 0x80 } },
		{ 6, 8, { 0xff } },
	};
	struct proto_addr a = *in;

	/* Canonical by contract; done again so that a mapped form can never
	 * pass as public. */
	policy_addr_canonical(&a);
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if (ranges[i].family == a.family && in_prefix(a.bytes, ranges[i].net, ranges[i].len))
			return ranges[i].len;
	if (a.family == 6) {
		uint8_t v4[2][4];
		int n = embedded_v4(a.bytes, v4);

		for (int k = 0; k < n; k++) {
			struct proto_addr e = { .family = 4 };

			memcpy(e.bytes, v4[k], 4);
			if (policy_addr_private_len(&e))
				return 128; /* opened only by naming the whole address */
		}
	}
	return 0;
}

bool policy_addr_private(const struct proto_addr *a)
{
	return policy_addr_private_len(a) != 0;
}

void policy_addr_format(const struct proto_addr *a, char *buf, size_t cap)
{
	char tmp[INET6_ADDRSTRLEN] = "?";
	size_t n = 0;

	if (!cap)
		return;
	if (a->family == 4) { /* by hand: glibc's inet_ntop formats IPv4 with sprintf */
		for (int i = 0; i < 4; i++) {
			unsigned v = a->bytes[i];

			if (v >= 100)
				tmp[n++] = (char)('0' + v / 100);
			if (v >= 10)
				tmp[n++] = (char)('0' + v / 10 % 10);
			tmp[n++] = (char)('0' + v % 10);
			tmp[n++] = i < 3 ? '.' : 0;
		}
	} else if (a->family != 6 || !inet_ntop(AF_INET6, a->bytes, tmp, sizeof tmp)) {
		strcpy(tmp, "?");
	}
	n = strlen(tmp);
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, tmp, n);
	buf[n] = 0;
}

void policy_addr_mask(uint8_t *bytes, unsigned family, unsigned len)
{
	unsigned size = family == 4 ? 4 : 16;

	for (unsigned i = 0; i < 16; i++) {
		if (i >= size || len <= 8 * i)
			bytes[i] = 0;
		else if (len < 8 * (i + 1))
			bytes[i] &= (uint8_t)(0xff << (8 * (i + 1) - len));
	}
}
