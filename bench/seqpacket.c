/* seqpacket.c: the floor. One 64-byte request and its 64-byte response over
 * an AF_UNIX SOCK_SEQPACKET socket between two processes: what any broker
 * that answers over such a socket costs at least, with no work in it.
 *
 *   seqpacket N [CPU CPU]
 *
 * A forked child echoes; the parent times N round trips after a warm-up.
 * With two CPU numbers the parent runs on the first and the child on the
 * second, so that every message wakes a process on another CPU (what a
 * round trip costs when the scheduler puts the two apart). The result line
 * holds the median and 90th percentile per round trip. */
#include <sched.h>
#include <sys/wait.h>

#include "bench.h"

#define WARMUP 1000
#define MSG 64

/* Moves the calling process to cpu (a number, or NULL: left alone). */
static void pin(const char *cpu)
{
	cpu_set_t set;

	if (!cpu)
		return;
	CPU_ZERO(&set);
	CPU_SET((int)strtol(cpu, NULL, 10), &set);
	if (sched_setaffinity(0, sizeof set, &set) < 0)
		bench_die("seqpacket", errno, "CPU %s", cpu);
}

int main(int argc, char **argv)
{
	char buf[MSG];
	long n;
	uint64_t *v;
	int sv[2];
	pid_t pid;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: seqpacket N [CPU CPU]\n");
		return 2;
	}
	n = bench_count("seqpacket", "N", argv[1]);
	v = calloc((size_t)n, sizeof *v);
	if (!v || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		bench_die("seqpacket", errno, "setup");
	pid = fork();
	if (pid < 0)
		bench_die("seqpacket", errno, "fork");
	if (pid == 0) {
		ssize_t r;

		pin(argc == 4 ? argv[3] : NULL);
		close(sv[0]);
		while ((r = recv(sv[1], buf, sizeof buf, 0)) > 0)
			if (send(sv[1], buf, (size_t)r, 0) != r)
				break;
		_exit(0);
	}
	pin(argc == 4 ? argv[2] : NULL);
	close(sv[1]);
	memset(buf, 's', sizeof buf);
	for (long i = -WARMUP; i < n; i++) {
		uint64_t t0 = bench_now_ns();

		if (send(sv[0], buf, sizeof buf, 0) != MSG || recv(sv[0], buf, sizeof buf, 0) != MSG)
			bench_die("seqpacket", errno, "round trip");
		if (i >= 0)
			v[i] = bench_now_ns() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	printf("fails=0 ");
	bench_latency_result(v, (size_t)n);
	return 0;
}
