/* udpsend.c: sends datagrams the way a program that bypasses libc does,
 * for t_isolate_udp.sh. Built with -static by the test: nothing is
 * preloaded into it, and it makes the system calls itself.
 *
 *   udpsend [-l] ADDR PORT COUNT [HOLD]
 *
 * sends COUNT datagrams "udpsend N" from one socket to ADDR:PORT (IPv4 or
 * IPv6; -l: UDP-lite), prints "sent N/COUNT" when all went, else "ERRNO
 * FAILED/COUNT" with the first failure's errno by name; then, with HOLD,
 * keeps its socket until the file HOLD exists (at most 30 s), so that the
 * broker can still find who sent them. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENETUNREACH: return "ENETUNREACH";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	}
	return "E?";
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int proto = IPPROTO_UDP, a = 1, fd, first = 0;
	long count, failed = 0;

	if (argc > 1 && strcmp(argv[1], "-l") == 0)
		proto = IPPROTO_UDPLITE, a++;
	if (argc - a != 3 && argc - a != 4)
		return 2;
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, argv[a], &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)atoi(argv[a + 1]));
		len = sizeof *s4;
	} else if (inet_pton(AF_INET6, argv[a], &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)atoi(argv[a + 1]));
		len = sizeof *s6;
	} else {
		return 2;
	}
	count = atol(argv[a + 2]);
	fd = (int)syscall(SYS_socket, ss.ss_family, SOCK_DGRAM, proto);
	if (fd < 0) {
		printf("socket %s\n", errname(errno));
		return 0;
	}
	for (long i = 0; i < count; i++) {
		char msg[32];
		int n = snprintf(msg, sizeof msg, "udpsend %ld", i);

		if (syscall(SYS_sendto, fd, msg, (size_t)n, 0, (struct sockaddr *)&ss, len) < 0) {
			if (!failed++)
				first = errno;
		}
	}
	if (failed)
		printf("%s %ld/%ld\n", errname(first), failed, count);
	else
		printf("sent %ld/%ld\n", count, count);
	fflush(stdout);
	for (int i = 0; argc - a == 4 && i < 3000 && access(argv[a + 3], F_OK) < 0; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	close(fd);
	return 0;
}
