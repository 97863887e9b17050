/* cli.c: `egress-broker check`: parses HOST[:PORT] and judges it offline
 * against a policy, as the broker would. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

/* Parses a decimal port 1..65535. Returns 0 or -1. */
static int cli_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int cli_parse_target(const char *s, char *name, size_t namecap, struct proto_addr *addr,
		     bool *is_addr, uint16_t *port, char *err, size_t errlen)
{
	char host[PROTO_NAME_MAX + 2];
	const char *colon, *portstr = NULL;
	size_t hlen;

	*port = 0;
	*is_addr = false;
	memset(addr, 0, sizeof *addr);
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || (close[1] && close[1] != ':')) {
			snprintf(err, errlen, "%s: expected [address] or [address]:port", s);
			return -1;
		}
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof host) {
			snprintf(err, errlen, "%s: address too long", s);
			return -1;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = 0;
		if (close[1] == ':')
			portstr = close + 2;
		if (policy_addr_parse(host, addr) < 0 || addr->family != 6) {
			snprintf(err, errlen, "%s: not an IPv6 address", host);
			return -1;
		}
		*is_addr = true;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 address, no port */
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (hlen == 0 || hlen >= sizeof host) {
			snprintf(err, errlen, "%s: bad host", s);
			return -1;
		}
		memcpy(host, s, hlen);
		host[hlen] = 0;
		if (colon)
			portstr = colon + 1;
		if (policy_addr_parse(host, addr) == 0) {
			*is_addr = true;
		} else if (strchr(host, ':') || policy_name_normalise(host, name, namecap) < 0) {
			snprintf(err, errlen, "%s: not a valid host name or address", host);
			return -1;
		}
	}
	if (portstr && cli_port(portstr, port) < 0) {
		snprintf(err, errlen, "%s: bad port", portstr);
		return -1;
	}
	if (*is_addr)
		policy_addr_canonical(addr);
	return 0;
}

/* Writes "allow (rule x)", "deny EPERM (rule x)" or "rewrite via T (rule
 * x)" for v into out; a rewritten datagram is denied, as the broker does.
 * Returns the exit code: 0 allow or rewrite, 1 deny. */
static int cli_verdict(const struct policy_verdict *v, bool udp, char *out, size_t cap)
{
	char t[300];

	if (v->action == PROTO_DENY) {
		snprintf(out, cap, "deny %s (rule %s)", policy_errno_name(v->err), v->rule);
		return 1;
	}
	if (v->action == PROTO_REWRITE && udp) {
		snprintf(out, cap, "deny EPERM (rule %s rewrites, and rewrite carries TCP only)",
			 v->rule);
		return 1;
	}
	if (v->action == PROTO_REWRITE) {
		policy_transport_text(v->transport, t, sizeof t);
		snprintf(out, cap, "rewrite via %s (rule %s)", t, v->rule);
		return 0;
	}
	snprintf(out, cap, "%s (rule %s)", audit_action_name(v->action), v->rule);
	return 0;
}

int cli_check(const struct policy *p, const char *target, bool udp, const char *exe, char *out,
	      size_t cap, bool *by_name)
{
	char name[PROTO_NAME_MAX + 1], err[256];
	struct proto_addr addr, hosts[PROTO_ADDRS_MAX];
	struct policy_request req;
	struct policy_verdict v;
	bool is_addr;
	uint16_t port;
	int n;

	*by_name = false;
	if (cli_parse_target(target, name, sizeof name, &addr, &is_addr, &port, err, sizeof err) < 0) {
		snprintf(out, cap, "%s", err);
		return 2;
	}
	memset(&req, 0, sizeof req);
	req.op = udp ? PROTO_OP_SEND : PROTO_OP_CONNECT;
	req.l4 = udp ? PROTO_L4_UDP : PROTO_L4_TCP;
	req.port = port;
	req.exe = exe;
	if (is_addr) {
		req.addr = &addr;
		policy_decide(p, &req, &v);
		return cli_verdict(&v, udp, out, cap);
	}
	req.name = name;
	n = policy_hosts_lookup(p, name, hosts, PROTO_ADDRS_MAX);
	if (n <= 0) {
		policy_decide(p, &req, &v); /* a name alone, as before resolution */
		*by_name = true;
		return cli_verdict(&v, udp, out, cap);
	}
	/* A [hosts] name is judged with its addresses: the first denied one
	 * decides, else the first. */
	req.from_hosts = true;
	for (int i = 0; i < n; i++) {
		struct policy_verdict vi;

		policy_addr_canonical(&hosts[i]);
		req.addr = &hosts[i];
		policy_decide(p, &req, &vi);
		if (i == 0 || (vi.action == PROTO_DENY && v.action != PROTO_DENY))
			v = vi;
	}
	return cli_verdict(&v, udp, out, cap);
}
