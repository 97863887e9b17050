/* decide.c: judges one request against a compiled rule set, and answers
 * [hosts] lookups. */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

/* Candidate lists: 1 exact name + at most 126 parent suffixes of a 253-byte
 * name + at most 129 prefix lengths of one family + the any-destination
 * list, each of them in up to four parts when split (its port's rules,
 * its exe base name's, its exe path's, the rest). */
#define CAND_MAX 1040

struct cand {
	const unsigned *v; /* ascending rule indices */
	unsigned n;
	unsigned pos;      /* next to look at */
	int addr_len;      /* >= 0: rules on this list match the request's address
			    * by a cidr of this prefix length; -1: by name or any */
	const struct rule_head *head; /* a one-rule list's copy of its head, or NULL */
};

/* Adds the rule indices v[0..n) to the candidates, unless there are none;
 * head: the copy of v[0]'s head beside a one-rule list, or NULL. */
static void cand_push(struct cand *c, int *nc, const unsigned *v, unsigned n, int addr_len,
		      const struct rule_head *head)
{
	if (!n || *nc >= CAND_MAX)
		return;
	c[*nc].v = v;
	c[*nc].n = n;
	c[*nc].pos = 0;
	c[*nc].addr_len = addr_len;
	c[*nc].head = head;
	(*nc)++;
}

/* Adds the rules of a list that is not split. */
static void cand_list(struct cand *c, int *nc, const struct idx_list *l, int addr_len)
{
	cand_push(c, nc, idx_rules(l), l->n, addr_len, l->n == 1 ? &l->head : NULL);
}

/* Adds the rules of list that can match req: of a split list, those listed
 * under its port (all the ported ones when it has none), under its exe, and
 * the rest. */
static void cand_add(struct cand *c, int *nc, const struct idx_list *list, int addr_len,
		     const struct policy_request *req)
{
	const struct idx_split *sp;
	const struct idx_list *e;

	if (!list)
		return;
	if (!(sp = list->split)) {
		cand_list(c, nc, list, addr_len);
		return;
	}
	if (req->port == 0) {
		cand_push(c, nc, sp->ported, sp->nported, addr_len, NULL);
	} else if ((e = policy_table_find(&sp->byport, KEY_PORT, &req->port, sizeof req->port))) {
		cand_list(c, nc, e, addr_len);
	}
	if (req->exe && sp->byexe.n) {
		const char *base = strrchr(req->exe, '/');

		base = base ? base + 1 : req->exe;
		if ((e = policy_table_find(&sp->byexe, KEY_EXE, base, strlen(base))))
			cand_list(c, nc, e, addr_len);
		if (base != req->exe &&
		    (e = policy_table_find(&sp->byexe, KEY_EXE, req->exe, strlen(req->exe))))
			cand_list(c, nc, e, addr_len);
	}
	cand_push(c, nc, sp->rest, sp->nrest, addr_len, NULL);
}

/* True when bit n of the 256-bit set is on. */
static bool len_present(const uint64_t *set, size_t n)
{
	return n < 256 && (set[n / 64] >> (n % 64) & 1);
}

/* One key to look up in p->dest. */
struct probe {
	const unsigned char *key;
	size_t len;
	unsigned kind;
	int addr_len;  /* the candidates' addr_len */
	uint64_t hash;
};

/* Probes: 1 exact name + at most 126 parent suffixes + at most 129 prefix
 * lengths of one family. */
#define PROBE_MAX 256

/* Collects the rules whose host or cidr can match req (and those with
 * neither), one ascending list per index hit (up to four for a split
 * list). Only keys of a length (names) or a prefix length (cidrs) that
 * some rule has are looked up, and all of them together: every home slot
 * is prefetched before the first is read, so that the cache misses of a
 * large table overlap instead of adding up. Returns how many lists. */
static int gather(const struct policy *p, const struct policy_request *req, const char *name,
		  const struct proto_addr *a, struct cand *c)
{
	struct probe pr[PROBE_MAX];
	unsigned char ckeys[129][17];
	int nc = 0, np = 0;

	if (name && p->dest.n) {
		size_t len = strlen(name);

		if (len_present(p->exact_lens, len))
			pr[np++] = (struct probe){ (const unsigned char *)name, len, KEY_EXACT, -1, 0 };
		/* "*.suffix" matches strict subdomains: look up every parent. */
		for (const char *s = strchr(name, '.'); s && np < PROBE_MAX; s = strchr(s + 1, '.')) {
			size_t slen = len - (size_t)(s + 1 - name);

			if (len_present(p->wild_lens, slen))
				pr[np++] = (struct probe){ (const unsigned char *)s + 1, slen, KEY_WILD, -1,
							   0 };
		}
	}
	if (a && (a->family == 4 || a->family == 6) && p->dest.n) {
		const uint8_t *lens = a->family == 4 ? p->cidr_lens4 : p->cidr_lens6;
		unsigned nlens = a->family == 4 ? p->ncidr_lens4 : p->ncidr_lens6;
		unsigned kind = a->family == 4 ? KEY_CIDR4 : KEY_CIDR6;

		for (unsigned k = 0; k < nlens && np < PROBE_MAX; k++) {
			unsigned len = lens[k], nb = (len + 7) / 8;
			unsigned char *key = ckeys[k];

			key[0] = (uint8_t)len;
			memcpy(key + 1, a->bytes, nb);
			if (len % 8)
				key[nb] &= (uint8_t)(0xff << (8 - len % 8));
			pr[np++] = (struct probe){ key, 1 + nb, kind, (int)len, 0 };
		}
	}
	for (int k = 0; k < np; k++) {
		pr[k].hash = policy_table_hash(pr[k].kind, pr[k].key, pr[k].len);
		policy_table_prefetch(&p->dest, pr[k].hash);
	}
	for (int k = 0; k < np; k++)
		cand_add(c, &nc,
			 policy_table_find_hashed(&p->dest, pr[k].hash, pr[k].kind, pr[k].key, pr[k].len),
			 pr[k].addr_len, req);
	cand_add(c, &nc, &p->any, -1, req);
	/* the first candidate of each list is the likeliest match */
	for (int k = 0; k < nc; k++)
		if (!c[k].head)
			__builtin_prefetch(&p->heads[c[k].v[0]]);
	return nc;
}

/* True when exe matches one of the rule's patterns: a pattern with a '/' is
 * matched against the full path ('*' does not cross '/'), one without
 * against the base name. */
static bool exe_match(const struct rule *r, const char *exe)
{
	const char *base;

	if (!exe)
		return false;
	base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	for (unsigned i = 0; i < r->nexes; i++) {
		const char *pat = r->exes[i];

		if (strchr(pat, '/') ? fnmatch(pat, exe, FNM_PATHNAME) == 0
				     : fnmatch(pat, base, 0) == 0)
			return true;
	}
	return false;
}

/* True when req satisfies rule i's port, proto and exe constraints (h is
 * its head; its host or cidr was matched by the index). An unknown port or
 * l4 satisfies a port or proto constraint only for a rule that does not
 * deny. A deny rule with
 * a port or proto never denies a lookup: the connect or send is judged with
 * both, and fails there with the rule's errno rather than as a lookup. */
static bool rule_match(const struct policy *p, unsigned i, const struct rule_head *h,
		       const struct policy_request *req)
{
	unsigned l4 = h->flags & (L4_TCP_BIT | L4_UDP_BIT);

	if ((h->hi || l4) && h->action == PROTO_DENY && req->op == PROTO_OP_RESOLVE)
		return false;
	if (h->hi) {
		bool ok;

		if (req->port == 0) {
			ok = h->action != PROTO_DENY;
		} else {
			ok = req->port >= h->lo && req->port <= h->hi;
			if (!ok && (h->flags & HEAD_PORTS)) {
				const struct rule *r = &p->rules[i];

				for (unsigned k = 1; k < r->nports && !ok; k++)
					ok = req->port >= r->ports[k].lo && req->port <= r->ports[k].hi;
			}
		}
		if (!ok)
			return false;
	}
	if (l4) {
		if (req->l4 == PROTO_L4_ANY) {
			if (h->action == PROTO_DENY)
				return false;
		} else if (req->l4 != PROTO_L4_TCP && req->l4 != PROTO_L4_UDP) {
			return false;
		} else if (!(l4 & (1u << req->l4))) {
			return false;
		}
	}
	if ((h->flags & HEAD_EXES) && !exe_match(&p->rules[i], req->exe))
		return false;
	return true;
}

/*
 * Destination matching: a rule with host entries matches when the request's
 * name matches one of them; a rule with cidr entries (numeric host entries
 * count as cidr) when the request's address is in one of them; a rule with
 * both when either matches; a rule with neither matches any destination.
 * Then port, proto and exe must all match. Only an address matched through
 * a cidr no wider than the private range it is in opens a private address:
 * "cidr = 0.0.0.0/0" means the internet, not the metadata service.
 */
void policy_decide(const struct policy *p, const struct policy_request *req,
		   struct policy_verdict *v)
{
	struct cand c[CAND_MAX];
	char name[PROTO_NAME_MAX + 1];
	const char *np = NULL;
	struct proto_addr a;
	const struct proto_addr *ap = NULL;
	const struct rule_head *hit = NULL;
	unsigned hit_i = 0;
	int addr_len = -1, nc;
	unsigned plen;

	/* Normalised and canonical by contract; done again so that another
	 * spelling can never slip past a deny rule. */
	if (req->name && policy_name_normalise(req->name, name, sizeof name) == 0)
		np = name;
	if (req->addr) {
		a = *req->addr;
		policy_addr_canonical(&a);
		ap = &a;
	}

	/* Walk the candidate lists merged in rule order; first match wins. */
	nc = gather(p, req, np, ap, c);
	for (;;) {
		unsigned min = UINT_MAX;
		int len = -1;
		const struct rule_head *h = NULL;

		for (int i = 0; i < nc; i++)
			if (c[i].pos < c[i].n && c[i].v[c[i].pos] < min)
				min = c[i].v[c[i].pos];
		if (min == UINT_MAX)
			break;
		for (int i = 0; i < nc; i++) {
			if (c[i].pos < c[i].n && c[i].v[c[i].pos] == min) {
				if (c[i].addr_len > len)
					len = c[i].addr_len;
				if (c[i].head && c[i].pos == 0)
					h = c[i].head;
				c[i].pos++;
			}
		}
		if (!h)
			h = &p->heads[min];
		if (rule_match(p, min, h, req)) {
			hit = h;
			hit_i = min;
			addr_len = len;
			break;
		}
	}

	v->transport = &p->transport;
	v->limit = 0;
	if (hit) {
		/* the rule itself only for a transport or limit of its own */
		v->action = hit->action;
		v->err = hit->action == PROTO_DENY ? hit->err : 0;
		v->rule = p->rules[hit_i].name;
		if (hit->flags & HEAD_EXTRA) {
			v->limit = p->rules[hit_i].limit;
			if (p->rules[hit_i].transport)
				v->transport = p->rules[hit_i].transport;
		}
	} else {
		v->action = p->dflt_action;
		v->err = p->dflt_action == PROTO_DENY ? p->dflt_err : 0;
		v->rule = "default";
	}

	/* Private-range protection: neither a name rule, nor the default, nor
	 * a cidr wider than the private range opens a private address. */
	plen = ap ? policy_addr_private_len(ap) : 0;
	if (v->action != PROTO_DENY && plen && addr_len < (int)plen &&
	    !(hit && (hit->flags & HEAD_PRIVATE)) && !p->private_allow && !req->from_hosts) {
		v->action = PROTO_DENY;
		v->err = EPERM;
		v->rule = "private";
	}
}

int policy_hosts_lookup(const struct policy *p, const char *name, struct proto_addr *out,
			int max)
{
	char norm[PROTO_NAME_MAX + 1];
	struct hosts_entry *e;
	int n;

	if (!name || policy_name_normalise(name, norm, sizeof norm) < 0)
		return 0;
	HASH_FIND_STR(p->hosts, norm, e);
	if (!e || max <= 0)
		return 0;
	n = e->naddr < max ? e->naddr : max;
	memcpy(out, e->addrs, (size_t)n * sizeof *out);
	return n;
}
