/* init.c: the constructor, the table of real libc symbols and the settings
 * read from the environment. No threads and no broker contact here. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "shim.h"

struct shim_real shim_real;
struct shim_config shim_config;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Returns the next definition of name after this library; a missing symbol
 * or one that resolves to our own hook stops the program at start. */
static void *real_symbol(const char *name, void *self)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL || p == self) {
		shim_log_line("egress: cannot find the real %s: %s", name,
			      p ? "it resolves to the hook" : dlerror());
		abort();
	}
	return p;
}

static void read_config(void)
{
	const char *s;

	s = getenv("EGRESS_SOCKET");
	if (s == NULL || *s == 0 || strlen(s) >= sizeof shim_config.socket_path)
		s = PROTO_DEFAULT_SOCKET;
	strcpy(shim_config.socket_path, s);

	shim_config.timeout_ms = SHIM_DEFAULT_TIMEOUT_MS;
	s = getenv("EGRESS_TIMEOUT_MS");
	if (s != NULL && *s != 0) {
		char *end;
		long v = strtol(s, &end, 10);
		if (*end == 0 && v > 0 && v <= 600000)
			shim_config.timeout_ms = (int)v;
	}

	shim_config.log = SHIM_LOG_DENY;
	s = getenv("EGRESS_LOG");
	if (s != NULL && strcasecmp(s, "off") == 0)
		shim_config.log = SHIM_LOG_OFF;
	else if (s != NULL && strcasecmp(s, "all") == 0)
		shim_config.log = SHIM_LOG_ALL;

	s = getenv("EGRESS_FAIL");
	shim_config.fail_open = s != NULL && strcasecmp(s, "open") == 0;
	if (shim_config.fail_open)
		shim_log_line("egress: WARNING: EGRESS_FAIL=open is for debugging only: "
			      "attempts are ALLOWED UNCHECKED while the broker at %s is unreachable",
			      shim_config.socket_path);
}

static void init_once_fn(void)
{
	shim_real.connect = real_symbol("connect", (void *)connect);
	shim_real.getaddrinfo = real_symbol("getaddrinfo", (void *)getaddrinfo);
	shim_real.freeaddrinfo = real_symbol("freeaddrinfo", (void *)freeaddrinfo);
	shim_real.sendto = real_symbol("sendto", (void *)sendto);
	shim_real.send = real_symbol("send", (void *)send);
	shim_real.sendmsg = real_symbol("sendmsg", (void *)sendmsg);
	shim_real.sendmmsg = real_symbol("sendmmsg", (void *)sendmmsg);
	shim_real.getpeername = real_symbol("getpeername", (void *)getpeername);
	shim_real.getsockopt = real_symbol("getsockopt", (void *)getsockopt);
	shim_real.recvfrom = real_symbol("recvfrom", (void *)recvfrom);
	shim_real.recvmsg = real_symbol("recvmsg", (void *)recvmsg);
	shim_real.recvmmsg = real_symbol("recvmmsg", (void *)recvmmsg);
	shim_real.getnameinfo = real_symbol("getnameinfo", (void *)getnameinfo);
	read_config();
}

void shim_init(void)
{
	pthread_once(&init_once, init_once_fn);
}

__attribute__((constructor)) static void shim_constructor(void)
{
	shim_init();
}
