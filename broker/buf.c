/* buf.c: bounded text building for status answers and audit lines,
 * including JSON string escaping and timestamps. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"

void buf_init(struct buf *b, char *mem, size_t cap)
{
	b->p = mem;
	b->cap = cap;
	b->len = 0;
	b->overflow = cap == 0;
	if (cap)
		mem[0] = 0;
}

/* Appends n bytes of s; on overflow keeps what fits and marks the buffer. */
static void buf_put(struct buf *b, const char *s, size_t n)
{
	size_t room;

	if (b->cap == 0)
		return;
	room = b->cap - 1 - b->len;
	if (n > room) {
		n = room;
		b->overflow = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (b->cap == 0)
		return;
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->p[b->len] = 0;
		b->overflow = true;
	} else if ((size_t)n >= room) {
		b->len = b->cap - 1;
		b->overflow = true;
	} else {
		b->len += (size_t)n;
	}
}

void buf_json_str(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6];

	if (!s) {
		buf_put(b, "null", 4);
		return;
	}
	buf_put(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		const char *e = NULL;

		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		}
		if (e) {
			buf_put(b, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_put(b, esc, 6);
		} else {
			buf_put(b, (const char *)p, 1);
		}
	}
	buf_put(b, "\"", 1);
}

void buf_time(struct buf *b, const struct timespec *ts, bool millis)
{
	struct tm tm;
	char s[32];

	if (!gmtime_r(&ts->tv_sec, &tm)) {
		buf_printf(b, "1970-01-01T00:00:00Z");
		return;
	}
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (millis)
		buf_printf(b, "%s.%03ldZ", s, ts->tv_nsec / 1000000);
	else
		buf_printf(b, "%sZ", s);
}
