/* stub.c: the lookup stub, for programs that are not isolated. A program
 * with a resolver of its own (Bun, node's dns.resolve, c-ares, Go's) sends
 * its DNS queries to a name server at port 53; the shim sends each such
 * datagram here instead (the SEND verdict's port says where), and the
 * server answers it as it answers a lookup through getaddrinfo: the name is
 * judged, and the answer holds the addresses the program may have. This
 * file owns the two UDP sockets (127.0.0.1 and ::1, one port) and finds the
 * process that asked, by the source socket's inode, as the isolation
 * capture does. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"

#define STUB_READS 64 /* queries taken per wake-up */

struct stub {
	struct loop *loop;
	struct watch w[2]; /* 127.0.0.1, ::1 (fd -1: none) */
	struct stub_sink sink;
	uint16_t port;
	dev_t ns_dev; /* the broker's network namespace: the askers' */
	ino_t ns_ino;
	unsigned long queries;
};

/* Reads what waits on side i and hands each query to the sink. */
static void stub_read(struct stub *st, int i)
{
	for (int k = 0; k < STUB_READS; k++) {
		struct capture_query q = { .fd = st->w[i].fd };
		ssize_t n;

		q.fromlen = sizeof q.from;
		n = recvfrom(q.fd, q.buf, sizeof q.buf, MSG_DONTWAIT, (struct sockaddr *)&q.from,
			     &q.fromlen);
		if (n < 0)
			return;
		st->queries++;
		q.len = (size_t)n;
		q.pid = capture_owner(getpid(), st->ns_dev, st->ns_ino, (struct sockaddr *)&q.from,
				      false, q.exe, sizeof q.exe);
		st->sink.query(st->sink.ctx, &q);
	}
}

static void stub_event4(void *ctx, uint32_t events)
{
	(void)events;
	stub_read(ctx, 0);
}

static void stub_event6(void *ctx, uint32_t events)
{
	(void)events;
	stub_read(ctx, 1);
}

struct stub *stub_new(struct loop *l, const struct stub_sink *sink)
{
	struct stub *st = calloc(1, sizeof *st);
	uint16_t port = 0;
	int fd4;

	if (!st)
		return NULL;
	st->loop = l;
	st->sink = *sink;
	watch_init(&st->w[0], -1, stub_event4, st);
	watch_init(&st->w[1], -1, stub_event6, st);
	fd4 = loop_socket(AF_INET, SOCK_DGRAM, &port);
	if (fd4 < 0 || capture_netns(getpid(), &st->ns_dev, &st->ns_ino) < 0) {
		if (fd4 >= 0)
			close(fd4);
		free(st);
		return NULL;
	}
	st->port = port;
	st->w[0].fd = fd4;
	/* none where IPv6 is off, or the port is taken there */
	st->w[1].fd = loop_socket(AF_INET6, SOCK_DGRAM, &port);
	for (int i = 0; i < 2; i++)
		if (st->w[i].fd >= 0 && loop_watch(l, &st->w[i], EPOLLIN) < 0) {
			stub_free(st);
			return NULL;
		}
	return st;
}

void stub_free(struct stub *st)
{
	if (!st)
		return;
	for (int i = 0; i < 2; i++) {
		if (st->w[i].fd < 0)
			continue;
		loop_unwatch(st->loop, &st->w[i]);
		close(st->w[i].fd);
	}
	free(st);
}

int stub_addrs(const struct stub *st, struct proto_addr addrs[2], uint16_t *port)
{
	int n = 0;

	if (!st)
		return 0;
	memset(addrs, 0, 2 * sizeof *addrs);
	addrs[n].family = 4;
	addrs[n].bytes[0] = 127;
	addrs[n++].bytes[3] = 1;
	if (st->w[1].fd >= 0) {
		addrs[n].family = 6;
		addrs[n++].bytes[15] = 1;
	}
	*port = st->port;
	return n;
}

unsigned long stub_queries(const struct stub *st)
{
	return st ? st->queries : 0;
}
