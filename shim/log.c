/* log.c: the shim's lines on the program's stderr, each written whole with
 * one write(2) so that lines of threads and processes do not interleave. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "shim.h"

static pid_t reported; /* the process that has said the broker is unreachable */

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

void shim_log_unreachable(const char *what)
{
	pid_t self = getpid();

	if (__atomic_exchange_n(&reported, self, __ATOMIC_RELAXED) == self)
		return;
	if (shim_config.fail_open)
		shim_log_line("egress: broker unreachable at %s; %s ALLOWED UNCHECKED (EGRESS_FAIL=open)",
			      shim_config.socket_path, what);
	else
		shim_log_line("egress: broker unreachable at %s; %s denied", shim_config.socket_path,
			      what);
}
