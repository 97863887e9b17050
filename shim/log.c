/* log.c: the shim's lines on the program's stderr, each written whole with
 * one write(2) so that lines of threads and processes do not interleave. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "shim.h"

static pid_t reported;        /* the process that has said the broker is unreachable */
static pid_t reported_version; /* the process that has said it speaks another version */

void shim_log_line(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n, saved = errno;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto out;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nothing to do: stderr is the program's, and may be closed */
	}
out:
	errno = saved;
}

/* True the first time the calling process asks with flag. */
static bool first_in_process(pid_t *flag)
{
	pid_t self = getpid();

	return __atomic_exchange_n(flag, self, __ATOMIC_RELAXED) != self;
}

bool shim_log_unanswered(const char *what, int err)
{
	if (err == EPROTONOSUPPORT) {
		if (first_in_process(&reported_version))
			shim_log_line("egress: broker at %s speaks another protocol version "
				      "(shim v%d); %s denied",
				      shim_config.socket_path, PROTO_VERSION, what);
		return false;
	}
	if (first_in_process(&reported)) {
		if (shim_config.fail_open)
			shim_log_line("egress: broker unreachable at %s; %s ALLOWED UNCHECKED "
				      "(EGRESS_FAIL=open)",
				      shim_config.socket_path, what);
		else
			shim_log_line("egress: broker unreachable at %s; %s denied",
				      shim_config.socket_path, what);
	}
	return shim_config.fail_open;
}
