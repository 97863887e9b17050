/* upstream.c: the bytes of the proxy handshakes the transport speaks, built
 * and parsed without any I/O so that they can be tested and fuzzed alone:
 * HTTP CONNECT (RFC 9110 9.3.6) and SOCKS5 (RFC 1928) with username and
 * password authentication (RFC 1929); and what each refusal means as an
 * errno for the program:
 *
 *   HTTP 2xx                      0 (tunnel up)
 *   HTTP 403, 407                 EACCES
 *   HTTP 504                      ETIMEDOUT
 *   any other HTTP status         ECONNREFUSED
 *   SOCKS5 reply 1 (failure)      ECONNREFUSED
 *   SOCKS5 reply 2 (ruleset)      EACCES
 *   SOCKS5 reply 3 (network)      ENETUNREACH
 *   SOCKS5 reply 4 (host)         EHOSTUNREACH
 *   SOCKS5 reply 5 (refused)      ECONNREFUSED
 *   SOCKS5 reply 6 (TTL expired)  ETIMEDOUT
 *   SOCKS5 reply 7, 8 (command, address type not supported)  EPROTO
 *   other SOCKS5 replies          ECONNREFUSED
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"

/* --------------------------------------------------------------- names */

bool upstream_name_ok(const char *name)
{
	char norm[PROTO_NAME_MAX + 1];

	return policy_name_normalise(name, norm, sizeof norm) == 0 && strcmp(norm, name) == 0;
}

/* ------------------------------------------------------------------ HTTP */

/* Appends the base64 of in[0..n) to out at *o (cap bytes). Returns 0 or -1. */
static int base64(const uint8_t *in, size_t n, char *out, size_t cap, size_t *o)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (*o + (n + 2) / 3 * 4 >= cap)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[(*o)++] = tab[v >> 18 & 63];
		out[(*o)++] = tab[v >> 12 & 63];
		out[(*o)++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[(*o)++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[*o] = 0;
	return 0;
}

int upstream_http_request(char *out, size_t cap, const char *host, uint16_t port,
			  const struct policy_transport *t)
{
	const char *open = strchr(host, ':') ? "[" : "", *close = *open ? "]" : "";
	struct proto_addr a;
	uint8_t cred[2 * 256];
	size_t o, ul, pl;
	int n;

	/* a name, or an address: nothing else may reach the request line */
	if (*open ? policy_addr_parse(host, &a) < 0 || a.family != 6 : !upstream_name_ok(host))
		return -1;
	n = snprintf(out, cap, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n", open, host,
		     close, port, open, host, close, port);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	o = (size_t)n;
	if (t->auth) {
		ul = strlen(t->user);
		pl = strlen(t->pass);
		memcpy(cred, t->user, ul);
		cred[ul] = ':';
		memcpy(cred + ul + 1, t->pass, pl);
		n = snprintf(out + o, cap - o, "Proxy-Authorization: Basic ");
		if (n < 0 || (size_t)n >= cap - o)
			return -1;
		o += (size_t)n;
		if (base64(cred, ul + 1 + pl, out, cap, &o) < 0)
			return -1;
		memset(cred, 0, sizeof cred);
		if (o + 2 >= cap)
			return -1;
		memcpy(out + o, "\r\n", 2);
		o += 2;
	}
	if (o + 3 >= cap)
		return -1;
	memcpy(out + o, "\r\n", 3);
	return (int)o + 2;
}

int upstream_http_response(const char *buf, size_t len, int *status, char *reason, size_t cap)
{
	const char *end = NULL, *eol, *r;
	size_t hlen, rl;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n') {
			end = buf + i + 2;
			break;
		}
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			end = buf + i + 3;
			break;
		}
	}
	if (!end)
		return len >= UPSTREAM_HTTP_MAX ? -1 : 0;
	hlen = (size_t)(end - buf);
	if (hlen > UPSTREAM_HTTP_MAX || hlen < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n'))
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	eol = memchr(buf, '\n', hlen);
	r = buf[12] == ' ' ? buf + 13 : buf + 12;
	rl = (size_t)(eol - r);
	if (rl > 0 && r[rl - 1] == '\r')
		rl--;
	if (cap) {
		size_t k = 0;
		for (size_t i = 0; i < rl && k + 1 < cap; i++) /* printable only: it is logged */
			reason[k++] = r[i] >= 0x20 && r[i] < 0x7f ? r[i] : '?';
		reason[k] = 0;
	}
	return (int)hlen;
}

int upstream_http_errno(int status)
{
	if (status >= 200 && status < 300)
		return 0;
	if (status == 403 || status == 407)
		return EACCES;
	if (status == 504)
		return ETIMEDOUT;
	return ECONNREFUSED;
}

/* ---------------------------------------------------------------- SOCKS5 */

int upstream_socks5_greeting(uint8_t *out, size_t cap, const struct policy_transport *t)
{
	if (cap < 4)
		return -1;
	out[0] = 5;
	out[1] = t->auth ? 2 : 1;
	out[2] = 0x00; /* no authentication */
	out[3] = 0x02; /* username/password */
	return t->auth ? 4 : 3;
}

int upstream_socks5_method_reply(const uint8_t *in, size_t len, int *method)
{
	if (len < 2)
		return 0;
	if (in[0] != 5)
		return -1;
	*method = in[1];
	return 2;
}

int upstream_socks5_auth(uint8_t *out, size_t cap, const struct policy_transport *t)
{
	size_t ul = strlen(t->user), pl = strlen(t->pass);

	if (ul == 0 || ul > 255 || pl > 255 || cap < 3 + ul + pl)
		return -1;
	out[0] = 1;
	out[1] = (uint8_t)ul;
	memcpy(out + 2, t->user, ul);
	out[2 + ul] = (uint8_t)pl;
	memcpy(out + 3 + ul, t->pass, pl);
	return (int)(3 + ul + pl);
}

int upstream_socks5_auth_reply(const uint8_t *in, size_t len, int *status)
{
	if (len < 2)
		return 0;
	if (in[0] != 1)
		return -1;
	*status = in[1];
	return 2;
}

/* Writes a SOCKS5 address (type, address, port) for name or addr at out.
 * Returns its length, or -1 for a name that may not go there. */
static int socks5_address(uint8_t *out, const char *name, const struct proto_addr *addr,
			  uint16_t port)
{
	size_t o = 1, n;

	if (name) { /* the proxy resolves it: remote DNS */
		if (!upstream_name_ok(name))
			return -1;
		n = strlen(name);
		out[0] = 3;
		out[o++] = (uint8_t)n;
		memcpy(out + o, name, n);
		o += n;
	} else {
		n = addr->family == 4 ? 4 : 16;
		out[0] = addr->family == 4 ? 1 : 4;
		memcpy(out + o, addr->bytes, n);
		o += n;
	}
	out[o++] = (uint8_t)(port >> 8);
	out[o++] = (uint8_t)port;
	return (int)o;
}

/* The length of the SOCKS5 address at in (len bytes there), 0 when more
 * are needed, -1 for an unknown type. */
static int socks5_address_len(const uint8_t *in, size_t len)
{
	size_t want;

	if (len < 2)
		return 0;
	switch (in[0]) {
	case 1: want = 1 + 4 + 2; break;
	case 3: want = 1 + 1 + (size_t)in[1] + 2; break;
	case 4: want = 1 + 16 + 2; break;
	default: return -1;
	}
	return len < want ? 0 : (int)want;
}

int upstream_socks5_udp_associate(uint8_t *out, size_t cap)
{
	static const struct proto_addr any = { .family = 4 };

	if (cap < 3 + 7)
		return -1;
	out[0] = 5;
	out[1] = 3; /* UDP ASSOCIATE, from an address not known yet: 0.0.0.0:0 */
	out[2] = 0;
	return 3 + socks5_address(out + 3, NULL, &any, 0);
}

int upstream_socks5_bound(const uint8_t *in, size_t len, struct proto_addr *a, uint16_t *port)
{
	size_t n;

	if (len < 4 || (in[3] != 1 && in[3] != 4))
		return -1; /* a relay named, not addressed (3): we cannot send to it */
	memset(a, 0, sizeof *a);
	a->family = in[3] == 1 ? 4 : 6;
	n = a->family == 4 ? 4 : 16;
	if (len < 4 + n + 2)
		return -1;
	memcpy(a->bytes, in + 4, n);
	*port = (uint16_t)(in[4 + n] << 8 | in[4 + n + 1]);
	return 0;
}

int upstream_socks5_udp_header(uint8_t *out, size_t cap, const char *name,
			       const struct proto_addr *addr, uint16_t port)
{
	int n;

	if (cap < 3 + 1 + 1 + PROTO_NAME_MAX + 2)
		return -1;
	out[0] = out[1] = 0; /* RSV */
	out[2] = 0;          /* FRAG: whole datagrams only */
	n = socks5_address(out + 3, name, addr, port);
	return n < 0 ? -1 : 3 + n;
}

int upstream_socks5_udp_data(const uint8_t *in, size_t len)
{
	int n;

	if (len < 4 || in[0] || in[1] || in[2])
		return -1; /* not a whole datagram (a fragment), or not a reply */
	n = socks5_address_len(in + 3, len - 3);
	return n <= 0 ? -1 : 3 + n;
}

int upstream_socks5_connect(uint8_t *out, size_t cap, const char *name,
			    const struct proto_addr *addr, uint16_t port)
{
	int n;

	if (cap < 4 + 1 + PROTO_NAME_MAX + 2)
		return -1;
	out[0] = 5;
	out[1] = 1; /* CONNECT */
	out[2] = 0;
	n = socks5_address(out + 3, name, addr, port);
	return n < 0 ? -1 : 3 + n;
}

int upstream_socks5_connect_reply(const uint8_t *in, size_t len, int *rep, size_t *need)
{
	int n;

	*need = 5; /* enough to know the address length */
	if (len < 5)
		return 0;
	if (in[0] != 5 || in[2] != 0)
		return -1;
	n = socks5_address_len(in + 3, len - 3);
	if (n < 0)
		return -1;
	*need = 3 + (size_t)(in[3] == 1 ? 7 : in[3] == 4 ? 19 : 4 + in[4]);
	if (n == 0)
		return 0;
	*rep = in[1];
	return 3 + n;
}

int upstream_socks5_errno(int rep)
{
	switch (rep) {
	case 0: return 0;
	case 2: return EACCES;
	case 3: return ENETUNREACH;
	case 4: return EHOSTUNREACH;
	case 6: return ETIMEDOUT;
	case 7: case 8: return EPROTO;
	}
	return ECONNREFUSED;
}

const char *upstream_socks5_reply_text(int rep)
{
	static const char *const text[] = {
		"succeeded", "general failure", "not allowed by ruleset", "network unreachable",
		"host unreachable", "connection refused", "TTL expired", "command not supported",
		"address type not supported",
	};

	return rep >= 0 && rep < (int)(sizeof text / sizeof text[0]) ? text[rep] : "unknown";
}
