/* fuzz_policy.c: libFuzzer target for the policy loader: the input is a
 * whole policy file, read through inih into the compiled rule set; a file
 * that loads is then asked a few questions so that its indexes are used.
 * The file lives in a memfd, so no disk is touched. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void ask(const struct policy *p, int op, int l4, const char *name, const char *addr,
		uint16_t port)
{
	struct proto_addr a;
	struct policy_request req = { .op = op, .l4 = l4, .name = name, .port = port,
				      .exe = "/usr/bin/curl" };
	struct policy_verdict v;

	if (addr && policy_addr_parse(addr, &a) == 0)
		req.addr = &a;
	policy_decide(p, &req, &v);
	if (!v.rule || (v.action == PROTO_REWRITE && !v.transport))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int fd = -1;
	char path[64], err[POLICY_ERR_MAX];
	struct proto_addr hosts[PROTO_ADDRS_MAX];
	struct policy *p;

	if (fd < 0 && (fd = memfd_create("policy", 0)) < 0)
		return 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, len, 0) != (ssize_t)len)
		return 0;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	p = policy_load(path, err, sizeof err);
	if (!p)
		return 0;
	ask(p, PROTO_OP_RESOLVE, PROTO_L4_ANY, "api.example.com", NULL, 0);
	ask(p, PROTO_OP_CONNECT, PROTO_L4_TCP, "a.github.com", "140.82.112.3", 443);
	ask(p, PROTO_OP_CONNECT, PROTO_L4_TCP, NULL, "169.254.169.254", 80);
	ask(p, PROTO_OP_SEND, PROTO_L4_UDP, NULL, "2001:db8::1", 53);
	ask(p, PROTO_OP_CONNECT, PROTO_L4_TCP, "build-cache.internal", "10.0.0.7", 8000);
	policy_hosts_lookup(p, "build-cache.internal", hosts, PROTO_ADDRS_MAX);
	policy_free(p);
	return 0;
}
