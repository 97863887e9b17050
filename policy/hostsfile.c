/* hostsfile.c: a hosts file, line by line: "ADDRESS NAME [ALIAS...]", '#'
 * to the end of a line a comment, lines that do not parse skipped. Linked
 * by the shim (reverse lookups answered from the file) and the broker (the
 * names kept on loopback). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hostsfile.h"

/* Calls fn for each line's address and its names (tok, separated by NULs,
 * n of them) until fn returns true. Returns true when it did. */
static bool each_line(const char *path,
		      bool (*fn)(void *ctx, const struct proto_addr *a, char **names, int n),
		      void *ctx)
{
	char line[1024];
	bool stop = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	while (!stop && fgets(line, sizeof line, f)) {
		char *save = NULL, *hash = strchr(line, '#'), *tok, *names[64];
		struct proto_addr a = { 0 };
		int n = 0;

		if (hash)
			*hash = 0;
		tok = strtok_r(line, " \t\r\n", &save);
		if (!tok)
			continue;
		if (inet_pton(AF_INET, tok, a.bytes) == 1)
			a.family = 4;
		else if (inet_pton(AF_INET6, tok, a.bytes) == 1)
			a.family = 6;
		else
			continue;
		proto_addr_unmap(&a);
		while (n < 64 && (tok = strtok_r(NULL, " \t\r\n", &save)))
			names[n++] = tok;
		if (n)
			stop = fn(ctx, &a, names, n);
	}
	fclose(f);
	return stop;
}

struct names_ctx {
	const struct proto_addr *want;
	char *out;
	size_t cap, used;
	int max, found;
};

static bool add_names(void *ctx, const struct proto_addr *a, char **names, int n)
{
	struct names_ctx *c = ctx;
	size_t len = a->family == 4 ? 4 : 16;

	if (a->family != c->want->family || memcmp(a->bytes, c->want->bytes, len) != 0)
		return false;
	for (int i = 0; i < n && c->found < c->max; i++) {
		size_t l = strlen(names[i]) + 1;

		if (c->used + l > c->cap)
			return true;
		memcpy(c->out + c->used, names[i], l);
		c->used += l;
		c->found++;
	}
	return c->found == c->max;
}

int hostsfile_names(const char *path, const struct proto_addr *a, char *out, size_t cap, int max)
{
	struct proto_addr want = *a;
	struct names_ctx c = { .want = &want, .out = out, .cap = cap, .max = max };

	proto_addr_unmap(&want);
	each_line(path, add_names, &c);
	return c.found;
}

struct loopback_ctx {
	const char *name;
	bool found, other;
};

static bool check_loopback(void *ctx, const struct proto_addr *a, char **names, int n)
{
	static const unsigned char v6lo[16] = { [15] = 1 };
	struct loopback_ctx *c = ctx;
	bool lo = a->family == 4 ? a->bytes[0] == 127 : memcmp(a->bytes, v6lo, 16) == 0;

	for (int i = 0; i < n; i++)
		if (strcasecmp(names[i], c->name) == 0) {
			c->found = true;
			c->other |= !lo;
		}
	return false;
}

bool hostsfile_loopback_only(const char *path, const char *name)
{
	struct loopback_ctx c = { .name = name };

	each_line(path, check_loopback, &c);
	return c.found && !c.other;
}
