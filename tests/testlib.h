/* testlib.h: helpers shared by the broker-side Check suites: A() and
 * all_dead() inline (usable by any suite), and in testlib.c temporary
 * files, the stub DNS and the server fixture (check_egress only: they link
 * the broker). */
#ifndef EGRESS_TESTLIB_H
#define EGRESS_TESTLIB_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "policy.h"
#include "../broker/broker.h"

/* The numeric address s, which must parse. */
static inline struct proto_addr A(const char *s)
{
	struct proto_addr a;

	memset(&a, 0, sizeof a);
	ck_assert_int_eq(policy_addr_parse(s, &a), 0);
	return a;
}

/* A liveness check for garbage collection: every process has gone. */
static inline bool all_dead(pid_t pid)
{
	(void)pid;
	return false;
}

/* ------------------------------------------------------------------ files */

/* Creates a private temporary directory; its path stays in dir. */
void tmpdir(char dir[64]);
/* Writes text to dir/name and returns the path in out. */
void write_file(const char *dir, const char *name, const char *text, char *out, size_t cap);
/* Reads the whole file at path into buf; returns its length. */
size_t read_file(const char *path, char *buf, size_t cap);

/* -------------------------------------------------------------------- dns */

/* Test DNS: fixed answers, no network. pub.test (IPv4 and IPv6, with
 * duplicates and a mapped copy), priv.test, mixed.test, slow.test (after
 * 200 ms); fail.test fails with EAI_AGAIN, anything else EAI_NONAME. */
int stub_lookup(const char *name, int family, struct proto_addr *out, int max, int *n);

/* ---------------------------------------------------------------- fixture */

/* A broker without a listening socket, and one client on a socketpair. */
struct fixture {
	char dir[64];
	char policy[128]; /* dir/p.ini */
	char audit[128];  /* dir/audit.jsonl */
	struct server *s;
	int fd; /* our end; -1 once the test closed it */
};

/* Writes policy_text to a new temporary directory and starts a server on it
 * that resolves with lookup and shows the socket "/tmp/not-listening.sock"
 * without binding it; adds one client whose other end is f->fd. */
void fixture_open(struct fixture *f, const char *policy_text, resolver_lookup_fn lookup);
/* fixture_open for a broker started with --isolate. */
void fixture_open_isolated(struct fixture *f, const char *policy_text, resolver_lookup_fn lookup);
/* Frees the server and removes the fixture's files. */
void fixture_close(struct fixture *f);
/* Encodes m and sends it on fd as one message. */
void send_msg(int fd, const struct proto_msg *m);
/* Sends an ASK for target (a name for PROTO_OP_RESOLVE, else an address). */
void send_ask(struct fixture *f, uint32_t id, int op, int l4, uint16_t port, const char *target,
	      uint8_t flags, int family);
/* Runs the loop until a message arrives on f->fd. Returns 0 with it in m,
 * and in *fd the descriptor it carried or -1 (fd NULL: a carried descriptor
 * is closed); or -1 when the broker closed f->fd. */
int pump_fd(struct fixture *f, struct proto_msg *m, int *fd);
/* pump_fd without a descriptor. */
int pump(struct fixture *f, struct proto_msg *m);
/* Sends an ASK (no flags, any family) and waits for its verdict in ans. */
void ask(struct fixture *f, uint32_t id, int op, int l4, uint16_t port, const char *target,
	 struct proto_msg *ans);

#endif
