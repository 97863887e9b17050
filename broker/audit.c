/* audit.c: the audit log, JSON Lines appended one write() per decision
 * (per batch of them while held: the records of a note ring);
 * a failing log is counted and reported, never allowed to change a decision. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"

#define AUDIT_LINE_MAX 32768 /* exe (PATH_MAX) fully escaped still fits */

void audit_init(struct audit *a)
{
	a->path[0] = 0;
	a->fd = -1;
	a->err = 0;
	a->failures = 0;
	a->written = 0;
	a->reopened = 0;
	a->held = false;
	a->batch = NULL;
	a->nbatch = 0;
	a->batched = 0;
}

void audit_close(struct audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

int audit_reopen(struct audit *a)
{
	struct stat st;

	audit_close(a);
	if (!a->path[0]) {
		a->err = 0;
		return 0;
	}
	a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (a->fd < 0) {
		a->err = errno;
		log_error("audit log %s: %s", a->path, strerror(a->err));
		return -1;
	}
	if (fstat(a->fd, &st) == 0) {
		a->dev = st.st_dev;
		a->ino = st.st_ino;
	}
	a->err = 0;
	return 0;
}

int audit_check(struct audit *a)
{
	struct stat st;

	if (!a->path[0] || a->fd < 0)
		return 0;
	if (stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
		return 0;
	log_warn("audit log %s was removed or replaced; reopening it", a->path);
	a->reopened++;
	return audit_reopen(a);
}

int audit_open(struct audit *a, const char *path)
{
	audit_close(a);
	if (!path)
		path = "";
	if (strlen(path) >= sizeof a->path) {
		a->path[0] = 0;
		a->err = ENAMETOOLONG;
		log_error("audit log path too long");
		return -1;
	}
	strcpy(a->path, path);
	return audit_reopen(a);
}


const char *audit_eai_name(int eai)
{
	switch (eai) {
	case EAI_BADFLAGS: return "EAI_BADFLAGS";
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
	case EAI_FAMILY: return "EAI_FAMILY";
	case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
	case EAI_SERVICE: return "EAI_SERVICE";
	case EAI_MEMORY: return "EAI_MEMORY";
	case EAI_SYSTEM: return "EAI_SYSTEM";
	case EAI_OVERFLOW: return "EAI_OVERFLOW";
#ifdef EAI_NODATA
	case EAI_NODATA: return "EAI_NODATA";
#endif
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
#endif
	}
	return "EAI_?";
}

int audit_format(const struct audit_event *ev, char *out, size_t cap)
{
	struct buf b;
	char addr[64];

	/* Pieces, not one format: this runs for every decision. */
	buf_init(&b, out, cap);
	buf_str(&b, "{\"time\":\"");
	buf_time(&b, &ev->time, true);
	buf_str(&b, "\",\"pid\":");
	if (ev->pid < 0)
		buf_str(&b, "-"), buf_uint(&b, -(unsigned long long)ev->pid);
	else
		buf_uint(&b, (unsigned long long)ev->pid);
	buf_str(&b, ",\"uid\":");
	buf_uint(&b, (unsigned long long)ev->uid);
	buf_str(&b, ",\"exe\":");
	buf_json_str(&b, ev->exe);
	buf_str(&b, ",\"op\":\"");
	buf_str(&b, ev->op == AUDIT_OP_CLOSE ? "close" : proto_op_name(ev->op));
	buf_str(&b, "\",\"name\":");
	buf_json_str(&b, ev->name);
	buf_str(&b, ",\"addr\":");
	if (ev->addr) {
		policy_addr_format(ev->addr, addr, sizeof addr);
		buf_json_str(&b, addr);
	} else {
		buf_json_str(&b, NULL);
	}
	buf_str(&b, ",\"port\":");
	buf_uint(&b, ev->port);
	buf_str(&b, ",\"proto\":\"");
	buf_str(&b, proto_l4_name(ev->l4));
	buf_str(&b, "\",\"action\":\"");
	buf_str(&b, proto_action_name(ev->action));
	buf_str(&b, "\",\"rule\":");
	buf_json_str(&b, ev->rule);
	buf_str(&b, ",\"errno\":");
	buf_json_str(&b, ev->err);
	if (ev->transport) {
		buf_str(&b, ",\"transport\":");
		buf_json_str(&b, ev->transport);
		buf_str(&b, ",\"upstream\":");
		buf_json_str(&b, ev->upstream);
	}
	if (ev->relayed)
		buf_printf(&b, ",\"bytes_sent\":%llu,\"bytes_received\":%llu,\"limit_hit\":%s",
			   (unsigned long long)ev->bytes_sent, (unsigned long long)ev->bytes_received,
			   ev->limit_hit ? "true" : "false");
	if (ev->count)
		buf_printf(&b, ",\"ipproto\":%d,\"count\":%lu", ev->ipproto, ev->count);
	if (ev->captured)
		buf_str(&b, ",\"captured\":true");
	if (ev->cached)
		buf_str(&b, ",\"cached\":true");
	buf_str(&b, "}\n");
	return b.overflow ? -1 : (int)b.len;
}

/* Writes n bytes of buf, which hold lines whole lines, and counts them.
 * Returns 0 or -1. */
static int audit_out(struct audit *a, const char *buf, size_t n, unsigned long lines)
{
	ssize_t w;

	if (a->fd < 0 && audit_reopen(a) < 0) {
		a->failures += lines;
		return -1;
	}
	do
		w = write(a->fd, buf, n);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		/* A short write leaves a partial line; the next one starts on a
		 * fresh line so that readers can skip the damaged one. */
		int err = w < 0 ? errno : EIO;

		if (a->err != err)
			log_error("audit log %s: %s", a->path, strerror(err));
		if (w > 0)
			(void)!write(a->fd, "\n", 1);
		a->err = err;
		a->failures += lines;
		return -1;
	}
	a->err = 0;
	a->written += lines;
	return 0;
}

int audit_write(struct audit *a, const struct audit_event *ev)
{
	char line[AUDIT_LINE_MAX];
	int n;

	if (!a->path[0])
		return 0;
	n = audit_format(ev, line, sizeof line);
	if (n < 0) {
		a->failures++;
		a->err = EMSGSIZE;
		return -1;
	}
	if (!a->held || !a->batch)
		return audit_out(a, line, (size_t)n, 1);
	if (a->nbatch + (size_t)n > AUDIT_BATCH) { /* write what is held, and go on holding */
		audit_out(a, a->batch, a->nbatch, a->batched);
		a->nbatch = 0;
		a->batched = 0;
	}
	memcpy(a->batch + a->nbatch, line, (size_t)n);
	a->nbatch += (size_t)n;
	a->batched++;
	return 0;
}

void audit_hold(struct audit *a)
{
	if (!a->batch)
		a->batch = malloc(AUDIT_BATCH); /* without it, each line is written alone */
	a->held = true;
}

void audit_flush(struct audit *a)
{
	if (a->nbatch)
		audit_out(a, a->batch, a->nbatch, a->batched);
	free(a->batch);
	a->batch = NULL;
	a->held = false;
	a->nbatch = 0;
	a->batched = 0;
}
