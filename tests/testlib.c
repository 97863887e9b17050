/* testlib.c: helpers shared by the suites of check_egress: temporary files,
 * the stub DNS, and the server fixture (a broker and one socketpair client). */
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"

/* ------------------------------------------------------------------ files */

void tmpdir(char dir[64])
{
	strcpy(dir, "/tmp/check_egress.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

void write_file(const char *dir, const char *name, const char *text, char *out, size_t cap)
{
	FILE *f;

	snprintf(out, cap, "%s/%s", dir, name);
	f = fopen(out, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

size_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, cap - 1);
	close(fd);
	ck_assert_int_ge(n, 0);
	buf[n] = 0;
	return (size_t)n;
}

/* -------------------------------------------------------------------- dns */

int stub_lookup(const char *name, int family, struct proto_addr *out, int max, int *n)
{
	static const struct {
		const char *name;
		const char *addrs[4];
	} table[] = {
		{ "pub.test", { "93.184.216.34", "2606:2800:220:1::1", "93.184.216.34",
				"::ffff:93.184.216.34" } },
		{ "priv.test", { "10.1.2.3", "fd00::1" } },
		{ "mixed.test", { "10.1.2.3", "93.184.216.35" } },
		{ "slow.test", { "93.184.216.36" } },
	};

	if (strcmp(name, "fail.test") == 0)
		return EAI_AGAIN;
	if (strcmp(name, "slow.test") == 0)
		usleep(200 * 1000);
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strcmp(name, table[i].name))
			continue;
		*n = 0;
		for (int j = 0; j < 4 && table[i].addrs[j] && *n < max; j++) {
			struct proto_addr a;

			memset(&a, 0, sizeof a);
			policy_addr_parse(table[i].addrs[j], &a);
			if (!family || (family == a.family && !strchr(table[i].addrs[j], '.')) ||
			    (family == 4 && a.family == 4))
				out[(*n)++] = a;
		}
		return *n ? 0 : EAI_NONAME;
	}
	return EAI_NONAME;
}

/* ---------------------------------------------------------------- fixture */

static void fixture_start(struct fixture *f, const char *policy_text, resolver_lookup_fn lookup,
			  bool isolate)
{
	struct server_config cfg = { .isolate = isolate };
	char err[POLICY_ERR_MAX];
	int sv[2];

	tmpdir(f->dir);
	write_file(f->dir, "p.ini", policy_text, f->policy, sizeof f->policy);
	snprintf(f->audit, sizeof f->audit, "%s/audit.jsonl", f->dir);
	cfg.policy_path = f->policy;
	cfg.socket_path = "/tmp/not-listening.sock";
	cfg.audit_path = f->audit;
	cfg.lookup = lookup;
	f->s = server_new(&cfg, err, sizeof err);
	ck_assert_msg(f->s != NULL, "%s", err);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(server_add_client(f->s, sv[0]), 0);
	f->fd = sv[1];
}

void fixture_open(struct fixture *f, const char *policy_text, resolver_lookup_fn lookup)
{
	fixture_start(f, policy_text, lookup, false);
}

void fixture_open_isolated(struct fixture *f, const char *policy_text, resolver_lookup_fn lookup)
{
	fixture_start(f, policy_text, lookup, true);
}

void fixture_close(struct fixture *f)
{
	if (f->fd >= 0)
		close(f->fd);
	server_free(f->s);
	unlink(f->policy);
	unlink(f->audit);
	rmdir(f->dir);
}

void send_msg(int fd, const struct proto_msg *m)
{
	uint8_t buf[PROTO_MSG_MAX];
	ssize_t n = proto_encode(m, buf, sizeof buf);

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(send(fd, buf, (size_t)n, 0), n);
}

void send_ask(struct fixture *f, uint32_t id, int op, int l4, uint16_t port, const char *target,
	      uint8_t flags, int family)
{
	struct proto_msg m;

	memset(&m, 0, sizeof m);
	m.type = PROTO_ASK;
	m.id = id;
	m.u.ask.op = (uint8_t)op;
	m.u.ask.l4 = (uint8_t)l4;
	m.u.ask.port = port;
	m.u.ask.flags = flags;
	m.u.ask.family = (uint8_t)family;
	if (op == PROTO_OP_RESOLVE)
		snprintf(m.u.ask.name, sizeof m.u.ask.name, "%s", target);
	else
		m.u.ask.addr = A(target);
	send_msg(f->fd, &m);
}

int pump_fd(struct fixture *f, struct proto_msg *m, int *fd)
{
	static uint8_t buf[PROTO_MSG_MAX];
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	int got;

	if (fd)
		*fd = -1;
	for (int i = 0; i < 300; i++) {
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
				     .msg_controllen = sizeof ctl.space };
		ssize_t n = recvmsg(f->fd, &mh, MSG_DONTWAIT);

		if (n > 0) {
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

			if (c && c->cmsg_type == SCM_RIGHTS) {
				memcpy(&got, CMSG_DATA(c), sizeof got);
				if (fd)
					*fd = got;
				else
					close(got);
			}
			ck_assert_int_eq(proto_decode(buf, (size_t)n, m), 0);
			return 0;
		}
		if (n == 0)
			return -1;
		ck_assert_int_ge(server_run_once(f->s, 20), 0);
	}
	ck_abort_msg("no answer");
	return -1;
}

int pump(struct fixture *f, struct proto_msg *m)
{
	return pump_fd(f, m, NULL);
}

void ask(struct fixture *f, uint32_t id, int op, int l4, uint16_t port, const char *target,
	 struct proto_msg *ans)
{
	send_ask(f, id, op, l4, port, target, 0, 0);
	ck_assert_int_eq(pump(f, ans), 0);
	ck_assert_int_eq(ans->type, PROTO_VERDICT);
	ck_assert_uint_eq(ans->id, id);
}
