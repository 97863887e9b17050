/* ask.c: the decision procedure. One request (an ASK, or a destination
 * given to `egress-broker check`) and the policy in, one result out: the
 * verdict, the rule, and what the caller must do next (answer, resolve a
 * name, or hand the connect to the transport). No I/O: the daemon sends and
 * records what this decides, and `check` prints it, so the two can never
 * disagree. The only state it touches is the per-process address maps it is
 * given (which names a process resolved, which synthetic addresses it got). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"

/* What a connect to a synthetic address that is allowed again becomes: a
 * rewrite through the broker's own connection, since the address itself
 * leads nowhere. */
static const struct policy_transport ask_direct = { .kind = POLICY_DIRECT };

/* Starts r for a request of op/l4 to port. */
static void result_init(struct ask_result *r, int op, int l4, uint16_t port)
{
	memset(r, 0, sizeof *r);
	r->next = ASK_ANSWER;
	r->op = op;
	r->l4 = l4;
	r->port = port;
}

/* Sets r to a final answer: recorded as action, answered as answer with
 * err (an errno, or an EAI_* code for a resolve). */
static void result_set(struct ask_result *r, int action, int answer, int err, const char *rule)
{
	r->next = ASK_ANSWER;
	r->action = action;
	r->answer = answer;
	r->err = err;
	r->rule = rule;
	if (!err)
		r->err_name = NULL;
	else if (r->op == PROTO_OP_RESOLVE)
		r->err_name = audit_eai_name(err);
	else
		r->err_name = policy_errno_name(err);
}

/* Zeroes the unused bytes of an IPv4 address, so addresses compare whole. */
static void addr_clean(struct proto_addr *a)
{
	if (a->family == 4)
		memset(a->bytes + 4, 0, 12);
}

/* ---------------------------------------------------------------- resolve */

/* True for "localhost" and names under it (RFC 6761: always loopback). */
static bool name_localhost(const char *name)
{
	size_t n = strlen(name);

	return strcmp(name, "localhost") == 0 ||
	       (n > 10 && strcmp(name + n - 10, ".localhost") == 0);
}

/* True when a rewritten name is left to its transport to resolve (a
 * proxy's remote DNS), so that the lookup answers a synthetic address.
 * The direct and relay transports reach the destination from here: their
 * names are looked up now, as a direct program's would be, and a name that
 * does not exist fails now. A lookup for binding (q's PROTO_ASK_PASSIVE)
 * and the names of loopback (localhost, and a name the hosts file gives
 * loopback addresses only) are for this machine: always looked up. */
static bool deferred(const struct ask_state *st, const struct policy_transport *t,
		     const struct proto_ask *q, const char *name)
{
	return t && (t->kind == POLICY_HTTP || t->kind == POLICY_SOCKS5) &&
	       !(q->flags & PROTO_ASK_PASSIVE) && !name_localhost(name) &&
	       !(st->loopback_name && st->loopback_name(name));
}

void ask_resolve(const struct ask_state *st, const struct ask_who *w, const struct proto_ask *q,
		 struct ask_result *r)
{
	struct proto_addr hosts[PROTO_ADDRS_MAX];
	struct policy_request req = { .op = PROTO_OP_RESOLVE, .l4 = q->l4, .port = q->port,
				      .exe = w->exe };
	struct policy_verdict v;
	int n, nf = 0;

	result_init(r, PROTO_OP_RESOLVE, q->l4, q->port);
	r->family = q->family;
	r->flags = q->flags;
	if (policy_name_normalise(q->name, r->name, sizeof r->name) < 0) {
		snprintf(r->name, sizeof r->name, "%s", q->name);
		result_set(r, PROTO_DENY, PROTO_DENY, EAI_NONAME, "invalid-name");
		return;
	}
	req.name = r->name;
	policy_decide(st->policy, &req, &v);
	r->rule = v.rule;
	if (v.action == PROTO_DENY) {
		result_set(r, PROTO_DENY, PROTO_DENY, EAI_NONAME, v.rule);
		return;
	}
	r->action = v.action;
	r->transport = v.action == PROTO_REWRITE ? v.transport : NULL;
	if (v.action == PROTO_REWRITE && deferred(st, v.transport, q, r->name)) {
		/* Never looked up here: the proxy resolves it. The answer is the
		 * name's synthetic address, which the connect maps back. An
		 * IPv6-only lookup gets none, so that the program falls back to
		 * IPv4. */
		if (q->family == 6) {
			result_set(r, PROTO_REWRITE, PROTO_ALLOW, EAI_NODATA, v.rule);
			return;
		}
		if (st->synth && synth_map(st->synth, w->pid, r->name, &r->addrs[0]) < 0) {
			r->why = "too many rewritten names in one process";
			result_set(r, PROTO_DENY, PROTO_DENY, EAI_FAIL, v.rule);
			return;
		}
		r->naddr = st->synth ? 1 : 0;
		r->addr = r->addrs[0];
		r->has_addr = st->synth != NULL;
		result_set(r, PROTO_REWRITE, PROTO_ALLOW, 0, v.rule);
		return;
	}
	n = policy_hosts_lookup(st->policy, r->name, hosts, PROTO_ADDRS_MAX);
	if (n <= 0) {
		r->next = ASK_LOOKUP; /* the caller resolves, then ask_resolved() */
		return;
	}
	/* The operator's static name: never sent to DNS. */
	for (int i = 0; i < n; i++) {
		policy_addr_canonical(&hosts[i]);
		if (!q->family || hosts[i].family == q->family)
			hosts[nf++] = hosts[i];
	}
	ask_resolved(st, w, r, hosts, nf, true, nf ? 0 : EAI_NONAME);
}

void ask_resolved(const struct ask_state *st, const struct ask_who *w, struct ask_result *r,
		  const struct proto_addr *raw, int nraw, bool from_hosts, int eai)
{
	const char *allow_rule = NULL, *deny_rule = NULL;
	int action = PROTO_ALLOW;
	struct policy_request req = {
		.op = PROTO_OP_RESOLVE, .l4 = r->l4, .name = r->name, .port = r->port,
		.exe = w->exe, .from_hosts = from_hosts,
	};
	struct policy_verdict v;

	r->from_hosts = from_hosts;
	r->naddr = 0;
	if (eai) {
		result_set(r, r->action ? r->action : PROTO_ALLOW, PROTO_ALLOW, eai, r->rule);
		return;
	}
	/* Each address is judged with the name; the allowed ones are kept. */
	for (int i = 0; i < nraw && r->naddr < PROTO_ADDRS_MAX; i++) {
		struct proto_addr addr = raw[i];
		bool dup = false;

		policy_addr_canonical(&addr);
		addr_clean(&addr);
		for (int j = 0; j < r->naddr && !dup; j++)
			dup = memcmp(&r->addrs[j], &addr, sizeof addr) == 0;
		if (dup)
			continue;
		req.addr = &addr;
		policy_decide(st->policy, &req, &v);
		if (r->flags & PROTO_ASK_PASSIVE) /* for binding: a connect would be judged anew */
			v.action = r->action, v.rule = r->rule, v.transport = r->transport;
		if (v.action == PROTO_DENY) {
			if (!deny_rule)
				deny_rule = v.rule;
			continue;
		}
		if (!allow_rule) {
			allow_rule = v.rule;
			action = v.action; /* a rewritten name's addresses are rewritten */
			r->transport = v.action == PROTO_REWRITE ? v.transport : NULL;
		}
		r->addrs[r->naddr++] = addr;
	}
	if (!r->naddr) {
		result_set(r, PROTO_DENY, PROTO_DENY, EAI_NONAME, deny_rule ? deny_rule : r->rule);
		return;
	}
	if (st->addrmap)
		for (int i = 0; i < r->naddr; i++)
			addrmap_record(st->addrmap, w->pid, &r->addrs[i], r->name, from_hosts,
				       st->now);
	result_set(r, action, PROTO_ALLOW, 0, allow_rule);
}

/* ------------------------------------------------------- connect and send */

/* Decides req for r (an address or a name, attributed) and fills in what
 * follows: an allow, a denial with its errno, or a rewrite for the
 * transport. A rewritten datagram is denied: the transports carry TCP
 * only. A synthetic address allowed again (the policy changed since its
 * name was rewritten) still leads only to its name, so the broker connects
 * to it itself. */
static void judge(const struct ask_state *st, struct policy_request *req, bool synthetic,
		  struct ask_result *r)
{
	struct policy_verdict v;
	bool by_broker;

	policy_decide(st->policy, req, &v);
	/* an allowed synthetic address is recorded as allowed, and connected
	 * by the broker all the same */
	by_broker = synthetic && v.action == PROTO_ALLOW;
	if (by_broker) {
		v.transport = &ask_direct;
		v.limit = 0;
	}
	if (v.action == PROTO_REWRITE && !synthetic && v.transport &&
	    v.transport->kind == POLICY_DIRECT && !v.limit) {
		/* The direct transport reaches a real address from where the
		 * program is: its own socket makes the connection (or sends the
		 * datagram), so that nothing tells it from a direct one: its
		 * bound address, its family, the kernel's own errors. */
		r->transport = v.transport;
		result_set(r, PROTO_REWRITE, PROTO_ALLOW, 0, v.rule);
		r->ttl_ms = policy_ttl_ms(st->policy);
		return;
	}
	if (v.action == PROTO_REWRITE && r->op == PROTO_OP_SEND && r->l4 == PROTO_L4_UDP &&
	    v.transport &&
	    ((v.transport->kind == POLICY_RELAY && !synthetic) ||
	     (v.transport->kind == POLICY_SOCKS5 && (!synthetic || r->name[0])))) {
		/* the relay carries datagrams too, and a SOCKS5 proxy (UDP
		 * ASSOCIATE), counted, to the rule's limit */
		r->transport = v.transport;
		result_set(r, PROTO_REWRITE, PROTO_ALLOW, 0, v.rule);
		r->next = ASK_DGRAM;
		r->limit = v.limit;
		r->ttl_ms = policy_ttl_ms(st->policy);
		r->timeout_ms = policy_timeout_ms(st->policy);
		return;
	}
	if (v.action == PROTO_REWRITE || by_broker) {
		r->transport = v.transport;
		if (r->op != PROTO_OP_CONNECT || r->l4 != PROTO_L4_TCP) {
			r->why = by_broker ? "a synthetic address carries TCP only"
				 : v.transport && v.transport->kind == POLICY_HTTP
					 ? "an HTTP proxy carries no datagrams"
					 : "the transport carries TCP only";
			/* a datagram the transport cannot carry is said as such */
			result_set(r, PROTO_DENY, PROTO_DENY, by_broker ? EPERM : EPROTONOSUPPORT,
				   v.rule);
			return;
		}
		result_set(r, v.action, PROTO_REWRITE, 0, v.rule);
		r->next = ASK_TRANSPORT;
		r->limit = v.limit;
		r->timeout_ms = policy_timeout_ms(st->policy);
		return;
	}
	if (v.action == PROTO_DENY)
		result_set(r, PROTO_DENY, PROTO_DENY, v.err ? v.err : EPERM, v.rule);
	else
		result_set(r, v.action, v.action, 0, v.rule);
	r->ttl_ms = policy_ttl_ms(st->policy); /* connects and datagrams alike (proto.h) */
}

void ask_addr(const struct ask_state *st, const struct ask_who *w, const struct proto_ask *q,
	      struct ask_result *r)
{
	struct policy_request req = { .op = q->op, .l4 = q->l4, .port = q->port, .exe = w->exe };
	bool known = false, synthetic;

	result_init(r, q->op, q->l4, q->port);
	r->flags = q->flags;
	r->src_port = q->src_port;
	r->addr = q->addr;
	r->has_addr = true;
	policy_addr_canonical(&r->addr);
	addr_clean(&r->addr);
	req.addr = &r->addr;
	/* The address is attributed to the name this process (or its parent)
	 * resolved to it. A synthetic address stands for the rewritten name it
	 * was given for; one this process was never given leads nowhere. */
	synthetic = synth_is(&r->addr);
	if (synthetic) {
		known = st->synth && synth_lookup(st->synth, w->pid, w->ppid, &r->addr, r->name,
						  sizeof r->name);
		if (!known) {
			result_set(r, PROTO_DENY, PROTO_DENY, ENETUNREACH, "synthetic");
			return;
		}
		req.addr = NULL; /* the name alone is judged: the address means nothing */
	} else if (st->addrmap) {
		known = addrmap_lookup(st->addrmap, w->pid, w->ppid, &r->addr, st->now, r->name,
				       sizeof r->name, &r->from_hosts);
	}
	if (!known)
		r->name[0] = 0;
	if (st->stub && q->op == PROTO_OP_SEND && q->l4 != PROTO_L4_TCP && q->port == 53 &&
	    !synthetic) {
		/* A DNS query is a lookup: the stub judges the name it asks for
		 * and answers it; no datagram reaches the name server. */
		result_set(r, PROTO_REWRITE, PROTO_ALLOW, 0, "dns");
		r->why = NULL;
		r->naddr = st->nstub;
		memcpy(r->addrs, st->stub, (size_t)st->nstub * sizeof *st->stub);
		r->to_port = st->stub_port;
		return;
	}
	req.name = known ? r->name : NULL;
	req.from_hosts = r->from_hosts;
	judge(st, &req, synthetic, r);
}

void ask_name(const struct ask_state *st, const struct ask_who *w, int op, int l4,
	      const char *name, uint16_t port, struct ask_result *r)
{
	struct policy_request req = { .op = op, .l4 = l4, .port = port, .exe = w->exe };

	result_init(r, op, l4, port);
	snprintf(r->name, sizeof r->name, "%s", name);
	req.name = r->name;
	judge(st, &req, false, r);
}

bool ask_addr_loopback(const struct proto_addr *a)
{
	static const uint8_t v6lo[16] = { [15] = 1 };

	return a->family == 4 ? a->bytes[0] == 127 : memcmp(a->bytes, v6lo, 16) == 0;
}

void ask_isolated(const struct ask_state *st, struct ask_result *r)
{
	if (r->op == PROTO_OP_CONNECT)
		r->ttl_ms = 0; /* each one the broker makes, or judges anew */
	if (r->next == ASK_DGRAM) { /* its association is on the host's loopback, not here */
		r->why = "datagrams do not leave an isolated namespace";
		result_set(r, PROTO_DENY, PROTO_DENY, ENETUNREACH, r->rule);
		return;
	}
	if (r->op == PROTO_OP_RESOLVE || r->next != ASK_ANSWER)
		return;
	if (ask_addr_loopback(&r->addr)) {
		/* The namespace's own loopback holds nothing of the host's: what
		 * the policy refuses there stays inside, and a datagram never
		 * leaves. A connect that a rule allows is for the host's service
		 * of that address, which the broker reaches (below). */
		if (r->action == PROTO_DENY || r->op == PROTO_OP_SEND) {
			r->why = NULL;
			result_set(r, PROTO_ALLOW, PROTO_ALLOW, 0, "namespace");
			return;
		}
	}
	if (r->answer != PROTO_ALLOW)
		return;
	if (r->op == PROTO_OP_CONNECT && r->l4 == PROTO_L4_TCP) {
		/* nothing leads out but the broker: it makes the connection */
		r->next = ASK_TRANSPORT;
		r->answer = PROTO_REWRITE;
		r->transport = &ask_direct;
		r->limit = 0;
		r->timeout_ms = policy_timeout_ms(st->policy);
		return;
	}
	if (r->port == 53)
		return; /* a DNS query: the capture rules take it to the stub, which judges its name */
	r->why = "datagrams do not leave an isolated namespace";
	result_set(r, PROTO_DENY, PROTO_DENY, ENETUNREACH, r->rule);
}

bool ask_upstream_ok(const struct policy *p, const char *name, const struct proto_addr *a,
		     uint16_t port, const char *exe, bool from_hosts)
{
	struct proto_addr addr = *a;
	struct policy_request req = { .op = PROTO_OP_CONNECT, .l4 = PROTO_L4_TCP, .name = name,
				      .addr = &addr, .port = port, .exe = exe,
				      .from_hosts = from_hosts };
	struct policy_verdict v;

	policy_addr_canonical(&addr);
	policy_decide(p, &req, &v);
	return v.action != PROTO_DENY;
}
