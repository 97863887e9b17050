/* gai.c: the latency of one getaddrinfo of a name, and freeaddrinfo.
 *
 *   gai NAME N
 *
 * Hints: any family, SOCK_STREAM, service "80", as a client that is about
 * to connect asks. A few lookups before the timed ones warm up (the shim's
 * broker connection, the resolver's first read of its files). The result
 * line holds the median and 90th percentile per lookup, and how many failed. */
#include <netdb.h>

#include "bench.h"

#define WARMUP 20

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	long n, fails = 0;
	uint64_t *v;

	if (argc != 3) {
		fprintf(stderr, "usage: gai NAME N\n");
		return 2;
	}
	n = bench_count("gai", "N", argv[2]);
	v = calloc((size_t)n, sizeof *v);
	if (!v)
		bench_die("gai", errno, "calloc");
	for (long i = -WARMUP; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		int e = getaddrinfo(argv[1], "80", &hints, &res);

		if (e == 0)
			freeaddrinfo(res);
		if (i >= 0) {
			v[i] = bench_now_ns() - t0;
			fails += e != 0;
		}
	}
	printf("fails=%ld ", fails);
	bench_latency_result(v, (size_t)n);
	return 0;
}
