/* stream.c: the throughput of one TCP stream through a connect.
 *
 *   stream HOST PORT MIB
 *
 * Connects to HOST:PORT (an address, or a name through getaddrinfo, so
 * that a rewrite rule can send it through a relay or a proxy), writes MIB
 * MiB in 256 KiB writes, shuts its side down and reads until the peer
 * (bench/server discard) closes: the time covers every byte delivered. The
 * result line holds MiB/s and the seconds taken. */
#include <netdb.h>

#include "bench.h"

#define CHUNK (256 * 1024)

int main(int argc, char **argv)
{
	static char buf[CHUNK];
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
	uint64_t total, left, t0, t1;
	long mib;
	int fd, e;

	if (argc != 4) {
		fprintf(stderr, "usage: stream HOST PORT MIB\n");
		return 2;
	}
	mib = bench_count("stream", "MIB", argv[3]);
	total = (uint64_t)mib << 20;
	e = getaddrinfo(argv[1], argv[2], &hints, &res);
	if (e)
		bench_die("stream", 0, "getaddrinfo %s: %s", argv[1], gai_strerror(e));
	memset(buf, 'z', sizeof buf);
	t0 = bench_now_ns();
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		bench_die("stream", errno, "connect %s:%s", argv[1], argv[2]);
	freeaddrinfo(res);
	for (left = total; left > 0;) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK;
		ssize_t w = write(fd, buf, want);

		if (w <= 0)
			bench_die("stream", errno, "write after %llu bytes",
				  (unsigned long long)(total - left));
		left -= (uint64_t)w;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof buf) > 0)
		;
	t1 = bench_now_ns();
	close(fd);
	printf("mib_s=%.1f seconds=%.3f\n", (double)mib / ((double)(t1 - t0) / 1e9),
	       (double)(t1 - t0) / 1e9);
	return 0;
}
