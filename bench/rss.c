/* rss.c: resident memory, read from /proc.
 *
 *   rss self HOST PORT            connects once to HOST:PORT (so that a
 *                                 preloaded shim has asked, and holds its
 *                                 broker connection), then reports this
 *                                 process's own memory
 *   rss broker PID SOCKET N PORT  reports the broker PID's memory, then opens
 *                                 N connections to its SOCKET, asks one
 *                                 connect to 127.0.0.1:PORT on each, and
 *                                 reports it again with the N connected
 *
 * Sizes are KiB: rss_kb is VmRSS, private_kb what no other process shares
 * (Private_Clean + Private_Dirty of smaps_rollup). */
#include <sys/resource.h>
#include <sys/un.h>

#include "bench.h"
#include "proto.h"

static const char *prog = "rss";

/* Reads the KiB value of field (e.g. "VmRSS:") from /proc/PID/FILE; sums
 * every line that starts with it. Returns -1 when there is none. */
static long proc_kb(long pid, const char *file, const char *field)
{
	char path[64], line[256];
	long sum = -1, v;
	FILE *f;

	if (pid > 0)
		snprintf(path, sizeof path, "/proc/%ld/%s", pid, file);
	else
		snprintf(path, sizeof path, "/proc/self/%s", file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, strlen(field)) &&
		    sscanf(line + strlen(field), " %ld", &v) == 1)
			sum = (sum < 0 ? 0 : sum) + v;
	fclose(f);
	return sum;
}

static long private_kb(long pid)
{
	long c = proc_kb(pid, "smaps_rollup", "Private_Clean:");
	long d = proc_kb(pid, "smaps_rollup", "Private_Dirty:");

	return c < 0 || d < 0 ? -1 : c + d;
}

/* One ASK (connect to 127.0.0.1:port) over a new connection to path; the
 * connection stays open. Returns its descriptor. */
static int ask_once(const char *path, uint16_t port)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct proto_msg m = { .type = PROTO_ASK, .id = 1 };
	uint8_t req[256], buf[4096];
	ssize_t len;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		bench_die(prog, errno, "connect %s", path);
	m.u.ask.op = PROTO_OP_CONNECT;
	m.u.ask.l4 = PROTO_L4_TCP;
	m.u.ask.port = port;
	m.u.ask.addr.family = 4;
	inet_pton(AF_INET, "127.0.0.1", m.u.ask.addr.bytes);
	len = proto_encode(&m, req, sizeof req);
	if (len < 0 || send(fd, req, (size_t)len, 0) != len || recv(fd, buf, sizeof buf, 0) <= 0)
		bench_die(prog, errno, "ask");
	return fd;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "self")) {
		struct sockaddr_in sa;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		bench_sockaddr(prog, argv[2], argv[3], &sa);
		bench_linger0(fd);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			bench_die(prog, errno, "connect %s:%s", argv[2], argv[3]);
		close(fd);
		printf("rss_kb=%ld private_kb=%ld\n", proc_kb(0, "status", "VmRSS:"), private_kb(0));
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "broker")) {
		long pid = bench_count(prog, "PID", argv[2]), n = bench_count(prog, "N", argv[4]);
		uint16_t port = (uint16_t)bench_count(prog, "PORT", argv[5]);
		long idle = proc_kb(pid, "status", "VmRSS:"), idle_priv = private_kb(pid);
		struct rlimit rl;
		int *fds = calloc((size_t)n, sizeof *fds);

		if (!fds || idle < 0)
			bench_die(prog, errno, "/proc/%ld", pid);
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
			rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		for (long i = 0; i < n; i++)
			fds[i] = ask_once(argv[3], port);
		printf("rss_idle_kb=%ld private_idle_kb=%ld rss_clients_kb=%ld private_clients_kb=%ld "
		       "clients=%ld\n",
		       idle, idle_priv, proc_kb(pid, "status", "VmRSS:"), private_kb(pid), n);
		for (long i = 0; i < n; i++)
			close(fds[i]);
		return 0;
	}
	fprintf(stderr, "usage: rss self HOST PORT\n       rss broker PID SOCKET N PORT\n");
	return 2;
}
