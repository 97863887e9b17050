/* bench.h: what the benchmark programs of bench/ share: a monotonic clock,
 * sample statistics, the one-line result every program prints, and small
 * socket helpers. Header-only, so that each program is one file plus this.
 *
 * Every program prints exactly one result line on stdout, of KEY=VALUE
 * pairs (bench_result); bench/run.sh reads the keys it needs. Errors go to
 * stderr with the program's name, and the exit status is then 1. */
#ifndef EGRESS_BENCH_H
#define EGRESS_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints "PROG: message" (and the errno text when err is non-zero) on
 * stderr and exits 1. */
static inline void __attribute__((noreturn, format(printf, 3, 4)))
bench_die(const char *prog, int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v[0..n) in place and returns its q-quantile (0 <= q <= 1, nearest
 * rank); 0 when n is 0. */
static inline uint64_t bench_quantile(uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, bench_cmp_u64);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Prints the result line of per-operation latencies v[0..n) in ns: their
 * median and 90th percentile in microseconds, and n. */
static inline void bench_latency_result(uint64_t *v, size_t n)
{
	uint64_t p50 = bench_quantile(v, n, 0.5), p90 = bench_quantile(v, n, 0.9);

	printf("p50_us=%.3f p90_us=%.3f n=%zu\n", (double)p50 / 1e3, (double)p90 / 1e3, n);
	fflush(stdout);
}

/* Reads a positive count from s (a decimal number); dies naming what. */
static inline long bench_count(const char *prog, const char *what, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0)
		bench_die(prog, 0, "%s must be a positive number, not \"%s\"", what, s);
	return v;
}

/* Fills sa with the IPv4 address text addr and port; dies when addr is not
 * a dotted quad. */
static inline void bench_sockaddr(const char *prog, const char *addr, const char *port,
				  struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)bench_count(prog, "port", port));
	if (inet_pton(AF_INET, addr, &sa->sin_addr) != 1)
		bench_die(prog, 0, "%s is not an IPv4 address", addr);
}

/* Sets SO_LINGER with a zero timeout on fd: close() then resets the
 * connection instead of leaving it in TIME_WAIT, so that thousands of
 * connects in a row never run out of local ports. */
static inline void bench_linger0(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

#endif
