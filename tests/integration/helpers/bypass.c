/* bypass.c: attempts a program might make to get around the shim, each in
 * the shape a real program would use; run under the shim by t_bypass.sh.
 * Prints one line per attempt: "NAME ok" or "NAME err ERRNO" ("gai CODE"
 * for a lookup), and "pid NAME PID" for the children it made, so the test
 * can find their events in the audit log.
 *
 *   bypass addr ADDR PORT           connect to a numeric sockaddr (v4 or v6,
 *                                   with %scope): inet_pton, no lookup
 *   bypass name NAME PORT           getaddrinfo(NAME) (raw bytes: UTF-8 too),
 *                                   then connect the first answer
 *   bypass fastopen ADDR PORT       sendto(MSG_FASTOPEN) on a TCP socket
 *   bypass udpsend ADDR PORT        connect a UDP socket, then send()
 *   bypass udpswitch ADDR PORT PORT2
 *                                   connect a UDP socket to PORT, then
 *                                   sendto() PORT2 on it
 *   bypass msgsend ADDR PORT        sendmsg() of a datagram to ADDR:PORT, and
 *                                   sendmsg(MSG_FASTOPEN) on a TCP socket
 *   bypass v6short ADDR6 PORT       TCP connect and UDP sendto with RFC
 *                                   2133's 24-byte sockaddr_in6
 *   bypass unspec ADDR PORT         UDP sendto and sendmsg to an IPv4 address
 *                                   whose family says AF_UNSPEC
 *   bypass flip ADDR PORT PORT2 N   N sendto()s of one sockaddr (more until
 *                                   both ports were read) while another
 *                                   thread flips its port between the two
 *   bypass fork ADDR PORT           the connect from a fork()ed child
 *   bypass vfork ADDR PORT          the connect from a vfork()ed child
 *   bypass spawn PROG ADDR PORT     posix_spawn(PROG addr ADDR PORT)
 *   bypass race ADDR PORT ADDR2 PORT2 FORKS
 *                                   4 threads connect to both in a loop
 *                                   while the main thread forks FORKS
 *                                   children, each connecting once
 *   bypass closeall ADDR PORT       close_range(3, ~0) then connect
 *   bypass noenv PROG ADDR PORT     exec PROG without LD_PRELOAD: escapes
 *   bypass swap KIND ADDR PORT N    N connect()s (KIND tcp) or sendto()s (KIND
 *                                   udp) on one descriptor while another
 *                                   thread dup2()s other objects onto it: a
 *                                   pipe and a fresh TCP socket (tcp), a UDP
 *                                   and a TCP socket (udp: the TCP connect of
 *                                   a port judged as UDP), a TCP and a UDP
 *                                   socket (send: a datagram judged as a
 *                                   stream send); prints what went through
 *   bypass reconnect NAME PORT ADDR2 PORT2
 *                                   connect to NAME (a rewritten name), then
 *                                   disconnect (AF_UNSPEC) and connect the
 *                                   same socket to ADDR2:PORT2 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Fills ss from "ADDR" or "ADDR%IFNAME". Returns its length, 0 when bad. */
static socklen_t sockaddr_of(const char *text, unsigned port, struct sockaddr_storage *ss)
{
	char a[128], *pct;

	memset(ss, 0, sizeof *ss);
	snprintf(a, sizeof a, "%s", text);
	pct = strchr(a, '%');
	if (pct)
		*pct++ = 0;
	if (strchr(a, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_scope_id = pct ? if_nametoindex(pct) : 0;
		return inet_pton(AF_INET6, a, &s6->sin6_addr) == 1 ? sizeof *s6 : 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, a, &s4->sin_addr) == 1 ? sizeof *s4 : 0;
}

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENETUNREACH: return "ENETUNREACH";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case EINVAL: return "EINVAL";
	case ENOTCONN: return "ENOTCONN";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	}
	return "E?";
}

/* Connects to ADDR:PORT; prints and returns 0 ok, else the errno. */
static int attempt(const char *label, const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(addr, port, &ss);
	int fd, err = 0;

	if (!len) {
		printf("%s bad address\n", label);
		return EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		err = errno;
	close(fd);
	if (err)
		printf("%s err %s\n", label, ename(err));
	else
		printf("%s ok\n", label);
	fflush(stdout);
	return err;
}

static void by_name(const char *name, const char *port)
{
	struct addrinfo h = { .ai_socktype = SOCK_STREAM }, *res;
	int rc = getaddrinfo(name, port, &h, &res), fd, err = 0;

	if (rc != 0) {
		printf("name gai %s\n", rc == EAI_NONAME ? "EAI_NONAME" : rc == EAI_AGAIN ? "EAI_AGAIN"
							: "other");
		return;
	}
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		err = errno;
	freeaddrinfo(res);
	printf(err ? "name err %s\n" : "name ok\n", ename(err));
}

static void fastopen(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(addr, port, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);

	if (sendto(fd, "GET / HTTP/1.0\r\n\r\n", 18, MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0)
		printf("fastopen err %s\n", ename(errno));
	else
		printf("fastopen ok\n");
}

static void udpsend(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(addr, port, &ss);
	int fd = socket(ss.ss_family, SOCK_DGRAM, 0);

	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		printf("udpconnect err %s\n", ename(errno));
	else
		printf("udpconnect ok\n");
	if (send(fd, "bypass", 6, 0) < 0)
		printf("udpsend err %s\n", ename(errno));
	else
		printf("udpsend ok\n");
}

/* Prints "LABEL ok" when rc >= 0, else "LABEL err ERRNO". */
static void report(const char *label, long rc)
{
	int err = errno;

	if (rc < 0)
		printf("%s err %s\n", label, ename(err));
	else
		printf("%s ok\n", label);
}

static void udpswitch(const char *addr, unsigned port, unsigned port2)
{
	struct sockaddr_storage ss, ss2;
	socklen_t len = sockaddr_of(addr, port, &ss), len2 = sockaddr_of(addr, port2, &ss2);
	int fd = socket(ss.ss_family, SOCK_DGRAM, 0);

	report("udpconnect", connect(fd, (struct sockaddr *)&ss, len));
	report("udpswitch", sendto(fd, "bypass", 6, 0, (struct sockaddr *)&ss2, len2));
}

/* sendmsg of one byte to (sa, len) on a new socket of type; prints LABEL ok|err. */
static void msg_to(const char *label, int type, int flags, struct sockaddr_storage *ss,
		   socklen_t len)
{
	struct iovec iov = { .iov_base = "m", .iov_len = 1 };
	struct msghdr mh = { .msg_name = ss, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1 };
	int fd = socket(ss->ss_family == AF_UNSPEC ? AF_INET : ss->ss_family, type, 0);

	report(label, sendmsg(fd, &mh, flags));
	close(fd);
}

static void msgsend(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(addr, port, &ss);

	msg_to("msgsend", SOCK_DGRAM, 0, &ss, len);
	msg_to("msgtfo", SOCK_STREAM, MSG_FASTOPEN, &ss, len);
}

static void v6short(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	int fd;

	sockaddr_of(addr, port, &ss);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	report("v6short-tcp", connect(fd, (struct sockaddr *)&ss, 24));
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	report("v6short-udp", sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, 24));
}

static void unspec(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(addr, port, &ss);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ss.ss_family = AF_UNSPEC;
	report("unspec-sendto", sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len));
	msg_to("unspec-sendmsg", SOCK_DGRAM, 0, &ss, len);
}

static struct sockaddr_in flip_sa;
static volatile int flip_stop;
static uint16_t flip_ports[2];

static void *flipper(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !flip_stop; i++)
		flip_sa.sin_port = flip_ports[i & 1];
	return NULL;
}

static void flip(const char *addr, unsigned port, unsigned port2, int n)
{
	pthread_t t;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sent = 0, denied = 0;

	flip_sa.sin_family = AF_INET;
	inet_pton(AF_INET, addr, &flip_sa.sin_addr);
	flip_ports[0] = htons((uint16_t)port);
	flip_ports[1] = htons((uint16_t)port2);
	flip_sa.sin_port = flip_ports[0];
	pthread_create(&t, NULL, flipper, NULL);
	/* n sends, and more (up to 100 n) until both ports have been seen */
	for (int i = 0; i < n || ((!sent || !denied) && i < 100 * n); i++) {
		if (sendto(fd, "f", 1, 0, (struct sockaddr *)&flip_sa, sizeof flip_sa) < 0)
			denied++;
		else
			sent++;
	}
	flip_stop = 1;
	pthread_join(t, NULL);
	printf("flip sent=%d denied=%d\n", sent, denied);
}

/* ---- swap: another object under the descriptor during the call */

static volatile int swap_stop;
static int swap_fd;       /* the descriptor both threads use */
static int swap_types[2]; /* what the flipper puts there, in turn; 0: a pipe */

static void *swapper(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !swap_stop; i++) {
		int type = swap_types[i & 1], p[2], o;

		if (type) {
			o = socket(AF_INET, type, 0);
		} else {
			if (pipe(p) < 0)
				continue;
			close(p[1]);
			o = p[0];
		}
		if (o < 0)
			continue;
		dup2(o, swap_fd);
		close(o);
	}
	return NULL;
}

/* Accepts on l until told to stop, counting what it accepted. */
static volatile int accepted;

static void *acceptor(void *arg)
{
	int l = *(int *)arg;

	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			return NULL;
		accepted++;
		close(c);
	}
}

static void swap(const char *kind, const char *addr, unsigned port, int n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int went = 0, l = -1;
	pthread_t t, acc;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (strcmp(kind, "udp") == 0) {
		/* a TCP listener on the number of the port UDP may reach */
		int one = 1;
		l = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 64) < 0) {
			printf("swap cannot listen on %u: %s\n", port, strerror(errno));
			return;
		}
		pthread_create(&acc, NULL, acceptor, &l);
	}
	swap_types[0] = strcmp(kind, "tcp") == 0 ? 0 : SOCK_DGRAM;
	swap_types[1] = SOCK_STREAM;
	swap_fd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_create(&t, NULL, swapper, NULL);
	for (int i = 0; i < n; i++) {
		if (strcmp(kind, "send") == 0)
			went += sendto(swap_fd, "s", 1, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa) == 1;
		else
			went += connect(swap_fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	}
	swap_stop = 1;
	pthread_join(t, NULL);
	if (l >= 0) {
		usleep(200 * 1000); /* connections the kernel completed reach accept */
		shutdown(l, SHUT_RDWR);
		pthread_join(acc, NULL);
		printf("swap %s returned_ok=%d tcp_accepted=%d\n", kind, went, accepted);
		return;
	}
	printf("swap %s returned_ok=%d\n", kind, went);
}

/* ---- reconnect: a rewritten socket disconnected and connected again */

static void reconnect(const char *name, const char *port, const char *addr2, unsigned port2)
{
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
	struct sockaddr_storage ss, unspec = { .ss_family = AF_UNSPEC };
	socklen_t len = sockaddr_of(addr2, port2, &ss);
	int fd, rc;

	if (getaddrinfo(name, port, &h, &res) != 0) {
		printf("reconnect gai failed\n");
		return;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	report("reconnect-first", connect(fd, res->ai_addr, res->ai_addrlen));
	freeaddrinfo(res);
	report("reconnect-unspec", connect(fd, (struct sockaddr *)&unspec, sizeof unspec));
	rc = connect(fd, (struct sockaddr *)&ss, len);
	report("reconnect-again", rc);
	if (rc == 0 && send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0) > 0)
		printf("reconnect-again sent\n");
	close(fd);
}

static int reap(pid_t pid)
{
	int st;

	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct racer {
	const char *a, *b;
	unsigned pa, pb;
	int ok_a, denied_b, other;
};

static void *race_thread(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < 40; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sockaddr_of(i % 2 ? r->b : r->a, i % 2 ? r->pb : r->pa, &ss);
		int fd = socket(ss.ss_family, SOCK_STREAM, 0), rc = connect(fd, (struct sockaddr *)&ss, len);

		if (i % 2 == 0 && rc == 0)
			r->ok_a++;
		else if (i % 2 == 1 && rc < 0 && errno == EPERM)
			r->denied_b++;
		else
			r->other++;
		close(fd);
	}
	return NULL;
}

static void race(char **argv)
{
	struct racer r[4];
	pthread_t t[4];
	int forks = atoi(argv[6]), children_denied = 0, ok = 0, denied = 0, other = 0;

	for (int i = 0; i < 4; i++) {
		r[i] = (struct racer){ .a = argv[2], .pa = (unsigned)atoi(argv[3]), .b = argv[4],
				       .pb = (unsigned)atoi(argv[5]) };
		pthread_create(&t[i], NULL, race_thread, &r[i]);
	}
	for (int i = 0; i < forks; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct sockaddr_storage ss;
			socklen_t len = sockaddr_of(argv[4], (unsigned)atoi(argv[5]), &ss);
			int fd = socket(ss.ss_family, SOCK_STREAM, 0);
			_exit(connect(fd, (struct sockaddr *)&ss, len) < 0 && errno == EPERM ? 0 : 1);
		}
		children_denied += reap(pid) == 0;
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += r[i].ok_a;
		denied += r[i].denied_b;
		other += r[i].other;
	}
	printf("race threads ok=%d denied=%d other=%d children_denied=%d/%d\n", ok, denied, other,
	       children_denied, forks);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		return 2;
	if (strcmp(argv[1], "addr") == 0 && argc == 4) {
		attempt("addr", argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "name") == 0 && argc == 4) {
		by_name(argv[2], argv[3]);
		return 0;
	}
	if (strcmp(argv[1], "fastopen") == 0 && argc == 4) {
		fastopen(argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "udpsend") == 0 && argc == 4) {
		udpsend(argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "udpswitch") == 0 && argc == 5) {
		udpswitch(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
		return 0;
	}
	if (strcmp(argv[1], "msgsend") == 0 && argc == 4) {
		msgsend(argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "v6short") == 0 && argc == 4) {
		v6short(argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "unspec") == 0 && argc == 4) {
		unspec(argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "flip") == 0 && argc == 6) {
		flip(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), atoi(argv[5]));
		return 0;
	}
	if (strcmp(argv[1], "fork") == 0 && argc == 4) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(attempt("fork", argv[2], (unsigned)atoi(argv[3])) == EPERM ? 0 : 1);
		printf("pid fork %ld\n", (long)pid);
		printf("fork child %s\n", reap(pid) == 0 ? "denied" : "NOT denied");
		return 0;
	}
	if (strcmp(argv[1], "vfork") == 0 && argc == 4) {
		/* the child shares our memory until it exits: the shim's per-thread
		 * connection must not be taken for the child's own */
		static volatile int child_err;
		pid_t pid = vfork();
		if (pid == 0) {
			struct sockaddr_storage ss;
			socklen_t len = sockaddr_of(argv[2], (unsigned)atoi(argv[3]), &ss);
			int fd = socket(ss.ss_family, SOCK_STREAM, 0);
			child_err = connect(fd, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
			_exit(0);
		}
		reap(pid);
		printf("pid vfork %ld\n", (long)pid);
		printf("vfork child %s\n", child_err ? ename(child_err) : "ok");
		attempt("vfork-parent-after", argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "spawn") == 0 && argc == 5) {
		char *args[] = { argv[2], "addr", argv[3], argv[4], NULL };
		pid_t pid;
		if (posix_spawn(&pid, argv[2], NULL, NULL, args, environ) != 0) {
			printf("spawn failed\n");
			return 1;
		}
		printf("pid spawn %ld\n", (long)pid);
		reap(pid);
		return 0;
	}
	if (strcmp(argv[1], "race") == 0 && argc == 7) {
		race(argv);
		return 0;
	}
	if (strcmp(argv[1], "closeall") == 0 && argc == 4) {
		attempt("before", argv[2], (unsigned)atoi(argv[3]));
		syscall(SYS_close_range, 3u, ~0u, 0u);
		attempt("closeall", argv[2], (unsigned)atoi(argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "swap") == 0 && argc == 6) {
		swap(argv[2], argv[3], (unsigned)atoi(argv[4]), atoi(argv[5]));
		return 0;
	}
	if (strcmp(argv[1], "reconnect") == 0 && argc == 6) {
		reconnect(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]));
		return 0;
	}
	if (strcmp(argv[1], "noenv") == 0 && argc == 5) {
		char *args[] = { argv[2], "addr", argv[3], argv[4], NULL };
		char *env[] = { "PATH=/usr/bin:/bin", NULL };
		execve(argv[2], args, env);
		printf("exec failed\n");
		return 1;
	}
	return 2;
}
