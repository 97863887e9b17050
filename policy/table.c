/* table.c: the rule set's flat indexes: byte keys (of a kind) to ascending
 * rule lists, one open-addressing hash table each (struct policy_table). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Fewest slots of a table that holds anything; a power of two. */
#define TABLE_MIN_SLOTS 16

/* Arrays at least this large are given whole huge pages where the kernel
 * has them (transparent huge pages on madvise): a probe of a large index
 * then misses the cache, but seldom the TLB as well. */
#define HUGE_MIN (1u << 20)
#define HUGE_PAGE (2u << 20)

void *policy_huge_realloc(void *old, size_t old_size, size_t size)
{
	size_t round = (size + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	void *p;

	if (size < HUGE_MIN)
		return realloc(old, size);
	if (!(p = aligned_alloc(HUGE_PAGE, round)))
		return NULL;
	madvise(p, round, MADV_HUGEPAGE); /* a hint: without it, small pages */
	if (old)
		memcpy(p, old, old_size < size ? old_size : size);
	free(old);
	return p;
}

/* The size an entry with a key of len bytes takes in the arena. */
static size_t entry_size(size_t len)
{
	return (sizeof(struct table_entry) + len + 7) & ~(size_t)7;
}

/* The entry a nonempty slot names. */
static struct table_entry *slot_entry(const struct policy_table *t, uint64_t slot)
{
	return (struct table_entry *)(void *)(t->arena + ((slot & 0xffffffffu) - 1) * 8);
}

uint64_t policy_table_hash(unsigned kind, const void *key, size_t len)
{
	const unsigned char *b = key;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)kind << 56) ^ len, w;
	uint32_t lo, hi;

	/* whole words, then the last 1..8 bytes in one or two loads that may
	 * overlap what came before (the length is in h already) */
	if (len > 8) {
		for (; len > 8; b += 8, len -= 8) {
			memcpy(&w, b, 8);
			h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
			h ^= h >> 29;
		}
		memcpy(&w, b + len - 8, 8);
	} else if (len >= 4) {
		memcpy(&lo, b, 4);
		memcpy(&hi, b + len - 4, 4);
		w = (uint64_t)hi << 32 | lo;
	} else if (len) {
		w = (uint64_t)b[0] << 16 | (uint64_t)b[len / 2] << 8 | b[len - 1];
	} else {
		w = 0;
	}
	/* splitmix64's finaliser: every key bit reaches every hash bit */
	h ^= w;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

const struct idx_list *policy_table_find_hashed(const struct policy_table *t, uint64_t h,
						unsigned kind, const void *key, size_t len)
{
	uint32_t tag = (uint32_t)(h >> 32);

	if (!t->n)
		return NULL;
	for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
		uint64_t s = t->slots[i];
		const struct table_entry *e;

		if (!s)
			return NULL;
		if ((uint32_t)(s >> 32) != tag)
			continue;
		e = slot_entry(t, s);
		if (e->hash == (uint32_t)h && e->len == len && e->kind == kind &&
		    memcmp(e->key, key, len) == 0)
			return &e->rules;
	}
}

const struct idx_list *policy_table_find(const struct policy_table *t, unsigned kind,
					 const void *key, size_t len)
{
	if (!t->n)
		return NULL;
	return policy_table_find_hashed(t, policy_table_hash(kind, key, len), kind, key, len);
}

/* Doubles t's slots (or makes the first ones) and puts every entry back.
 * Returns 0 or -1 (out of memory; t is unchanged). */
static int table_grow(struct policy_table *t)
{
	uint32_t n = t->slots ? 2 * (t->mask + 1) : TABLE_MIN_SLOTS, mask = n - 1;
	uint64_t *slots = policy_huge_realloc(NULL, 0, n * sizeof *slots);

	if (!slots)
		return -1;
	memset(slots, 0, n * sizeof *slots);
	for (uint32_t k = 0; t->slots && k <= t->mask; k++) {
		uint64_t s = t->slots[k];
		uint32_t i;

		if (!s)
			continue;
		for (i = slot_entry(t, s)->hash & mask; slots[i]; i = (i + 1) & mask)
			;
		slots[i] = s;
	}
	free(t->slots);
	t->slots = slots;
	t->mask = mask;
	return 0;
}

struct idx_list *policy_table_add(struct policy_table *t, unsigned kind, const void *key,
				  size_t len)
{
	uint64_t h = policy_table_hash(kind, key, len);
	const struct idx_list *found = policy_table_find_hashed(t, h, kind, key, len);
	size_t size = entry_size(len);
	struct table_entry *e;
	uint32_t i;

	if (found)
		return (struct idx_list *)found;
	if (len > UINT16_MAX || (t->used + size) / 8 >= UINT32_MAX - 1)
		return NULL;
	/* at most half full: a miss stops within a slot or two */
	if ((!t->slots || 2 * ((size_t)t->n + 1) > (size_t)t->mask + 1) && table_grow(t) < 0)
		return NULL;
	if (t->used + size > t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 256;
		unsigned char *arena;

		while (cap < t->used + size)
			cap *= 2;
		if (!(arena = policy_huge_realloc(t->arena, t->used, cap)))
			return NULL;
		t->arena = arena;
		t->cap = cap;
	}
	e = (struct table_entry *)(void *)(t->arena + t->used);
	memset(e, 0, size);
	e->hash = (uint32_t)h;
	e->len = (uint16_t)len;
	e->kind = (uint8_t)kind;
	memcpy(e->key, key, len);
	for (i = (uint32_t)h & t->mask; t->slots[i]; i = (i + 1) & t->mask)
		;
	t->slots[i] = (h >> 32) << 32 | (t->used / 8 + 1);
	t->used += size;
	t->n++;
	return &e->rules;
}

struct table_entry *policy_table_next(const struct policy_table *t, struct table_entry *prev)
{
	size_t off = prev ? (size_t)((unsigned char *)prev - t->arena) + entry_size(prev->len) : 0;

	return off < t->used ? (struct table_entry *)(void *)(t->arena + off) : NULL;
}

void policy_table_free(struct policy_table *t)
{
	free(t->slots);
	free(t->arena);
	memset(t, 0, sizeof *t);
}
