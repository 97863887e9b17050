/* log.c: the broker's diagnostics, one line each on stderr. */
#include <stdarg.h>
#include <stdio.h>

#include "broker.h"

void log_error(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "egress-broker: %s\n", line);
}
