/* cache.c: each thread's connect and datagram verdicts, kept for the TTL
 * the broker gave and while the broker's generation page still shows the
 * generation the verdict was decided in (proto.h: a reload, or any change
 * that could make asking answer otherwise, moves it), so repeated connects and
 * steady UDP traffic to one destination cost a lookup, not a round trip.
 * Without the page nothing is kept. Direct-mapped and per thread: no
 * locks, no allocation.
 *
 * An entry is read whole or not at all: a signal handler of the thread (or
 * a CLONE_VM process, which shares this memory) may store into the slot
 * while the interrupted code reads or writes it. Each slot has a sequence
 * number, odd while it is being written. A reader that finds it odd, or
 * changed by the end of its copy, takes a miss (and asks the broker); a
 * writer that finds it odd (it interrupted another writer) or loses the
 * race to make it odd skips its store. Nothing is ever lost but a cache
 * entry. */
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

#define CACHE_SLOTS 32 /* a power of two */

struct slot {
	uint32_t seq; /* even: stable; odd: being written */
	struct proto_addr addr;
	uint16_t port;
	uint8_t op;
	uint8_t l4;
	uint8_t action;  /* 0: empty */
	int32_t err;
	uint16_t to_port;          /* an allow's: the broker's port to send to instead, 0 none */
	uint8_t nto;
	struct proto_addr to[2];   /* and its addresses */
	uint16_t src_port;         /* and the port of the socket that asked for it */
	char rule[PROTO_RULE_MAX + 1]; /* for a denial's line */
	long expires_ms; /* shim_cache_clock */
	uint32_t gen;    /* the generation the verdict was decided in */
};

static __thread struct slot cache[CACHE_SLOTS] __attribute__((tls_model("initial-exec")));

long (*shim_cache_clock)(void) = proto_now_ms;

/* The broker's generation page, mapped read-only: NULL until a verdict
 * brought it, and replaced when one brings another broker's (a broker
 * restarted on the same socket). A fork child keeps it (the same broker).
 * A replaced page stays mapped, since another thread may be reading it:
 * one page per broker start, at most. */
static const struct proto_page *page;
static dev_t page_dev;
static ino_t page_ino;

void shim_page_take(int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < PROTO_PAGE_SIZE ||
	    (__atomic_load_n(&page, __ATOMIC_ACQUIRE) && st.st_dev == page_dev &&
	     st.st_ino == page_ino)) {
		close(fd); /* not a page, or the one in use */
		return;
	}
	p = mmap(NULL, PROTO_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return;
	const struct proto_page *mine = p;
	if (mine->magic != PROTO_PAGE_MAGIC || mine->version != PROTO_VERSION) {
		munmap(p, PROTO_PAGE_SIZE); /* not a page of ours */
		return;
	}
	page_dev = st.st_dev;
	page_ino = st.st_ino;
	__atomic_store_n(&page, mine, __ATOMIC_RELEASE);
}

uint32_t shim_page_gen(void)
{
	const struct proto_page *p = __atomic_load_n(&page, __ATOMIC_ACQUIRE);
	const uint32_t *lock;
	uint32_t word;

	if (!p)
		return 0;
	lock = (const uint32_t *)((const char *)p + PROTO_PAGE_LOCK_OFFSET);
	word = __atomic_load_n(lock, __ATOMIC_ACQUIRE);
	if (!(word & PROTO_PAGE_TID_MASK) || (word & PROTO_PAGE_OWNER_DIED))
		return 0; /* the broker has gone, or is going: nothing kept holds */
	return __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE);
}

static struct slot *slot_for(const struct proto_addr *a, uint16_t port, int op, int l4)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t n = a->family == 4 ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		h = (h ^ a->bytes[i]) * 16777619u;
	h = (h ^ port ^ ((uint32_t)l4 << 16) ^ ((uint32_t)op << 20)) * 16777619u;
	return &cache[(h ^ h >> 15) & (CACHE_SLOTS - 1)];
}

bool shim_cache_lookup(const struct proto_addr *a, uint16_t port, int op, int l4,
		       struct proto_verdict *v, uint16_t *src_port)
{
	struct slot *s = slot_for(a, port, op, l4), copy;
	uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
	long now;

	if (seq & 1)
		return false; /* being written */
	memcpy(&copy, s, sizeof copy);
	now = shim_cache_clock();
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != seq)
		return false; /* written meanwhile: the copy may be half of each */
	if (copy.action == 0 || copy.port != port || copy.op != op || copy.l4 != l4 ||
	    memcmp(&copy.addr, a, sizeof *a) != 0 || now >= copy.expires_ms ||
	    copy.gen != shim_page_gen())
		return false;
	v->action = copy.action;
	v->err = copy.err;
	v->port = copy.to_port;
	v->naddr = copy.nto;
	memcpy(v->addrs, copy.to, sizeof copy.to);
	*src_port = copy.src_port;
	memcpy(v->rule, copy.rule, sizeof copy.rule);
	v->rule[PROTO_RULE_MAX] = 0;
	v->name[0] = 0;
	return true;
}

void shim_cache_store(const struct proto_addr *a, uint16_t port, int op, int l4,
		      const struct proto_verdict *v, uint16_t src_port)
{
	struct slot *s = slot_for(a, port, op, l4);
	uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);

	if (v->ttl_ms == 0 || v->gen == 0 || (seq & 1) ||
	    (v->action != PROTO_ALLOW && v->action != PROTO_DENY))
		return; /* not to keep, or another store of this slot is under way */
	if (!__atomic_compare_exchange_n(&s->seq, &seq, seq + 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	s->addr = *a;
	s->port = port;
	s->op = (uint8_t)op;
	s->l4 = (uint8_t)l4;
	s->gen = v->gen;
	s->action = v->action;
	s->err = v->err;
	s->to_port = v->port;
	s->nto = v->port ? (uint8_t)(v->naddr < 2 ? v->naddr : 2) : 0;
	memcpy(s->to, v->addrs, sizeof s->to);
	s->src_port = src_port;
	memcpy(s->rule, v->rule, sizeof s->rule);
	s->expires_ms = shim_cache_clock() + v->ttl_ms;
	__atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

void shim_cache_clear(void)
{
	memset(cache, 0, sizeof cache);
}
