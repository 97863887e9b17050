/* lookups.c: calls one libc lookup or connect-from-libc entry point, for
 * t_lookups.sh, and prints what it returned on one line. With DNS_PORT set,
 * the resolver of this process (and of its NSS lookups) is pointed at
 * 127.0.0.1:DNS_PORT first, so that any query libc itself would send lands
 * on the test's listener.
 *
 *   lookups ghbn NAME | ghbn2 NAME 4|6 | ghbnr NAME | ghbn2r NAME 4|6
 *   lookups gaia NAME | gaia-nowait NAME | gni ADDR [namereqd] | ghba ADDR
 *   lookups resq NAME a|aaaa|txt | ressearch NAME TYPE | resdomain NAME DOMAIN TYPE
 *   lookups ressend NAME TYPE | resnquery NAME TYPE | gai NAME SERVICE
 *   lookups __connect PORT | rcmd PORT | clnttcp PORT
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int __connect(int fd, const struct sockaddr *sa, socklen_t len);
/* Sun RPC is a compat symbol of glibc: linked by version, as old binaries are. */
void *clnttcp_create(struct sockaddr_in *raddr, unsigned long prog, unsigned long vers, int *sockp,
		     unsigned sendsz, unsigned recvsz);
__asm__(".symver clnttcp_create,clnttcp_create@GLIBC_2.2.5");

static void point_resolver(struct __res_state *st)
{
	const char *p = getenv("DNS_PORT");

	if (p == NULL)
		return;
	st->nscount = 1;
	st->nsaddr_list[0].sin_family = AF_INET;
	st->nsaddr_list[0].sin_port = htons((uint16_t)atoi(p));
	st->nsaddr_list[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	st->retrans = 1;
	st->retry = 1;
	st->options &= ~(unsigned long)RES_ROTATE;
}

static void print_hostent(const struct hostent *he)
{
	char text[INET6_ADDRSTRLEN];

	printf("ok %s", he->h_name);
	for (char **a = he->h_addr_list; *a; a++)
		printf(" %s", inet_ntop(he->h_addrtype, *a, text, sizeof text));
	printf("\n");
}

static void print_ai(const char *tag, const struct addrinfo *ai)
{
	char text[INET6_ADDRSTRLEN];

	printf("%s", tag);
	for (; ai; ai = ai->ai_next) {
		const void *a = ai->ai_family == AF_INET
					? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
					: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (ai->ai_socktype == SOCK_STREAM)
			printf(" %s:%u", inet_ntop(ai->ai_family, a, text, sizeof text),
			       ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port));
	}
	printf("\n");
}

static int qtype(const char *s)
{
	return strcmp(s, "a") == 0 ? ns_t_a : strcmp(s, "aaaa") == 0 ? ns_t_aaaa : ns_t_txt;
}

/* Prints a res_* result: the addresses of an answer, or the failure. */
static void print_answer(int n, const unsigned char *ans, int herr)
{
	ns_msg m;
	ns_rr rr;
	char text[INET6_ADDRSTRLEN];

	if (n < 0) {
		printf("err -1 h_errno=%d\n", herr);
		return;
	}
	if (ns_initparse(ans, n, &m) < 0) {
		printf("bad answer\n");
		return;
	}
	printf("ok rcode=%d an=%d", ns_msg_getflag(m, ns_f_rcode), ns_msg_count(m, ns_s_an));
	for (int i = 0; i < ns_msg_count(m, ns_s_an); i++) {
		if (ns_parserr(&m, ns_s_an, i, &rr) < 0)
			break;
		if (ns_rr_type(rr) == ns_t_a || ns_rr_type(rr) == ns_t_aaaa)
			printf(" %s", inet_ntop(ns_rr_type(rr) == ns_t_a ? AF_INET : AF_INET6,
						ns_rr_rdata(rr), text, sizeof text));
	}
	printf("\n");
}

static volatile sig_atomic_t notified;
static void on_notify(union sigval v)
{
	(void)v;
	notified = 1;
}

static struct sockaddr_in loopback(const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

int main(int argc, char **argv)
{
	unsigned char ans[4096], q[512];
	const char *cmd = argc > 1 ? argv[1] : "", *arg = argc > 2 ? argv[2] : "";
	struct hostent he, *r;
	char buf[2048];
	int herr = 0, rc;

	res_init();
	point_resolver(&_res);

	if (strcmp(cmd, "ghbn") == 0 || strcmp(cmd, "ghbn2") == 0) {
		int af = argc > 3 && strcmp(argv[3], "6") == 0 ? AF_INET6 : AF_INET;
		r = cmd[4] ? gethostbyname2(arg, af) : gethostbyname(arg);
		if (r)
			print_hostent(r);
		else
			printf("err h_errno=%d\n", h_errno);
	} else if (strcmp(cmd, "ghbnr") == 0 || strcmp(cmd, "ghbn2r") == 0) {
		int af = argc > 3 && strcmp(argv[3], "6") == 0 ? AF_INET6 : AF_INET;
		rc = cmd[4] == '2' ? gethostbyname2_r(arg, af, &he, buf, sizeof buf, &r, &herr)
				   : gethostbyname_r(arg, &he, buf, sizeof buf, &r, &herr);
		if (r)
			print_hostent(r);
		else
			printf("err rc=%d h_errno=%d\n", rc, herr);
	} else if (strcmp(cmd, "gaia") == 0 || strcmp(cmd, "gaia-nowait") == 0) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
		struct gaicb cb = { .ar_name = arg, .ar_service = "80", .ar_request = &hints };
		struct gaicb *list[1] = { &cb };
		struct sigevent sev = { .sigev_notify = SIGEV_THREAD };
		const struct timespec ts = { 5, 0 };
		sev.sigev_notify_function = on_notify;
		rc = getaddrinfo_a(cmd[4] ? GAI_NOWAIT : GAI_WAIT, list, 1, cmd[4] ? &sev : NULL);
		if (cmd[4]) {
			gai_suspend((const struct gaicb *const *)list, 1, &ts);
			for (int i = 0; i < 100 && !notified; i++)
				usleep(20000);
		}
		rc = rc ? rc : gai_error(&cb);
		if (rc == 0)
			print_ai(cmd[4] && !notified ? "ok (no notification)" : "ok", cb.ar_result);
		else
			printf("err %s\n", rc == EAI_NONAME ? "EAI_NONAME" : gai_strerror(rc));
	} else if (strcmp(cmd, "gai") == 0) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		rc = getaddrinfo(arg, argc > 3 ? argv[3] : NULL, &hints, &res);
		if (rc == 0)
			print_ai("ok", res);
		else
			printf("err %s\n", gai_strerror(rc));
	} else if (strcmp(cmd, "gni") == 0) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		char host[NI_MAXHOST];
		inet_pton(AF_INET, arg, &sin.sin_addr);
		rc = getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0,
				 argc > 3 ? NI_NAMEREQD : 0);
		if (rc == 0)
			printf("ok %s\n", host);
		else
			printf("err %s\n", rc == EAI_NONAME ? "EAI_NONAME" : gai_strerror(rc));
	} else if (strcmp(cmd, "ghba") == 0) {
		struct in_addr a;
		inet_pton(AF_INET, arg, &a);
		r = gethostbyaddr(&a, sizeof a, AF_INET);
		if (r)
			print_hostent(r);
		else
			printf("err h_errno=%d\n", h_errno);
	} else if (strcmp(cmd, "resq") == 0 || strcmp(cmd, "ressearch") == 0) {
		int t = qtype(argc > 3 ? argv[3] : "a");
		h_errno = 0;
		rc = cmd[3] == 'q' ? res_query(arg, ns_c_in, t, ans, sizeof ans)
				   : res_search(arg, ns_c_in, t, ans, sizeof ans);
		print_answer(rc, ans, h_errno);
	} else if (strcmp(cmd, "resdomain") == 0) {
		rc = res_querydomain(arg, argv[3], ns_c_in, qtype(argv[4]), ans, sizeof ans);
		print_answer(rc, ans, h_errno);
	} else if (strcmp(cmd, "ressend") == 0) {
		int n = res_mkquery(ns_o_query, arg, ns_c_in, qtype(argv[3]), NULL, 0, NULL, q, sizeof q);
		rc = n < 0 ? -1 : res_send(q, n, ans, sizeof ans);
		print_answer(rc, ans, h_errno);
	} else if (strcmp(cmd, "resnquery") == 0) {
		struct __res_state st;
		memset(&st, 0, sizeof st);
		res_ninit(&st);
		point_resolver(&st);
		rc = res_nquery(&st, arg, ns_c_in, qtype(argv[3]), ans, sizeof ans);
		print_answer(rc, ans, st.res_h_errno);
		res_nclose(&st);
	} else if (strcmp(cmd, "__connect") == 0) {
		struct sockaddr_in sin = loopback(arg);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		rc = __connect(fd, (struct sockaddr *)&sin, sizeof sin);
		printf(rc == 0 ? "ok\n" : "err %s\n", strerrorname_np(errno));
	} else if (strcmp(cmd, "rcmd") == 0) {
		char host[] = "localhost", *ahost = host;
		errno = 0;
		rc = rcmd(&ahost, (unsigned short)htons((uint16_t)atoi(arg)), "root", "root", "true",
			  NULL);
		printf(rc >= 0 ? "ok\n" : "err %s\n", strerrorname_np(errno));
	} else if (strcmp(cmd, "clnttcp") == 0) {
		struct sockaddr_in sin = loopback(arg);
		int sock = -1; /* RPC_ANYSOCK */
		errno = 0;
		void *c = clnttcp_create(&sin, 100000, 2, &sock, 0, 0);
		printf(c ? "ok\n" : "err %s\n", strerrorname_np(errno));
	} else {
		fprintf(stderr, "lookups: unknown command %s\n", cmd);
		return 2;
	}
	return 0;
}
