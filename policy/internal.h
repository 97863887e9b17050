/* internal.h: the compiled rule set, shared by the policy loader (load.c),
 * its indexes (table.c) and the decision code (decide.c). Not for use
 * outside policy/ and its unit tests. */
#ifndef EGRESS_POLICY_INTERNAL_H
#define EGRESS_POLICY_INTERNAL_H

#include <uthash.h>

#include "policy.h"

#define L4_TCP_BIT (1u << PROTO_L4_TCP)
#define L4_UDP_BIT (1u << PROTO_L4_UDP)

/* What rule_match and the verdict read of a rule, packed eight to a cache
 * line, so that walking candidates and answering touch this array and not
 * the rules; the rule itself is read only for a second port range, an exe
 * pattern, a transport or a limit. */
struct rule_head {
	uint16_t lo, hi; /* the first port range; 0-0: any port */
	uint16_t err;    /* errno on deny (at most 4095) */
	uint8_t action;  /* enum proto_action */
	uint8_t flags;   /* L4_*_BIT (none: any proto), HEAD_* */
};

#define HEAD_PORTS (1u << 3)   /* more than one port range */
#define HEAD_EXES (1u << 4)    /* exe patterns */
#define HEAD_PRIVATE (1u << 5) /* private = allow */
#define HEAD_EXTRA (1u << 6)   /* a transport or a limit */

struct idx_split;

/* A growing list of rule indices; ascending, without repeats, because rules
 * are added in file order. One rule (the common case) is held inline, in
 * one, and once loaded a copy of its head beside it, so that a lookup that
 * finds it needs no other cache line to judge it; v is allocated from the
 * second. A long list is also split once loaded (list_split in load.c)
 * into three disjoint parts, so that a request walks only the rules that
 * can match it (struct idx_split). */
struct idx_list {
	union {
		struct {
			unsigned *v;  /* rule indices, when n > 1 */
			unsigned cap; /* allocated in v */
		};
		struct rule_head head; /* n == 1, once loaded: the rule's head */
	};
	unsigned n;              /* used */
	unsigned one;            /* the rule index, when n == 1 */
	struct idx_split *split; /* the parts, or NULL */
};

/* The rule indices of a list. */
static inline const unsigned *idx_rules(const struct idx_list *l)
{
	return l->n == 1 ? &l->one : l->v;
}

/*
 * A flat index: (kind, key bytes) -> rule list. Open addressing with
 * linear probing over a power-of-two array of slots kept at most half
 * full; a slot holds the high 32 bits of the key's hash beside where its
 * entry is, so that a miss reads one slot and a hit one slot and one
 * entry. The entries (struct table_entry, key inline) lie in one arena in
 * the order they were added, which is also how they are walked.
 */
struct policy_table {
	uint64_t *slots;      /* hash >> 32 << 32 | (entry offset / 8 + 1); 0 empty */
	uint32_t mask;        /* slot count - 1 */
	uint32_t n;           /* entries */
	unsigned char *arena; /* the entries, 8-byte aligned */
	size_t used, cap;     /* of arena, in bytes */
};

struct table_entry {
	uint32_t hash;          /* the low 32 bits of the key's hash: its home slot */
	uint16_t len;           /* key bytes */
	uint8_t kind;           /* enum table_kind */
	struct idx_list rules;  /* the rules under this key */
	unsigned char key[];    /* len bytes */
};

/* What a key is; part of the key. */
enum table_kind {
	KEY_EXACT = 1, /* host = name: the normalised name */
	KEY_WILD,      /* host = *.suffix: the suffix */
	KEY_CIDR4,     /* cidr: the prefix length, then its bytes of the network */
	KEY_CIDR6,
	KEY_PORT,      /* a split list's port: 2 bytes, host order */
	KEY_EXE,       /* a split list's exe base name or full path */
};

/* Like realloc (old_size: the bytes of old to keep), but a large array
 * gets huge pages where the kernel has them. */
void *policy_huge_realloc(void *old, size_t old_size, size_t size);
/* The key's hash; policy_table_find_hashed takes it back. */
uint64_t policy_table_hash(unsigned kind, const void *key, size_t len);
/* The rules under the key, or NULL when it is not there. */
const struct idx_list *policy_table_find(const struct policy_table *t, unsigned kind,
					 const void *key, size_t len);
const struct idx_list *policy_table_find_hashed(const struct policy_table *t, uint64_t hash,
						unsigned kind, const void *key, size_t len);
/* Starts the cache's fetch of the slot where a lookup of the hash h begins. */
static inline void policy_table_prefetch(const struct policy_table *t, uint64_t h)
{
	if (t->n)
		__builtin_prefetch(&t->slots[(uint32_t)h & t->mask]);
}
/* The rules under the key, added empty when it is new; valid until the next
 * add. Returns NULL when out of memory (t is unchanged). */
struct idx_list *policy_table_add(struct policy_table *t, unsigned kind, const void *key,
				  size_t len);
/* The entry after prev (NULL: the first), in the order they were added, or
 * NULL after the last. */
struct table_entry *policy_table_next(const struct policy_table *t, struct table_entry *prev);
/* Frees the slots and entries, not what their lists hold; t is left empty. */
void policy_table_free(struct policy_table *t);

/* The parts of a split list: rules with a few ports, listed under each
 * port (byport; all of them in order in ported, for a request without a
 * port); rules with literal exe names, listed under each name (byexe); and
 * the rest. 10,000 rules for one host, one port or one program each then
 * cost what a few do. */
struct idx_split {
	struct policy_table byport; /* KEY_PORT -> rules whose ports include it */
	struct policy_table byexe;  /* KEY_EXE -> rules naming it */
	unsigned *ported, nported;  /* every rule of byport */
	unsigned *rest, nrest;      /* rules in neither */
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
	struct rule_head *heads; /* one per rule, made once loaded */
	unsigned nrules;
	unsigned cap;
	struct policy_table dest;   /* host = (KEY_EXACT, KEY_WILD), cidr = and numeric
				     * host = (KEY_CIDR4, KEY_CIDR6) */
	uint64_t exact_lens[4];     /* bit n: a KEY_EXACT key of n bytes is in dest */
	uint64_t wild_lens[4];      /* the same, KEY_WILD */
	bool cidr_len4[33];         /* prefix lengths present in dest, IPv4 */
	bool cidr_len6[129];        /* the same, IPv6 */
	uint8_t cidr_lens4[33];     /* those lengths, ascending */
	uint8_t cidr_lens6[129];
	unsigned ncidr_lens4, ncidr_lens6;
	struct idx_list any;        /* rules with neither host nor cidr */
	struct hosts_entry *hosts;  /* [hosts] */
	char **unix_globs;          /* [egress] unix: sockets an isolated program may reach */
	unsigned nunix;
};

/* Sets the bits of net beyond len to zero. */
void policy_addr_mask(uint8_t *bytes, unsigned family, unsigned len);

#endif
