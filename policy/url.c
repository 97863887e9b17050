/* url.c: the `transport =` value of a policy: direct, relay, or an
 * upstream proxy URL, parsed once at load; and its text for status and the
 * audit log, in which credentials never appear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

/* Copies the percent-decoded s[0..n) into out (cap bytes). Returns 0, or -1
 * when it does not fit or has a bad escape or a NUL. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			char hex[3] = { 0 };
			char *end;
			if (i + 2 >= n)
				return -1;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			c = (int)strtol(hex, &end, 16);
			if (*end || c == 0)
				return -1;
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

/* True for a host a proxy URL may name: a DNS name, an IPv4 address, or an
 * IPv6 address (given without its brackets). */
static bool host_ok(const char *h)
{
	struct proto_addr a;
	char norm[PROTO_NAME_MAX + 1];

	return policy_addr_parse(h, &a) == 0 || policy_name_normalise(h, norm, sizeof norm) == 0;
}

int policy_transport_parse(const char *s, struct policy_transport *t, const char **why)
{
	const char *rest, *at, *hp, *colon, *end;
	unsigned long port;
	char *pend;
	size_t hl;

	memset(t, 0, sizeof *t);
	if (strcmp(s, "direct") == 0) {
		t->kind = POLICY_DIRECT;
		return 0;
	}
	if (strcmp(s, "relay") == 0) {
		t->kind = POLICY_RELAY;
		return 0;
	}
	if (strncmp(s, "http://", 7) == 0) {
		t->kind = POLICY_HTTP;
		rest = s + 7;
	} else if (strncmp(s, "socks5://", 9) == 0) {
		t->kind = POLICY_SOCKS5;
		rest = s + 9;
	} else {
		*why = "transport must be direct, relay, http://host:port or socks5://host:port";
		return -1;
	}
	end = rest + strlen(rest);
	if (end > rest && end[-1] == '/')
		end--; /* "http://proxy:3128/" */
	at = memchr(rest, '@', (size_t)(end - rest));
	hp = rest;
	if (at) {
		const char *sep = memchr(rest, ':', (size_t)(at - rest));
		if (!sep || decode(rest, (size_t)(sep - rest), t->user, sizeof t->user) < 0 ||
		    decode(sep + 1, (size_t)(at - sep - 1), t->pass, sizeof t->pass) < 0 ||
		    !t->user[0]) {
			*why = "proxy credentials must be user:password (at most 255 bytes each, "
			       "percent-encoded where needed)";
			return -1;
		}
		t->auth = true;
		hp = at + 1;
	}
	if (*hp == '[') {
		const char *close = memchr(hp, ']', (size_t)(end - hp));
		if (!close || close[1] != ':') {
			*why = "bad [IPv6]:port in the proxy URL";
			return -1;
		}
		hl = (size_t)(close - hp - 1);
		if (hl >= sizeof t->host)
			hl = 0;
		memcpy(t->host, hp + 1, hl);
		t->host[hl] = 0;
		colon = close + 1;
	} else {
		colon = NULL;
		for (const char *c = hp; c < end; c++)
			if (*c == ':')
				colon = c;
		hl = colon ? (size_t)(colon - hp) : 0;
		if (hl >= sizeof t->host)
			hl = 0;
		memcpy(t->host, hp, hl);
		t->host[hl] = 0;
	}
	if (!colon || !host_ok(t->host)) {
		*why = "the proxy URL needs host:port";
		return -1;
	}
	port = strtoul(colon + 1, &pend, 10);
	if (pend != end || colon + 1 == end || port < 1 || port > 65535) {
		*why = "the proxy port must be 1..65535";
		return -1;
	}
	t->port = (uint16_t)port;
	return 0;
}

void policy_transport_text(const struct policy_transport *t, char *out, size_t cap)
{
	const char *scheme = t->kind == POLICY_HTTP ? "http" : "socks5";
	bool v6 = strchr(t->host, ':') != NULL;

	switch (t->kind) {
	case POLICY_DIRECT:
		snprintf(out, cap, "direct");
		return;
	case POLICY_RELAY:
		snprintf(out, cap, "relay");
		return;
	}
	snprintf(out, cap, "%s://%s%s%s%s:%u", scheme, t->auth ? "***@" : "", v6 ? "[" : "", t->host,
		 v6 ? "]" : "", t->port);
}
