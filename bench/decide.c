/* decide.c: the time policy_decide takes inside the broker, by the size of
 * the rule set. Links the policy library itself: no sockets, no broker.
 *
 *   decide run N [SECONDS]   writes a policy of N mixed rules to a temporary
 *                            file, loads it, and times decisions of a fixed
 *                            mix of requests (default 0.5 s of them)
 *   decide gen N FILE        only writes the policy (for the broker's memory)
 *
 * The rules (rule_spec) mix exact names (40%), wildcards (20%), IPv4 and
 * IPv6 CIDRs (25%), names in lists with a port range (10%) and rules for
 * any destination narrowed by executable and port (1%, the rest of that
 * share exact names); two thirds have a port (443, or one of their own),
 * one in ten an executable, and they allow, deny or rewrite. The requests
 * are connects, each one made to match a rule chosen at random, and one in
 * five matches none (the default). The result line holds the median of the
 * batches' nanoseconds per decision, the load time and the rule count. */
#include <stdbool.h>

#include "bench.h"
#include "policy.h"

#define NREQ 4096
#define BATCH 100000

static const char *prog = "decide";

enum kind { EXACT, WILD, CIDR4, NET4, CIDR6, LIST, ANY };

struct spec {
	enum kind kind;
	unsigned port;  /* 0: any port */
	bool range;     /* port range 8000-8100 instead */
	char exe[64];   /* "" none */
	const char *action;
};

/* What rule i of any policy is: the same for every N, so a larger policy
 * holds a smaller one's rules first. */
static void rule_spec(unsigned i, struct spec *s)
{
	static const enum kind k20[20] = { EXACT, EXACT, EXACT, EXACT, EXACT, EXACT, EXACT, EXACT,
					   WILD,  WILD,  WILD,  WILD,  CIDR4, CIDR4, CIDR4, NET4,
					   CIDR6, LIST,  LIST,  EXACT };
	static const char *act[10] = { "allow", "allow", "allow", "allow", "allow",
				       "allow", "allow", "deny",  "deny",  "rewrite" };

	s->kind = k20[i % 20];
	if (i % 100 == 99)
		s->kind = ANY;
	s->range = s->kind == LIST;
	s->port = s->range ? 0 : i % 3 == 1 ? 443 : i % 3 == 2 ? 1024 + i % 60000 : 0;
	if (s->kind == ANY)
		s->port = 1024 + i % 60000;
	s->exe[0] = 0;
	if (i % 10 == 0 || s->kind == ANY)
		snprintf(s->exe, sizeof s->exe, s->kind == ANY ? "/opt/app%u/bin/app" : "/usr/bin/tool%u",
			 s->kind == ANY ? i : i % 50);
	s->action = act[(i / 3) % 10];
}

/* Writes rule i's section to f. */
static void rule_write(FILE *f, unsigned i)
{
	struct spec s;

	rule_spec(i, &s);
	fprintf(f, "\n[rule \"r%u\"]\n", i);
	switch (s.kind) {
	case EXACT: fprintf(f, "host = h%u.s%u.example\n", i, i % 97); break;
	case WILD: fprintf(f, "host = *.w%u.example\n", i); break;
	case CIDR4: fprintf(f, "cidr = 10.%u.%u.%u/32\n", i >> 16 & 255, i >> 8 & 255, i & 255); break;
	case NET4: fprintf(f, "cidr = 11.%u.%u.0/24\n", i >> 8 & 255, i & 255); break;
	case CIDR6: fprintf(f, "cidr = 2001:db8:%x:%x::/64\n", i >> 16, i & 0xffff); break;
	case LIST: fprintf(f, "host = a%u.example, b%u.example\n", i, i); break;
	case ANY: break;
	}
	if (s.range)
		fprintf(f, "port = 8000-8100\n");
	else if (s.port)
		fprintf(f, "port = %u\n", s.port);
	if (s.exe[0])
		fprintf(f, "exe = %s\n", s.exe);
	fprintf(f, "action = %s\n", s.action);
}

/* Writes a policy of n rules to path; dies on failure. */
static void policy_write(const char *path, unsigned n)
{
	FILE *f = fopen(path, "w");

	if (!f)
		bench_die(prog, errno, "%s", path);
	fprintf(f, "[egress]\ndefault = deny\n");
	for (unsigned i = 0; i < n; i++)
		rule_write(f, i);
	if (fclose(f) != 0)
		bench_die(prog, errno, "%s", path);
}

struct req {
	struct policy_request r;
	struct proto_addr addr;
	char name[96];
	char exe[64];
};

/* Makes q a connect that rule i matches, or, when i is UINT32_MAX, the
 * j-th of the connects that no rule matches. */
static void req_make(struct req *q, unsigned i, unsigned j)
{
	struct spec s;

	memset(q, 0, sizeof *q);
	q->r.op = PROTO_OP_CONNECT;
	q->r.l4 = PROTO_L4_TCP;
	q->addr.family = 4;
	q->addr.bytes[0] = 203, q->addr.bytes[1] = 0, q->addr.bytes[2] = 113;
	q->addr.bytes[3] = (uint8_t)(j % 250 + 1);
	strcpy(q->exe, "/usr/bin/curl");
	q->r.port = 443;
	if (i == UINT32_MAX) {
		snprintf(q->name, sizeof q->name, "miss%u.nowhere.example", j);
		q->addr.bytes[0] = 198, q->addr.bytes[1] = 51, q->addr.bytes[2] = 100;
		goto done;
	}
	rule_spec(i, &s);
	switch (s.kind) {
	case EXACT: snprintf(q->name, sizeof q->name, "h%u.s%u.example", i, i % 97); break;
	case WILD: snprintf(q->name, sizeof q->name, "api.w%u.example", i); break;
	case LIST: snprintf(q->name, sizeof q->name, "b%u.example", i); break;
	case CIDR4:
		q->addr.bytes[0] = 10, q->addr.bytes[1] = (uint8_t)(i >> 16);
		q->addr.bytes[2] = (uint8_t)(i >> 8), q->addr.bytes[3] = (uint8_t)i;
		break;
	case NET4:
		q->addr.bytes[0] = 11, q->addr.bytes[1] = (uint8_t)(i >> 8);
		q->addr.bytes[2] = (uint8_t)i, q->addr.bytes[3] = 7;
		break;
	case CIDR6:
		memset(q->addr.bytes, 0, sizeof q->addr.bytes);
		q->addr.family = 6;
		q->addr.bytes[0] = 0x20, q->addr.bytes[1] = 0x01, q->addr.bytes[2] = 0x0d;
		q->addr.bytes[3] = 0xb8, q->addr.bytes[4] = (uint8_t)(i >> 24);
		q->addr.bytes[5] = (uint8_t)(i >> 16), q->addr.bytes[6] = (uint8_t)(i >> 8);
		q->addr.bytes[7] = (uint8_t)i, q->addr.bytes[15] = 5;
		break;
	case ANY: break;
	}
	if (s.range)
		q->r.port = 8050;
	else if (s.port)
		q->r.port = (uint16_t)s.port;
	if (s.exe[0])
		strcpy(q->exe, s.exe);
done:
	q->r.name = q->name[0] ? q->name : NULL;
	q->r.addr = &q->addr;
	q->r.exe = q->exe;
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/bench-decide.XXXXXX", err[POLICY_ERR_MAX];
	static struct req reqs[NREQ];
	static uint64_t batch[4096];
	struct policy_verdict v;
	struct policy *p;
	uint64_t t0, t1, seed = 88172645463325252ull, end;
	unsigned n, nb = 0, matched = 0;
	double seconds = 0.5;
	int fd;

	if (argc == 4 && !strcmp(argv[1], "gen")) {
		policy_write(argv[3], (unsigned)bench_count(prog, "N", argv[2]));
		return 0;
	}
	if ((argc != 3 && argc != 4) || strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "usage: decide run N [SECONDS]\n       decide gen N FILE\n");
		return 2;
	}
	n = (unsigned)bench_count(prog, "N", argv[2]);
	if (argc == 4)
		seconds = atof(argv[3]);
	fd = mkstemp(path);
	if (fd < 0)
		bench_die(prog, errno, "mkstemp");
	close(fd);
	policy_write(path, n);
	t0 = bench_now_ns();
	p = policy_load(path, err, sizeof err);
	t1 = bench_now_ns();
	unlink(path);
	if (!p)
		bench_die(prog, 0, "%s", err);

	for (unsigned j = 0; j < NREQ; j++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift */
		req_make(&reqs[j], j % 5 == 4 ? UINT32_MAX : (unsigned)(seed % n), j);
	}
	for (unsigned j = 0; j < NREQ; j++) { /* warm-up, and a check of the mix */
		policy_decide(p, &reqs[j].r, &v);
		matched += strcmp(v.rule, "default") != 0;
	}
	end = bench_now_ns() + (uint64_t)(seconds * 1e9);
	do {
		uint64_t b0 = bench_now_ns();

		for (unsigned k = 0; k < BATCH; k++)
			policy_decide(p, &reqs[k % NREQ].r, &v);
		batch[nb++] = (bench_now_ns() - b0) / (BATCH / 1000); /* ps per decision */
	} while ((nb < 3 || bench_now_ns() < end) && nb < 4096);
	printf("ns=%.1f load_ms=%.1f rules=%u matched=%u/%u batches=%u\n",
	       (double)bench_quantile(batch, nb, 0.5) / 1e3, (double)(t1 - t0) / 1e6,
	       policy_rule_count(p), matched, NREQ, nb);
	policy_free(p);
	return 0;
}
