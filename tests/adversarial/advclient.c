/* advclient.c: clients that talk to the broker socket directly, without the
 * shim, to attack it on purpose (tests/integration/t_adversarial.sh and
 * t_faults.sh drive it). Every mode prints one summary line and exits 0
 * when what it saw is what a sound broker does, 1 otherwise.
 *
 *   advclient SOCK probe                      one CONNECT, answered in 5 s
 *   advclient SOCK garbage N                  N clients send random bytes
 *   advclient SOCK malformed                  truncated, oversize, bad magic,
 *                                             lying lengths, wrong version
 *   advclient SOCK noread N                   sends N asks, never reads
 *   advclient SOCK hold N SECONDS             N silent clients for SECONDS
 *   advclient SOCK load PROCS THREADS TOTAL RULES
 *                                             PROCS x THREADS clients make
 *                                             TOTAL decisions in all against
 *                                             the load policy (see below),
 *                                             each answer checked against its
 *                                             own question
 *   advclient SOCK storm PROCS THREADS SECONDS
 *                                             like load for SECONDS, tolerating
 *                                             a broker that goes away: counts
 *                                             answers, errors and hangs
 *   advclient policy RULES [plain|flipped|broken]
 *                                             prints the load policy
 *
 * The load policy: rule "rI" (I < RULES) has cidr 11.A.B.0/24 (A, B = I's
 * bytes); even rules allow, odd ones deny with errno EACCES (I % 4 < 2) or
 * ECONNREFUSED. A client asking about 11.A.B.C knows exactly which verdict,
 * rule and errno belong to its question, so an answer meant for another
 * client cannot pass unnoticed. Its flipped twin names the rules "sI" and
 * swaps allow and deny; an answer that mixes the two (a half-loaded rule
 * set) is wrong too. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

static const char *sock_path;

static int dial(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Receives one message within ms. Returns its length, 0 when the broker
 * closed, -1 on error, -2 on timeout. */
static ssize_t recv_within(int fd, void *buf, size_t cap, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, ms);

	if (r == 0)
		return -2;
	if (r < 0)
		return -1;
	return recv(fd, buf, cap, 0);
}

/* The question of rule i, host h (0..255) of its /24. */
static void load_ask(struct proto_msg *m, uint32_t id, unsigned i, unsigned h)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_ASK;
	m->id = id;
	m->u.ask.op = PROTO_OP_CONNECT;
	m->u.ask.l4 = PROTO_L4_TCP;
	m->u.ask.port = 443;
	m->u.ask.addr.family = 4;
	m->u.ask.addr.bytes[0] = 11;
	m->u.ask.addr.bytes[1] = (uint8_t)(i >> 8);
	m->u.ask.addr.bytes[2] = (uint8_t)i;
	m->u.ask.addr.bytes[3] = (uint8_t)h;
}

/* 1 when v is the verdict rule i gives in the load policy ("rI"), 2 when
 * it is the one its flipped version gives ("sI", allow and deny swapped),
 * whichever is loaded; 0 for a verdict that mixes the two sets: wrong. */
static int load_right(const struct proto_verdict *v, unsigned i)
{
	char rule[16];
	unsigned allow_parity;

	snprintf(rule, sizeof rule, "r%u", i);
	allow_parity = 0;
	if (strcmp(v->rule, rule) != 0) {
		rule[0] = 's';
		if (strcmp(v->rule, rule) != 0)
			return 0;
		allow_parity = 1;
	}
	if (i % 2 == allow_parity)
		return v->action == PROTO_ALLOW && v->err == 0 ? 1 + (int)allow_parity : 0;
	return v->action == PROTO_DENY && v->err == (i % 4 < 2 ? EACCES : ECONNREFUSED)
		       ? 1 + (int)allow_parity
		       : 0;
}

/* One question and its answer. Returns 1 right (2: right by the flipped
 * set), 0 wrong, -1 no answer (closed or error), -2 timeout. */
static int exchange(int fd, uint32_t id, unsigned i, unsigned h, int ms)
{
	struct proto_msg m;
	uint8_t buf[2048];
	ssize_t n;

	load_ask(&m, id, i, h);
	n = proto_encode(&m, buf, sizeof buf);
	if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
		return -1;
	n = recv_within(fd, buf, sizeof buf, ms);
	if (n == -2)
		return -2;
	if (n <= 0 || proto_decode(buf, (size_t)n, &m) != 0)
		return -1;
	return m.type == PROTO_VERDICT && m.id == id ? load_right(&m.u.verdict, i) : 0;
}

static int probe(void)
{
	int fd = dial(), r;

	if (fd < 0) {
		printf("probe: cannot connect: %s\n", strerror(errno));
		return 1;
	}
	r = exchange(fd, 1, 2, 7, 5000);
	close(fd);
	printf("probe: %s\n", r >= 1 ? "answered right" : r == 0 ? "WRONG answer" :
			      r == -2 ? "no answer in 5 s" : "closed");
	return r >= 1 ? 0 : 1;
}

/* ------------------------------------------------------------ bad input */

/* Sends bytes as one message and says what came back: "closed",
 * "error N" (a PROTO_ERROR) or "answer". */
static const char *bad_one(const void *bytes, size_t len, int *code)
{
	uint8_t buf[2048];
	struct proto_msg m;
	int fd = dial();
	ssize_t n;

	*code = 0;
	if (fd < 0)
		return "no connection";
	if (send(fd, bytes, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(fd);
		return "send failed";
	}
	n = recv_within(fd, buf, sizeof buf, 5000);
	if (n > 0 && proto_decode(buf, (size_t)n, &m) == 0 && m.type == PROTO_ERROR) {
		*code = m.u.error;
		n = recv_within(fd, buf, sizeof buf, 5000); /* then it must close */
		close(fd);
		return n == 0 ? "error, closed" : "error, left open";
	}
	close(fd);
	return n == 0 ? "closed" : n == -2 ? "hung" : "answered";
}

static int garbage(int count)
{
	int bad = 0, code;

	srand(4242);
	for (int i = 0; i < count; i++) {
		uint8_t junk[512];
		size_t len = 1 + (size_t)(rand() % (int)sizeof junk);
		for (size_t j = 0; j < len; j++)
			junk[j] = (uint8_t)rand();
		if (i % 2 == 0) /* half of them look like a header at first */
			junk[0] = PROTO_MAGIC;
		const char *what = bad_one(junk, len, &code);
		if (strcmp(what, "closed") != 0 && strcmp(what, "error, closed") != 0) {
			printf("garbage %d (%zu bytes): %s\n", i, len, what);
			bad++;
		}
	}
	printf("garbage: %d clients, %d not closed\n", count, bad);
	return bad != 0 || probe();
}

static int malformed(void)
{
	static uint8_t big[PROTO_MSG_MAX + 100];
	struct proto_msg m;
	uint8_t ok[512];
	ssize_t n;
	int bad = 0, code;
	const char *what;

	load_ask(&m, 9, 2, 1);
	n = proto_encode(&m, ok, sizeof ok);
	for (ssize_t cut = 1; cut < n; cut++) { /* every truncation */
		what = bad_one(ok, (size_t)cut, &code);
		if (strcmp(what, "closed") != 0) {
			printf("truncated to %zd: %s\n", cut, what);
			bad++;
		}
	}
	memcpy(big, ok, (size_t)n); /* oversize: longer than any message */
	what = bad_one(big, sizeof big, &code);
	if (strcmp(what, "closed") != 0)
		printf("oversize: %s\n", what), bad++;
	ok[0] = 'X';
	what = bad_one(ok, (size_t)n, &code);
	if (strcmp(what, "closed") != 0)
		printf("bad magic: %s\n", what), bad++;
	ok[0] = PROTO_MAGIC;
	ok[8]++; /* the length lies */
	what = bad_one(ok, (size_t)n, &code);
	if (strcmp(what, "closed") != 0)
		printf("lying length: %s\n", what), bad++;
	ok[8]--;
	ok[1] = PROTO_VERSION + 1;
	what = bad_one(ok, (size_t)n, &code);
	if (strcmp(what, "error, closed") != 0 || code != PROTO_E_VERSION)
		printf("wrong version: %s (%d)\n", what, code), bad++;
	printf("malformed: %zd truncations, oversize, bad magic, lying length, wrong version: "
	       "%d wrong\n", n - 1, bad);
	return bad != 0 || probe();
}

/* Writes asks until the socket is full, never reading: the broker must drop
 * this client, not block on it. */
static int noread(int count)
{
	int fd = dial(), sent = 0, rc;
	struct proto_msg m;
	uint8_t buf[512];
	ssize_t n;

	if (fd < 0)
		return 1;
	for (int i = 0; i < count; i++) {
		load_ask(&m, (uint32_t)i + 1, (unsigned)i % 64, 1);
		n = proto_encode(&m, buf, sizeof buf);
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
			break;
		sent++;
	}
	rc = probe();
	/* drain: either answers, then the close, or the close at once */
	while ((n = recv_within(fd, buf, sizeof buf, 5000)) > 0)
		;
	printf("noread: %d asks sent unread; then %s\n", sent,
	       n == 0 || (n == -1 && errno == ECONNRESET) ? "closed by the broker"
	       : n == -2			       ? "answered all, left open"
						       : "error");
	close(fd);
	return rc;
}

static int hold(int count, int seconds)
{
	int *fds = calloc((size_t)count, sizeof *fds), opened = 0, rc;

	for (int i = 0; i < count; i++)
		if ((fds[i] = dial()) >= 0)
			opened++;
	printf("hold: %d of %d silent clients connected\n", opened, count);
	fflush(stdout);
	rc = probe();
	sleep((unsigned)seconds);
	for (int i = 0; i < count; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return rc;
}

/* ------------------------------------------------------------------ load */

struct worker {
	unsigned per, rules, seed;
	int seconds;       /* storm: run this long, tolerating failures */
	unsigned long right, wrong, lost, hung;
	unsigned long twin; /* of the right ones, answered by the flipped set */
};

static void *work(void *arg)
{
	struct worker *w = arg;
	time_t end = time(NULL) + w->seconds;
	int fd = dial();
	uint32_t id = 0;

	for (unsigned k = 0; w->seconds ? time(NULL) < end : k < w->per; k++) {
		unsigned i = (unsigned)rand_r(&w->seed) % w->rules;
		int r;

		if (fd < 0) {
			fd = dial();
			if (fd < 0) {
				w->lost++;
				if (!w->seconds)
					continue;
				usleep(20000);
				continue;
			}
		}
		r = exchange(fd, ++id, i, (unsigned)rand_r(&w->seed) % 256, 10000);
		if (r >= 1) {
			w->right++;
			w->twin += r == 2;
		} else if (r == 0)
			w->wrong++;
		else if (r == -2)
			w->hung++;
		else
			w->lost++;
		if (r < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* One process of threads; writes "right wrong lost hung twin" to out. */
static void load_proc(int threads, unsigned per, unsigned rules, int seconds, int out, int seed)
{
	pthread_t *t = calloc((size_t)threads, sizeof *t);
	struct worker *w = calloc((size_t)threads, sizeof *w);
	unsigned long sum[5] = { 0 };
	char line[128];

	bool *started = calloc((size_t)threads, sizeof *started);

	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .per = per, .rules = rules, .seconds = seconds,
					.seed = (unsigned)(seed * 7919 + i) };
		started[i] = pthread_create(&t[i], NULL, work, &w[i]) == 0;
		if (!started[i])
			w[i].lost += per; /* counted as lost, not silently skipped */
	}
	for (int i = 0; i < threads; i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		sum[0] += w[i].right;
		sum[1] += w[i].wrong;
		sum[2] += w[i].lost;
		sum[3] += w[i].hung;
		sum[4] += w[i].twin;
	}
	snprintf(line, sizeof line, "%lu %lu %lu %lu %lu\n", sum[0], sum[1], sum[2], sum[3],
		 sum[4]);
	(void)!write(out, line, strlen(line));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load(int procs, int threads, unsigned long total, unsigned rules, int seconds)
{
	unsigned per = (unsigned)(total / ((unsigned long)procs * (unsigned long)threads));
	unsigned long sum[5] = { 0 }, v[5];
	double t0 = now_s(), dt;
	int pfd[2];
	FILE *in;

	if (pipe(pfd) < 0)
		return 1;
	for (int p = 0; p < procs; p++) {
		if (fork() == 0) {
			close(pfd[0]);
			load_proc(threads, per, rules, seconds, pfd[1], p);
			_exit(0);
		}
	}
	close(pfd[1]);
	in = fdopen(pfd[0], "r");
	while (fscanf(in, "%lu %lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5)
		for (int k = 0; k < 5; k++)
			sum[k] += v[k];
	while (wait(NULL) > 0)
		;
	dt = now_s() - t0;
	printf("load: %d clients (%d processes x %d threads), %lu decisions in %.1f s "
	       "(%.0f decisions/s): %lu right, %lu wrong, %lu lost, %lu hung; "
	       "%lu of the right from the flipped twin\n",
	       procs * threads, procs, threads, sum[0] + sum[1], dt, (double)(sum[0] + sum[1]) / dt,
	       sum[0], sum[1], sum[2], sum[3], sum[4]);
	if (seconds) /* storm: failures are expected, wrong answers and hangs are not */
		return sum[1] != 0 || sum[3] != 0;
	return sum[1] != 0 || sum[2] != 0 || sum[3] != 0 ||
	       sum[0] != (unsigned long)per * (unsigned long)procs * (unsigned long)threads;
}

/* The load policy; flipped: its twin with allow and deny swapped; broken:
 * the twin with an error on its last line. */
static void print_policy(unsigned rules, const char *variant)
{
	bool flip = strcmp(variant, "plain") != 0;

	printf("[egress]\ndefault = deny\n\n");
	for (unsigned i = 0; i < rules; i++) {
		bool deny = i % 2 != (unsigned)flip;
		printf("[rule \"%c%u\"]\ncidr = 11.%u.%u.0/24\naction = %s\n%s\n", flip ? 's' : 'r', i,
		       i >> 8 & 255, i & 255, deny ? "deny" : "allow",
		       deny ? (i % 4 < 2 ? "errno = EACCES\n" : "errno = ECONNREFUSED\n") : "");
	}
	if (strcmp(variant, "broken") == 0)
		printf("[rule \"zz\"]\ncidr = 11.0.0.0/8\nbogus = 1\naction = allow\n");
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "policy") == 0) {
		print_policy((unsigned)atoi(argv[2]), argc == 4 ? argv[3] : "plain");
		return 0;
	}
	if (argc < 3)
		goto usage;
	sock_path = argv[1];
	if (strcmp(argv[2], "probe") == 0)
		return probe();
	if (strcmp(argv[2], "garbage") == 0 && argc == 4)
		return garbage(atoi(argv[3]));
	if (strcmp(argv[2], "malformed") == 0)
		return malformed();
	if (strcmp(argv[2], "noread") == 0 && argc == 4)
		return noread(atoi(argv[3]));
	if (strcmp(argv[2], "hold") == 0 && argc == 5)
		return hold(atoi(argv[3]), atoi(argv[4]));
	if (strcmp(argv[2], "load") == 0 && argc == 7)
		return load(atoi(argv[3]), atoi(argv[4]), strtoul(argv[5], NULL, 10),
			    (unsigned)atoi(argv[6]), 0);
	if (strcmp(argv[2], "storm") == 0 && argc == 6)
		return load(atoi(argv[3]), atoi(argv[4]), 0, 10000, atoi(argv[5]));
usage:
	fprintf(stderr, "usage: see the comment at the top of advclient.c\n");
	return 2;
}
