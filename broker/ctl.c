/* ctl.c: the client side of the control channel, as ntpctl is shaped:
 * `egress-broker status [--json]` and `egress-broker reload` send one
 * CONTROL request, read the answer and print it. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"

#define CTL_TIMEOUT_S 30 /* a reload of a large policy may take a while */
#define CTL_TEXT_CAP (PROTO_TEXT_MAX + 1)

static void ctl_usage(void)
{
	fprintf(stderr, "usage: egress-broker status [--json] [--socket PATH]\n"
			"       egress-broker reload [--socket PATH]\n");
}

int ctl_request(const char *path, int what, int *status, char *text, size_t cap, char *err,
		    size_t errlen)
{
	uint8_t *buf = NULL;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
	struct proto_msg *m;
	ssize_t n;
	int fd, e;

	err[0] = 0;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	m = calloc(1, sizeof *m);
	buf = malloc(PROTO_MSG_MAX);
	if (!m || !buf) {
		free(m);
		free(buf);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->type = PROTO_CONTROL;
	m->id = 1;
	m->u.control.what = (uint8_t)what;
	n = proto_encode(m, buf, PROTO_MSG_MAX);
	if (n < 0 || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
		snprintf(err, errlen, "cannot send to broker at %s: %s", path, strerror(errno));
		goto fail;
	}
	do
		n = recv(fd, buf, PROTO_MSG_MAX, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		snprintf(err, errlen, "no answer from broker at %s: %s", path,
			 n < 0 ? strerror(errno) : "connection closed");
		goto fail;
	}
	if (proto_decode(buf, (size_t)n, m) != 0 || m->id != 1 ||
	    (m->type != PROTO_TEXT && m->type != PROTO_ERROR)) {
		snprintf(err, errlen, "malformed answer from broker at %s", path);
		goto fail;
	}
	if (m->type == PROTO_ERROR) {
		snprintf(err, errlen, "broker at %s refused: %s", path,
			 m->u.error == PROTO_E_DENIED ? "permission denied"
			 : m->u.error == PROTO_E_VERSION ? "protocol version mismatch"
							 : "request not understood");
		goto fail;
	}
	*status = m->u.text.status;
	snprintf(text, cap, "%s", m->u.text.text);
	free(buf);
	free(m);
	close(fd);
	return 0;
fail:
	free(buf);
	free(m);
	close(fd);
	return -1;
}

/* `status` and `reload`: one CONTROL request, the answer printed. */
int ctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	bool reload = strcmp(argv[0], "reload") == 0, json = false;
	const char *sock_opt = NULL;
	char sock[PATH_MAX], err[512], *text;
	int c, status, what;
	size_t len;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			if (reload) {
				ctl_usage();
				return 2;
			}
			json = true;
			break;
		case 's': sock_opt = optarg; break;
		default: ctl_usage(); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "egress-broker: unexpected argument: %s\n", argv[optind]);
		ctl_usage();
		return 2;
	}
	if (control_socket_path(sock_opt, sock, sizeof sock) < 0)
		return 1;
	what = reload ? PROTO_CTL_RELOAD : json ? PROTO_CTL_STATUS_JSON : PROTO_CTL_STATUS;
	text = malloc(CTL_TEXT_CAP);
	if (!text) {
		fprintf(stderr, "egress-broker: out of memory\n");
		return 1;
	}
	if (ctl_request(sock, what, &status, text, CTL_TEXT_CAP, err, sizeof err) < 0) {
		if (err[0])
			fprintf(stderr, "egress-broker: %s\n", err);
		else
			fprintf(stderr, "egress-broker: no broker at %s: %s\n", sock, strerror(errno));
		free(text);
		return 1;
	}
	len = strlen(text);
	fprintf(status ? stderr : stdout, "%s%s", text, len && text[len - 1] == '\n' ? "" : "\n");
	free(text);
	return status ? 1 : 0;
}
