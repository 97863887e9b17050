/* errno.c: errno values by name, for the policy file and the audit log. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define E(x) { x, #x }
static const struct {
	int value;
	const char *name;
} errnos[] = {
	E(EPERM),        E(EACCES),       E(ECONNREFUSED), E(ECONNRESET),
	E(ECONNABORTED), E(ENETUNREACH),  E(EHOSTUNREACH), E(EHOSTDOWN),
	E(ETIMEDOUT),    E(EADDRNOTAVAIL), E(EADDRINUSE),  E(ENETDOWN),
	E(ENETRESET),    E(EAFNOSUPPORT), E(EPROTO),       E(EPROTONOSUPPORT),
	E(EPROTOTYPE),   E(EOPNOTSUPP),   E(EINVAL),       E(ENOENT),
	E(EAGAIN),       E(EINTR),        E(EIO),          E(ENOBUFS),
	E(ENOMEM),       E(EMSGSIZE),     E(ENOTCONN),     E(EISCONN),
	E(EALREADY),     E(EINPROGRESS),  E(EPIPE),        E(ENOSYS),
};
#undef E

#define ERRNO_MAX 4095 /* Linux reserves -4095..-1 for errno values */

int policy_errno_parse(const char *s)
{
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		v = strtol(s, &end, 10);
		if (*end || v < 1 || v > ERRNO_MAX)
			return -1;
		return (int)v;
	}
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (strcmp(s, errnos[i].name) == 0)
			return errnos[i].value;
	return -1;
}

const char *policy_errno_name(int e)
{
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (errnos[i].value == e)
			return errnos[i].name;
	return "E?";
}
