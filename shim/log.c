/* log.c: the shim's lines on the program's stderr, each written whole with
 * one write(2) so that lines of threads and processes do not interleave.
 * Async-signal-safe: the hooks may be called from a signal handler, so the
 * line is formatted here (no stdio, no locale, no allocation). */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static pid_t reported;         /* the process that has said the broker is unreachable */
static pid_t reported_version; /* the process that has said it speaks another version */
static pid_t reported_refused; /* the process that has said the broker socket refuses it */
static pid_t reported_nofd;    /* the process that has said it has no descriptor left */

/* A line being built: text up to cap, the rest cut. */
struct line {
	char *buf;
	size_t len, cap;
};

static void put_char(struct line *l, char ch)
{
	if (l->len < l->cap)
		l->buf[l->len++] = ch;
}

static void put_str(struct line *l, const char *s)
{
	if (s == NULL)
		s = "(null)";
	while (*s)
		put_char(l, *s++);
}

/* Writes v in decimal, with a minus sign when neg. */
static void put_num(struct line *l, unsigned long long v, bool neg)
{
	char digits[24];
	int n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	if (neg)
		put_char(l, '-');
	while (n > 0)
		put_char(l, digits[--n]);
}

static void put_signed(struct line *l, long long v)
{
	put_num(l, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, v < 0);
}

/* Formats fmt into l: %s, %c, %d, %u, %ld, %lu, %zu, %%. Another conversion
 * is copied as it stands, its argument left alone. */
static void put_fmt(struct line *l, const char *fmt, va_list ap)
{
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			put_char(l, *p);
			continue;
		}
		switch (*++p) {
		case 's':
			put_str(l, va_arg(ap, const char *));
			break;
		case 'c':
			put_char(l, (char)va_arg(ap, int));
			break;
		case 'd':
			put_signed(l, va_arg(ap, int));
			break;
		case 'u':
			put_num(l, va_arg(ap, unsigned), false);
			break;
		case 'l':
			if (p[1] == 'd') {
				p++;
				put_signed(l, va_arg(ap, long));
			} else if (p[1] == 'u') {
				p++;
				put_num(l, va_arg(ap, unsigned long), false);
			} else {
				put_str(l, "%l");
			}
			break;
		case 'z':
			if (p[1] == 'u') {
				p++;
				put_num(l, va_arg(ap, size_t), false);
			} else {
				put_str(l, "%z");
			}
			break;
		case '%':
			put_char(l, '%');
			break;
		case 0:
			put_char(l, '%');
			return;
		default:
			put_char(l, '%');
			put_char(l, *p);
			break;
		}
	}
}

void shim_log_line(const char *fmt, ...)
{
	char buf[512];
	struct line l = { .buf = buf, .cap = sizeof buf - 1 };
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	put_fmt(&l, fmt, ap);
	va_end(ap);
	buf[l.len++] = '\n';
	if (write(STDERR_FILENO, buf, l.len) < 0) {
		/* nothing to do: stderr is the program's, and may be closed */
	}
	errno = saved;
}

/* True the first time the calling process asks with flag. */
static bool first_in_process(pid_t *flag)
{
	pid_t self = getpid();

	return __atomic_exchange_n(flag, self, __ATOMIC_RELAXED) != self;
}

/* The text of the errnos these lines name, without strerror (which may
 * translate, and is not async-signal-safe). */
static const char *err_text(int err)
{
	switch (err) {
	case EMFILE: return "Too many open files";
	case ENFILE: return "Too many open files in system";
	case EACCES: return "Permission denied";
	case EPERM: return "Operation not permitted";
	default: return "error";
	}
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
	if (err == EACCES || err == EPERM) {
		if (first_in_process(&reported_refused))
			shim_log_line("egress: broker at %s refused this process (%s, uid %u); "
				      "%s denied",
				      shim_config.socket_path, err_text(err), (unsigned)getuid(),
				      what);
		return false;
	}
	if (err == EMFILE || err == ENFILE) {
		if (first_in_process(&reported_nofd))
			shim_log_line("egress: no free descriptor to ask the broker (%s); %s denied",
				      err_text(err), what);
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
