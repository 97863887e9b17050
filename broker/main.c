/* main.c: egress-broker's command line: the daemon, and the status,
 * reload and check subcommands. The only place that decides to exit. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "broker.h"

#define TEXT_CAP (PROTO_TEXT_MAX + 1)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: egress-broker --policy FILE [--socket PATH] [--socket-mode MODE] [--audit FILE]\n"
		"                     [--isolate] [--exit-with-parent]\n"
		"       egress-broker status [--json] [--socket PATH]\n"
		"       egress-broker reload [--socket PATH]\n"
		"       egress-broker check --policy FILE [HOST[:PORT] | URL] [--udp] [--exe PATH]\n"
		"       egress-broker sandbox --socket PATH ... -- CMD   (egress-run --isolate)\n"
		"       egress-broker --help | --version\n"
		"The socket is --socket, else $EGRESS_SOCKET, else %s;\n"
		"its mode is 0660, or --socket-mode (octal, such as 0666).\n"
		"--isolate takes the capture of each sandbox (egress-run --isolate) that hands\n"
		"one over; --exit-with-parent ends the broker when the process that started it ends.\n",
		PROTO_DEFAULT_SOCKET);
}

/* Runs the daemon in the foreground until SIGTERM or SIGINT. */
static int run_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' }, { "socket", required_argument, NULL, 's' },
		{ "audit", required_argument, NULL, 'a' },  { "socket-mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
		{ "isolate", no_argument, NULL, 'I' },
		{ "exit-with-parent", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_config cfg = { 0 };
	const char *sock_opt = NULL;
	char sock[PATH_MAX], err[POLICY_ERR_MAX + 256];
	bool with_parent = false;
	struct server *s;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': cfg.policy_path = optarg; break;
		case 's': sock_opt = optarg; break;
		case 'a': cfg.audit_path = optarg; break;
		case 'I': cfg.isolate = true; break;
		case 'P': with_parent = true; break;
		case 'm':
			if (control_socket_mode(optarg, err, sizeof err) < 0) {
				fprintf(stderr, "egress-broker: %s\n", err);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("egress-broker %s\n", BROKER_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !cfg.policy_path) {
		if (optind != argc)
			fprintf(stderr, "egress-broker: unexpected argument: %s\n", argv[optind]);
		else
			fprintf(stderr, "egress-broker: --policy FILE is required\n");
		usage(stderr);
		return 2;
	}
	if (control_socket_path(sock_opt, sock, sizeof sock) < 0)
		return 1;
	cfg.socket_path = sock;
	/* A private broker (egress-run's) ends with the egress-run that started
	 * it, killed or not: the sandbox of an isolated run then sees its
	 * connection close and ends the namespace. A shared broker, --isolate
	 * or not, outlives whoever started it. */
	if (with_parent && prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		fprintf(stderr, "egress-broker: PR_SET_PDEATHSIG: %s\n", strerror(errno));
	/* Before the resolver threads start, so that they inherit the mask. */
	if (server_signals_block() < 0)
		return 1;
	s = server_new(&cfg, err, sizeof err);
	if (!s) {
		fprintf(stderr, "egress-broker: %s\n", err);
		return 1;
	}
	if (server_signals(s) < 0) {
		server_free(s);
		return 1;
	}
	if (server_listen(s, err, sizeof err) < 0) {
		fprintf(stderr, "egress-broker: %s\n", err);
		server_free(s);
		return 1;
	}
	log_info("listening on %s", sock);
	rc = server_run(s);
	server_free(s);
	return rc < 0 ? 1 : 0;
}

/* `check`: judges one destination offline. Exit 0 allow, 1 deny, 2 error. */
static int run_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "udp", no_argument, NULL, 'u' },
		{ "exe", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	const char *policy_file = NULL, *exe = NULL;
	char err[POLICY_ERR_MAX], out[512];
	struct policy *p;
	bool udp = false, by_name;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': policy_file = optarg; break;
		case 'u': udp = true; break;
		case 'e': exe = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (!policy_file || optind < argc - 1) {
		fprintf(stderr, "egress-broker: check needs --policy FILE and at most one "
				"destination (HOST, HOST:PORT or URL)\n");
		usage(stderr);
		return 2;
	}
	p = policy_load(policy_file, err, sizeof err);
	if (!p) {
		fprintf(stderr, "egress-broker: %s\n", err);
		return 2;
	}
	if (optind == argc) { /* the file alone, as ntpd -n checks its configuration */
		printf("%s: policy OK (%u rules)\n", policy_path(p), policy_rule_count(p));
		policy_free(p);
		return 0;
	}
	rc = cli_check(p, argv[optind], udp, exe, out, sizeof out, &by_name);
	if (rc == 2)
		fprintf(stderr, "egress-broker: %s\n", out);
	else
		printf("%s\n", out);
	fflush(stdout);
	if (rc == 0 && by_name)
		fprintf(stderr, "egress-broker: judged by name alone; each address it resolves to is "
				"judged again at connect, and a private one is refused unless a rule "
				"opens it\n");
	policy_free(p);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "reload") == 0))
		return ctl_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "sandbox") == 0)
		return sandbox_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "check") == 0)
		return run_check(argc - 1, argv + 1);
	return run_daemon(argc, argv);
}
