/* cli.c: `egress-broker check`: parses a destination (HOST, HOST:PORT or a
 * URL) and judges it offline against a policy through the decision
 * procedure the daemon uses (ask.c): a lookup of the name, then a connect
 * (or a send) to the address it gives, so that check and the daemon cannot
 * disagree. Nothing is resolved here: a name outside [hosts] is judged by
 * the name alone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "broker.h"

/* The port a URL's scheme means when it names none. */
static const struct {
	const char *scheme;
	uint16_t port;
} cli_schemes[] = {
	{ "http", 80 },	 { "https", 443 }, { "ws", 80 },     { "wss", 443 },   { "ftp", 21 },
	{ "ssh", 22 },	 { "git", 9418 },  { "smtp", 25 },   { "smtps", 465 }, { "imap", 143 },
	{ "imaps", 993 }, { "ldap", 389 }, { "ldaps", 636 }, { "rsync", 873 },
};

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

/* Splits HOST, HOST:PORT or [v6]:PORT; as cli_parse_target(). */
static int cli_parse_hostport(const char *s, char *name, size_t namecap, struct proto_addr *addr,
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


int cli_parse_target(const char *s, char *name, size_t namecap, struct proto_addr *addr,
		     bool *is_addr, uint16_t *port, char *err, size_t errlen)
{
	const char *sep = strstr(s, "://"), *host, *at, *end;
	char hostport[PROTO_NAME_MAX + 16];
	size_t slen, hlen;

	if (!sep)
		return cli_parse_hostport(s, name, namecap, addr, is_addr, port, err, errlen);
	/* scheme://[user[:pass]@]host[:port][/path][?query][#fragment] */
	slen = (size_t)(sep - s);
	host = sep + 3;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	if (at)
		host = at + 1;
	hlen = (size_t)(end - host);
	if (hlen == 0 || hlen >= sizeof hostport) {
		snprintf(err, errlen, "%s: no host in the URL", s);
		return -1;
	}
	memcpy(hostport, host, hlen);
	hostport[hlen] = 0;
	if (cli_parse_hostport(hostport, name, namecap, addr, is_addr, port, err, errlen) < 0)
		return -1;
	if (*port)
		return 0;
	for (size_t i = 0; i < sizeof cli_schemes / sizeof cli_schemes[0]; i++) {
		if (strlen(cli_schemes[i].scheme) == slen &&
		    strncasecmp(s, cli_schemes[i].scheme, slen) == 0) {
			*port = cli_schemes[i].port;
			return 0;
		}
	}
	snprintf(err, errlen, "%.*s: a scheme without a known port; give the port (%.*s://HOST:PORT)",
		 (int)slen, s, (int)slen, s);
	return -1;
}

/* Writes the line for r into out: "allow (rule x)", "deny EPERM (rule x)",
 * "deny EPERM (rule x: why)" or "rewrite via T (rule x)", and, when the
 * request had no port, which ports the rule covers. Returns the exit code:
 * 0 allow or rewrite, 1 deny. */
static int cli_verdict(const struct policy *p, const struct ask_result *r, char *out, size_t cap)
{
	char t[300], ports[256];
	struct buf b;
	int rc = 0;

	buf_init(&b, out, cap);
	if (r->answer == PROTO_DENY || r->err) {
		buf_printf(&b, "deny %s (rule %s%s%s)", r->err_name ? r->err_name : "EPERM", r->rule,
			   r->why ? ": " : "", r->why ? r->why : "");
		rc = 1;
	} else if (r->to_port) {
		buf_printf(&b, "rewrite via the lookup stub (rule %s: a DNS query; the name it asks "
			   "for is judged)", r->rule);
	} else if (r->action == PROTO_REWRITE) {
		policy_transport_text(r->transport, t, sizeof t);
		buf_printf(&b, "rewrite via %s (rule %s)", t, r->rule);
	} else {
		buf_printf(&b, "allow (rule %s)", r->rule);
	}
	if (!r->port) {
		policy_rule_ports(p, r->rule, ports, sizeof ports);
		if (ports[0])
			buf_printf(&b, " on port%s %s only", strpbrk(ports, ",-") ? "s" : "", ports);
		else
			buf_printf(&b, " on any port");
	}
	return rc;
}

int cli_check(const struct policy *p, const char *target, bool udp, const char *exe, char *out,
	      size_t cap, bool *by_name)
{
	char name[PROTO_NAME_MAX + 1], err[256];
	struct proto_ask q = { .op = udp ? PROTO_OP_SEND : PROTO_OP_CONNECT,
			       .l4 = udp ? PROTO_L4_UDP : PROTO_L4_TCP };
	/* a daemon's lookup stub, as a datagram to port 53 would find it */
	static const struct proto_addr stub = { .family = 4, .bytes = { 127, 0, 0, 1 } };
	struct ask_state st = { .policy = p, .loopback_name = resolver_etc_hosts_loopback, .stub = &stub,
				.nstub = 1, .stub_port = 53 };
	struct ask_who w = { .pid = getpid(), .exe = exe };
	struct ask_result r;
	bool is_addr;
	int rc = 2;

	*by_name = false;
	if (cli_parse_target(target, name, sizeof name, &q.addr, &is_addr, &q.port, err,
			     sizeof err) < 0) {
		snprintf(out, cap, "%s", err);
		return 2;
	}
	/* Maps of one simulated process, as the daemon keeps for each. */
	st.addrmap = addrmap_new(ADDRMAP_PER_PID_MAX);
	st.synth = synth_new(SYNTH_PER_PID_MAX);
	if (!st.addrmap || !st.synth) {
		snprintf(out, cap, "out of memory");
		goto done;
	}
	if (!is_addr) {
		struct proto_ask res = { .op = PROTO_OP_RESOLVE, .l4 = q.l4, .port = q.port };
		struct proto_addr none;

		snprintf(res.name, sizeof res.name, "%s", name);
		*by_name = policy_hosts_lookup(p, name, &none, 1) == 0;
		ask_resolve(&st, &w, &res, &r);
		if (r.next == ASK_LOOKUP) {
			/* no DNS here: the connect is judged by the name alone */
			ask_name(&st, &w, q.op, q.l4, name, q.port, &r);
			rc = cli_verdict(p, &r, out, cap);
			goto done;
		}
		if (r.answer == PROTO_DENY || r.err || !r.naddr) {
			rc = cli_verdict(p, &r, out, cap);
			goto done;
		}
		q.addr = r.addrs[0]; /* the program connects to the first address */
	}
	ask_addr(&st, &w, &q, &r);
	rc = cli_verdict(p, &r, out, cap);
done:
	addrmap_free(st.addrmap);
	synth_free(st.synth);
	return rc;
}
