/* hostsfile.h: reading a hosts file (/etc/hosts) as libc's "files" source
 * does, for what shim and broker answer without any lookup (hostsfile.c). */
#ifndef EGRESS_HOSTSFILE_H
#define EGRESS_HOSTSFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

#define HOSTSFILE_ETC "/etc/hosts"

/* The names the hosts file at path gives address a, in file order, as
 * consecutive NUL-terminated strings in out (cap bytes; the first is the
 * canonical name, then its aliases, then other lines' names), at most max
 * of them. Returns how many, 0 when none (or the file cannot be read). */
int hostsfile_names(const char *path, const struct proto_addr *a, char *out, size_t cap, int max);

/* True when the hosts file at path names name (case aside) and gives it
 * loopback addresses only (127.0.0.0/8, ::1). */
bool hostsfile_loopback_only(const char *path, const char *name);

#endif
