/* memory.c: per-process memory of address -> name, so that a connect is
 * judged by the name its process resolved; keyed per pid, never global. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "broker.h"

struct memory_entry {
	struct proto_addr addr;          /* key: canonical, unused bytes zero */
	char name[PROTO_NAME_MAX + 1];   /* most recent name resolved to addr */
	bool from_hosts;                 /* addr came from the policy's [hosts] */
	time_t last_used;                /* monotonic seconds */
	UT_hash_handle hh;               /* in insertion order: least recent first */
};

struct memory_proc {
	pid_t pid;                       /* key */
	unsigned long long starttime;    /* from /proc/<pid>/stat, 0 unknown */
	unsigned nconn;                  /* live connections of this process */
	time_t last_used;                /* monotonic seconds */
	size_t count;                    /* entries */
	struct memory_entry *entries;    /* addr -> entry */
	UT_hash_handle hh;
};

struct memory {
	struct memory_proc *procs;       /* pid -> process */
	size_t per_pid_max;              /* entries kept per process */
	size_t nentries;                 /* entries, all processes */
};

struct memory *memory_new(size_t per_pid_max)
{
	struct memory *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->per_pid_max = per_pid_max ? per_pid_max : MEMORY_PER_PID_MAX;
	return m;
}

/* Makes the hash key of a: IPv4 bytes past the fourth are zero. */
static void memory_key(const struct proto_addr *a, struct proto_addr *key)
{
	memset(key, 0, sizeof *key);
	key->family = a->family;
	memcpy(key->bytes, a->bytes, a->family == 4 ? 4 : 16);
}

static void memory_drop_entry(struct memory *m, struct memory_proc *p, struct memory_entry *e)
{
	HASH_DEL(p->entries, e);
	free(e);
	p->count--;
	m->nentries--;
}

static void memory_flush(struct memory *m, struct memory_proc *p)
{
	struct memory_entry *e, *tmp;

	HASH_ITER(hh, p->entries, e, tmp)
		memory_drop_entry(m, p, e);
}

static void memory_drop_proc(struct memory *m, struct memory_proc *p)
{
	memory_flush(m, p);
	HASH_DEL(m->procs, p);
	free(p);
}

void memory_free(struct memory *m)
{
	struct memory_proc *p, *tmp;

	if (!m)
		return;
	HASH_ITER(hh, m->procs, p, tmp)
		memory_drop_proc(m, p);
	free(m);
}

/* Returns pid's record, created when create is set (NULL when absent or
 * out of memory). */
static struct memory_proc *memory_proc(struct memory *m, pid_t pid, bool create, time_t now)
{
	struct memory_proc *p;

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

int memory_attach(struct memory *m, pid_t pid, unsigned long long starttime, time_t now)
{
	struct memory_proc *p = memory_proc(m, pid, true, now);

	if (!p)
		return -1;
	if (starttime && p->starttime && p->starttime != starttime)
		memory_flush(m, p); /* the pid was reused by another process */
	if (starttime)
		p->starttime = starttime;
	p->nconn++;
	p->last_used = now;
	return 0;
}

void memory_detach(struct memory *m, pid_t pid, time_t now)
{
	struct memory_proc *p = memory_proc(m, pid, false, now);

	if (!p)
		return;
	if (p->nconn)
		p->nconn--;
	if (!p->nconn && !p->count)
		memory_drop_proc(m, p);
}

int memory_record(struct memory *m, pid_t pid, const struct proto_addr *a, const char *name,
		  bool from_hosts, time_t now)
{
	struct memory_proc *p = memory_proc(m, pid, true, now);
	struct memory_entry *e;
	struct proto_addr key;

	if (!p)
		return -1;
	memory_key(a, &key);
	HASH_FIND(hh, p->entries, &key, sizeof key, e);
	if (e) {
		HASH_DEL(p->entries, e); /* re-added below: now the most recent */
	} else {
		if (p->count >= m->per_pid_max)
			memory_drop_entry(m, p, p->entries); /* the least recently used */
		e = calloc(1, sizeof *e);
		if (!e)
			return -1;
		e->addr = key;
		p->count++;
		m->nentries++;
	}
	snprintf(e->name, sizeof e->name, "%s", name);
	e->from_hosts = from_hosts;
	e->last_used = now;
	HASH_ADD(hh, p->entries, addr, sizeof e->addr, e);
	p->last_used = now;
	return 0;
}

/* Looks key up in one process's memory, marking it used. */
static struct memory_entry *memory_find(struct memory *m, pid_t pid,
					const struct proto_addr *key, time_t now)
{
	struct memory_proc *p = memory_proc(m, pid, false, now);
	struct memory_entry *e;

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

bool memory_lookup(struct memory *m, pid_t pid, pid_t ppid, const struct proto_addr *a,
		   time_t now, char *name, size_t cap, bool *from_hosts)
{
	struct memory_entry *e;
	struct proto_addr key;

	memory_key(a, &key);
	e = memory_find(m, pid, &key, now);
	if (!e && ppid > 0 && ppid != pid)
		e = memory_find(m, ppid, &key, now);
	if (!e)
		return false;
	snprintf(name, cap, "%s", e->name);
	if (from_hosts)
		*from_hosts = e->from_hosts;
	return true;
}

size_t memory_gc(struct memory *m, time_t now, bool (*alive)(pid_t))
{
	struct memory_proc *p, *tmp;
	size_t dropped = 0;

	HASH_ITER(hh, m->procs, p, tmp) {
		/* Entries are in least-recently-used order: stop at a fresh one. */
		while (p->entries && now - p->entries->last_used >= MEMORY_IDLE_S)
			memory_drop_entry(m, p, p->entries);
		if (p->nconn == 0 && (!p->count || now - p->last_used >= MEMORY_IDLE_S ||
				      (alive && !alive(p->pid)))) {
			memory_drop_proc(m, p);
			dropped++;
		}
	}
	return dropped;
}

size_t memory_pids(const struct memory *m)
{
	return HASH_COUNT(m->procs);
}

size_t memory_entries(const struct memory *m)
{
	return m->nentries;
}
