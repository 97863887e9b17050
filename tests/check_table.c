/* check_table.c: unit tests of the policy's flat index (policy/table.c):
 * lookups after growth, keys that share a home slot or their 32 bits of
 * tag, kinds, lengths, iteration order, the empty table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "suites.h"

/* Writes key number i (of a mix of lengths, 0 to 300 bytes) to buf.
 * Returns its length. */
static size_t key_make(unsigned i, unsigned char *buf)
{
	size_t len = i % 7 == 6 ? 200 + i % 101 : i % 23;

	for (size_t k = 0; k < len; k++)
		buf[k] = (unsigned char)(i >> (8 * (k % 4)) ^ k);
	if (len >= 4)
		memcpy(buf, &i, 4); /* distinct whatever the length */
	return len;
}

/* The kind key i is added with. */
static unsigned key_kind(unsigned i)
{
	return KEY_EXACT + i % 6;
}

/* Adds rule i under key i, for i < n. */
static void table_fill(struct policy_table *t, unsigned n)
{
	unsigned char key[320];

	for (unsigned i = 0; i < n; i++) {
		size_t len = key_make(i, key);
		struct idx_list *l = policy_table_add(t, key_kind(i), key, len);

		ck_assert_ptr_nonnull(l);
		if (l->n == 0) {
			l->one = i;
			l->n = 1;
		}
	}
}

/* Frees t's slots and entries (the lists here hold nothing else). */
static void table_done(struct policy_table *t)
{
	policy_table_free(t);
	ck_assert_ptr_null(t->slots);
	ck_assert_uint_eq(t->n, 0);
}

START_TEST(test_policy_table_find_after_growth)
{
	enum { N = 60000 };
	struct policy_table t = { 0 };
	unsigned char key[320];
	unsigned distinct = 0;

	table_fill(&t, N);
	/* keys 0..22 of length < 4 repeat for some i; count what is distinct */
	for (unsigned i = 0; i < N; i++) {
		size_t len = key_make(i, key);
		const struct idx_list *l = policy_table_find(&t, key_kind(i), key, len);

		ck_assert_ptr_nonnull(l);
		ck_assert_uint_eq(l->n, 1);
		distinct += idx_rules(l)[0] == i;
		if (len >= 4)
			ck_assert_uint_eq(idx_rules(l)[0], i);
	}
	ck_assert_uint_eq(t.n, distinct);
	ck_assert_uint_ge((size_t)t.mask + 1, 2 * (size_t)t.n); /* at most half full */
	/* the same bytes under another kind, one byte more or less, one changed */
	for (unsigned i = 0; i < N; i += 7) {
		size_t len = key_make(i, key);

		if (len < 4)
			continue;
		ck_assert_ptr_null(policy_table_find(&t, key_kind(i + 1), key, len));
		ck_assert_ptr_null(policy_table_find(&t, key_kind(i), key, len - 1));
		key[len] = 0x5a;
		ck_assert_ptr_null(policy_table_find(&t, key_kind(i), key, len + 1));
		key[len - 1] ^= 0x80;
		ck_assert_ptr_null(policy_table_find(&t, key_kind(i), key, len));
	}
	table_done(&t);
}
END_TEST

/* Entries come back in the order they were added, each once. */
START_TEST(test_policy_table_next_in_order)
{
	struct policy_table t = { 0 };
	unsigned char key[320];
	unsigned n = 0, last = 0;

	ck_assert_ptr_null(policy_table_next(&t, NULL));
	for (unsigned i = 0; i < 5000; i++) {
		size_t len = key_make(i, key);

		if (len < 4)
			continue; /* repeats */
		ck_assert_ptr_nonnull(policy_table_add(&t, key_kind(i), key, len));
		policy_table_add(&t, key_kind(i), key, len)->one = i; /* found again, not added */
	}
	for (struct table_entry *e = policy_table_next(&t, NULL); e; e = policy_table_next(&t, e)) {
		unsigned i;

		memcpy(&i, e->key, 4);
		ck_assert_uint_eq(e->rules.one, i);
		ck_assert(n == 0 || i > last);
		ck_assert_uint_eq(e->kind, key_kind(i));
		last = i;
		n++;
	}
	ck_assert_uint_eq(n, t.n);
	table_done(&t);
}
END_TEST

/* Keys whose home slots coincide in a small table, and two keys with the
 * same 32 bits of tag (found by a birthday search): each finds its own. */
START_TEST(test_policy_table_collisions)
{
	enum { SEARCH = 300000 };
	struct policy_table t = { 0 };
	struct { uint64_t h; unsigned i; } *hs = malloc(SEARCH * sizeof *hs);
	unsigned same[8], nsame = 0, pair[2] = { 0, 0 };
	char key[32];
	bool paired = false;

	ck_assert_ptr_nonnull(hs);
	/* eight keys with equal low 16 bits: one home slot up to 65,536 slots */
	for (unsigned i = 0; nsame < 8; i++) {
		int len = snprintf(key, sizeof key, "h%u.example", i);

		if ((policy_table_hash(KEY_EXACT, key, (size_t)len) & 0xffff) == 0x1234)
			same[nsame++] = i;
	}
	for (unsigned k = 0; k < nsame; k++) {
		int len = snprintf(key, sizeof key, "h%u.example", same[k]);

		policy_table_add(&t, KEY_EXACT, key, (size_t)len)->one = same[k];
	}
	for (unsigned k = 0; k < nsame; k++) {
		int len = snprintf(key, sizeof key, "h%u.example", same[k]);
		const struct idx_list *l = policy_table_find(&t, KEY_EXACT, key, (size_t)len);

		ck_assert_ptr_nonnull(l);
		ck_assert_uint_eq(l->one, same[k]);
	}
	ck_assert_ptr_null(policy_table_find(&t, KEY_EXACT, "h.example", 9));
	table_done(&t);

	/* a tag collision: equal high 32 bits, different keys */
	for (unsigned i = 0; i < SEARCH; i++) {
		int len = snprintf(key, sizeof key, "t%u", i);

		hs[i].h = policy_table_hash(KEY_WILD, key, (size_t)len);
		hs[i].i = i;
	}
	{
		/* an open-addressed set of the tags seen, to find a repeat */
		enum { B = 1 << 20 };
		unsigned *seen = calloc(B, sizeof *seen);

		ck_assert_ptr_nonnull(seen);
		for (unsigned i = 0; i < SEARCH && !paired; i++) {
			uint32_t tag = (uint32_t)(hs[i].h >> 32);

			for (uint32_t b = tag & (B - 1);; b = (b + 1) & (B - 1)) {
				if (!seen[b]) {
					seen[b] = i + 1;
					break;
				}
				if ((uint32_t)(hs[seen[b] - 1].h >> 32) == tag) {
					pair[0] = seen[b] - 1;
					pair[1] = i;
					paired = true;
					break;
				}
			}
		}
		free(seen);
	}
	if (paired) { /* about 10 expected among 300,000 keys */
		for (int k = 0; k < 2; k++) {
			int len = snprintf(key, sizeof key, "t%u", pair[k]);

			policy_table_add(&t, KEY_WILD, key, (size_t)len)->one = pair[k];
		}
		for (int k = 0; k < 2; k++) {
			int len = snprintf(key, sizeof key, "t%u", pair[k]);
			const struct idx_list *l = policy_table_find(&t, KEY_WILD, key, (size_t)len);

			ck_assert_ptr_nonnull(l);
			ck_assert_uint_eq(l->one, pair[k]);
		}
		ck_assert_uint_eq(t.n, 2);
		table_done(&t);
	}
	ck_assert_msg(paired, "no two of %d keys share a tag", SEARCH);
	free(hs);
}
END_TEST

/* The empty table finds nothing, a key of no bytes is a key, and
 * policy_huge_realloc keeps what it is asked to keep across the size
 * where it turns to huge pages. */
START_TEST(test_policy_table_empty_and_huge)
{
	struct policy_table t = { 0 };
	unsigned char *p = NULL;

	ck_assert_ptr_null(policy_table_find(&t, KEY_EXACT, "a", 1));
	ck_assert_ptr_null(policy_table_find(&t, KEY_EXACT, "", 0));
	ck_assert_ptr_nonnull(policy_table_add(&t, KEY_PORT, "", 0));
	ck_assert_ptr_nonnull(policy_table_find(&t, KEY_PORT, "", 0));
	ck_assert_ptr_null(policy_table_find(&t, KEY_EXE, "", 0));
	table_done(&t);
	policy_table_free(&t); /* twice is fine: it is empty */

	for (size_t size = 4096, old = 0; size <= (8u << 20); old = size, size *= 4) {
		p = policy_huge_realloc(p, old, size);
		ck_assert_ptr_nonnull(p);
		for (size_t k = 0; k < old; k += 4093)
			ck_assert_uint_eq(p[k], (unsigned char)(k * 7));
		for (size_t k = 0; k < size; k += 4093)
			p[k] = (unsigned char)(k * 7);
	}
	free(p);
}
END_TEST

Suite *suite_table(void)
{
	Suite *s = suite_create("table");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_policy_table_find_after_growth);
	tcase_add_test(tc, test_policy_table_next_in_order);
	tcase_add_test(tc, test_policy_table_collisions);
	tcase_add_test(tc, test_policy_table_empty_and_huge);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
