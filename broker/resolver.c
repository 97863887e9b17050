/* resolver.c: getaddrinfo() on a small pool of worker threads, results
 * posted back to the single-threaded loop through an eventfd.
 *
 * Why a pool: getaddrinfo() blocks for as long as DNS takes, and the loop
 * must never stall. getaddrinfo_a() would spawn threads internally anyway
 * and reports through signals or per-request threads, awkward in an epoll
 * loop; c-ares would be another dependency and would not read nsswitch.conf
 * the way the programs we mediate do. A fixed pool with a bounded queue is
 * small, predictable and bounded. The workers touch only the jobs they take;
 * all broker state stays in the loop's thread.
 *
 * Fairness: a lookup can hang for as long as the name servers let it (a
 * process asking for names whose servers never answer), so no one holder
 * (a process: every job names the pid it is for) may occupy more than
 * RESOLVER_PER_HOLDER workers at once; its other jobs wait in the queue
 * while other holders' jobs are taken past them. A stuck process then
 * slows only itself. (c-ares would make lookups asynchronous, but it reads
 * resolv.conf and /etc/hosts only, not nsswitch.conf: the broker would
 * resolve differently from the programs it mediates.) */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "hostsfile.h"

#define RESOLVER_THREADS_MAX 16

struct resolver;

struct resolver_worker_arg {
	struct resolver *r;
	int index; /* into holding[] */
};

struct resolver {
	pthread_mutex_t mu;                      /* guards everything below but efd */
	pthread_cond_t cv;                       /* signalled when todo grows or stop */
	struct resolver_job *todo, *todo_tail;   /* FIFO of jobs to resolve */
	unsigned ntodo;                          /* jobs in todo */
	struct resolver_job *done, *done_tail;   /* FIFO of answered jobs */
	bool stop;                               /* workers exit */
	int efd;                                 /* eventfd: readable when done is non-empty */
	resolver_lookup_fn lookup;               /* getaddrinfo or a test stub */
	int nthreads;                            /* workers started */
	uint64_t holding[RESOLVER_THREADS_MAX];  /* each worker's holder now, 0 idle */
	unsigned long lookups;                   /* lookups made (atomic) */
	pthread_t threads[RESOLVER_THREADS_MAX];
	struct resolver_worker_arg args[RESOLVER_THREADS_MAX];
};

int resolver_getaddrinfo(const char *name, int family, struct proto_addr *out, int max, int *n)
{
	struct addrinfo hints, *res, *ai;
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM; /* one entry per address */
	hints.ai_flags = 0;              /* no AI_ADDRCONFIG: answer what the name has */
	rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc == EAI_SYSTEM)
		return EAI_FAIL; /* errno cannot travel back to the program */
	if (rc)
		return rc;
	*n = 0;
	for (ai = res; ai && *n < max; ai = ai->ai_next) {
		struct proto_addr *a = &out[*n];

		memset(a, 0, sizeof *a);
		if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
			a->family = 4;
			memcpy(a->bytes, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
		} else if (ai->ai_family == AF_INET6 &&
			   ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
			a->family = 6;
			memcpy(a->bytes, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		(*n)++;
	}
	freeaddrinfo(res);
	return *n ? 0 : EAI_NONAME;
}

/* Takes the first queued job whose holder has fewer than
 * RESOLVER_PER_HOLDER workers, or returns NULL. Called with mu held. */
static struct resolver_job *take_eligible(struct resolver *r)
{
	struct resolver_job **pp, *prev = NULL;

	for (pp = &r->todo; *pp; prev = *pp, pp = &(*pp)->next) {
		struct resolver_job *job = *pp;
		int held = 0;

		for (int i = 0; i < RESOLVER_THREADS_MAX; i++) /* idle and unstarted: 0 */
			held += r->holding[i] == job->holder + 1;
		if (held >= RESOLVER_PER_HOLDER)
			continue;
		*pp = job->next;
		if (r->todo_tail == job)
			r->todo_tail = prev;
		r->ntodo--;
		return job;
	}
	return NULL;
}

/* A worker: takes jobs until stop, resolves each, posts it to done. */
static void *resolver_worker(void *arg)
{
	struct resolver_worker_arg *wa = arg;
	struct resolver *r = wa->r;
	int me = wa->index;
	struct resolver_job *job;
	uint64_t one = 1;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (!r->stop && !(job = take_eligible(r)))
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		r->holding[me] = job->holder + 1;
		pthread_mutex_unlock(&r->mu);

		job->naddr = 0;
		__atomic_add_fetch(&r->lookups, 1, __ATOMIC_RELAXED);
		job->eai = r->lookup(job->name, job->family, job->addrs, RESOLVER_RAW_MAX,
				     &job->naddr);
		if (job->eai)
			job->naddr = 0;
		job->next = NULL;

		pthread_mutex_lock(&r->mu);
		r->holding[me] = 0;
		if (r->done_tail)
			r->done_tail->next = job;
		else
			r->done = job;
		r->done_tail = job;
		pthread_cond_broadcast(&r->cv); /* a job its holder's cap held back may go */
		pthread_mutex_unlock(&r->mu);
		while (write(r->efd, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
}

struct resolver *resolver_new(int nthreads, resolver_lookup_fn lookup)
{
	struct resolver *r = calloc(1, sizeof *r);
	sigset_t all, old;

	if (!r) {
		log_error("resolver: out of memory");
		return NULL;
	}
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > RESOLVER_THREADS_MAX)
		nthreads = RESOLVER_THREADS_MAX;
	r->lookup = lookup ? lookup : resolver_getaddrinfo;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		log_error("resolver: eventfd: %s", strerror(errno));
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	/* Workers take no signals: they belong to the loop's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < nthreads; i++) {
		int rc;

		r->args[i] = (struct resolver_worker_arg){ .r = r, .index = i };
		rc = pthread_create(&r->threads[i], NULL, resolver_worker, &r->args[i]);

		if (rc) {
			log_error("resolver: pthread_create: %s", strerror(rc));
			break;
		}
		r->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!r->nthreads) {
		resolver_free(r);
		return NULL;
	}
	return r;
}

/* Frees a list of jobs. */
static void resolver_free_list(struct resolver_job *j)
{
	while (j) {
		struct resolver_job *next = j->next;

		resolver_job_free(j);
		j = next;
	}
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < r->nthreads; i++)
		pthread_join(r->threads[i], NULL);
	resolver_free_list(r->todo);
	resolver_free_list(r->done);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	close(r->efd);
	free(r);
}

int resolver_fd(const struct resolver *r)
{
	return r->efd;
}

int resolver_submit(struct resolver *r, struct resolver_job *job)
{
	pthread_mutex_lock(&r->mu);
	if (r->ntodo >= RESOLVER_QUEUE_MAX) {
		pthread_mutex_unlock(&r->mu);
		return -1;
	}
	job->next = NULL;
	if (r->todo_tail)
		r->todo_tail->next = job;
	else
		r->todo = job;
	r->todo_tail = job;
	r->ntodo++;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

struct resolver_job *resolver_take(struct resolver *r)
{
	struct resolver_job *list;
	uint64_t n;

	while (read(r->efd, &n, sizeof n) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&r->mu);
	list = r->done;
	r->done = r->done_tail = NULL;
	pthread_mutex_unlock(&r->mu);
	return list;
}

void resolver_dispatch(struct resolver *r)
{
	struct resolver_job *j = resolver_take(r), *next;

	for (; j; j = next) {
		next = j->next;
		j->done(j->owner, j);
		resolver_job_free(j);
	}
}

void resolver_job_free(struct resolver_job *job)
{
	if (job)
		free(job->data);
	free(job);
}

unsigned long resolver_lookups(const struct resolver *r)
{
	return __atomic_load_n(&r->lookups, __ATOMIC_RELAXED);
}

bool resolver_etc_hosts_loopback(const char *name)
{
	return hostsfile_loopback_only(HOSTSFILE_ETC, name);
}
