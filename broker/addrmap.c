/* addrmap.c: per-process memory of address -> name, so that a connect is
 * judged by the name its process resolved; keyed per pid, never global. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "broker.h"

struct addrmap_entry {
	struct proto_addr addr;          /* key: canonical, unused bytes zero */
	char name[PROTO_NAME_MAX + 1];   /* most recent name resolved to addr */
	bool from_hosts;                 /* addr came from the policy's [hosts] */
	time_t last_used;                /* monotonic seconds */
	UT_hash_handle hh;               /* in insertion order: least recent first */
};

struct addrmap_proc {
	pid_t pid;                       /* key */
	unsigned long long starttime;    /* from /proc/<pid>/stat, 0 unknown */
	unsigned nconn;                  /* live connections of this process */
	time_t last_used;                /* monotonic seconds */
	size_t count;                    /* entries */
	struct addrmap_entry *entries;    /* addr -> entry */
	UT_hash_handle hh;
};

struct addrmap {
	struct addrmap_proc *procs;       /* pid -> process */
	size_t per_pid_max;              /* entries kept per process */
	size_t nentries;                 /* entries, all processes */
	uint64_t changes;                /* addrmap_changes() */
};

struct addrmap *addrmap_new(size_t per_pid_max)
{
	struct addrmap *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->per_pid_max = per_pid_max ? per_pid_max : ADDRMAP_PER_PID_MAX;
	return m;
}

/* Makes the hash key of a: IPv4 bytes past the fourth are zero. */
static void addrmap_key(const struct proto_addr *a, struct proto_addr *key)
{
	memset(key, 0, sizeof *key);
	key->family = a->family;
	memcpy(key->bytes, a->bytes, a->family == 4 ? 4 : 16);
}

static void addrmap_drop_entry(struct addrmap *m, struct addrmap_proc *p, struct addrmap_entry *e)
{
	HASH_DEL(p->entries, e);
	free(e);
	p->count--;
	m->nentries--;
	m->changes++;
}

static void addrmap_flush(struct addrmap *m, struct addrmap_proc *p)
{
	struct addrmap_entry *e, *tmp;

	HASH_ITER(hh, p->entries, e, tmp)
		addrmap_drop_entry(m, p, e);
}

static void addrmap_drop_proc(struct addrmap *m, struct addrmap_proc *p)
{
	addrmap_flush(m, p);
	HASH_DEL(m->procs, p);
	free(p);
}

void addrmap_free(struct addrmap *m)
{
	struct addrmap_proc *p, *tmp;

	if (!m)
		return;
	HASH_ITER(hh, m->procs, p, tmp)
		addrmap_drop_proc(m, p);
	free(m);
}

/* Returns pid's record, created when create is set (NULL when absent or
 * out of memory). */
static struct addrmap_proc *addrmap_proc(struct addrmap *m, pid_t pid, bool create, time_t now)
{
	struct addrmap_proc *p;

	HASH_FIND(hh, m->procs, &pid, sizeof pid, p);
	if (p || !create)
		return p;
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->pid = pid;
	p->last_used = now;
	HASH_ADD(hh, m->procs, pid, sizeof p->pid, p);
	return p;
}

int addrmap_attach(struct addrmap *m, pid_t pid, unsigned long long starttime, time_t now)
{
	struct addrmap_proc *p = addrmap_proc(m, pid, true, now);

	if (!p)
		return -1;
	if (starttime && p->starttime && p->starttime != starttime)
		addrmap_flush(m, p); /* the pid was reused by another process */
	if (starttime)
		p->starttime = starttime;
	p->nconn++;
	p->last_used = now;
	return 0;
}

void addrmap_detach(struct addrmap *m, pid_t pid, time_t now)
{
	struct addrmap_proc *p = addrmap_proc(m, pid, false, now);

	if (!p)
		return;
	if (p->nconn)
		p->nconn--;
	if (!p->nconn && !p->count)
		addrmap_drop_proc(m, p);
}

int addrmap_record(struct addrmap *m, pid_t pid, const struct proto_addr *a, const char *name,
		  bool from_hosts, time_t now)
{
	struct addrmap_proc *p = addrmap_proc(m, pid, true, now);
	struct addrmap_entry *e;
	struct proto_addr key;

	if (!p)
		return -1;
	addrmap_key(a, &key);
	HASH_FIND(hh, p->entries, &key, sizeof key, e);
	if (e) {
		HASH_DEL(p->entries, e); /* re-added below: now the most recent */
		if (e->from_hosts != from_hosts || strcmp(e->name, name) != 0)
			m->changes++;
	} else {
		if (p->count >= m->per_pid_max)
			addrmap_drop_entry(m, p, p->entries); /* the least recently used */
		e = calloc(1, sizeof *e);
		if (!e)
			return -1;
		e->addr = key;
		p->count++;
		m->nentries++;
		m->changes++;
	}
	snprintf(e->name, sizeof e->name, "%s", name);
	e->from_hosts = from_hosts;
	e->last_used = now;
	HASH_ADD(hh, p->entries, addr, sizeof e->addr, e);
	p->last_used = now;
	return 0;
}

/* Looks key up in one process's memory, marking it used. */
static struct addrmap_entry *addrmap_find(struct addrmap *m, pid_t pid,
					const struct proto_addr *key, time_t now)
{
	struct addrmap_proc *p = addrmap_proc(m, pid, false, now);
	struct addrmap_entry *e;

	if (!p)
		return NULL;
	HASH_FIND(hh, p->entries, key, sizeof *key, e);
	if (!e)
		return NULL;
	HASH_DEL(p->entries, e);
	HASH_ADD(hh, p->entries, addr, sizeof e->addr, e);
	e->last_used = now;
	p->last_used = now;
	return e;
}

bool addrmap_lookup(struct addrmap *m, pid_t pid, pid_t ppid, const struct proto_addr *a,
		   time_t now, char *name, size_t cap, bool *from_hosts)
{
	struct addrmap_entry *e;
	struct proto_addr key;

	addrmap_key(a, &key);
	e = addrmap_find(m, pid, &key, now);
	if (!e && ppid > 0 && ppid != pid)
		e = addrmap_find(m, ppid, &key, now);
	if (!e)
		return false;
	snprintf(name, cap, "%s", e->name);
	if (from_hosts)
		*from_hosts = e->from_hosts;
	return true;
}

size_t addrmap_gc(struct addrmap *m, time_t now, bool (*alive)(pid_t))
{
	struct addrmap_proc *p, *tmp;
	size_t dropped = 0;

	HASH_ITER(hh, m->procs, p, tmp) {
		/* Entries are in least-recently-used order: stop at a fresh one. */
		while (p->entries && now - p->entries->last_used >= ADDRMAP_IDLE_S)
			addrmap_drop_entry(m, p, p->entries);
		if (p->nconn == 0 && (!p->count || now - p->last_used >= ADDRMAP_IDLE_S ||
				      (alive && !alive(p->pid)))) {
			addrmap_drop_proc(m, p);
			dropped++;
		}
	}
	return dropped;
}

size_t addrmap_pids(const struct addrmap *m)
{
	return HASH_COUNT(m->procs);
}

uint64_t addrmap_changes(const struct addrmap *m)
{
	return m->changes;
}

size_t addrmap_entries(const struct addrmap *m)
{
	return m->nentries;
}
