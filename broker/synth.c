/* synth.c: synthetic addresses for rewritten names. A RESOLVE of a name
 * whose rule rewrites is answered with an address from 198.18.0.0/15 (the
 * benchmarking range, RFC 2544: routed nowhere), mapped per process to the
 * name, so that the name itself is only ever resolved by the transport.
 * The address is a hash of the name (the same name keeps its address across
 * lookups and processes, unless two names collide in one process, when the
 * later one probes onwards); it is never given to another name of that
 * process while the process lives; a process that maps more names than
 * SYNTH_PER_PID_MAX is refused (fail closed), not recycled. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "broker.h"

#define SYNTH_BASE 0xc6120000u /* 198.18.0.0 */
#define SYNTH_SIZE 0x20000u    /* /15 */

struct synth_entry {
	char name[PROTO_NAME_MAX + 1];
	uint32_t ip; /* host order */
	UT_hash_handle by_name, by_ip;
};

struct synth_pid {
	pid_t pid;
	struct synth_entry *names, *ips;
	size_t n;
	UT_hash_handle hh;
};

struct synth {
	struct synth_pid *pids;
	size_t per_pid_max;
	size_t entries;
};

struct synth *synth_new(size_t per_pid_max)
{
	struct synth *s = calloc(1, sizeof *s);

	if (s)
		s->per_pid_max = per_pid_max;
	return s;
}

static void pid_free(struct synth *s, struct synth_pid *p)
{
	struct synth_entry *e, *tmp;

	HASH_CLEAR(by_ip, p->ips);
	HASH_ITER(by_name, p->names, e, tmp) {
		HASH_DELETE(by_name, p->names, e);
		free(e);
	}
	s->entries -= p->n;
	HASH_DEL(s->pids, p);
	free(p);
}

void synth_free(struct synth *s)
{
	struct synth_pid *p, *tmp;

	if (!s)
		return;
	HASH_ITER(hh, s->pids, p, tmp)
		pid_free(s, p);
	free(s);
}

bool synth_is(const struct proto_addr *a)
{
	uint32_t ip;

	if (a->family != 4)
		return false;
	memcpy(&ip, a->bytes, 4);
	return (ntohl(ip) & ~(SYNTH_SIZE - 1)) == SYNTH_BASE;
}

static void to_addr(uint32_t ip, struct proto_addr *a)
{
	uint32_t be = htonl(ip);

	memset(a, 0, sizeof *a);
	a->family = 4;
	memcpy(a->bytes, &be, 4);
}

int synth_map(struct synth *s, pid_t pid, const char *name, struct proto_addr *out)
{
	struct synth_pid *p;
	struct synth_entry *e, *taken;
	uint32_t h = 2166136261u, off;
	size_t len = strlen(name);

	if (len > PROTO_NAME_MAX)
		return -1;
	HASH_FIND(hh, s->pids, &pid, sizeof pid, p);
	if (!p) {
		if (!(p = calloc(1, sizeof *p)))
			return -1;
		p->pid = pid;
		HASH_ADD(hh, s->pids, pid, sizeof pid, p);
	}
	HASH_FIND(by_name, p->names, name, len, e);
	if (e) {
		to_addr(e->ip, out);
		return 0;
	}
	if (p->n >= s->per_pid_max || !(e = calloc(1, sizeof *e)))
		return -1;
	for (size_t i = 0; i < len; i++) /* FNV-1a */
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	/* offsets 0 and SIZE-1, the range's first and last, are never used */
	off = h % (SYNTH_SIZE - 2) + 1;
	for (;;) {
		e->ip = SYNTH_BASE + off;
		HASH_FIND(by_ip, p->ips, &e->ip, sizeof e->ip, taken);
		if (!taken)
			break;
		off = off + 1 < SYNTH_SIZE - 1 ? off + 1 : 1;
	}
	memcpy(e->name, name, len + 1);
	HASH_ADD_KEYPTR(by_name, p->names, e->name, len, e);
	HASH_ADD(by_ip, p->ips, ip, sizeof e->ip, e);
	p->n++;
	s->entries++;
	to_addr(e->ip, out);
	return 0;
}

/* Looks a up in one process's map. */
static const char *lookup_pid(const struct synth *s, pid_t pid, uint32_t ip)
{
	struct synth_pid *p;
	struct synth_entry *e = NULL;

	HASH_FIND(hh, s->pids, &pid, sizeof pid, p);
	if (p)
		HASH_FIND(by_ip, p->ips, &ip, sizeof ip, e);
	return e ? e->name : NULL;
}

bool synth_lookup(const struct synth *s, pid_t pid, pid_t ppid, const struct proto_addr *a,
		  char *name, size_t cap)
{
	uint32_t ip;
	const char *n;

	if (!synth_is(a))
		return false;
	memcpy(&ip, a->bytes, 4);
	ip = ntohl(ip);
	n = lookup_pid(s, pid, ip);
	if (!n && ppid > 0)
		n = lookup_pid(s, ppid, ip);
	if (!n || strlen(n) >= cap)
		return false;
	strcpy(name, n);
	return true;
}

size_t synth_gc(struct synth *s, bool (*alive)(pid_t))
{
	struct synth_pid *p, *tmp;
	size_t dropped = 0;

	HASH_ITER(hh, s->pids, p, tmp) {
		if (!alive(p->pid)) {
			pid_free(s, p);
			dropped++;
		}
	}
	return dropped;
}

void synth_forget(struct synth *s, pid_t pid)
{
	struct synth_pid *p;

	HASH_FIND(hh, s->pids, &pid, sizeof pid, p);
	if (p)
		pid_free(s, p);
}

size_t synth_entries(const struct synth *s)
{
	return s->entries;
}
