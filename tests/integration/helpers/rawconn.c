/* rawconn.c: connects the way a program that bypasses libc does, for
 * t_isolate.sh. Built with -static by the test: nothing is preloaded into
 * it, and it makes the system call itself.
 *
 *   rawconn ADDR PORT     syscall(SYS_connect) to the IPv4 ADDR:PORT, then
 *                         sends a GET; prints "ok", "reset" (the connection
 *                         was cut before an answer) or "err ERRNO" */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	static const char get[] = "GET /raw HTTP/1.0\r\n\r\n";
	char buf[256];
	int fd;
	ssize_t n;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
		return 2;
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	if (syscall(SYS_connect, fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		printf("err %s\n", strerror(errno));
		return 0;
	}
	if (write(fd, get, sizeof get - 1) < 0 || (n = read(fd, buf, sizeof buf - 1)) <= 0) {
		printf("reset\n");
		return 0;
	}
	buf[n] = 0;
	printf(strstr(buf, " 200 ") ? "ok\n" : "answer %.20s\n", buf);
	return 0;
}
