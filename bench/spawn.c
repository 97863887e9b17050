/* spawn.c: the wall time of starting a program and waiting for it.
 *
 *   spawn N [VAR=VAL...] -- CMD [ARGS...]
 *
 * Runs CMD N times, one after another (fork, execvp, waitpid), with the
 * VAR=VAL settings added to its environment only; CMD's output goes to
 * /dev/null. One run before the timed ones warms up the page cache. The
 * result line holds the median and 90th percentile per run, and how many
 * runs did not exit 0. */
#include <fcntl.h>
#include <sys/wait.h>

#include "bench.h"

int main(int argc, char **argv)
{
	long n, fails = 0;
	uint64_t *v;
	int i = 2, nenv;

	if (argc < 4) {
		fprintf(stderr, "usage: spawn N [VAR=VAL...] -- CMD [ARGS...]\n");
		return 2;
	}
	n = bench_count("spawn", "N", argv[1]);
	while (i < argc && strcmp(argv[i], "--") != 0)
		i++;
	if (i + 1 >= argc)
		bench_die("spawn", 0, "no command after --");
	nenv = i - 2;
	v = calloc((size_t)n, sizeof *v);
	if (!v)
		bench_die("spawn", errno, "calloc");
	for (long k = -1; k < n; k++) {
		uint64_t t0 = bench_now_ns();
		pid_t pid = fork();
		int st;

		if (pid < 0)
			bench_die("spawn", errno, "fork");
		if (pid == 0) {
			int null = open("/dev/null", O_RDWR);

			for (int e = 0; e < nenv; e++)
				putenv(argv[2 + e]);
			if (null >= 0) {
				dup2(null, 0);
				dup2(null, 1);
			}
			execvp(argv[i + 1], argv + i + 1);
			_exit(127);
		}
		if (waitpid(pid, &st, 0) < 0)
			bench_die("spawn", errno, "waitpid");
		if (k >= 0) {
			v[k] = bench_now_ns() - t0;
			fails += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		}
	}
	printf("fails=%ld ", fails);
	bench_latency_result(v, (size_t)n);
	return 0;
}
