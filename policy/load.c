/* load.c: reads a policy file (INI, through inih) and compiles it into a
 * rule set with its indexes; frees it; the [egress] accessors. */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "internal.h"

enum section {
	SEC_NONE,   /* before the first section header */
	SEC_EGRESS, /* [egress] */
	SEC_HOSTS,  /* [hosts] */
	SEC_RULE,   /* [rule "name"] */
};

/* [egress] keys, to refuse a key given twice. */
enum {
	EG_DEFAULT = 1 << 0,
	EG_PRIVATE = 1 << 1,
	EG_TRANSPORT = 1 << 2,
	EG_AUDIT = 1 << 3,
	EG_TTL = 1 << 4,
	EG_ERRNO = 1 << 5,
	EG_TIMEOUT = 1 << 6,
};

#define UNIX_PATH_MAX 107 /* sizeof sun_path, less its NUL */
#define UNIX_GLOBS_MAX 64

struct rule_name {
	char *name;
	UT_hash_handle hh;
};

struct loader {
	struct policy *p;         /* being built */
	const char *path;         /* for messages */
	FILE *f;
	char *line;               /* getline buffer */
	size_t linecap;
	unsigned lineno;          /* line last handed to inih */
	enum section sec;         /* section of that line */
	unsigned egress_seen;     /* EG_* keys seen in [egress] */
	struct rule_name *names;  /* rule names seen, for duplicates */
	char *err;                /* caller's buffer */
	size_t errlen;
	unsigned err_line;        /* line of the first error, 0 if none */
	bool failed;              /* an error was reported */
};

/* ---------------------------------------------------------------- errors */

/* Records "path:line: message" unless an error was already recorded.
 * Returns 0, what an inih handler returns on error. */
__attribute__((format(printf, 3, 4))) static int fail(struct loader *l, unsigned line,
						       const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->failed)
		return 0;
	l->failed = true;
	l->err_line = line;
	if (!l->err || !l->errlen)
		return 0;
	n = snprintf(l->err, l->errlen, "%s:%u: ", l->path, line);
	if (n >= 0 && (size_t)n < l->errlen) {
		va_start(ap, fmt);
		vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* ------------------------------------------------------------- indexes */

/* Appends rule index i to list unless it is already its last entry.
 * Returns 0 or -1 (out of memory). */
static int list_add(struct idx_list *list, unsigned i)
{
	if (list->n && idx_rules(list)[list->n - 1] == i)
		return 0;
	if (list->n == 0) {
		list->one = i;
		list->n = 1;
		return 0;
	}
	if (list->n >= list->cap) { /* n == 1, cap == 0: the first v */
		unsigned cap = list->cap ? 2 * list->cap : 4;
		unsigned *v = realloc(list->v, cap * sizeof *v);

		if (!v)
			return -1;
		if (!list->v)
			v[0] = list->one;
		list->v = v;
		list->cap = cap;
	}
	list->v[list->n++] = i;
	return 0;
}

static void list_free(struct idx_list *list);

/* Frees the lists of t's entries, and t. */
static void table_free(struct policy_table *t)
{
	for (struct table_entry *e = policy_table_next(t, NULL); e; e = policy_table_next(t, e))
		list_free(&e->rules);
	policy_table_free(t);
}

/* Drops list's split, if any. */
static void list_unsplit(struct idx_list *list)
{
	struct idx_split *sp = list->split;

	if (!sp)
		return;
	table_free(&sp->byport);
	table_free(&sp->byexe);
	free(sp->ported);
	free(sp->rest);
	free(sp);
	list->split = NULL;
}

/* Frees what list holds. */
static void list_free(struct idx_list *list)
{
	list_unsplit(list);
	if (list->n > 1)
		free(list->v);
}

/* Adds rule i under (kind, key) in t. Returns 0 or -1. */
static int table_index(struct policy_table *t, unsigned kind, const void *key, size_t len,
		       unsigned i)
{
	struct idx_list *list = policy_table_add(t, kind, key, len);

	return list ? list_add(list, i) : -1;
}

/* Adds rule i under the name key (normalised) of kind KEY_EXACT or KEY_WILD. */
static int name_index(struct policy *p, unsigned kind, const char *key, unsigned i)
{
	size_t len = strlen(key);
	uint64_t *lens = kind == KEY_EXACT ? p->exact_lens : p->wild_lens;

	lens[len / 64] |= 1ull << (len % 64);
	return table_index(&p->dest, kind, key, len, i);
}

/* Adds rule i under the network a/len (host bits already zero). */
static int cidr_index(struct policy *p, const struct proto_addr *a, unsigned len, unsigned i)
{
	unsigned char key[17];

	key[0] = (uint8_t)len;
	memcpy(key + 1, a->bytes, (len + 7) / 8);
	if (a->family == 4)
		p->cidr_len4[len] = true;
	else
		p->cidr_len6[len] = true;
	return table_index(&p->dest, a->family == 4 ? KEY_CIDR4 : KEY_CIDR6, key,
			   1 + (len + 7) / 8, i);
}

/* Lists shorter than this are walked whole: splitting them saves nothing. */
#define SPLIT_MIN 8
/* A rule whose ports span more than this many is not listed under each. */
#define SPLIT_PORTS_MAX 64

/* How rule r is indexed in a split list: 'p' under its ports, 'e' under its
 * exe names, 'r' in the rest. */
static char split_kind(const struct rule *r)
{
	unsigned span = 0;

	for (unsigned j = 0; j < r->nports; j++)
		span += (unsigned)(r->ports[j].hi - r->ports[j].lo) + 1;
	if (r->nports && span <= SPLIT_PORTS_MAX)
		return 'p';
	if (!r->nexes)
		return 'r';
	for (unsigned j = 0; j < r->nexes; j++)
		if (strpbrk(r->exes[j], "*?[\\"))
			return 'r';
	return 'e';
}

/* Splits list (see struct idx_split) when it is long. Out of memory, the
 * list is left whole: slower to walk, but decided the same. */
static void list_split(struct idx_list *list, const struct rule *rules)
{
	struct idx_split *sp;

	if (list->n < SPLIT_MIN)
		return;
	if (!(sp = calloc(1, sizeof *sp)))
		return;
	list->split = sp;
	sp->ported = malloc(list->n * sizeof *sp->ported);
	sp->rest = malloc(list->n * sizeof *sp->rest);
	if (!sp->ported || !sp->rest)
		goto oom;
	for (unsigned k = 0; k < list->n; k++) {
		unsigned i = list->v[k];
		const struct rule *r = &rules[i];

		switch (split_kind(r)) {
		case 'p':
			sp->ported[sp->nported++] = i;
			for (unsigned j = 0; j < r->nports; j++)
				for (unsigned port = r->ports[j].lo; port <= r->ports[j].hi; port++) {
					uint16_t key = (uint16_t)port;

					if (table_index(&sp->byport, KEY_PORT, &key, sizeof key, i) < 0)
						goto oom;
				}
			break;
		case 'e':
			for (unsigned j = 0; j < r->nexes; j++)
				if (table_index(&sp->byexe, KEY_EXE, r->exes[j], strlen(r->exes[j]), i) < 0)
					goto oom;
			break;
		default:
			sp->rest[sp->nrest++] = i;
		}
	}
	return;
oom:
	list_unsplit(list);
}

/* Copies the head of a one-rule list beside it, in list and its parts. */
static void list_heads(struct idx_list *list, const struct rule_head *heads)
{
	struct idx_split *sp = list->split;

	if (list->n == 1)
		list->head = heads[list->one];
	if (!sp)
		return;
	for (struct table_entry *e = policy_table_next(&sp->byport, NULL); e;
	     e = policy_table_next(&sp->byport, e))
		list_heads(&e->rules, heads);
	for (struct table_entry *e = policy_table_next(&sp->byexe, NULL); e;
	     e = policy_table_next(&sp->byexe, e))
		list_heads(&e->rules, heads);
}

/* Makes p->heads from p->rules (once split: the copies beside one-rule
 * lists too). Returns 0 or -1 (out of memory). */
static int heads_make(struct policy *p)
{
	size_t size = (p->nrules ? p->nrules : 1) * sizeof *p->heads;

	if (!(p->heads = policy_huge_realloc(NULL, 0, size)))
		return -1;
	memset(p->heads, 0, size);
	for (unsigned i = 0; i < p->nrules; i++) {
		const struct rule *r = &p->rules[i];
		struct rule_head *h = &p->heads[i];

		h->action = (uint8_t)r->action;
		h->err = (uint16_t)r->err;
		if (r->nports) {
			h->lo = r->ports[0].lo;
			h->hi = r->ports[0].hi;
		}
		h->flags = (uint8_t)(r->l4 | (r->nports > 1 ? HEAD_PORTS : 0) |
				     (r->nexes ? HEAD_EXES : 0) | (r->private_allow ? HEAD_PRIVATE : 0) |
				     (r->transport || r->limit ? HEAD_EXTRA : 0));
	}
	list_heads(&p->any, p->heads);
	for (struct table_entry *e = policy_table_next(&p->dest, NULL); e;
	     e = policy_table_next(&p->dest, e))
		list_heads(&e->rules, p->heads);
	return 0;
}

/* Splits every long candidate list of p; lists the prefix lengths present. */
static void split_all(struct policy *p)
{
	for (unsigned len = 0; len <= 128; len++) {
		if (len <= 32 && p->cidr_len4[len])
			p->cidr_lens4[p->ncidr_lens4++] = (uint8_t)len;
		if (p->cidr_len6[len])
			p->cidr_lens6[p->ncidr_lens6++] = (uint8_t)len;
	}
	list_split(&p->any, p->rules);
	for (struct table_entry *e = policy_table_next(&p->dest, NULL); e;
	     e = policy_table_next(&p->dest, e))
		list_split(&e->rules, p->rules);
}

/* ---------------------------------------------------------------- values */

/* Returns s without leading and trailing blanks (s is modified). */
static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = 0;
	return s;
}

typedef int (*item_fn)(struct loader *l, const char *key, char *item);

/* Calls fn for each comma-separated entry of value. Returns 1, or 0 after
 * reporting an empty entry or whatever fn reported. */
static int each_item(struct loader *l, const char *key, const char *value, item_fn fn)
{
	char buf[1024], *s, *comma;

	if (strlen(value) >= sizeof buf)
		return fail(l, l->lineno, "value of %s is too long", key);
	strcpy(buf, value);
	for (s = buf;; s = comma + 1) {
		comma = strchr(s, ',');
		if (comma)
			*comma = 0;
		s = trim(s);
		if (!*s)
			return fail(l, l->lineno, "empty entry in %s", key);
		if (!fn(l, key, s))
			return 0;
		if (!comma)
			return 1;
	}
}

/* Parses a decimal number in [lo, hi] without sign or blanks. Returns 0 or -1. */
static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > hi)
			return -1;
	}
	if (v < lo)
		return -1;
	*out = v;
	return 0;
}

/* Parses "allow" or "deny". Returns PROTO_ALLOW, PROTO_DENY, or -1. */
static int parse_allow_deny(const char *s)
{
	if (strcmp(s, "allow") == 0)
		return PROTO_ALLOW;
	if (strcmp(s, "deny") == 0)
		return PROTO_DENY;
	return -1;
}

/* Parses an action: allow, deny or rewrite. Returns it, or -1. */
static int parse_action(const char *s)
{
	return strcmp(s, "rewrite") == 0 ? PROTO_REWRITE : parse_allow_deny(s);
}

/* Parses a byte count with an optional K, M or G suffix (powers of 1024).
 * Returns 0, or -1 when it is not 1 byte .. 1 TiB. */
static int parse_bytes(const char *s, uint64_t *out)
{
	char num[24];
	size_t n = strlen(s);
	unsigned shift = 0;
	unsigned long v;

	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	}
	if (shift)
		num[n - 1] = 0;
	if (parse_uint(num, 1, 1ul << (40 - shift), &v) < 0)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Parses "addr/len" or a bare address (a host route) into a canonical
 * network. IPv4-mapped and -compatible forms with len >= 96 become IPv4.
 * Returns 0, or -1 with a message in why. */
static int parse_cidr(char *s, struct proto_addr *a, unsigned *len, const char **why)
{
	char *slash = strchr(s, '/');
	unsigned long l;
	struct proto_addr masked;

	if (slash)
		*slash = 0;
	if (policy_addr_parse(s, a) < 0) {
		*why = "bad address";
		if (slash)
			*slash = '/'; /* the message quotes s whole */
		return -1;
	}
	if (slash)
		*slash = '/';
	l = a->family == 4 ? 32 : 128;
	if (slash && parse_uint(slash + 1, 0, l, &l) < 0) {
		*why = "bad prefix length";
		return -1;
	}
	if (a->family == 6 && l >= 96) {
		struct proto_addr c = *a;

		policy_addr_canonical(&c);
		if (c.family == 4) {
			*a = c;
			l -= 96;
		}
	}
	masked = *a;
	policy_addr_mask(masked.bytes, masked.family, (unsigned)l);
	if (memcmp(masked.bytes, a->bytes, 16)) {
		*why = "host bits set after the prefix length";
		return -1;
	}
	*len = (unsigned)l;
	return 0;
}

/* ---------------------------------------------------------------- [egress] */

/* Marks an [egress] key as seen. Returns 1, or 0 after reporting a repeat. */
static int egress_once(struct loader *l, unsigned bit, const char *key)
{
	if (l->egress_seen & bit)
		return fail(l, l->lineno, "duplicate key %s in [egress]", key);
	l->egress_seen |= bit;
	return 1;
}

/* One entry of [egress] unix: an absolute path, or a glob of one. */
static int unix_item(struct loader *l, const char *key, char *item)
{
	struct policy *p = l->p;
	char **grown;

	(void)key;
	if (item[0] != '/')
		return fail(l, l->lineno, "unix: \"%s\" is not an absolute path", item);
	if (strlen(item) > UNIX_PATH_MAX)
		return fail(l, l->lineno, "unix: \"%s\" is longer than a socket path can be", item);
	if (p->nunix == UNIX_GLOBS_MAX)
		return fail(l, l->lineno, "unix: more than %d paths", UNIX_GLOBS_MAX);
	grown = realloc(p->unix_globs, (p->nunix + 1) * sizeof *grown);
	if (!grown)
		return fail(l, l->lineno, "out of memory");
	p->unix_globs = grown;
	if (!(p->unix_globs[p->nunix] = strdup(item)))
		return fail(l, l->lineno, "out of memory");
	p->nunix++;
	return 1;
}

/* One key of [egress]. Returns 1, or 0 after reporting. */
static int egress_key(struct loader *l, const char *key, const char *value)
{
	struct policy *p = l->p;
	const char *why;
	unsigned long ul;
	int v;

	if (strcmp(key, "default") == 0) {
		if (!egress_once(l, EG_DEFAULT, key))
			return 0;
		if ((v = parse_action(value)) < 0)
			return fail(l, l->lineno, "default must be allow, deny or rewrite, not \"%s\"",
				    value);
		p->dflt_action = v;
	} else if (strcmp(key, "private") == 0) {
		if (!egress_once(l, EG_PRIVATE, key))
			return 0;
		if ((v = parse_allow_deny(value)) < 0)
			return fail(l, l->lineno, "private must be allow or deny, not \"%s\"", value);
		p->private_allow = v == PROTO_ALLOW;
	} else if (strcmp(key, "transport") == 0) {
		if (!egress_once(l, EG_TRANSPORT, key))
			return 0;
		if (policy_transport_parse(value, &p->transport, &why) < 0)
			return fail(l, l->lineno, "%s", why);
	} else if (strcmp(key, "timeout") == 0) {
		if (!egress_once(l, EG_TIMEOUT, key))
			return 0;
		if (parse_uint(value, 1, 300, &ul) < 0)
			return fail(l, l->lineno, "timeout must be 1..300 seconds, not \"%s\"", value);
		p->timeout_ms = (uint32_t)ul * 1000;
	} else if (strcmp(key, "audit") == 0) {
		if (!egress_once(l, EG_AUDIT, key))
			return 0;
		if (!*value)
			return fail(l, l->lineno, "audit needs a file name");
		if (!(p->audit = strdup(value)))
			return fail(l, l->lineno, "out of memory");
	} else if (strcmp(key, "cache_ttl") == 0) {
		if (!egress_once(l, EG_TTL, key))
			return 0;
		if (parse_uint(value, 0, 3600, &ul) < 0)
			return fail(l, l->lineno, "cache_ttl must be 0..3600 seconds, not \"%s\"",
				    value);
		p->ttl_ms = (uint32_t)ul * 1000;
	} else if (strcmp(key, "unix") == 0) {
		if (!each_item(l, key, value, unix_item))
			return 0;
	} else if (strcmp(key, "errno") == 0) {
		if (!egress_once(l, EG_ERRNO, key))
			return 0;
		if ((v = policy_errno_parse(value)) < 0)
			return fail(l, l->lineno, "unknown errno \"%s\"", value);
		p->dflt_err = v;
	} else {
		return fail(l, l->lineno, "unknown key %s in [egress]", key);
	}
	return 1;
}

/* ---------------------------------------------------------------- [hosts] */

/* One address of a [hosts] line; key is the normalised name. */
static int hosts_item(struct loader *l, const char *name, char *item)
{
	struct hosts_entry *e;
	struct proto_addr a;

	if (policy_addr_parse(item, &a) < 0)
		return fail(l, l->lineno, "bad address \"%s\" for %s", item, name);
	policy_addr_canonical(&a);
	HASH_FIND_STR(l->p->hosts, name, e);
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e || !(e->name = strdup(name))) {
			free(e);
			return fail(l, l->lineno, "out of memory");
		}
		HASH_ADD_KEYPTR(hh, l->p->hosts, e->name, strlen(e->name), e);
	}
	for (int i = 0; i < e->naddr; i++)
		if (memcmp(&e->addrs[i], &a, sizeof a) == 0)
			return 1;
	struct proto_addr *v = realloc(e->addrs, (size_t)(e->naddr + 1) * sizeof *v);
	if (!v)
		return fail(l, l->lineno, "out of memory");
	e->addrs = v;
	e->addrs[e->naddr++] = a;
	return 1;
}

/* One "name = address, ..." line of [hosts]. Returns 1, or 0 after reporting. */
static int hosts_key(struct loader *l, const char *key, const char *value)
{
	char name[PROTO_NAME_MAX + 1];

	if (policy_name_normalise(key, name, sizeof name) < 0)
		return fail(l, l->lineno, "bad host name \"%s\" in [hosts]", key);
	return each_item(l, name, value, hosts_item);
}

/* ---------------------------------------------------------------- [rule] */

/* The rule being read: the last one. */
static struct rule *cur_rule(struct loader *l)
{
	return &l->p->rules[l->p->nrules - 1];
}

/* Item handlers of the [rule] list keys (each_item): each adds one entry to
 * the current rule or to the indexes. Return 1, or 0 after reporting. */
static int rule_host(struct loader *l, const char *key, char *item)
{
	struct rule *r = cur_rule(l);
	unsigned i = l->p->nrules - 1;
	char name[PROTO_NAME_MAX + 1];
	struct proto_addr a;
	int rc;

	(void)key;
	if (policy_addr_parse(item, &a) == 0) {
		/* A numeric entry is a host route, as if given by cidr. */
		policy_addr_canonical(&a);
		rc = cidr_index(l->p, &a, a.family == 4 ? 32 : 128, i);
	} else if (strncmp(item, "*.", 2) == 0) {
		if (policy_name_normalise(item + 2, name, sizeof name) < 0)
			return fail(l, l->lineno, "bad host \"%s\"", item);
		rc = name_index(l->p, KEY_WILD, name, i);
	} else {
		if (policy_name_normalise(item, name, sizeof name) < 0)
			return fail(l, l->lineno, "bad host \"%s\"", item);
		rc = name_index(l->p, KEY_EXACT, name, i);
	}
	if (rc < 0)
		return fail(l, l->lineno, "out of memory");
	r->has_dest = true;
	return 1;
}

static int rule_cidr(struct loader *l, const char *key, char *item)
{
	struct proto_addr a;
	unsigned len;
	const char *why;

	(void)key;
	if (parse_cidr(item, &a, &len, &why) < 0)
		return fail(l, l->lineno, "bad cidr \"%s\": %s", item, why);
	if (cidr_index(l->p, &a, len, l->p->nrules - 1) < 0)
		return fail(l, l->lineno, "out of memory");
	cur_rule(l)->has_dest = true;
	return 1;
}

static int rule_port(struct loader *l, const char *key, char *item)
{
	struct rule *r = cur_rule(l);
	char copy[64], *dash;
	unsigned long lo, hi;
	struct port_range *v;

	(void)key;
	snprintf(copy, sizeof copy, "%s", item);
	dash = strchr(item, '-');
	if (dash)
		*dash = 0;
	if (parse_uint(trim(item), 1, 65535, &lo) < 0 ||
	    parse_uint(dash ? trim(dash + 1) : item, 1, 65535, &hi) < 0 || lo > hi)
		return fail(l, l->lineno, "bad port \"%s\" (1..65535 or a range lo-hi)", copy);
	v = realloc(r->ports, (r->nports + 1) * sizeof *v);
	if (!v)
		return fail(l, l->lineno, "out of memory");
	r->ports = v;
	r->ports[r->nports].lo = (uint16_t)lo;
	r->ports[r->nports].hi = (uint16_t)hi;
	r->nports++;
	return 1;
}

static int rule_proto(struct loader *l, const char *key, char *item)
{
	(void)key;
	if (strcmp(item, "tcp") == 0)
		cur_rule(l)->l4 |= L4_TCP_BIT;
	else if (strcmp(item, "udp") == 0)
		cur_rule(l)->l4 |= L4_UDP_BIT;
	else
		return fail(l, l->lineno, "proto must be tcp or udp, not \"%s\"", item);
	return 1;
}

static int rule_exe(struct loader *l, const char *key, char *item)
{
	struct rule *r = cur_rule(l);
	char **v;

	(void)key;
	v = realloc(r->exes, (r->nexes + 1) * sizeof *v);
	if (!v)
		return fail(l, l->lineno, "out of memory");
	r->exes = v;
	if (!(r->exes[r->nexes] = strdup(item)))
		return fail(l, l->lineno, "out of memory");
	r->nexes++;
	return 1;
}

/* One key of a [rule]; list keys append. Returns 1, or 0 after reporting. */
static int rule_key(struct loader *l, const char *key, const char *value)
{
	struct rule *r = cur_rule(l);
	int v;

	if (strcmp(key, "host") == 0)
		return each_item(l, key, value, rule_host);
	if (strcmp(key, "cidr") == 0)
		return each_item(l, key, value, rule_cidr);
	if (strcmp(key, "port") == 0)
		return each_item(l, key, value, rule_port);
	if (strcmp(key, "proto") == 0)
		return each_item(l, key, value, rule_proto);
	if (strcmp(key, "exe") == 0)
		return each_item(l, key, value, rule_exe);
	if (strcmp(key, "action") == 0) {
		if (r->action)
			return fail(l, l->lineno, "duplicate key action in rule \"%s\"", r->name);
		if ((v = parse_action(value)) < 0)
			return fail(l, l->lineno, "action must be allow, deny or rewrite, not \"%s\"",
				    value);
		r->action = v;
		return 1;
	}
	if (strcmp(key, "transport") == 0) {
		const char *why;
		if (r->transport)
			return fail(l, l->lineno, "duplicate key transport in rule \"%s\"", r->name);
		if (!(r->transport = malloc(sizeof *r->transport)))
			return fail(l, l->lineno, "out of memory");
		if (policy_transport_parse(value, r->transport, &why) < 0)
			return fail(l, l->lineno, "%s", why);
		return 1;
	}
	if (strcmp(key, "limit") == 0) {
		if (r->limit)
			return fail(l, l->lineno, "duplicate key limit in rule \"%s\"", r->name);
		if (parse_bytes(value, &r->limit) < 0)
			return fail(l, l->lineno, "limit must be a byte count such as 65536, 64K or "
				    "10M, not \"%s\"", value);
		r->limit_line = l->lineno;
		return 1;
	}
	if (strcmp(key, "private") == 0) {
		if (r->private_set)
			return fail(l, l->lineno, "duplicate key private in rule \"%s\"", r->name);
		if ((v = parse_allow_deny(value)) < 0)
			return fail(l, l->lineno, "private must be allow or deny, not \"%s\"", value);
		r->private_set = 1;
		r->private_allow = v == PROTO_ALLOW;
		return 1;
	}
	if (strcmp(key, "errno") == 0) {
		if (r->err_set)
			return fail(l, l->lineno, "duplicate key errno in rule \"%s\"", r->name);
		if ((v = policy_errno_parse(value)) < 0)
			return fail(l, l->lineno, "unknown errno \"%s\"", value);
		r->err_set = true;
		r->err = v;
		return 1;
	}
	return fail(l, l->lineno, "unknown key %s in rule \"%s\"", key, r->name);
}

/* ----------------------------------------------------------- sections */

/* Closes the section in progress: a rule must have an action; a rule with
 * neither host nor cidr goes on the list of rules for any destination.
 * Returns 1 or 0 after reporting. */
static int section_end(struct loader *l)
{
	struct rule *r;

	if (l->sec != SEC_RULE)
		return 1;
	r = cur_rule(l);
	if (!r->action)
		return fail(l, r->line, "rule \"%s\" has no action", r->name);
	if ((r->transport || r->limit) && r->action != PROTO_REWRITE)
		return fail(l, r->limit_line ? r->limit_line : r->line,
			    "rule \"%s\": transport and limit need action = rewrite", r->name);
	if (!r->has_dest && list_add(&l->p->any, l->p->nrules - 1) < 0)
		return fail(l, r->line, "out of memory");
	return 1;
}

/* Starts [rule "name"]. Returns 1 or 0 after reporting. */
static int rule_begin(struct loader *l, const char *name, size_t len)
{
	struct policy *p = l->p;
	struct rule_name *rn;
	struct rule *r;

	if (len == 0 || len > PROTO_RULE_MAX)
		return fail(l, l->lineno, "rule name must be 1..%d characters", PROTO_RULE_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return fail(l, l->lineno, "rule name \"%.*s\" has a character other than "
				    "letters, digits, '_', '.' and '-'", (int)len, name);
	}
	/* "default" and "private" name verdicts that no rule made. */
	if ((len == 7 && strncmp(name, "default", 7) == 0) ||
	    (len == 7 && strncmp(name, "private", 7) == 0))
		return fail(l, l->lineno, "rule name \"%.*s\" is reserved", (int)len, name);
	HASH_FIND(hh, l->names, name, len, rn);
	if (rn)
		return fail(l, l->lineno, "duplicate rule name \"%.*s\"", (int)len, name);
	if (p->nrules == p->cap) {
		unsigned cap = p->cap ? 2 * p->cap : 16;
		struct rule *v = policy_huge_realloc(p->rules, p->cap * sizeof *v, cap * sizeof *v);

		if (!v)
			return fail(l, l->lineno, "out of memory");
		p->rules = v;
		p->cap = cap;
	}
	r = &p->rules[p->nrules++];
	memset(r, 0, sizeof *r);
	memcpy(r->name, name, len);
	r->line = l->lineno;
	r->err = EPERM;
	rn = calloc(1, sizeof *rn);
	if (!rn || !(rn->name = strdup(r->name))) {
		free(rn);
		return fail(l, l->lineno, "out of memory");
	}
	HASH_ADD_KEYPTR(hh, l->names, rn->name, len, rn);
	return 1;
}

/* Handles a section header line s (s[0] == '['), ahead of inih, which
 * truncates long section names and cannot report empty sections.
 * Returns 1 or 0 after reporting. */
static int section_begin(struct loader *l, char *s)
{
	char *close = strchr(s, ']'), *in, *rest;

	if (!section_end(l))
		return 0;
	if (!close)
		return fail(l, l->lineno, "section header without ']'");
	rest = trim(close + 1);
	if (*rest && *rest != ';' && *rest != '#')
		return fail(l, l->lineno, "text after the section header");
	*close = 0;
	in = trim(s + 1);
	if (strcmp(in, "egress") == 0) {
		l->sec = SEC_EGRESS;
	} else if (strcmp(in, "hosts") == 0) {
		l->sec = SEC_HOSTS;
	} else if (strncmp(in, "rule", 4) == 0 && (in[4] == ' ' || in[4] == '\t' || in[4] == '"')) {
		char *q = trim(in + 4), *end;

		end = q + strlen(q);
		if (q[0] != '"' || end - q < 2 || end[-1] != '"')
			return fail(l, l->lineno, "rule section must be [rule \"name\"]");
		l->sec = SEC_NONE; /* until the rule exists */
		if (!rule_begin(l, q + 1, (size_t)(end - q - 2)))
			return 0;
		l->sec = SEC_RULE;
	} else {
		return fail(l, l->lineno, "unknown section [%s]", in);
	}
	return 1;
}

/* ---------------------------------------------------------------- inih */

/* inih reader: hands inih one line at a time, so that our line count is
 * inih's, and handles section headers itself. Returns NULL at the end of
 * the file or after an error, which stops the parse. */
static char *load_reader(char *str, int num, void *stream)
{
	struct loader *l = stream;
	ssize_t n;
	size_t len;
	char *s;

	if (l->failed)
		return NULL;
	n = getline(&l->line, &l->linecap, l->f);
	if (n < 0) {
		if (ferror(l->f))
			fail(l, l->lineno, "read error: %s", strerror(errno));
		return NULL;
	}
	l->lineno++;
	if (strlen(l->line) != (size_t)n) {
		fail(l, l->lineno, "NUL byte in line");
		return NULL;
	}
	len = (size_t)n;
	while (len && (l->line[len - 1] == '\n' || l->line[len - 1] == '\r'))
		len--;
	/* inih needs room for "\r\n\0" after the text. */
	if (len + 3 > (size_t)num) {
		fail(l, l->lineno,
		     "line longer than %d bytes (repeat the key to continue a list)", num - 3);
		return NULL;
	}
	/* the text and one "\n", never the whole run of line ends it had */
	memcpy(str, l->line, len);
	str[len] = '\n';
	str[len + 1] = 0;
	l->line[len] = 0;
	s = l->line;
	if (l->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3; /* a UTF-8 BOM, which inih skips too */
	if (s[0] == '[') {
		if (!section_begin(l, s))
			return NULL;
	} else {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '[') {
			fail(l, l->lineno, "section header must start the line");
			return NULL;
		}
	}
	return str;
}

/* inih handler: one key = value of the current section (l->sec; inih's
 * section string is not used). Returns 1, or 0 after reporting. */
static int load_handler(void *user, const char *section, const char *key, const char *value)
{
	struct loader *l = user;

	(void)section;
	if (l->failed)
		return 0;
	switch (l->sec) {
	case SEC_EGRESS:
		return egress_key(l, key, value);
	case SEC_HOSTS:
		return hosts_key(l, key, value);
	case SEC_RULE:
		return rule_key(l, key, value);
	case SEC_NONE:
		break;
	}
	return fail(l, l->lineno, "key %s outside a section", key);
}

/* ---------------------------------------------------------------- API */

struct policy *policy_load(const char *path, char *err, size_t errlen)
{
	struct loader l;
	struct rule_name *rn, *tmp;
	int rc;

	memset(&l, 0, sizeof l);
	l.path = path;
	l.err = err;
	l.errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	l.p = calloc(1, sizeof *l.p);
	if (!l.p || !(l.p->path = strdup(path))) {
		free(l.p);
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	l.p->dflt_action = PROTO_DENY;
	l.p->dflt_err = EPERM;
	l.p->ttl_ms = POLICY_DEFAULT_TTL_MS;
	l.p->timeout_ms = POLICY_DEFAULT_TIMEOUT_MS;
	l.p->transport.kind = POLICY_DIRECT;
	l.f = fopen(path, "re");
	if (!l.f) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		policy_free(l.p);
		return NULL;
	}
	rc = ini_parse_stream(load_reader, &l, load_handler, &l);
	/* inih goes on after a line it cannot parse and reports the first. */
	if (rc > 0 && (!l.failed || (unsigned)rc < l.err_line)) {
		l.failed = false;
		fail(&l, (unsigned)rc, "syntax error (expected key = value)");
	} else if (rc < 0 && !l.failed) {
		fail(&l, l.lineno, "cannot parse (inih error %d)", rc);
	}
	if (!l.failed)
		section_end(&l);
	if (!l.failed)
		split_all(l.p);
	if (!l.failed && heads_make(l.p) < 0)
		fail(&l, l.lineno, "out of memory");
	fclose(l.f);
	free(l.line);
	HASH_ITER(hh, l.names, rn, tmp) {
		HASH_DEL(l.names, rn);
		free(rn->name);
		free(rn);
	}
	if (l.failed) {
		policy_free(l.p);
		return NULL;
	}
	return l.p;
}

void policy_free(struct policy *p)
{
	struct hosts_entry *h, *htmp;

	if (!p)
		return;
	for (unsigned i = 0; i < p->nrules; i++) {
		for (unsigned j = 0; j < p->rules[i].nexes; j++)
			free(p->rules[i].exes[j]);
		free(p->rules[i].exes);
		free(p->rules[i].ports);
		free(p->rules[i].transport);
	}
	free(p->rules);
	free(p->heads);
	table_free(&p->dest);
	HASH_ITER(hh, p->hosts, h, htmp) {
		HASH_DEL(p->hosts, h);
		free(h->name);
		free(h->addrs);
		free(h);
	}
	list_free(&p->any);
	for (unsigned i = 0; i < p->nunix; i++)
		free(p->unix_globs[i]);
	free(p->unix_globs);
	free(p->audit);
	free(p->path);
	free(p);
}

bool policy_unix_allowed(const struct policy *p, const char *path)
{
	for (unsigned i = 0; i < p->nunix; i++)
		if (fnmatch(p->unix_globs[i], path, FNM_PATHNAME) == 0)
			return true;
	return false;
}

const char *policy_audit_path(const struct policy *p)
{
	return p->audit;
}

const char *policy_path(const struct policy *p)
{
	return p->path;
}

unsigned policy_rule_count(const struct policy *p)
{
	return p->nrules;
}

void policy_rule_ports(const struct policy *p, const char *rule, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = 0;
	for (unsigned i = 0; i < p->nrules; i++) {
		const struct rule *r = &p->rules[i];

		if (strcmp(r->name, rule) != 0)
			continue;
		for (unsigned j = 0; j < r->nports && len < cap; j++) {
			const struct port_range *pr = &r->ports[j];
			int n = pr->lo == pr->hi
					? snprintf(out + len, cap - len, "%s%u", j ? ", " : "", pr->lo)
					: snprintf(out + len, cap - len, "%s%u-%u", j ? ", " : "", pr->lo,
						   pr->hi);

			len += n > 0 ? (size_t)n : 0;
		}
		return;
	}
}

uint32_t policy_ttl_ms(const struct policy *p)
{
	return p->ttl_ms;
}

uint32_t policy_timeout_ms(const struct policy *p)
{
	return p->timeout_ms;
}

const struct policy_transport *policy_transport(const struct policy *p)
{
	return &p->transport;
}
