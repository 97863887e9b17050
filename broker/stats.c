/* stats.c: the broker's counters and the bounded table of denied
 * destinations behind "top denied". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "broker.h"

struct stats_denied {
	char key[PROTO_DEST_MAX + 8];   /* "dest proto": the hash key */
	char dest[PROTO_DEST_MAX];      /* "name:port" or "addr:port" */
	int l4;                         /* enum proto_l4 */
	unsigned long count;            /* denials */
	UT_hash_handle hh;
};

void stats_init(struct stats *s)
{
	memset(s, 0, sizeof *s);
}

void stats_free(struct stats *s)
{
	struct stats_denied *d, *tmp;

	HASH_ITER(hh, s->denied, d, tmp) {
		HASH_DEL(s->denied, d);
		free(d);
	}
	s->ndenied = 0;
}

void stats_dropped(struct stats *s, const struct nflog_counts *n)
{
	s->dropped.dropped += n->dropped;
	s->dropped.lost += n->lost;
	s->dropped.unitemised += n->unitemised;
	s->dropped.malformed += n->malformed;
}

void stats_decision(struct stats *s, int op, int action)
{
	switch (action) {
	case PROTO_ALLOW: s->allow++; break;
	case PROTO_DENY: s->deny++; break;
	case PROTO_REWRITE: s->rewrite++; break;
	}
	switch (op) {
	case PROTO_OP_RESOLVE: s->resolve++; break;
	case PROTO_OP_CONNECT: s->connect++; break;
	case PROTO_OP_SEND: s->send++; break;
	}
}

void stats_denied(struct stats *s, const char *name, const struct proto_addr *addr, uint16_t port,
		  int l4)
{
	struct stats_denied *d, *tmp, *least = NULL;
	char dest[PROTO_DEST_MAX], key[sizeof d->key];

	proto_dest_format(name, addr, port, dest, sizeof dest);
	snprintf(key, sizeof key, "%s %s", dest, proto_l4_name(l4));
	HASH_FIND_STR(s->denied, key, d);
	if (d) {
		d->count++;
		return;
	}
	if (s->ndenied >= STATS_DENIED_MAX) {
		/* Make room by forgetting the least denied destination: a new
		 * heavy hitter still climbs, an old rare one goes. */
		HASH_ITER(hh, s->denied, d, tmp)
			if (!least || d->count < least->count)
				least = d;
		HASH_DEL(s->denied, least);
		free(least);
		s->ndenied--;
	}
	d = calloc(1, sizeof *d);
	if (!d)
		return;
	memcpy(d->key, key, sizeof key);
	memcpy(d->dest, dest, sizeof dest);
	d->l4 = l4;
	d->count = 1;
	HASH_ADD_STR(s->denied, key, d);
	s->ndenied++;
}

/* Orders destinations by count, most first, then by text. */
static int stats_top_cmp(const void *x, const void *y)
{
	const struct stats_top *a = x, *b = y;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	int c = strcmp(a->dest, b->dest);
	return c ? c : a->l4 - b->l4;
}

size_t stats_top_denied(const struct stats *s, struct stats_top *out, size_t max)
{
	struct stats_top *all;
	struct stats_denied *d, *tmp;
	size_t n = 0;

	if (!s->ndenied || !max)
		return 0;
	all = calloc(s->ndenied, sizeof *all);
	if (!all)
		return 0;
	HASH_ITER(hh, s->denied, d, tmp) {
		memcpy(all[n].dest, d->dest, sizeof d->dest);
		all[n].l4 = d->l4;
		all[n].count = d->count;
		n++;
	}
	qsort(all, n, sizeof *all, stats_top_cmp);
	if (n > max)
		n = max;
	memcpy(out, all, n * sizeof *out);
	free(all);
	return n;
}
