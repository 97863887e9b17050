/* log.c: the broker's diagnostics, one line each on stderr, by level:
 * errors (something failed), warnings (a client or file misbehaved and was
 * dealt with), and information (what the broker did: listening, reloaded). */
#include <stdarg.h>
#include <stdio.h>

#include "broker.h"

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof line, fmt, ap);
	fprintf(stderr, "egress-broker: %s%s\n", level, line);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warning: ", fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}
