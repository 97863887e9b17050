/* ring.c: the note ring's two sides (proto.h). The shim puts a NOTE and
 * then looks at whether the broker still reads the ring and has been told;
 * the broker says what it will read before it reads. Both orders are
 * sequentially consistent, so of two that race one always sees the other:
 * a NOTE the broker's last read missed is announced, or is never counted
 * as put (the shim asks instead), and none waits unannounced. */
#include <string.h>

#include "proto.h"

int proto_ring_put(struct proto_ring *r, const void *msg, size_t len)
{
	uint32_t head = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
	uint32_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	uint8_t *slot;

	if (len == 0 || len >= PROTO_RING_SLOT || head - tail >= PROTO_RING_SLOTS ||
	    __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != PROTO_RING_READ)
		return -1;
	slot = r->slot[head & (PROTO_RING_SLOTS - 1)];
	slot[0] = (uint8_t)len;
	memcpy(slot + 1, msg, len);
	__atomic_store_n(&r->head, head + 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->state, __ATOMIC_SEQ_CST) != PROTO_RING_READ)
		return -1; /* the broker stopped reading: it may not have seen this one */
	return __atomic_exchange_n(&r->bell, 1, __ATOMIC_SEQ_CST) == 0;
}

int proto_ring_take(struct proto_ring *r, uint32_t *tail, void *out, size_t *len)
{
	uint32_t head = __atomic_load_n(&r->head, __ATOMIC_SEQ_CST);
	volatile const uint8_t *slot;
	uint8_t *o = out;

	if (head == *tail)
		return 0;
	if (head - *tail > PROTO_RING_SLOTS)
		return -1;
	/* One read of each byte: the program may write the slot meanwhile,
	 * and what is decoded must be what was checked. */
	slot = r->slot[*tail & (PROTO_RING_SLOTS - 1)];
	for (size_t i = 0; i < PROTO_RING_SLOT; i++)
		o[i] = slot[i];
	if (o[0] == 0 || o[0] >= PROTO_RING_SLOT)
		return -1;
	*len = o[0];
	memmove(o, o + 1, *len);
	++*tail;
	__atomic_store_n(&r->tail, *tail, __ATOMIC_RELEASE);
	return 1;
}

void proto_ring_unbell(struct proto_ring *r)
{
	__atomic_store_n(&r->bell, 0, __ATOMIC_SEQ_CST);
}
