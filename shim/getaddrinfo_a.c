/* getaddrinfo_a.c: the getaddrinfo_a(3) hook. libc's own would resolve each
 * request on its threads with its internal getaddrinfo, past the broker.
 * Here every request is judged and resolved through shim_getaddrinfo before
 * getaddrinfo_a returns, in either mode; the requests are then finished, so
 * libc's gai_error reads each one's result (EAI_NONAME for a denied name),
 * gai_suspend returns EAI_ALLDONE and gai_cancel EAI_ALLDONE, as they do for
 * finished requests. GAI_NOWAIT's notification (signal or thread) is given
 * once all are done, as libc gives it. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim.h"

struct notify {
	void (*fn)(union sigval);
	union sigval value;
};

static void *notify_thread(void *arg)
{
	struct notify n = *(struct notify *)arg;

	free(arg);
	n.fn(n.value);
	return NULL;
}

/* Gives sev's notification: a queued signal, or fn(value) on a new detached
 * thread. Returns 0, or EAI_SYSTEM (errno set), EAI_AGAIN or EAI_MEMORY when it
 * cannot be given. */
static int notify(const struct sigevent *sev)
{
	if (sev->sigev_notify == SIGEV_SIGNAL)
		return sigqueue(getpid(), sev->sigev_signo, sev->sigev_value) == 0 ? 0 : EAI_SYSTEM;
	if (sev->sigev_notify == SIGEV_THREAD && sev->sigev_notify_function != NULL) {
		struct notify *n = malloc(sizeof *n);
		pthread_t t;

		if (n == NULL)
			return EAI_MEMORY;
		n->fn = sev->sigev_notify_function;
		n->value = sev->sigev_value;
		/* the caller's attributes, untouched; detached once made */
		if (pthread_create(&t, sev->sigev_notify_attributes, notify_thread, n) != 0) {
			free(n);
			return EAI_AGAIN;
		}
		pthread_detach(t);
	}
	return 0;
}

int shim_getaddrinfo_a(int mode, struct gaicb *list[], int nitems, struct sigevent *sevp)
{
	if (mode != GAI_WAIT && mode != GAI_NOWAIT) {
		errno = EINVAL;
		return EAI_SYSTEM;
	}
	for (int i = 0; i < nitems; i++) {
		struct gaicb *r = list[i];
		if (r == NULL)
			continue;
		r->ar_result = NULL;
		r->__return = shim_getaddrinfo(r->ar_name, r->ar_service, r->ar_request,
					       &r->ar_result);
	}
	if (mode == GAI_NOWAIT && sevp != NULL)
		return notify(sevp);
	return 0;
}

SHIM_EXPORT int getaddrinfo_a(int mode, struct gaicb *list[], int nitems, struct sigevent *sevp)
{
	shim_init();
	return shim_getaddrinfo_a(mode, list, nitems, sevp);
}
