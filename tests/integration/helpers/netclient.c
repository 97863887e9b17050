/* netclient.c: a small libc client for tests that need a program of their
 * own build (t_multiarch compiles it with -m32 and -mx32). Runs each
 * operation in turn and prints one line for each:
 *
 *   get HOST PORT PATH    connect (HOST numeric), send "GET PATH HTTP/1.0",
 *                         print the body's first line, or
 *                         "connect HOST:PORT errno NAME"
 *   resolve NAME PORT     getaddrinfo: "resolve NAME ok" or
 *                         "resolve NAME EAI_NONAME" (or the code's number)
 *
 * Exits 0 when every operation succeeded, 1 otherwise. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENETUNREACH: return "ENETUNREACH";
	default: return "E?";
	}
}

/* One GET; returns 0 when a body line was printed. */
static int get(const char *host, const char *port, const char *path)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai;
	char buf[4096], *body, *nl;
	size_t len = 0;
	ssize_t n;
	int fd, rc;

	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		printf("get %s:%s getaddrinfo %d\n", host, port, rc);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		printf("connect %s:%s errno %s\n", host, port, ename(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	freeaddrinfo(ai);
	n = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	if (write(fd, buf, (size_t)n) != n) {
		printf("write %s:%s errno %s\n", host, port, ename(errno));
		close(fd);
		return -1;
	}
	while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	body = strstr(buf, "\r\n\r\n");
	if (!body) {
		printf("get %s:%s no answer\n", host, port);
		return -1;
	}
	body += 4;
	if ((nl = strchr(body, '\n')))
		*nl = 0;
	printf("%s\n", body);
	return 0;
}

/* One lookup; returns 0 when it succeeded. */
static int resolve(const char *name, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	int rc = getaddrinfo(name, port, &hints, &ai);

	if (rc == 0) {
		freeaddrinfo(ai);
		printf("resolve %s ok\n", name);
		return 0;
	}
	if (rc == EAI_NONAME)
		printf("resolve %s EAI_NONAME\n", name);
	else
		printf("resolve %s %d\n", name, rc);
	return -1;
}

int main(int argc, char **argv)
{
	int i = 1, bad = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (i < argc) {
		if (strcmp(argv[i], "get") == 0 && i + 3 < argc) {
			bad |= get(argv[i + 1], argv[i + 2], argv[i + 3]) < 0;
			i += 4;
		} else if (strcmp(argv[i], "resolve") == 0 && i + 2 < argc) {
			bad |= resolve(argv[i + 1], argv[i + 2]) < 0;
			i += 3;
		} else {
			fprintf(stderr, "usage: netclient {get HOST PORT PATH | resolve NAME PORT}...\n");
			return 2;
		}
	}
	return bad;
}
