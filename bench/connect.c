/* connect.c: the latency of TCP connects, one operation at a time.
 *
 *   connect repeat HOST PORT N   socket + connect + close, N times in one process
 *   connect first  HOST PORT N   the same once in each of N fresh processes (fork):
 *                                a process's first connect, which opens its
 *                                connection to the broker under the shim
 *   connect name   NAME PORT N   getaddrinfo(NAME) + socket + connect + close, N times
 *   connect echo   HOST PORT N   socket + connect + one byte sent and read back
 *                                from an echo server + close, N times
 *   connect socket HOST PORT N   socket + close without the connect: what of
 *                                the others is not the connect itself
 *
 * HOST is an IPv4 address, or a name looked up once before the loop (with
 * getaddrinfo; with the option --dns, or in the static build, by a DNS
 * query of our own to the first nameserver of /etc/resolv.conf, as a
 * program that bypasses libc does). Every socket gets SO_LINGER 0, so close
 * resets it and no local port stays in TIME_WAIT. A few operations before
 * the timed ones warm up (except in first). The result line holds the
 * median and 90th percentile per operation and how many failed: a connect
 * the policy denies is an operation too (mode repeat), and failures are
 * counted, not fatal. */
#include <netdb.h>
#include <sys/wait.h>

#include "bench.h"

#define WARMUP 20

static const char *prog = "connect";

/* ------------------------------------------------------------- DNS */

/* Reads the first "nameserver" address (IPv4) of /etc/resolv.conf into sa
 * with port 53. Returns 0 or -1. */
static int resolv_server(struct sockaddr_in *sa)
{
	char line[512], addr[64];
	FILE *f = fopen("/etc/resolv.conf", "r");
	int r = -1;

	if (!f)
		return -1;
	while (r < 0 && fgets(line, sizeof line, f))
		if (sscanf(line, " nameserver %63s", addr) == 1) {
			memset(sa, 0, sizeof *sa);
			sa->sin_family = AF_INET;
			sa->sin_port = htons(53);
			if (inet_pton(AF_INET, addr, &sa->sin_addr) == 1)
				r = 0;
		}
	fclose(f);
	return r;
}

/* Skips the (possibly compressed) name at p in msg[0..len). Returns the
 * offset after it, or -1. */
static int dns_skip_name(const uint8_t *msg, int len, int p)
{
	while (p < len) {
		if ((msg[p] & 0xc0) == 0xc0)
			return p + 2 <= len ? p + 2 : -1;
		if (msg[p] == 0)
			return p + 1;
		p += 1 + msg[p];
	}
	return -1;
}

/* Asks the resolv.conf name server for the A record of name, as a static
 * program that makes its own query does. Returns 0 with *out set, or -1. */
static int dns_lookup_a(const char *name, struct in_addr *out)
{
	uint8_t q[512] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 }, a[512];
	struct sockaddr_in ns;
	struct timeval tv = { .tv_sec = 3 };
	const char *s = name;
	int qlen = 12, fd, n, p, an;

	if (resolv_server(&ns) < 0)
		return -1;
	while (*s) { /* the labels */
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);

		if (l == 0 || l > 63 || qlen + (int)l + 6 > (int)sizeof q)
			return -1;
		q[qlen++] = (uint8_t)l;
		memcpy(q + qlen, s, l);
		qlen += (int)l;
		s += l + (dot ? 1 : 0);
	}
	q[qlen++] = 0;
	q[qlen++] = 0, q[qlen++] = 1; /* A */
	q[qlen++] = 0, q[qlen++] = 1; /* IN */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (sendto(fd, q, (size_t)qlen, 0, (struct sockaddr *)&ns, sizeof ns) != qlen ||
	    (n = (int)recv(fd, a, sizeof a, 0)) < 12) {
		close(fd);
		return -1;
	}
	close(fd);
	if (a[0] != 0x12 || a[1] != 0x34 || (a[3] & 0x0f) != 0)
		return -1;
	an = a[6] << 8 | a[7];
	p = dns_skip_name(a, n, 12);
	if (p < 0 || (p += 4) > n)
		return -1;
	while (an-- > 0) {
		int type, rdlen;

		p = dns_skip_name(a, n, p);
		if (p < 0 || p + 10 > n)
			return -1;
		type = a[p] << 8 | a[p + 1];
		rdlen = a[p + 8] << 8 | a[p + 9];
		p += 10;
		if (p + rdlen > n)
			return -1;
		if (type == 1 && rdlen == 4) {
			memcpy(out, a + p, 4);
			return 0;
		}
		p += rdlen;
	}
	return -1;
}

/* Fills sa with HOST:PORT: an IPv4 address, or a name looked up once (with
 * getaddrinfo, or our own query when dns is set or in the static build). */
static void resolve_once(const char *host, const char *port, int dns, struct sockaddr_in *sa)
{
	struct in_addr in;

	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)bench_count(prog, "port", port));
	if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
		return;
#ifndef BENCH_STATIC
	if (!dns) {
		struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
		int e = getaddrinfo(host, port, &hints, &res);

		if (e)
			bench_die(prog, 0, "getaddrinfo %s: %s", host, gai_strerror(e));
		memcpy(sa, res->ai_addr, sizeof *sa);
		freeaddrinfo(res);
		return;
	}
#endif
	(void)dns;
	if (dns_lookup_a(host, &in) < 0)
		bench_die(prog, 0, "no A record for %s from the resolv.conf name server", host);
	sa->sin_addr = in;
}

/* ------------------------------------------------------------- one operation */

/* socket + connect + (echo > 0: one byte there and back) + close; echo < 0:
 * socket + close alone. Returns 0, or -1 when the connect (or the echo)
 * failed. */
static int one_connect(const struct sockaddr *sa, socklen_t len, int echo)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
	char c = 'x';

	if (fd < 0)
		bench_die(prog, errno, "socket");
	bench_linger0(fd);
	r = echo < 0 ? 0 : connect(fd, sa, len);
	if (r == 0 && echo > 0 && (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1))
		r = -1;
	close(fd);
	return r;
}

#ifndef BENCH_STATIC
/* getaddrinfo(name, port) + connect to its first address + close. */
static int one_named(const char *name, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	int r;

	if (getaddrinfo(name, port, &hints, &res) != 0)
		return -1;
	r = one_connect(res->ai_addr, res->ai_addrlen, 0);
	freeaddrinfo(res);
	return r;
}
#endif

/* ------------------------------------------------------------- modes */

/* Runs n timed operations in fresh fork children; each writes its duration
 * (ns, or UINT64_MAX for a failure) to a pipe. */
static void run_first(const struct sockaddr_in *sa, long n, uint64_t *v, long *fails)
{
	for (long i = 0; i < n; i++) {
		int p[2];
		uint64_t d;
		pid_t pid;

		if (pipe(p) < 0)
			bench_die(prog, errno, "pipe");
		pid = fork();
		if (pid < 0)
			bench_die(prog, errno, "fork");
		if (pid == 0) {
			uint64_t t0 = bench_now_ns();
			int r = one_connect((const struct sockaddr *)sa, sizeof *sa, 0);

			d = r == 0 ? bench_now_ns() - t0 : UINT64_MAX;
			if (r != 0)
				fprintf(stderr, "connect: a first connect failed: %s\n", strerror(errno));
			_exit(write(p[1], &d, sizeof d) == sizeof d ? 0 : 1);
		}
		close(p[1]);
		if (read(p[0], &d, sizeof d) != sizeof d)
			bench_die(prog, 0, "a child did not report");
		close(p[0]);
		waitpid(pid, NULL, 0);
		if (d == UINT64_MAX) {
			(*fails)++;
			d = 0;
		}
		v[i] = d;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	const char *mode, *host, *port;
	int dns = 0, named;
	long n, fails = 0;
	uint64_t *v;
	int first_err = 0;

	if (argc == 6 && !strcmp(argv[5], "--dns")) {
		dns = 1;
		argc--;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: connect repeat|first|name|echo|socket HOST PORT N [--dns]\n");
		return 2;
	}
	mode = argv[1];
	host = argv[2];
	port = argv[3];
	n = bench_count(prog, "N", argv[4]);
	v = calloc((size_t)n, sizeof *v);
	if (!v)
		bench_die(prog, errno, "calloc");
	named = !strcmp(mode, "name");
#ifdef BENCH_STATIC
	if (named)
		bench_die(prog, 0, "mode name needs getaddrinfo: use the dynamic build");
#endif
	if (!named)
		resolve_once(host, port, dns, &sa);

	if (!strcmp(mode, "first")) {
		run_first(&sa, n, v, &fails);
	} else if (named || !strcmp(mode, "repeat") || !strcmp(mode, "echo") ||
		   !strcmp(mode, "socket")) {
		int echo = !strcmp(mode, "echo") ? 1 : !strcmp(mode, "socket") ? -1 : 0;

		for (long i = -WARMUP; i < n; i++) {
			uint64_t t0 = bench_now_ns();
			int r;
#ifndef BENCH_STATIC
			if (named)
				r = one_named(host, port);
			else
#endif
				r = one_connect((struct sockaddr *)&sa, sizeof sa, echo);
			if (i >= 0) {
				v[i] = bench_now_ns() - t0;
				if (r < 0 && fails++ == 0)
					first_err = errno;
			}
		}
	} else {
		bench_die(prog, 0, "unknown mode %s", mode);
	}
	if (first_err)
		fprintf(stderr, "connect: %ld of %ld failed, the first with %s\n", fails, n,
			strerror(first_err));
	printf("fails=%ld ", fails);
	bench_latency_result(v, (size_t)n);
	return 0;
}
