/* loop.c: the broker's event loop: epoll, with each descriptor registered
 * together with the handler that serves it (as redis's ae does), so the
 * loop calls what a descriptor came with instead of telling descriptors
 * apart by tags. A watch removed while a batch of events is being handled
 * is struck from the rest of the batch, so no handler runs for a descriptor
 * that was closed earlier in the same wake-up. Also the loopback sockets the
 * broker's own servers listen on (loop_socket). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"

#define LOOP_EVENTS 64

struct loop {
	int epfd;
	struct epoll_event ev[LOOP_EVENTS]; /* the batch being handled */
	int n, i;                           /* its size, and the event at hand */
};

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof *l);

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l);
}

void watch_init(struct watch *w, int fd, watch_fn fn, void *ctx)
{
	w->fd = fd;
	w->fn = fn;
	w->ctx = ctx;
	w->added = false;
}

int loop_watch(struct loop *l, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (epoll_ctl(l->epfd, w->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd, &ev) < 0)
		return -1;
	w->added = true;
	return 0;
}

void loop_unwatch(struct loop *l, struct watch *w)
{
	if (!w->added)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->added = false;
	for (int j = l->i + 1; j < l->n; j++)
		if (l->ev[j].data.ptr == w)
			l->ev[j].data.ptr = NULL;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	int n = epoll_wait(l->epfd, l->ev, LOOP_EVENTS, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	l->n = n;
	for (l->i = 0; l->i < n; l->i++) {
		struct watch *w = l->ev[l->i].data.ptr;

		if (w)
			w->fn(w->ctx, l->ev[l->i].events);
	}
	l->n = l->i = 0;
	return 0;
}

int loop_socket(int family, int type, uint16_t *port)
{
	struct sockaddr_storage ss;
	struct proto_addr lo = { .family = family == AF_INET ? 4 : 6 };
	socklen_t len;
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		lo.bytes[0] = 127;
		lo.bytes[3] = 1;
	} else {
		lo.bytes[15] = 1;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	}
	len = proto_addr_to_sockaddr(&lo, *port, family == AF_INET6, &ss);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) < 0) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    proto_addr_from_sockaddr((struct sockaddr *)&ss, ss.ss_family, &lo, port) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}
