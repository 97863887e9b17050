/* cache.c: each thread's datagram verdicts, kept for the TTL the broker
 * gave, so steady UDP traffic to one destination costs a lookup, not a round
 * trip. Direct-mapped and per thread: no locks, no allocation. */
#include <string.h>

#include "shim.h"

#define CACHE_SLOTS 32 /* a power of two */

struct slot {
	struct proto_addr addr;
	uint16_t port;
	uint8_t l4;
	uint8_t action;  /* 0: empty */
	int32_t err;
	long expires_ms; /* proto_now_ms */
};

static __thread struct slot cache[CACHE_SLOTS] __attribute__((tls_model("initial-exec")));

static struct slot *slot_for(const struct proto_addr *a, uint16_t port, int l4)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t n = a->family == 4 ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		h = (h ^ a->bytes[i]) * 16777619u;
	h = (h ^ port ^ ((uint32_t)l4 << 16)) * 16777619u;
	return &cache[(h ^ h >> 15) & (CACHE_SLOTS - 1)];
}

bool shim_cache_lookup(const struct proto_addr *a, uint16_t port, int l4,
		       struct proto_verdict *v)
{
	struct slot *s = slot_for(a, port, l4);

	if (s->action == 0 || s->port != port || s->l4 != l4 || memcmp(&s->addr, a, sizeof *a) != 0)
		return false;
	if (proto_now_ms() >= s->expires_ms) {
		s->action = 0;
		return false;
	}
	v->action = s->action;
	v->err = s->err;
	return true;
}

void shim_cache_store(const struct proto_addr *a, uint16_t port, int l4,
		      const struct proto_verdict *v)
{
	struct slot *s = slot_for(a, port, l4);

	if (v->ttl_ms == 0)
		return;
	s->addr = *a;
	s->port = port;
	s->l4 = (uint8_t)l4;
	s->action = v->action;
	s->err = v->err;
	s->expires_ms = proto_now_ms() + v->ttl_ms;
}

void shim_cache_clear(void)
{
	memset(cache, 0, sizeof cache);
}
