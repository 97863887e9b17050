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

void buf_str(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void buf_uint(struct buf *b, unsigned long long v)
{
	char d[24];
	size_t i = sizeof d;

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	buf_put(b, d + i, sizeof d - i);
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
	const unsigned char *p = (const unsigned char *)s, *run;
	char esc[6];

	if (!s) {
		buf_put(b, "null", 4);
		return;
	}
	buf_put(b, "\"", 1);
	for (;;) {
		for (run = p; *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\'; p++)
			;
		buf_put(b, (const char *)run, (size_t)(p - run)); /* what needs no escape, at once */
		if (!*p)
			break;
		const char *e = NULL;

		switch (*p) {
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
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			buf_put(b, esc, 6);
		}
		p++;
	}
	buf_put(b, "\"", 1);
}

/* Two digits of v at d. */
static void two(char *d, int v)
{
	d[0] = (char)('0' + v / 10 % 10);
	d[1] = (char)('0' + v % 10);
}

void buf_time(struct buf *b, const struct timespec *ts, bool millis)
{
	/* The date and time of the last second asked for: lines come many a
	 * second. Per thread, as any thread may format. */
	static __thread time_t last = -1;
	static __thread char day[20]; /* 2026-11-22T10:00:00 */
	struct tm tm;
	char ms[6] = ".000Z";

	if (ts->tv_sec != last) {
		if (!gmtime_r(&ts->tv_sec, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year < -1900) {
			buf_str(b, "1970-01-01T00:00:00Z");
			return;
		}
		two(day, (tm.tm_year + 1900) / 100);
		two(day + 2, (tm.tm_year + 1900) % 100);
		day[4] = '-';
		two(day + 5, tm.tm_mon + 1);
		day[7] = '-';
		two(day + 8, tm.tm_mday);
		day[10] = 'T';
		two(day + 11, tm.tm_hour);
		day[13] = ':';
		two(day + 14, tm.tm_min);
		day[16] = ':';
		two(day + 17, tm.tm_sec);
		day[19] = 0;
		last = ts->tv_sec;
	}
	buf_put(b, day, 19);
	if (millis) {
		long m = ts->tv_nsec / 1000000;

		ms[1] = (char)('0' + m / 100 % 10);
		two(ms + 2, (int)(m % 100));
		buf_put(b, ms, 5);
	} else {
		buf_put(b, "Z", 1);
	}
}
