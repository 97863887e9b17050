/* sandbox.c: `egress-broker sandbox`, the first process of the namespaces
 * `egress-run --isolate` makes (network, mount, PID, and user when not
 * root): PID 1 there. It brings loopback up with the default routes through
 * it, makes the capture sockets (TCP listeners that every outbound
 * connection is redirected to, UDP sockets for DNS, a sock_diag socket that
 * names the socket behind a connection) and the NFLOG socket (nflog.c) and
 * hands them to the broker outside, installs the nftables rules that
 * redirect, and drop and log everything else, points /etc/resolv.conf at
 * the DNS stub, puts the broker's files out of reach, drops the
 * capabilities that could undo any of it, and runs CMD as its child:
 * signals are passed on, orphans reaped, and everything ends (PID 1 exits,
 * the kernel kills the namespace's processes) when CMD ends or the broker
 * goes away. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"

#define SANDBOX_PROTECT_MAX 16
#define SANDBOX_COVER_MAX 8
#define SANDBOX_SHOWN_MAX 32    /* sockets under covered directories the policy names */
#define SANDBOX_SCAN_DEPTH 3    /* levels looked into below a --hide-sockets directory */
#define SANDBOX_SCAN_MAX 20000  /* entries looked at under one of them */

/* Capabilities CMD keeps (root inside may still change user, own files,
 * bind low ports, signal its own processes); every other one leaves the
 * bounding set, above all CAP_SYS_ADMIN (mounts), CAP_NET_ADMIN (the
 * capture rules), CAP_NET_RAW (raw frames) and CAP_SYS_PTRACE. */
static const int sandbox_kept[] = {
	CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL,
	CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_AUDIT_WRITE,
};

struct sandbox {
	const char *socket;                    /* the broker's */
	const char *resolv;                    /* file to show as /etc/resolv.conf */
	const char *cover[SANDBOX_COVER_MAX];  /* directories covered (an empty tmpfs) */
	int ncover;
	const char *protect[SANDBOX_PROTECT_MAX]; /* files made read-only */
	int nprotect;
	const char *hide[SANDBOX_COVER_MAX];   /* directories whose UNIX sockets are hidden */
	int nhide;
	struct policy *policy;                 /* its [egress] unix names the sockets left */
	char **cmd;
};

/* A socket the policy names under a covered directory, held open while
 * the directory is covered, then shown again. */
struct shown {
	int fd;
	char path[PATH_MAX];
};

/* Prints "egress-broker sandbox: MSG: strerror(errno)". Returns -1. */
static int sandbox_fail(const char *what)
{
	fprintf(stderr, "egress-broker sandbox: %s: %s\n", what, strerror(errno));
	return -1;
}

/* Runs argv (found on PATH, with /usr/sbin and /sbin) with text on its
 * standard input when text is not NULL; returns 0 when it exits 0. */
static int sandbox_run(char *const argv[], const char *text)
{
	int in[2] = { -1, -1 }, st;
	pid_t pid;

	if (text && pipe2(in, O_CLOEXEC) < 0)
		return sandbox_fail("pipe");
	pid = fork();
	if (pid < 0)
		return sandbox_fail("fork");
	if (pid == 0) {
		if (text && dup2(in[0], 0) < 0)
			_exit(127);
		setenv("PATH", "/usr/sbin:/sbin:/usr/bin:/bin", 1);
		execvp(argv[0], argv);
		fprintf(stderr, "egress-broker sandbox: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (text) {
		close(in[0]);
		(void)!write(in[1], text, strlen(text));
		close(in[1]);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return sandbox_fail("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "egress-broker sandbox: %s failed\n", argv[0]);
		return -1;
	}
	return 0;
}

/* Loopback up, and the default routes through it: whatever leaves goes to
 * loopback, where the capture rules meet it, and nothing else exists. */
static int sandbox_network(void)
{
	static char *const r4[] = { "ip", "route", "add", "default", "dev", "lo", "src", "127.0.0.1", NULL };
	static char *const r6[] = { "ip", "-6", "route", "add", "default", "dev", "lo", NULL };
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return sandbox_fail("socket");
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)) {
		close(fd);
		return sandbox_fail("bringing loopback up");
	}
	close(fd);
	if (sandbox_run(r4, NULL) < 0)
		return -1;
	(void)sandbox_run(r6, NULL); /* no IPv6 in this kernel: IPv4 only */
	return 0;
}

/* A capture socket: type on the loopback address of family, at port (0:
 * any). Returns it (nonblocking, close-on-exec) or -1. */
static int sandbox_socket(int family, int type, uint16_t port)
{
	return loop_socket(family, type, &port);
}

/* The port fd is bound to. */
static uint16_t sandbox_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct proto_addr a;
	uint16_t port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		proto_addr_from_sockaddr((struct sockaddr *)&ss, ss.ss_family, &a, &port);
	return port;
}

/* Connects to the broker and hands it the capture sockets (CONTROL
 * CAPTURE, the nfds descriptors as SCM_RIGHTS: the capture sockets, then
 * the NFLOG socket if there is one). Returns the connection, which stays
 * open while the sandbox lives, or -1. */
static int sandbox_hand_over(const char *path, const int fds[SANDBOX_CAPTURE_FDS], int nfds)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * SANDBOX_CAPTURE_FDS)];
	} ctl;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct proto_msg m = { .type = PROTO_CONTROL, .id = 1 };
	uint8_t buf[PROTO_MSG_MAX];
	struct iovec iov = { .iov_base = buf };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds) };
	struct cmsghdr *cm;
	ssize_t n;
	int fd;

	if (snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path) >= (int)sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return sandbox_fail(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		return sandbox_fail(path);
	m.u.control.what = PROTO_CTL_CAPTURE;
	n = proto_encode(&m, buf, sizeof buf);
	iov.iov_len = (size_t)n;
	memset(&ctl, 0, sizeof ctl);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != n)
		return sandbox_fail("handing the capture sockets to the broker");
	n = recv(fd, buf, sizeof buf, 0);
	if (n <= 0 || proto_decode(buf, (size_t)n, &m) != 0 || m.type != PROTO_TEXT ||
	    m.u.text.status != 0) {
		fprintf(stderr, "egress-broker sandbox: the broker at %s did not take the capture sockets%s%s\n",
			path, n > 0 && m.type == PROTO_TEXT ? ": " : "",
			n > 0 && m.type == PROTO_TEXT ? m.u.text.text : "");
		close(fd);
		return -1;
	}
	return fd;
}

/* The nftables rules: every TCP connection that does not stay on loopback
 * goes to the capture listener, and every DNS query to the stub; after
 * them (filter, at priority 0, sees the redirected packets bound for
 * loopback) every other packet that would leave loopback is logged to
 * NFLOG_GROUP and dropped, so that its sendto() fails at once (EPERM).
 * The drop holds whether or not anything reads the group. */
static int sandbox_rules(uint16_t tcp4, uint16_t tcp6)
{
	static char *const nft[] = { "nft", "-f", "-", NULL };
	char rules[2048];

	snprintf(rules, sizeof rules,
		 "table ip egress {\n"
		 "  chain out { type nat hook output priority -100; policy accept;\n"
		 "    ip daddr 127.0.0.0/8 return\n"
		 "    udp dport 53 redirect to :53\n"
		 "    meta l4proto tcp redirect to :%u\n"
		 "  }\n"
		 "  chain gate { type filter hook output priority 0; policy drop;\n"
		 "    ip daddr 127.0.0.0/8 accept\n"
		 "    log group %u drop\n"
		 "  }\n"
		 "}\n"
		 "table ip6 egress {\n"
		 "  chain out { type nat hook output priority -100; policy accept;\n"
		 "    ip6 daddr ::1 return\n"
		 "    udp dport 53 redirect to :53\n"
		 "    meta l4proto tcp redirect to :%u\n"
		 "  }\n"
		 "  chain gate { type filter hook output priority 0; policy drop;\n"
		 "    ip6 daddr ::1 accept\n"
		 "    log group %u drop\n"
		 "  }\n"
		 "}\n",
		 tcp4, NFLOG_GROUP, tcp6, NFLOG_GROUP);
	return sandbox_run(nft, rules);
}

/* Binds src over dst, read-only. Returns 0 or -1. */
static int sandbox_bind_ro(const char *src, const char *dst)
{
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return sandbox_fail(dst);
	return 0;
}

/* True when path is dir or below it. */
static bool sandbox_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}

/* Creates path and the directories above it that are missing (0755), in
 * what a covering tmpfs left empty. Returns 0 or -1. */
static int sandbox_mkdirs(const char *path)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s", path);
	for (char *q = p + 1; (q = strchr(q, '/')); q++) {
		*q = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*q = '/';
	}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* ------------------------------------------------------- UNIX sockets */

/* Calls fn(sb, path, ctx) for each UNIX socket under dir, depth levels
 * down, symbolic links not followed, at most *budget entries looked at.
 * Returns 0, or fn's -1. */
static int sandbox_sockets(const struct sandbox *sb, const char *dir, int depth, long *budget,
			   int (*fn)(const struct sandbox *, const char *, void *), void *ctx)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return 0; /* gone, or not ours to read: nothing to hide in it from us either */
	while (rc == 0 && (*budget)-- > 0 && (e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name) >=
			    (int)sizeof path ||
		    lstat(path, &st) < 0)
			continue;
		if (S_ISSOCK(st.st_mode) && strcmp(path, sb->socket) != 0)
			rc = fn(sb, path, ctx);
		else if (S_ISDIR(st.st_mode) && depth > 0)
			rc = sandbox_sockets(sb, path, depth - 1, budget, fn, ctx);
	}
	closedir(d);
	return rc;
}

/* sandbox_sockets' fn: holds a socket the policy names, to show it again. */
static int sandbox_hold(const struct sandbox *sb, const char *path, void *ctx)
{
	struct shown *shown = ctx;
	int n = 0;

	if (!sb->policy || !policy_unix_allowed(sb->policy, path))
		return 0;
	while (n < SANDBOX_SHOWN_MAX && shown[n].fd >= 0)
		n++;
	if (n == SANDBOX_SHOWN_MAX) {
		fprintf(stderr, "egress-broker sandbox: more than %d sockets named by the policy "
				"under covered directories; %s stays covered\n",
			SANDBOX_SHOWN_MAX, path);
		return 0;
	}
	shown[n].fd = open(path, O_PATH | O_CLOEXEC);
	snprintf(shown[n].path, sizeof shown[n].path, "%s", path);
	return 0;
}

/* sandbox_sockets' fn: covers a socket the policy does not name with
 * /dev/null, so that a connect to it is refused. */
static int sandbox_hide(const struct sandbox *sb, const char *path, void *ctx)
{
	(void)ctx;
	if (sb->policy && policy_unix_allowed(sb->policy, path))
		return 0;
	if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0)
		return sandbox_fail(path);
	return 0;
}

/* Shows the held sockets again where they were, in what covers them. */
static int sandbox_show(struct shown *shown)
{
	char fdpath[64], dir[PATH_MAX], *slash;

	for (int i = 0; i < SANDBOX_SHOWN_MAX && shown[i].fd >= 0; i++) {
		int fd;

		snprintf(dir, sizeof dir, "%s", shown[i].path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = 0;
		snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", shown[i].fd);
		if (sandbox_mkdirs(dir) < 0 ||
		    ((fd = open(shown[i].path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0 &&
		     errno != EEXIST))
			return sandbox_fail(shown[i].path);
		if (fd >= 0)
			close(fd);
		if (mount(fdpath, shown[i].path, NULL, MS_BIND, NULL) < 0)
			return sandbox_fail(shown[i].path);
	}
	return 0;
}

/* Mount namespace: a PID namespace's own /proc, the files the broker reads
 * made read-only, the socket's directory read-only (a program can neither
 * remove the broker's socket nor put a broker of its own in its place),
 * and the covered directories (the broker's private one; /run, where the
 * host's daemons keep their sockets) emptied. The socket's directory and
 * the name server file, when they were under a covered directory, are
 * shown again where they were, and so are the UNIX sockets there that the
 * policy names ([egress] unix); every other UNIX socket under the
 * --hide-sockets directories is covered with /dev/null. */
static int sandbox_mounts(const struct sandbox *sb)
{
	char sockdir[PATH_MAX], resolv[PATH_MAX], fdpath[64], *slash;
	struct shown shown[SANDBOX_SHOWN_MAX];
	bool hidden = false;
	int keep, rfd = -1, rc = -1;
	long budget;

	for (int i = 0; i < SANDBOX_SHOWN_MAX; i++)
		shown[i].fd = -1;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return sandbox_fail("making mounts private");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return sandbox_fail("mounting /proc");
	for (int i = 0; i < sb->nprotect; i++)
		if (access(sb->protect[i], F_OK) == 0 && sandbox_bind_ro(sb->protect[i], sb->protect[i]) < 0)
			return -1;
	snprintf(sockdir, sizeof sockdir, "%s", sb->socket);
	slash = strrchr(sockdir, '/');
	if (!slash || slash == sockdir) {
		errno = EINVAL;
		return sandbox_fail(sb->socket);
	}
	*slash = 0;
	/* /etc/resolv.conf may be a link into /run (systemd-resolved) */
	if (!realpath("/etc/resolv.conf", resolv))
		snprintf(resolv, sizeof resolv, "/etc/resolv.conf");
	if (sandbox_bind_ro(sockdir, sockdir) < 0)
		return -1;
	/* held open, to be shown again once what covers them is in place */
	keep = open(sockdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (keep < 0)
		return sandbox_fail(sockdir);
	if (sb->resolv && (rfd = open(sb->resolv, O_PATH | O_CLOEXEC)) < 0) {
		sandbox_fail(sb->resolv);
		goto out;
	}
	for (int i = 0; i < sb->ncover; i++) {
		budget = SANDBOX_SCAN_MAX;
		sandbox_sockets(sb, sb->cover[i], SANDBOX_SCAN_DEPTH + 2, &budget, sandbox_hold, shown);
	}
	for (int i = 0; i < sb->ncover; i++) {
		struct stat st;

		if (stat(sb->cover[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue; /* nothing there to cover */
		if (mount("tmpfs", sb->cover[i], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0) {
			sandbox_fail(sb->cover[i]);
			goto out;
		}
		hidden |= sandbox_under(sockdir, sb->cover[i]);
	}
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", keep);
	if (hidden && (sandbox_mkdirs(sockdir) < 0 || sandbox_bind_ro(fdpath, sockdir) < 0)) {
		sandbox_fail(sockdir);
		goto out;
	}
	if (sb->resolv) {
		if (access(resolv, F_OK) < 0) { /* its target was covered: made again */
			char dir[PATH_MAX];
			int fd;

			snprintf(dir, sizeof dir, "%s", resolv);
			slash = strrchr(dir, '/');
			if (slash && slash != dir)
				*slash = 0;
			if (sandbox_mkdirs(dir) < 0 ||
			    (fd = open(resolv, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0) {
				sandbox_fail(resolv);
				goto out;
			}
			close(fd);
		}
		snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", rfd);
		if (sandbox_bind_ro(fdpath, resolv) < 0)
			goto out;
	}
	if (sandbox_show(shown) < 0)
		goto out;
	for (int i = 0; i < sb->nhide; i++) {
		budget = SANDBOX_SCAN_MAX;
		if (sandbox_sockets(sb, sb->hide[i], SANDBOX_SCAN_DEPTH, &budget, sandbox_hide, NULL) < 0)
			goto out;
		if (budget <= 0)
			fprintf(stderr, "egress-broker sandbox: %s: more than %d entries; UNIX sockets "
					"past them are not hidden\n",
				sb->hide[i], SANDBOX_SCAN_MAX);
	}
	rc = 0;
out:
	close(keep);
	if (rfd >= 0)
		close(rfd);
	for (int i = 0; i < SANDBOX_SHOWN_MAX && shown[i].fd >= 0; i++)
		close(shown[i].fd);
	return rc;
}

/* Leaves CMD only the capabilities in sandbox_kept, and no way to get
 * others back (no_new_privs keeps setuid binaries from granting any). */
static int sandbox_drop_caps(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	uint64_t keep = 0;

	for (size_t i = 0; i < sizeof sandbox_kept / sizeof sandbox_kept[0]; i++)
		keep |= 1ULL << sandbox_kept[i];
	for (int c = 0; c <= 63; c++)
		if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return sandbox_fail("dropping capabilities");
	if (syscall(SYS_capget, &h, d) < 0)
		return sandbox_fail("capget");
	for (int i = 0; i < 2; i++) {
		uint32_t k = (uint32_t)(keep >> (32 * i));
		d[i].effective &= k;
		d[i].permitted &= k;
		d[i].inheritable &= k;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return sandbox_fail("capset");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sandbox_fail("no_new_privs");
	return 0;
}

/* PID 1's loop: passes SIGTERM, SIGINT and SIGHUP on to CMD, reaps every
 * child, and returns CMD's exit status (128+N for a signal) once it ends,
 * or 125 when the broker connection ends first (CMD is killed then). */
static int sandbox_wait(pid_t child, int broker)
{
	sigset_t set;
	int sfd, status = 125;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = broker, .events = POLLIN } };
		struct signalfd_siginfo si;
		pid_t pid;
		int st;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents) { /* the broker closed: no mediation, no network */
			fprintf(stderr, "egress-broker sandbox: the broker went away; ending the command\n");
			kill(-1, SIGKILL);
			return 125;
		}
		if (!(p[0].revents & POLLIN) || read(sfd, &si, sizeof si) != sizeof si)
			continue;
		if (si.ssi_signo != SIGCHLD) {
			kill(child, (int)si.ssi_signo);
			continue;
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			if (pid != child)
				continue;
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return status;
		}
	}
	return status;
}

static int sandbox_usage(void)
{
	fprintf(stderr, "usage: egress-broker sandbox --socket PATH [--resolv FILE] [--cover DIR]...\n"
			"                             [--protect FILE]... [--hide-sockets DIR]...\n"
			"                             [--policy FILE] -- CMD [ARGS...]\n"
			"(run by egress-run --isolate as PID 1 of new namespaces)\n");
	return 2;
}

int sandbox_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "resolv", required_argument, NULL, 'r' },
		{ "cover", required_argument, NULL, 'c' },  { "protect", required_argument, NULL, 'p' },
		{ "hide-sockets", required_argument, NULL, 'h' },
		{ "policy", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct sandbox sb = { 0 };
	int fds[SANDBOX_CAPTURE_FDS], nfds = SANDBOX_CAPTURE_FDS, broker, c;
	char err[POLICY_ERR_MAX];
	sigset_t set;
	pid_t child;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 's': sb.socket = optarg; break;
		case 'r': sb.resolv = optarg; break;
		case 'c':
			if (sb.ncover == SANDBOX_COVER_MAX)
				return sandbox_usage();
			sb.cover[sb.ncover++] = optarg;
			break;
		case 'p':
			if (sb.nprotect == SANDBOX_PROTECT_MAX)
				return sandbox_usage();
			sb.protect[sb.nprotect++] = optarg;
			break;
		case 'h':
			if (sb.nhide == SANDBOX_COVER_MAX)
				return sandbox_usage();
			sb.hide[sb.nhide++] = optarg;
			break;
		case 'P':
			if (sb.policy) {
				fprintf(stderr, "egress-broker sandbox: --policy given twice\n");
				return sandbox_usage();
			}
			if (!(sb.policy = policy_load(optarg, err, sizeof err))) {
				fprintf(stderr, "egress-broker sandbox: %s\n", err);
				return 125;
			}
			break;
		default: return sandbox_usage();
		}
	}
	if (!sb.socket || optind >= argc)
		return sandbox_usage();
	sb.cmd = argv + optind;
	if (getpid() != 1) {
		fprintf(stderr, "egress-broker sandbox: must be PID 1 of a new PID namespace "
				"(egress-run --isolate starts it)\n");
		return 125;
	}
	/* the order matters: the sockets exist before the rules point at them */
	if (sandbox_network() < 0)
		return 125;
	fds[0] = sandbox_socket(AF_INET, SOCK_STREAM, 0);
	fds[1] = sandbox_socket(AF_INET6, SOCK_STREAM, 0);
	fds[2] = sandbox_socket(AF_INET, SOCK_DGRAM, 53);
	fds[3] = sandbox_socket(AF_INET6, SOCK_DGRAM, 53);
	/* the broker asks through it which socket made a captured connection */
	fds[SANDBOX_DIAG_FD] = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	for (int i = 0; i < SANDBOX_CAPTURE_SOCKS; i++) {
		if (fds[i] < 0) {
			sandbox_fail("capture socket");
			return 125;
		}
	}
	/* without it the packets are dropped all the same, but not audited */
	fds[SANDBOX_NFLOG_FD] = nflog_open(NFLOG_GROUP, err, sizeof err);
	if (fds[SANDBOX_NFLOG_FD] < 0) {
		fprintf(stderr, "egress-broker sandbox: %s; dropped datagrams are not audited\n", err);
		nfds = SANDBOX_CAPTURE_SOCKS;
	}
	broker = sandbox_hand_over(sb.socket, fds, nfds);
	if (broker < 0 || sandbox_rules(sandbox_port(fds[0]), sandbox_port(fds[1])) < 0 ||
	    sandbox_mounts(&sb) < 0)
		return 125;
	policy_free(sb.policy); /* read for the mounts only: the broker judges */
	sb.policy = NULL;
	for (int i = 0; i < nfds; i++)
		close(fds[i]); /* the broker has them; none stays in here */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	child = fork();
	if (child < 0) {
		sandbox_fail("fork");
		return 125;
	}
	if (child == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		if (sandbox_drop_caps() < 0)
			_exit(125);
		execvp(sb.cmd[0], sb.cmd);
		fprintf(stderr, "egress-broker sandbox: %s: %s\n", sb.cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	return sandbox_wait(child, broker);
}
