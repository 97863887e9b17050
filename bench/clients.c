/* clients.c: how many requests per second one server answers to N
 * concurrent clients, each a process with one SOCK_SEQPACKET connection
 * that asks, waits for the answer and asks again.
 *
 *   clients broker SOCKET N SECONDS PORT ADDR   ASKs (a connect to ADDR:PORT)
 *                                          to the egress broker at SOCKET
 *   clients floor N SECONDS                64-byte requests to an echo server
 *                                          forked here: one thread, epoll, no
 *                                          work, the broker's shape (the floor)
 *
 * The clients connect, wait until all have, start together and stop after
 * SECONDS; each reports its count and its first and last moment. The
 * result line holds the requests per second over the span from the first
 * start to the last stop, and how many answers were not what was asked
 * for (a broker client counts a verdict other than ALLOW as bad). */
#include <signal.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "bench.h"
#include "proto.h"

#define MAX_CLIENTS 1024
#define FLOOR_MSG 64

static const char *prog = "clients";

struct report {
	uint64_t count, bad, start, end;
};

/* Connects a SEQPACKET socket to path; dies on failure. */
static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof sun.sun_path)
		bench_die(prog, 0, "%s: path too long", path);
	strcpy(sun.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		bench_die(prog, errno, "connect %s", path);
	return fd;
}

/* The echo server of the floor: accepts on lfd and sends every message
 * back, until killed. */
static void __attribute__((noreturn)) floor_server(int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	char buf[4096];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ev.data.fd = lfd;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		bench_die(prog, errno, "epoll");
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, c;
			ssize_t r;

			if (fd == lfd) {
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0 || send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r)
				close(fd);
		}
	}
}

/* One client: waits for the start (EOF on go), asks until seconds have
 * passed, writes its report to out. req[0..reqlen) is the request; a
 * broker client decodes each answer. */
static void __attribute__((noreturn)) client(int fd, int ready, int go, int out, double seconds,
					     const uint8_t *req, size_t reqlen, int broker)
{
	uint8_t buf[PROTO_MSG_MAX > 4096 ? 4096 : PROTO_MSG_MAX];
	struct report r = { 0 };
	struct proto_msg m;
	char c = 'r';
	uint64_t stop;

	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 0)
		_exit(1);
	r.start = bench_now_ns();
	stop = r.start + (uint64_t)(seconds * 1e9);
	do {
		ssize_t n;

		if (send(fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen ||
		    (n = recv(fd, buf, sizeof buf, 0)) <= 0)
			bench_die(prog, errno, "round trip");
		if (broker) {
			if (proto_decode(buf, (size_t)n, &m) != 0 || m.type != PROTO_VERDICT ||
			    m.u.verdict.action != PROTO_ALLOW)
				r.bad++;
		} else if ((size_t)n != reqlen) {
			r.bad++;
		}
		r.count++;
	} while ((r.end = bench_now_ns()) < stop);
	_exit(write(out, &r, sizeof r) == sizeof r ? 0 : 1);
}

int main(int argc, char **argv)
{
	uint8_t req[256];
	char dir[] = "/tmp/bench-floor.XXXXXX", path[sizeof dir + 16];
	size_t reqlen;
	double seconds;
	long n;
	int broker, ready[2], go[2], out[2];
	uint64_t total = 0, bad = 0, start = UINT64_MAX, end = 0;
	pid_t server = -1, kids[MAX_CLIENTS];
	const char *sock;

	if (argc == 7 && !strcmp(argv[1], "broker")) {
		struct proto_msg m = { .type = PROTO_ASK, .id = 1 };
		ssize_t len;

		broker = 1;
		sock = argv[2];
		n = bench_count(prog, "N", argv[3]);
		seconds = atof(argv[4]);
		m.u.ask.op = PROTO_OP_CONNECT;
		m.u.ask.l4 = PROTO_L4_TCP;
		m.u.ask.port = (uint16_t)bench_count(prog, "PORT", argv[5]);
		m.u.ask.addr.family = 4;
		inet_pton(AF_INET, argv[6], m.u.ask.addr.bytes);
		len = proto_encode(&m, req, sizeof req);
		if (len < 0)
			bench_die(prog, 0, "cannot encode the ASK");
		reqlen = (size_t)len;
	} else if (argc == 4 && !strcmp(argv[1], "floor")) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int lfd;

		broker = 0;
		n = bench_count(prog, "N", argv[2]);
		seconds = atof(argv[3]);
		if (!mkdtemp(dir))
			bench_die(prog, errno, "mkdtemp");
		snprintf(path, sizeof path, "%s/echo.sock", dir);
		strcpy(sun.sun_path, path);
		lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(lfd, 4096) < 0)
			bench_die(prog, errno, "listen %s", path);
		server = fork();
		if (server < 0)
			bench_die(prog, errno, "fork");
		if (server == 0)
			floor_server(lfd);
		close(lfd);
		sock = path;
		memset(req, 'f', FLOOR_MSG);
		reqlen = FLOOR_MSG;
	} else {
		fprintf(stderr, "usage: clients broker SOCKET N SECONDS PORT ADDR\n"
				"       clients floor N SECONDS\n");
		return 2;
	}
	if (n > MAX_CLIENTS || seconds <= 0)
		bench_die(prog, 0, "N must be at most %d and SECONDS positive", MAX_CLIENTS);
	if (pipe(ready) < 0 || pipe(go) < 0 || pipe(out) < 0)
		bench_die(prog, errno, "pipe");

	for (long i = 0; i < n; i++) {
		int fd = unix_connect(sock);

		kids[i] = fork();
		if (kids[i] < 0)
			bench_die(prog, errno, "fork");
		if (kids[i] == 0) {
			close(ready[0]);
			close(go[1]);
			close(out[0]);
			client(fd, ready[1], go[0], out[1], seconds, req, reqlen, broker);
		}
		close(fd);
	}
	close(ready[1]);
	close(go[0]);
	close(out[1]);
	for (long i = 0; i < n; i++) {
		char c;

		if (read(ready[0], &c, 1) != 1)
			bench_die(prog, 0, "a client did not get ready");
	}
	close(go[1]); /* go */
	for (long i = 0; i < n; i++) {
		struct report r;

		if (read(out[0], &r, sizeof r) != sizeof r)
			bench_die(prog, 0, "a client did not report");
		total += r.count;
		bad += r.bad;
		if (r.start < start)
			start = r.start;
		if (r.end > end)
			end = r.end;
	}
	for (long i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		unlink(path);
		rmdir(dir);
	}
	printf("rate=%.0f requests=%llu bad=%llu clients=%ld\n",
	       (double)total / ((double)(end - start) / 1e9), (unsigned long long)total,
	       (unsigned long long)bad, n);
	return 0;
}
