/* udp.c: the cost of one sendto of a 64-byte datagram to one destination,
 * in the steady state.
 *
 *   udp ADDR PORT N
 *
 * One socket; WARMUP sends first (under the shim the first asks the broker
 * and caches its verdict), then N timed sends. The result line holds the
 * median and 90th percentile per send, and how many failed. */
#include "bench.h"

#define WARMUP 1000

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	char msg[64];
	long n, fails = 0;
	uint64_t *v;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: udp ADDR PORT N\n");
		return 2;
	}
	bench_sockaddr("udp", argv[1], argv[2], &sa);
	n = bench_count("udp", "N", argv[3]);
	v = calloc((size_t)n, sizeof *v);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!v || fd < 0)
		bench_die("udp", errno, "setup");
	memset(msg, 'u', sizeof msg);
	for (long i = -WARMUP; i < n; i++) {
		uint64_t t0 = bench_now_ns();
		ssize_t r = sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&sa, sizeof sa);

		if (i >= 0) {
			v[i] = bench_now_ns() - t0;
			fails += r != (ssize_t)sizeof msg;
		}
	}
	printf("fails=%ld ", fails);
	bench_latency_result(v, (size_t)n);
	return 0;
}
