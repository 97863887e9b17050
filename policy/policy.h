/* policy.h: the policy library. An INI file (inih) becomes a compiled rule
 * set (flat hash indexes, policy/table.c); policy_decide() turns a request
 * into a verdict.
 * No sockets, no DNS: testable alone. */
#ifndef EGRESS_POLICY_H
#define EGRESS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define POLICY_ERR_MAX 512        /* room for a "file:line: message" error */
#define POLICY_DEFAULT_TTL_MS 10000 /* datagram verdict cache lifetime */
#define POLICY_DEFAULT_TIMEOUT_MS 10000 /* a rewritten connect's upstream */

struct policy; /* opaque compiled rule set; immutable once loaded */

struct policy_request {
	int op;                        /* enum proto_op */
	int l4;                        /* enum proto_l4; ANY when not known */
	const char *name;              /* normalised name (policy_name_normalise), or NULL */
	const struct proto_addr *addr; /* canonical address, or NULL for a name-only decision */
	uint16_t port;                 /* 0 when not known */
	const char *exe;               /* executable path, or NULL */
	bool from_hosts;               /* addr came from the policy's [hosts] */
};

enum policy_transport_kind { POLICY_DIRECT = 1, POLICY_RELAY, POLICY_HTTP, POLICY_SOCKS5 };

/* Where a rewritten connection goes: `transport =` in [egress] or a rule. */
struct policy_transport {
	int kind;         /* enum policy_transport_kind */
	char host[256];   /* HTTP, SOCKS5: the proxy's name or address (IPv6 without []) */
	uint16_t port;
	bool auth;        /* user and pass given */
	char user[256];   /* percent-decoded; never printed */
	char pass[256];
};

struct policy_verdict {
	int action;       /* enum proto_action */
	int err;          /* errno to return on DENY */
	const char *rule; /* matched rule's name, "default" or "private"; owned by the policy */
	const struct policy_transport *transport; /* REWRITE: owned by the policy */
	uint64_t limit;   /* REWRITE through the relay: bytes per connection, 0 none */
};

/* Loads and compiles the policy file at path. Returns the rule set, or NULL
 * with a "path:line: message" (or "path: message") in err. */
struct policy *policy_load(const char *path, char *err, size_t errlen);

/* Frees a rule set from policy_load(); NULL is fine. */
void policy_free(struct policy *p);

/*
 * Decides req: rules are tried in file order and the first match wins; no
 * match gives the [egress] default ("default"). When req has no port (or
 * l4 ANY), a rule restricted by port (or proto) matches only if it does not
 * deny, since the connect is judged again with the real port; a resolve is
 * never denied by such a rule, whatever port it names, so that the connect
 * fails with the rule's errno. An allow or rewrite of a private address (policy_addr_private)
 * becomes a DENY with rule "private" unless the matching rule names the
 * address by a cidr no wider than its private range (127.0.0.1/32 and
 * 10.0.0.0/8 do, 0.0.0.0/0 does not), sets private = allow, [egress]
 * private = allow, or the address came from [hosts]. Never fails.
 */
void policy_decide(const struct policy *p, const struct policy_request *req,
		   struct policy_verdict *v);

/* Copies up to max addresses that [hosts] gives for the normalised name into
 * out. Returns how many (0 when the name is not there). */
int policy_hosts_lookup(const struct policy *p, const char *name,
			struct proto_addr *out, int max);

/* Accessors of the [egress] section. */
const char *policy_audit_path(const struct policy *p); /* NULL when unset */
/* True when [egress] unix names path (an absolute path, or a glob matched
 * with FNM_PATHNAME): a UNIX socket of the host that programs in an
 * isolated namespace may reach. */
bool policy_unix_allowed(const struct policy *p, const char *path);
const char *policy_path(const struct policy *p);       /* the file loaded */
unsigned policy_rule_count(const struct policy *p);
uint32_t policy_ttl_ms(const struct policy *p);        /* [egress] cache_ttl */
/* Writes the ports the rule named rule is restricted to ("443", "22, 443",
 * "8000-8100") into out; "" when it covers every port, and for "default",
 * "private" and names of no rule. */
void policy_rule_ports(const struct policy *p, const char *rule, char *out, size_t cap);
uint32_t policy_timeout_ms(const struct policy *p);   /* [egress] timeout */
const struct policy_transport *policy_transport(const struct policy *p); /* [egress] transport */

/* ------------------------------------------------------------ transports */

/* Parses direct, relay, http://[user:pass@]host:port or
 * socks5://[user:pass@]host:port (user and pass percent-decoded). Returns 0,
 * or -1 with a message in why that never repeats the value. */
int policy_transport_parse(const char *s, struct policy_transport *t, const char **why);

/* Writes t as text with any credentials masked ("socks5://user-masked@host:1080" style: "***@"). */
void policy_transport_text(const struct policy_transport *t, char *out, size_t cap);

/* ---------------------------------------------------------------- names */

/* Writes name lowercased, without one trailing dot, into out (cap bytes).
 * Returns 0, or -1 when it is empty, longer than PROTO_NAME_MAX, has an
 * empty or over-63-byte label, or a byte other than letters, digits, '-',
 * '_' and '.'. */
int policy_name_normalise(const char *name, char *out, size_t cap);

/* ------------------------------------------------------------ addresses */

/* Parses a numeric IPv4 (dotted quad only) or IPv6 address. Returns 0 or -1. */
int policy_addr_parse(const char *s, struct proto_addr *a);

/* Rewrites an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d,
 * but not :: and ::1) IPv6 address as the IPv4 address it carries. */
void policy_addr_canonical(struct proto_addr *a);

/* True for 0.0.0.0/8, 127/8, 10/8, 172.16/12, 192.168/16, 169.254/16,
 * 100.64/10, 224/4, 255.255.255.255, ::, ::1, fc00::/7, fe80::/10, ff00::/8,
 * and for NAT64 (64:ff9b::/96), SIIT (::ffff:0:0/96), 6to4 (2002::/16) and
 * Teredo (2001::/32) addresses whose embedded IPv4 address is one of those.
 * Expects a canonical address. */
bool policy_addr_private(const struct proto_addr *a);

/* The prefix length of the private range a is in (8 for 10.1.2.3, 16 for
 * 169.254.169.254, 128 for an IPv6 form that embeds a private IPv4
 * address), or 0 when a is not private. Expects a canonical address. */
unsigned policy_addr_private_len(const struct proto_addr *a);

/* Formats a as text ("1.2.3.4" or "2001:db8::1") into buf. */
void policy_addr_format(const struct proto_addr *a, char *buf, size_t cap);

/* ---------------------------------------------------------------- errno */

/* Returns the errno value for a name such as "ECONNREFUSED" (or a decimal
 * number), or -1 when unknown. */
int policy_errno_parse(const char *s);

/* Returns the symbolic name of e ("EPERM"), or "E?" when unknown. */
const char *policy_errno_name(int e);

#endif
