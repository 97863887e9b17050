/* getnameinfo.c: the getnameinfo(3) hook. A host name for an address would
 * be a reverse (PTR) lookup: DNS traffic the policy cannot judge by name
 * (the query names the address, and whoever holds a reverse zone reads the
 * addresses asked about, a channel for data), and that the broker cannot
 * make for us (the protocol has no reverse lookup). So the host is the
 * name /etc/hosts gives the address (a local file, as libc's "files"
 * source reads it), else answered numerically, as with NI_NUMERICHOST,
 * without any lookup; a caller that insists on a name (NI_NAMEREQD) then
 * gets EAI_NONAME, the answer for an address without one. The service part
 * is libc's (a local database). Other families pass through. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "hostsfile.h"
#include "shim.h"

int shim_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
		     char *serv, socklen_t servlen, int flags)
{
	if (sa != NULL && salen >= (socklen_t)sizeof(sa_family_t) &&
	    (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) && host != NULL &&
	    hostlen > 0 && !(flags & NI_NUMERICHOST)) {
		struct proto_addr a;
		uint16_t port;
		char name[256];

		if (proto_addr_from_sockaddr(sa, sa->sa_family, &a, &port) == 0 &&
		    hostsfile_names(shim_hosts_path, &a, name, sizeof name, 1) == 1) {
			int rc = shim_real.getnameinfo(sa, salen, NULL, 0, serv, servlen,
						       flags | NI_NUMERICHOST);

			if (rc != 0)
				return rc;
			if (strlen(name) >= hostlen)
				return EAI_OVERFLOW;
			strcpy(host, name);
			return 0;
		}
		if (flags & NI_NAMEREQD) {
			if (shim_config.log == SHIM_LOG_ALL)
				shim_log_line("egress: getnameinfo: no reverse lookup is made; "
					      "NI_NAMEREQD gets EAI_NONAME");
			return EAI_NONAME;
		}
		flags |= NI_NUMERICHOST;
	}
	return shim_real.getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
}

SHIM_EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
			    socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
	shim_init();
	return shim_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
}
