/* shimsafe.c: programs that ask the shim from awkward places; run under the
 * shim by t_shimsafe.sh. Addresses are IPv4 loopback ports. Prints counts
 * and outcomes, one "KEY VALUE..." line each, for the test to compare with
 * what the servers received and the audit log.
 *
 *   shimsafe signal TA UA TB UB UD N
 *       the main thread connects to TCP port TA and sends datagrams to UDP
 *       ports UA and UD (denied) in a loop, while a SIGALRM handler (1 ms
 *       interval timer) connects to TB and sends to UB, N times; the loop
 *       ends when the handler has run N times
 *   shimsafe clone PORT KIDS EACH FILES
 *       KIDS children made with clone(CLONE_VM|SIGCHLD) (and CLONE_FILES
 *       when FILES is 1), own stacks, each connect EACH times to PORT while
 *       the parent connects EACH times too
 *   shimsafe nofd PORT
 *       connects once, fills the descriptor table (RLIMIT_NOFILE lowered to
 *       64), then connects from the main thread (its broker connection is
 *       open), from a new thread (it needs one), and from a second new
 *       thread while the first is alive
 *   shimsafe connect PORT
 *       one connect: "connect ok" or "connect err ERRNO" */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in loop4(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static const char *ename(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "E?";
}

/* A TCP connect to port, closed at once. Returns 0 or the errno. Only
 * async-signal-safe calls. */
static int tcp_once(unsigned port)
{
	struct sockaddr_in a = loop4(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		err = errno;
	close(fd);
	return err;
}

/* One datagram "TAG" to port on fd. Returns 0 or the errno. Only
 * async-signal-safe calls. */
static int udp_once(int fd, unsigned port, const char *tag)
{
	struct sockaddr_in a = loop4(port);

	return sendto(fd, tag, strlen(tag), 0, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
}

/* ---- signal: the handler asks while the interrupted code is asking ---- */

static unsigned sig_tb, sig_ub;
static int sig_udp = -1, sig_max;
static volatile sig_atomic_t sig_runs, sig_tcp_ok, sig_udp_ok, sig_first_err;

static void on_alarm(int signo)
{
	int saved = errno, e;

	(void)signo;
	if (sig_runs >= sig_max)
		return;
	sig_runs++;
	e = tcp_once(sig_tb);
	if (e == 0)
		sig_tcp_ok++;
	else if (!sig_first_err)
		sig_first_err = e;
	e = udp_once(sig_udp, sig_ub, "handler");
	if (e == 0)
		sig_udp_ok++;
	else if (!sig_first_err)
		sig_first_err = e;
	errno = saved;
}

static int run_signal(char **av)
{
	unsigned ta = (unsigned)atoi(av[0]), ua = (unsigned)atoi(av[1]), ud = (unsigned)atoi(av[4]);
	struct itimerval it = { .it_interval = { 0, 1000 }, .it_value = { 0, 1000 } };
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	long tcp_ok = 0, tcp_fail = 0, udp_ok = 0, udp_fail = 0, d_denied = 0, d_sent = 0;
	int first_err = 0, udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), e;

	sig_tb = (unsigned)atoi(av[2]);
	sig_ub = (unsigned)atoi(av[3]);
	sig_max = atoi(av[5]);
	sig_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	while (sig_runs < sig_max) {
		e = tcp_once(ta);
		e ? tcp_fail++ : tcp_ok++;
		if (e && !first_err)
			first_err = e;
		e = udp_once(udp, ua, "main");
		e ? udp_fail++ : udp_ok++;
		if (e && !first_err)
			first_err = e;
		if (udp_once(udp, ud, "denied") == 0)
			d_sent++;
		else
			d_denied++;
	}
	memset(&it, 0, sizeof it);
	setitimer(ITIMER_REAL, &it, NULL);
	printf("main tcp %ld fail %ld\n", tcp_ok, tcp_fail);
	printf("main udp %ld fail %ld\n", udp_ok, udp_fail);
	printf("main denied-udp sent %ld denied %ld\n", d_sent, d_denied);
	printf("main first-err %s\n", ename(first_err));
	printf("handler runs %d tcp %d udp %d\n", (int)sig_runs, (int)sig_tcp_ok, (int)sig_udp_ok);
	printf("handler first-err %s\n", ename(sig_first_err));
	return 0;
}

/* ---- clone: processes that share memory without being threads ---- */

#define KIDS_MAX 16
#define STACK_SIZE (256 * 1024)

static unsigned clone_port;
static int clone_each;
static int kid_ok[KIDS_MAX], kid_err[KIDS_MAX];

static int kid_main(void *arg)
{
	int i = (int)(long)arg;

	for (int n = 0; n < clone_each; n++) {
		int e = tcp_once(clone_port);
		if (e == 0)
			__atomic_add_fetch(&kid_ok[i], 1, __ATOMIC_RELAXED);
		else if (!kid_err[i])
			kid_err[i] = e;
	}
	return 0;
}

static int run_clone(char **av)
{
	int kids = atoi(av[1]), ok = 0, first_err = 0, flags = CLONE_VM | SIGCHLD;
	pid_t pids[KIDS_MAX];

	clone_port = (unsigned)atoi(av[0]);
	clone_each = atoi(av[2]);
	if (atoi(av[3]) == 1)
		flags |= CLONE_FILES;
	if (kids < 1 || kids > KIDS_MAX)
		return 2;
	for (int i = 0; i < kids; i++) {
		char *stack = malloc(STACK_SIZE);
		pids[i] = clone(kid_main, stack + STACK_SIZE, flags, (void *)(long)i);
		if (pids[i] < 0) {
			perror("clone");
			return 1;
		}
	}
	for (int n = 0; n < clone_each; n++) {
		int e = tcp_once(clone_port);
		if (e == 0)
			ok++;
		else if (!first_err)
			first_err = e;
	}
	for (int i = 0; i < kids; i++)
		waitpid(pids[i], NULL, 0);
	printf("parent pid %d ok %d first-err %s\n", (int)getpid(), ok, ename(first_err));
	for (int i = 0; i < kids; i++)
		printf("kid pid %d ok %d first-err %s\n", (int)pids[i], kid_ok[i], ename(kid_err[i]));
	return 0;
}

/* ---- nofd: no descriptor left ---- */

static int nofd_sock[2];
static unsigned nofd_port;
static sem_t nofd_connected, nofd_done;

/* Connects socket nofd_sock[which] (made before the table filled up). */
static int connect_made(int which)
{
	struct sockaddr_in a = loop4(nofd_port);

	return connect(nofd_sock[which], (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
}

static void *nofd_first(void *out)
{
	*(int *)out = connect_made(0);
	sem_post(&nofd_connected);
	sem_wait(&nofd_done); /* alive, its broker connection open, until told */
	return NULL;
}

static void *nofd_second(void *out)
{
	*(int *)out = connect_made(1);
	return NULL;
}

static int run_nofd(char **av)
{
	struct rlimit rl = { .rlim_cur = 64, .rlim_max = 64 };
	pthread_t t1, t2;
	int e0, e1, r1 = -1, r2 = -1, fd, filled = 0, main_sock;
	struct sockaddr_in a;

	nofd_port = (unsigned)atoi(av[0]);
	a = loop4(nofd_port);
	sem_init(&nofd_connected, 0, 0);
	sem_init(&nofd_done, 0, 0);
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("setrlimit");
		return 1;
	}
	e0 = tcp_once(nofd_port); /* opens the main thread's broker connection */
	printf("before ok %s\n", ename(e0));
	main_sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	nofd_sock[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	nofd_sock[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		filled++;
	if (errno != EMFILE) {
		perror("open");
		return 1;
	}
	printf("filled %d table-full %s\n", filled,
	       socket(AF_INET, SOCK_STREAM, 0) < 0 ? ename(errno) : "no");
	e1 = connect(main_sock, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
	printf("main %s\n", e1 ? ename(e1) : "ok");
	pthread_create(&t1, NULL, nofd_first, &r1);
	sem_wait(&nofd_connected);
	printf("thread1 %s\n", r1 ? ename(r1) : "ok");
	pthread_create(&t2, NULL, nofd_second, &r2);
	pthread_join(t2, NULL);
	printf("thread2 %s\n", r2 ? ename(r2) : "ok");
	sem_post(&nofd_done);
	pthread_join(t1, NULL);
	return 0;
}

int main(int ac, char **av)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (ac == 8 && strcmp(av[1], "signal") == 0)
		return run_signal(av + 2);
	if (ac == 6 && strcmp(av[1], "clone") == 0)
		return run_clone(av + 2);
	if (ac == 3 && strcmp(av[1], "nofd") == 0)
		return run_nofd(av + 2);
	if (ac == 3 && strcmp(av[1], "connect") == 0) {
		int e = tcp_once((unsigned)atoi(av[2]));
		printf("connect %s%s\n", e ? "err " : "ok", e ? ename(e) : "");
		return 0;
	}
	fprintf(stderr, "usage: shimsafe signal|clone|nofd|connect ARGS (see the file)\n");
	return 2;
}
