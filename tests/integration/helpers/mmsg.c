/* mmsg.c: sends datagrams with sendmmsg(2), for the shim's sendmmsg hook
 * (python has no sendmmsg). Built by t_sendmmsg.sh into its temp dir.
 *
 *   mmsg HOST PORT N TAG            one call, N messages to HOST:PORT
 *   mmsg2 HOSTA PA HOSTB PB TAG     one call, 2 messages: A then B
 *   mmsgc HOST PORT N TAG           connect the socket, then one call with
 *                                   N messages without a destination
 * Prints "ret R errno NAME" (NAME "-" when R >= 0). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXN 64

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case ENOTCONN: return "ENOTCONN";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	default: return "E?";
	}
}

static struct sockaddr_in dest(const char *host, const char *port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(port));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "mmsg: bad address %s\n", host);
		exit(2);
	}
	return sin;
}

int main(int argc, char **argv)
{
	struct mmsghdr m[MAXN];
	struct iovec iov[MAXN];
	char buf[MAXN][64];
	struct sockaddr_in to[MAXN];
	int n, i, fd, r, connected = 0;

	if (argc < 6 || (strcmp(argv[1], "mmsg2") == 0 && argc < 7)) {
		fprintf(stderr, "usage: see mmsg.c\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (strcmp(argv[1], "mmsg2") == 0) {
		n = 2;
		to[0] = dest(argv[2], argv[3]);
		to[1] = dest(argv[4], argv[5]);
		argv[4] = argv[6];
	} else {
		n = atoi(argv[4]);
		if (n < 1 || n > MAXN)
			return 2;
		for (i = 0; i < n; i++)
			to[i] = dest(argv[2], argv[3]);
		if (strcmp(argv[1], "mmsgc") == 0) {
			if (connect(fd, (struct sockaddr *)&to[0], sizeof to[0]) < 0) {
				printf("connect errno %s\n", ename(errno));
				return 0;
			}
			connected = 1;
		}
		argv[4] = argv[5];
	}
	memset(m, 0, sizeof m);
	for (i = 0; i < n; i++) {
		snprintf(buf[i], sizeof buf[i], "%s %d", argv[4], i);
		iov[i].iov_base = buf[i];
		iov[i].iov_len = strlen(buf[i]);
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
		if (!connected) {
			m[i].msg_hdr.msg_name = &to[i];
			m[i].msg_hdr.msg_namelen = sizeof to[i];
		}
	}
	r = sendmmsg(fd, m, (unsigned)n, 0);
	printf("ret %d errno %s\n", r, r < 0 ? ename(errno) : "-");
	close(fd);
	return 0;
}
