/* server.c: the loopback peers the benchmarks connect to, never preloaded.
 *
 *   server accept  PORTFILE   TCP: accepts, and closes when the peer has (the
 *                              benchmarks' peers reset: no TIME_WAIT on either side)
 *   server echo    PORTFILE   TCP: sends back what it reads
 *   server discard PORTFILE   TCP: reads until EOF, then closes
 *   server udp     PORTFILE   UDP: reads datagrams and drops them
 *   server port                prints a TCP port of 127.0.0.1 that is free now
 *   server wait    PORT SECS   waits until 127.0.0.1:PORT accepts a TCP
 *                              connection: exit 0, or 1 after SECS seconds
 *
 * It listens on 127.0.0.1 on a port the kernel picks, writes that port to
 * PORTFILE (complete once the file exists) and serves, one thread and
 * epoll, until SIGTERM or SIGINT. */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

static const char *prog = "server";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Writes port into path through a temporary file and a rename, so that a
 * reader never sees a partial number. */
static void write_port(const char *path, unsigned port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		bench_die(prog, errno, "cannot write %s", path);
}

/* Opens the listening (or UDP) socket on 127.0.0.1:0 and returns it; its
 * port goes into *port. */
static int open_socket(int type, unsigned *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int one = 1, fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		bench_die(prog, errno, "socket");
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		bench_die(prog, errno, "bind 127.0.0.1:0");
	if (type == SOCK_STREAM && listen(fd, 4096) < 0)
		bench_die(prog, errno, "listen");
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		bench_die(prog, errno, "getsockname");
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Polls 127.0.0.1:port every 20 ms until a connect succeeds. Returns 0,
 * or 1 after secs seconds. */
static int wait_port(const char *port, long secs)
{
	struct sockaddr_in sa;
	uint64_t end = bench_now_ns() + (uint64_t)secs * 1000000000u;

	bench_sockaddr(prog, "127.0.0.1", port, &sa);
	do {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

		if (fd < 0)
			bench_die(prog, errno, "socket");
		r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
		close(fd);
		if (r == 0)
			return 0;
		usleep(20000);
	} while (bench_now_ns() < end);
	return 1;
}

int main(int argc, char **argv)
{
	static char buf[256 * 1024];
	struct sigaction sa = { .sa_handler = on_signal };
	struct epoll_event ev, evs[64];
	enum { ACCEPT, ECHO, DISCARD, UDP } mode;
	unsigned port;
	int lfd, ep;

	if (argc == 2 && !strcmp(argv[1], "port")) {
		close(open_socket(SOCK_STREAM, &port));
		printf("%u\n", port);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "wait"))
		return wait_port(argv[2], bench_count(prog, "SECS", argv[3]));
	if (argc != 3) {
		fprintf(stderr, "usage: server accept|echo|discard|udp PORTFILE\n"
				"       server port\n       server wait PORT SECS\n");
		return 2;
	}
	if (!strcmp(argv[1], "accept"))
		mode = ACCEPT;
	else if (!strcmp(argv[1], "echo"))
		mode = ECHO;
	else if (!strcmp(argv[1], "discard"))
		mode = DISCARD;
	else if (!strcmp(argv[1], "udp"))
		mode = UDP;
	else
		bench_die(prog, 0, "unknown mode %s", argv[1]);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = open_socket(mode == UDP ? SOCK_DGRAM : SOCK_STREAM, &port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		bench_die(prog, errno, "epoll");
	write_port(argv[2], port);

	while (!stop) {
		int n = epoll_wait(ep, evs, 64, 500);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			ssize_t r;

			if (fd == lfd && mode == UDP) {
				while (recv(lfd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
					;
				continue;
			}
			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (mode == ACCEPT)
						bench_linger0(c);
					ev.events = EPOLLIN;
					ev.data.fd = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
						close(c);
				}
				continue;
			}
			r = read(fd, buf, sizeof buf);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				close(fd); /* epoll forgets a closed descriptor */
				continue;
			}
			if (mode == ECHO && write(fd, buf, (size_t)r) != r) {
				close(fd);
				continue;
			}
		}
	}
	return 0;
}
