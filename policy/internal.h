/* internal.h: the compiled rule set, shared by the policy loader (load.c)
 * and the decision code (decide.c). Not for use outside policy/. */
#ifndef EGRESS_POLICY_INTERNAL_H
#define EGRESS_POLICY_INTERNAL_H

#include <uthash.h>

#include "policy.h"

#define L4_TCP_BIT (1u << PROTO_L4_TCP)
#define L4_UDP_BIT (1u << PROTO_L4_UDP)

struct port_idx;
struct name_idx;

/* A growing list of rule indices; ascending, without repeats, because rules
 * are added in file order. A long list is also split once loaded
 * (list_split in load.c) into three disjoint parts, so that a request walks
 * only the rules that can match it: rules with a few ports, listed under
 * each port (byport; all of them in order in ported, for a request without
 * a port); rules with literal exe names, listed under each name (byexe); and
 * the rest. 10,000 rules for one host, one port or one program each then
 * cost what a few do. */
struct idx_list {
	unsigned *v;             /* rule indices */
	unsigned n;              /* used */
	unsigned cap;            /* allocated */
	bool split;              /* the parts below are built */
	struct port_idx *byport; /* port -> rules whose ports include it */
	struct name_idx *byexe;  /* exe name or path -> rules naming it */
	unsigned *ported, nported; /* every rule of byport */
	unsigned *rest, nrest;   /* rules in neither */
};

/* One port's rules in a split list. */
struct port_idx {
	uint16_t port;
	struct idx_list rules; /* never split itself */
	UT_hash_handle hh;
};

struct port_range {
	uint16_t lo, hi; /* inclusive */
};

struct rule {
	char name[PROTO_RULE_MAX + 1]; /* from [rule "name"] */
	unsigned line;                  /* line of the section header */
	int action;                     /* enum proto_action; 0 until set */
	int err;                        /* errno on deny */
	bool err_set;                   /* errno key seen */
	int private_set;                /* private key seen */
	bool private_allow;             /* private = allow */
	bool has_dest;                  /* has host or cidr entries */
	unsigned l4;                    /* L4_*_BIT mask; 0 = any */
	struct port_range *ports;       /* NULL = any */
	unsigned nports;
	char **exes;                    /* fnmatch patterns; NULL = any */
	unsigned nexes;
	struct policy_transport *transport; /* NULL: the [egress] one */
	uint64_t limit;                 /* relay byte limit, 0 none */
	unsigned limit_line;            /* where limit was set, for its check */
};

/* Exact-name and wildcard-suffix index: name -> rules naming it; also a
 * split list's exe index (exe base name or full path, no glob). */
struct name_idx {
	char *key;            /* normalised name (wildcards: without "*."), or exe */
	struct idx_list rules;
	UT_hash_handle hh;
};

/* Key of the cidr index: the masked network with its prefix length. */
struct cidr_key {
	uint8_t family;    /* 4 or 6 */
	uint8_t len;       /* prefix length */
	uint8_t bytes[16]; /* host bits zero */
};

struct cidr_idx {
	struct cidr_key key;
	struct idx_list rules;
	UT_hash_handle hh;
};

struct hosts_entry {
	char *name;              /* normalised */
	struct proto_addr *addrs;
	int naddr;
	UT_hash_handle hh;
};

struct policy {
	char *path;           /* the file loaded */
	char *audit;          /* [egress] audit, or NULL */
	int dflt_action;      /* [egress] default */
	int dflt_err;         /* [egress] errno */
	bool private_allow;   /* [egress] private = allow */
	uint32_t ttl_ms;      /* [egress] cache_ttl */
	uint32_t timeout_ms;  /* [egress] timeout: a rewritten connect's upstream */
	struct policy_transport transport; /* [egress] transport */
	struct rule *rules;   /* in file order */
	unsigned nrules;
	unsigned cap;
	struct name_idx *exact;     /* host = name */
	struct name_idx *wild;      /* host = *.suffix, keyed by suffix */
	struct cidr_idx *cidrs;     /* cidr = and numeric host = */
	bool cidr_len4[33];         /* prefix lengths present in cidrs, IPv4 */
	bool cidr_len6[129];        /* the same, IPv6 */
	struct idx_list any;        /* rules with neither host nor cidr */
	struct hosts_entry *hosts;  /* [hosts] */
	char **unix_globs;          /* [egress] unix: sockets an isolated program may reach */
	unsigned nunix;
};

/* Sets the bits of net beyond len to zero. */
void policy_addr_mask(uint8_t *bytes, unsigned family, unsigned len);

#endif
