/* refuse.c: libc entry points that connect or send from inside libc, by
 * its internal __connect/__sendto, where no hook sees them: the BSD
 * remote-execution helpers (rcmd, rexec, and ruserok and iruserok, which
 * look up every host of .rhosts in DNS) and the Sun RPC client helpers
 * (compat symbols of glibc, still called by old binaries and by glibc's
 * libnsl.so.1 for NIS). Mediating them would mean reimplementing them over
 * the hooked calls; they are legacy, unauthenticated or plaintext
 * protocols, so each is refused: it fails as its contract says, with errno
 * EPERM and one line on stderr ("egress: rcmd is not mediated; denied").
 * libtirpc, the RPC library programs use today, calls connect and sendto
 * through the hooks and needs nothing here. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/time.h>

#include "shim.h"

#define RPC_CANTSEND 3 /* enum clnt_stat: "failure in sending call" */

/* Says fn is refused, sets errno EPERM. */
static void refuse(const char *fn)
{
	if (shim_config.log != SHIM_LOG_OFF)
		shim_log_line("egress: %s is not mediated; denied", fn);
	errno = EPERM;
}

/* ---- rcmd and friends (<netdb.h>): -1 */

SHIM_EXPORT int rcmd(char **ahost, unsigned short rport, const char *locuser, const char *remuser,
		     const char *cmd, int *fd2p)
{
	(void)ahost, (void)rport, (void)locuser, (void)remuser, (void)cmd, (void)fd2p;
	shim_init();
	refuse("rcmd");
	return -1;
}

SHIM_EXPORT int rcmd_af(char **ahost, unsigned short rport, const char *locuser,
			const char *remuser, const char *cmd, int *fd2p, sa_family_t af)
{
	(void)ahost, (void)rport, (void)locuser, (void)remuser, (void)cmd, (void)fd2p, (void)af;
	shim_init();
	refuse("rcmd_af");
	return -1;
}

SHIM_EXPORT int rexec(char **ahost, int rport, const char *name, const char *pass, const char *cmd,
		      int *fd2p)
{
	(void)ahost, (void)rport, (void)name, (void)pass, (void)cmd, (void)fd2p;
	shim_init();
	refuse("rexec");
	return -1;
}

SHIM_EXPORT int rexec_af(char **ahost, int rport, const char *name, const char *pass,
			 const char *cmd, int *fd2p, sa_family_t af)
{
	(void)ahost, (void)rport, (void)name, (void)pass, (void)cmd, (void)fd2p, (void)af;
	shim_init();
	refuse("rexec_af");
	return -1;
}

/* -1: "not permitted", the safe answer of an access check too. */
SHIM_EXPORT int ruserok(const char *rhost, int suser, const char *remuser, const char *locuser)
{
	(void)rhost, (void)suser, (void)remuser, (void)locuser;
	shim_init();
	refuse("ruserok");
	return -1;
}

SHIM_EXPORT int ruserok_af(const char *rhost, int suser, const char *remuser, const char *locuser,
			   sa_family_t af)
{
	(void)rhost, (void)suser, (void)remuser, (void)locuser, (void)af;
	shim_init();
	refuse("ruserok_af");
	return -1;
}

SHIM_EXPORT int iruserok(uint32_t raddr, int suser, const char *remuser, const char *locuser)
{
	(void)raddr, (void)suser, (void)remuser, (void)locuser;
	shim_init();
	refuse("iruserok");
	return -1;
}

SHIM_EXPORT int iruserok_af(const void *raddr, int suser, const char *remuser, const char *locuser,
			    sa_family_t af)
{
	(void)raddr, (void)suser, (void)remuser, (void)locuser, (void)af;
	shim_init();
	refuse("iruserok_af");
	return -1;
}

/* ---- Sun RPC (compat symbols; glibc no longer ships <rpc/rpc.h>, so the
 * prototypes are written here with the ABI's types: CLIENT *, AUTH * and
 * xdrproc_t as void *, u_long as unsigned long). Clients: NULL; calls:
 * RPC_CANTSEND; port lookups: 0; pmap_set/unset: FALSE; rtime: -1. */

void *clnt_create(const char *host, unsigned long prog, unsigned long vers, const char *proto);
void *clnttcp_create(struct sockaddr_in *raddr, unsigned long prog, unsigned long vers, int *sockp,
		     unsigned sendsz, unsigned recvsz);
void *clntudp_create(struct sockaddr_in *raddr, unsigned long prog, unsigned long vers,
		     struct timeval wait, int *sockp);
void *clntudp_bufcreate(struct sockaddr_in *raddr, unsigned long prog, unsigned long vers,
			struct timeval wait, int *sockp, unsigned sendsz, unsigned recvsz);
void *__libc_clntudp_bufcreate(struct sockaddr_in *raddr, unsigned long prog, unsigned long vers,
			       struct timeval wait, int *sockp, unsigned sendsz, unsigned recvsz,
			       int flags);
int callrpc(const char *host, unsigned long prog, unsigned long vers, unsigned long proc,
	    void *inproc, const char *in, void *outproc, char *out);
int clnt_broadcast(unsigned long prog, unsigned long vers, unsigned long proc, void *xargs,
		   void *argsp, void *xresults, void *resultsp, void *eachresult);
int pmap_rmtcall(struct sockaddr_in *addr, unsigned long prog, unsigned long vers,
		 unsigned long proc, void *xdrargs, void *argsp, void *xdrres, void *resp,
		 struct timeval tout, unsigned long *port_ptr);
unsigned short pmap_getport(struct sockaddr_in *addr, unsigned long prog, unsigned long vers,
			    unsigned protocol);
unsigned short __libc_rpc_getport(struct sockaddr_in *addr, unsigned long prog,
				  unsigned long vers, unsigned protocol, time_t timeout_sec,
				  time_t tottimeout_sec);
void *pmap_getmaps(struct sockaddr_in *addr);
int pmap_set(unsigned long prog, unsigned long vers, int protocol, unsigned short port);
int pmap_unset(unsigned long prog, unsigned long vers);
int getrpcport(const char *host, unsigned long prog, unsigned long vers, unsigned proto);
int rtime(struct sockaddr_in *addrp, void *timep, void *timeout);
void *authdes_create(const char *servername, unsigned window, struct sockaddr *syncaddr,
		     void *ckey);
void *authdes_pk_create(const char *servername, void *pkey, unsigned window,
			struct sockaddr *syncaddr, void *ckey);

SHIM_EXPORT void *clnt_create(const char *host, unsigned long prog, unsigned long vers,
			      const char *proto)
{
	(void)host, (void)prog, (void)vers, (void)proto;
	shim_init();
	refuse("clnt_create");
	return NULL;
}

SHIM_EXPORT void *clnttcp_create(struct sockaddr_in *raddr, unsigned long prog,
				 unsigned long vers, int *sockp, unsigned sendsz, unsigned recvsz)
{
	(void)raddr, (void)prog, (void)vers, (void)sockp, (void)sendsz, (void)recvsz;
	shim_init();
	refuse("clnttcp_create");
	return NULL;
}

SHIM_EXPORT void *clntudp_create(struct sockaddr_in *raddr, unsigned long prog,
				 unsigned long vers, struct timeval wait, int *sockp)
{
	(void)raddr, (void)prog, (void)vers, (void)wait, (void)sockp;
	shim_init();
	refuse("clntudp_create");
	return NULL;
}

SHIM_EXPORT void *clntudp_bufcreate(struct sockaddr_in *raddr, unsigned long prog,
				    unsigned long vers, struct timeval wait, int *sockp,
				    unsigned sendsz, unsigned recvsz)
{
	(void)raddr, (void)prog, (void)vers, (void)wait, (void)sockp, (void)sendsz, (void)recvsz;
	shim_init();
	refuse("clntudp_bufcreate");
	return NULL;
}

/* GLIBC_PRIVATE, called by glibc's libnsl.so.1 (NIS) through its PLT. */
SHIM_EXPORT void *__libc_clntudp_bufcreate(struct sockaddr_in *raddr, unsigned long prog,
					   unsigned long vers, struct timeval wait, int *sockp,
					   unsigned sendsz, unsigned recvsz, int flags)
{
	(void)raddr, (void)prog, (void)vers, (void)wait, (void)sockp, (void)sendsz, (void)recvsz,
		(void)flags;
	shim_init();
	refuse("clntudp_bufcreate");
	return NULL;
}

SHIM_EXPORT int callrpc(const char *host, unsigned long prog, unsigned long vers,
			unsigned long proc, void *inproc, const char *in, void *outproc, char *out)
{
	(void)host, (void)prog, (void)vers, (void)proc, (void)inproc, (void)in, (void)outproc,
		(void)out;
	shim_init();
	refuse("callrpc");
	return RPC_CANTSEND;
}

SHIM_EXPORT int clnt_broadcast(unsigned long prog, unsigned long vers, unsigned long proc,
			       void *xargs, void *argsp, void *xresults, void *resultsp,
			       void *eachresult)
{
	(void)prog, (void)vers, (void)proc, (void)xargs, (void)argsp, (void)xresults,
		(void)resultsp, (void)eachresult;
	shim_init();
	refuse("clnt_broadcast");
	return RPC_CANTSEND;
}

SHIM_EXPORT int pmap_rmtcall(struct sockaddr_in *addr, unsigned long prog, unsigned long vers,
			     unsigned long proc, void *xdrargs, void *argsp, void *xdrres,
			     void *resp, struct timeval tout, unsigned long *port_ptr)
{
	(void)addr, (void)prog, (void)vers, (void)proc, (void)xdrargs, (void)argsp, (void)xdrres,
		(void)resp, (void)tout, (void)port_ptr;
	shim_init();
	refuse("pmap_rmtcall");
	return RPC_CANTSEND;
}

SHIM_EXPORT unsigned short pmap_getport(struct sockaddr_in *addr, unsigned long prog,
					unsigned long vers, unsigned protocol)
{
	(void)addr, (void)prog, (void)vers, (void)protocol;
	shim_init();
	refuse("pmap_getport");
	return 0;
}

/* GLIBC_PRIVATE, called by libnsl.so.1 through its PLT. */
SHIM_EXPORT unsigned short __libc_rpc_getport(struct sockaddr_in *addr, unsigned long prog,
					      unsigned long vers, unsigned protocol,
					      time_t timeout_sec, time_t tottimeout_sec)
{
	(void)addr, (void)prog, (void)vers, (void)protocol, (void)timeout_sec, (void)tottimeout_sec;
	shim_init();
	refuse("pmap_getport");
	return 0;
}

SHIM_EXPORT void *pmap_getmaps(struct sockaddr_in *addr)
{
	(void)addr;
	shim_init();
	refuse("pmap_getmaps");
	return NULL;
}

SHIM_EXPORT int pmap_set(unsigned long prog, unsigned long vers, int protocol, unsigned short port)
{
	(void)prog, (void)vers, (void)protocol, (void)port;
	shim_init();
	refuse("pmap_set");
	return 0;
}

SHIM_EXPORT int pmap_unset(unsigned long prog, unsigned long vers)
{
	(void)prog, (void)vers;
	shim_init();
	refuse("pmap_unset");
	return 0;
}

SHIM_EXPORT int getrpcport(const char *host, unsigned long prog, unsigned long vers,
			   unsigned proto)
{
	(void)host, (void)prog, (void)vers, (void)proto;
	shim_init();
	refuse("getrpcport");
	return 0;
}

SHIM_EXPORT int rtime(struct sockaddr_in *addrp, void *timep, void *timeout)
{
	(void)addrp, (void)timep, (void)timeout;
	shim_init();
	refuse("rtime");
	return -1;
}

/* DES authentication synchronises clocks with rtime() to the server. */
SHIM_EXPORT void *authdes_create(const char *servername, unsigned window,
				 struct sockaddr *syncaddr, void *ckey)
{
	(void)servername, (void)window, (void)syncaddr, (void)ckey;
	shim_init();
	refuse("authdes_create");
	return NULL;
}

SHIM_EXPORT void *authdes_pk_create(const char *servername, void *pkey, unsigned window,
				    struct sockaddr *syncaddr, void *ckey)
{
	(void)servername, (void)pkey, (void)window, (void)syncaddr, (void)ckey;
	shim_init();
	refuse("authdes_pk_create");
	return NULL;
}
