/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The SPEC §2 decision, shared by the socket hooks (connect.bpf.c) and the
 * packet backstop (backstop.bpf.c): one copy of the rules, two callers.
 *
 * Identity (struct mg_who) is the socket's: its cgroup and its uid.
 */
#ifndef MESHGATE_DECIDE_BPF_H
#define MESHGATE_DECIDE_BPF_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "addr.bpf.h"
#include "learned.bpf.h"
#include "kernel.bpf.h"

#define AF_INET		     2
#define AF_INET6	     10
#define IPPROTO_MPTCP_NUMBER 262

struct mg_dest {
	struct mg_lpm_key key; /* key.addr holds the destination; slot is filled in */
	__u16 port;	       /* host order */
	__u8 proto;	       /* IPPROTO_TCP, IPPROTO_UDP or another number */
	__u8 hook;	       /* enum mg_hook */
};

struct mg_decision {
	__u8 verdict;
	__u8 rule;
	__u16 proxy_port;
	__u32 label_id;
	__u64 pod_cgroup_id;
	/* What record() needs, read once by decide(): events of these verdicts, at this rate. */
	__u32 event_mask;
	__u32 events_per_sec;
	__u32 events_burst;
	/* An enforced pod decided: record_flow() files it in mg_flows under this generation. */
	__u32 flow;
	/* An unmapped cgroup's socket in the host netns passed under deny-external. */
	__u32 host_netns;
	__u64 generation;
};

static __always_inline int addr_is_loopback_or_unspecified(const __u8 *addr)
{
	const __u32 *w = (const __u32 *)addr;

	if (addr_is_v4(addr))
		return (w[3] & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000) || w[3] == 0;
	return w[0] == 0 && w[1] == 0 && w[2] == 0 && (w[3] == 0 || w[3] == bpf_htonl(1));
}

static __always_inline int addr_is_multicast_or_broadcast(const __u8 *addr)
{
	const __u32 *w = (const __u32 *)addr;

	if (addr_is_v4(addr))
		return (w[3] & bpf_htonl(0xf0000000)) == bpf_htonl(0xe0000000) || w[3] == 0xffffffff;
	return addr[0] == 0xff;
}

static __always_inline int trie_lookup(struct mg_dest *d, __u8 table, __u8 proto, __u16 port, __u32 namespace_id,
				       __u32 *label_id)
{
	struct mg_lpm_value *v;

	d->key.prefixlen = MG_LPM_FULL_PREFIXLEN;
	d->key.table = table;
	d->key.proto = proto;
	d->key.port = port;
	d->key.namespace_id = namespace_id;
	v = bpf_map_lookup_elem(&mg_policy_trie, &d->key);
	if (!v)
		return 0;
	*label_id = v->label_id;
	return 1;
}

static __always_inline void set_verdict(struct mg_decision *out, __u8 verdict, __u8 rule)
{
	out->verdict = verdict;
	out->rule = rule;
}

/*
 * Rules 2-7 for a meshed pod (namespace_id > 0, redirects allowed), or for a
 * cgroup nobody mapped under unknown_pod_policy deny-external (namespace_id 0,
 * no redirect: whatever would be redirected passes, and only the global
 * allowlist applies).
 */
static __always_inline void decide_destination(struct mg_dest *d, const struct mg_config *cfg, __u32 namespace_id,
					       int enforced_pod, struct mg_decision *out)
{
	__u8 tcp = d->proto == IPPROTO_TCP;
	__u8 redirect = enforced_pod ? MG_VERDICT_REDIRECT : MG_VERDICT_PASS;
	struct mg_port_key port_key = {};

	/* Rule 2 */
	if (addr_is_loopback_or_unspecified(d->key.addr))
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_LOOPBACK);

	/* Rule 3 */
	if (trie_lookup(d, MG_TABLE_EXCLUDE, 0, 0, 0, &out->label_id))
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_EXCLUDED_CIDR);
	port_key.port = d->port;
	port_key.slot = d->key.slot;
	if (bpf_map_lookup_elem(&mg_excluded_ports, &port_key))
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_EXCLUDED_PORT);

	/* Rule 4: multicast and broadcast are never redirected; they are external. */
	if (!addr_is_multicast_or_broadcast(d->key.addr) && trie_lookup(d, MG_TABLE_MESH, 0, 0, 0, &out->label_id))
		return set_verdict(out, tcp ? redirect : MG_VERDICT_PASS, MG_RULE_MESH_CIDR);
	out->label_id = 0;

	/* Rule 5 */
	if (cfg->flags & MG_CFG_EGRESS)
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_EGRESS_ENABLED);

	/* Rule 6: allowlists are keyed by protocol and port, then longest prefix. */
	if (d->proto == IPPROTO_TCP || d->proto == IPPROTO_UDP) {
		if (namespace_id && trie_lookup(d, MG_TABLE_ALLOW, d->proto, d->port, namespace_id, &out->label_id))
			return set_verdict(out, MG_VERDICT_PASS, MG_RULE_ALLOW_NAMESPACE);
		if (trie_lookup(d, MG_TABLE_ALLOW, d->proto, d->port, 0, &out->label_id))
			return set_verdict(out, MG_VERDICT_PASS, MG_RULE_ALLOW_GLOBAL);
		/* ...or an address learned from the pod's own DNS answer (bpf/dns.bpf.c). */
		if ((namespace_id &&
		     learned_allows(d->key.addr, d->proto, d->port, d->key.slot, namespace_id, &out->label_id)) ||
		    learned_allows(d->key.addr, d->proto, d->port, d->key.slot, 0, &out->label_id))
			return set_verdict(out, MG_VERDICT_PASS, MG_RULE_ALLOW_LEARNED);
	}

	/* Special case (OSM): without mesh CIDRs in-mesh and external look alike. */
	if (!(cfg->flags & MG_CFG_HAS_MESH_CIDRS))
		return set_verdict(out, tcp ? redirect : MG_VERDICT_PASS, MG_RULE_NO_MESH_CIDRS);

	if (!enforced_pod)
		return set_verdict(out, MG_VERDICT_DENY, MG_RULE_UNKNOWN_POD);

	/* Rule 7: the namespace's own blocked_egress_action, else the global one.
	 * Redirect can only apply to TCP (UDP is denied); audit lets both through. */
	{
		struct mg_namespace_key ns_key = {.namespace_id = namespace_id, .slot = d->key.slot};
		struct mg_namespace *ns = bpf_map_lookup_elem(&mg_namespaces, &ns_key);
		__u8 action = ns ? ns->blocked_action : cfg->blocked_action;

		if (action == MG_ACTION_AUDIT)
			return set_verdict(out, MG_VERDICT_AUDIT, MG_RULE_BLOCKED);
		if (action == MG_ACTION_REDIRECT && tcp)
			return set_verdict(out, MG_VERDICT_REDIRECT, MG_RULE_BLOCKED);
	}
	return set_verdict(out, MG_VERDICT_DENY, MG_RULE_BLOCKED);
}

/*
 * Who is asking: the socket, never the current task. A kernel worker acting
 * for a pod's socket (an MPTCP join subflow's connect) is that pod, and a
 * socket keeps the pod it was created in (SCM_RIGHTS, a process that moved
 * cgroups): see docs/decisions.md.
 * - The backstop passes the packet (skb): the kernel's skb helpers read the
 *   socket's cgroup and uid (both variants).
 * - The socket hooks pass their kernel context's struct sock (sock_identity()).
 *   The compat variant (MG_NO_KERN_CTX, kernels without bpf_cast_to_kern_ctx in
 *   these hooks) cannot reach the socket's cgroup there: no helper of
 *   cgroup/connect* or sendmsg* reads it before 6.x. It takes the calling
 *   task's cgroup and uid instead (bpf_get_current_ancestor_cgroup_id, 5.7),
 *   the documented weaker identity; the backstop still decides every packet
 *   the hook did not (docs/decisions.md, "The compat variant").
 */
struct mg_who {
	struct __sk_buff *skb;
#ifndef MG_NO_KERN_CTX
	struct cgroup___mg *cgrp; /* the socket's cgroup (socket hooks) */
#endif
	__u32 uid; /* the socket's owner (sk_uid); compat socket hooks: the caller's uid */
	__u32 pid; /* the calling process (cgroup/connect*, sendmsg*), else 0 */
	/* Socket hooks: bpf_get_netns_cookie(ctx). The backstop (no such helper in
	 * cgroup_skb before 6.1x) passes its socket instead: MG_SK_HOST_NETNS. */
	__u64 netns_cookie;
	struct bpf_sock *sk;
};

/*
 * 1 when the socket is in the agent's (the node's) netns: a hostNetwork pod's,
 * or a node daemon's in a kubepods cgroup. Consulted for unmapped cgroups only.
 */
static __always_inline int in_host_netns(const struct mg_who *who, const struct mg_state *st)
{
	struct mg_sk_state *sks;

	if (!st->host_netns_cookie)
		return 0;
	if (who->netns_cookie)
		return who->netns_cookie == st->host_netns_cookie;
	if (!who->sk)
		return 0;
	sks = bpf_sk_storage_get(&mg_sk, who->sk, 0, 0);
	return sks && (sks->flags & MG_SK_HOST_NETNS);
}

static __always_inline __u64 own_cgroup_id(const struct mg_who *who)
{
	if (who->skb)
		return bpf_skb_cgroup_id(who->skb);
#ifdef MG_NO_KERN_CTX
	return bpf_get_current_cgroup_id();
#else
	return who->cgrp ? who->cgrp->kn->id : 0;
#endif
}

#ifndef MG_NO_KERN_CTX
/* The identity of a socket hook's socket, from the hook's kernel context. */
static __always_inline void sock_identity(void *ctx, struct mg_who *who)
{
	struct bpf_sock_addr_kern___mg *kctx = bpf_cast_to_kern_ctx(ctx);
	struct sock___mg *sk = kctx->sk;

	if (!sk)
		return;
	who->cgrp = sk->sk_cgrp_data.cgroup;
	who->uid = sk->sk_uid.val;
}
#else
/* Compat: the calling task stands for the socket (cgroup/connect* and sendmsg* only). */
static __always_inline void sock_identity(void *ctx, struct mg_who *who)
{
	who->uid = (__u32)bpf_get_current_uid_gid();
}
#endif

/*
 * One mapped cgroup met on the walk: a proxy ends it (rule 1); otherwise the
 * shallowest pod wins. Returns 1 for a proxy.
 */
static __always_inline int met_cgroup(__u64 id, struct mg_cgroup **pod, struct mg_decision *out, int topdown)
{
	struct mg_cgroup *cg = bpf_map_lookup_elem(&mg_cgroups, &id);

	if (!cg)
		return 0;
	if (cg->kind == MG_CGROUP_PROXY) {
		out->pod_cgroup_id = id;
		return 1;
	}
	if (!*pod || !topdown) {
		*pod = cg;
		out->pod_cgroup_id = id;
		out->label_id = cg->label_id;
	}
	return 0;
}

/*
 * Finds the pod: the shallowest mapped cgroup from the attach point's level
 * (start) down MG_MAX_CGROUP_WALK levels, and any proxy container cgroup on
 * that path. Returns 1 when a proxy is met. The backstop walks down with the
 * skb helper; the socket hooks walk up from the socket's cgroup with plain
 * loads, so the last pod met going up is the shallowest (compat: down from
 * the calling task's cgroup, with its helper).
 */
static __always_inline int find_pod(const struct mg_who *who, __u32 start, struct mg_cgroup **pod,
				    struct mg_decision *out)
{
	int i;

	if (who->skb) {
		for (i = 0; i < MG_MAX_CGROUP_WALK; i++) {
			__u64 id = bpf_skb_ancestor_cgroup_id(who->skb, start + i);

			if (!id)
				break;
			if (met_cgroup(id, pod, out, 1))
				return 1;
		}
		return 0;
	}
#ifdef MG_NO_KERN_CTX
	for (i = 0; i < MG_MAX_CGROUP_WALK; i++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(start + i);

		if (!id)
			break;
		if (met_cgroup(id, pod, out, 1))
			return 1;
	}
	return 0;
#else
	{
		struct cgroup___mg *c = who->cgrp;

		for (i = 0; i < 2 * MG_MAX_CGROUP_WALK; i++) {
			int level;

			if (!c)
				break;
			level = c->level;
			if (level < (int)start)
				break;
			if (level < (int)start + MG_MAX_CGROUP_WALK && met_cgroup(c->kn->id, pod, out, 0))
				return 1;
			c = c->self.parent ? c->self.parent->cgroup : 0;
		}
	}
	return 0;
#endif
}

static __always_inline void decide(struct mg_dest *d, struct mg_decision *out, const struct mg_who *who)
{
	struct mg_cgroup *pod = 0;
	struct mg_config *cfg;
	struct mg_state *st;
	__u32 zero = 0, slot, start, record_flows;

	out->label_id = 0;
	out->pod_cgroup_id = 0;
	st = bpf_map_lookup_elem(&mg_state, &zero);
	if (!st)
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_NO_POLICY);
	/* Read the slot once: everything below sees one generation. */
	slot = st->active_slot & 1;
	start = st->cgroup_walk_start;
	out->events_per_sec = st->events_per_sec;
	out->events_burst = st->events_burst;
	record_flows = st->flags & MG_STATE_RECORD_FLOWS;
	cfg = bpf_map_lookup_elem(&mg_config, &slot);
	if (!cfg || !(cfg->flags & MG_CFG_LOADED))
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_NO_POLICY);
	d->key.slot = slot;
	out->proxy_port = cfg->proxy_port;
	out->event_mask = cfg->event_mask;

	/* Find the pod: the shallowest mapped ancestor, and a proxy container cgroup below it. */
	if (find_pod(who, start, &pod, out))
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_PROXY_CGROUP);

	if (!pod) {
		/* hostNetwork pods are never enforced (SPEC 1.3), mapped or not yet. */
		if (cfg->unknown_pod_policy == MG_UNKNOWN_DENY_EXTERNAL) {
			if (!in_host_netns(who, st))
				return decide_destination(d, cfg, 0, 0, out);
			out->host_netns = 1;
		}
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_UNKNOWN_POD);
	}
	if (pod->kind != MG_CGROUP_POD)
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_NOT_ENFORCED);
	out->label_id = 0;
	out->flow = record_flows;
	out->generation = cfg->generation;

	/* Rule 1 fallback: proxy_uid counts only while the sidecar's cgroup is unknown. */
	if (!(pod->flags & MG_POD_PROXY_CGROUP_KNOWN) && who->uid == cfg->proxy_uid)
		return set_verdict(out, MG_VERDICT_PASS, MG_RULE_PROXY_UID);

	decide_destination(d, cfg, pod->namespace_id, 1, out);
}

static __always_inline int rate_limit_allows(const struct mg_decision *out)
{
	struct mg_ratelimit *rl;
	__u32 zero = 0;
	__u64 now, elapsed, cap;

	rl = bpf_map_lookup_elem(&mg_ratelimit, &zero);
	if (!rl)
		return 0;
	now = bpf_ktime_get_ns();
	cap = (__u64)out->events_burst * 1000;
	elapsed = now - rl->last_ns;
	rl->last_ns = now;
	/* tokens_milli grows by rate * 1000 per second; long idle just fills the bucket. */
	if (elapsed > 10000000000ULL)
		rl->tokens_milli = cap;
	else
		rl->tokens_milli += elapsed * out->events_per_sec / 1000000;
	if (rl->tokens_milli > cap)
		rl->tokens_milli = cap;
	if (rl->tokens_milli < 1000)
		return 0;
	rl->tokens_milli -= 1000;
	return 1;
}

static __always_inline void count_event_stat(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&mg_event_stats, &stat);

	if (n)
		*n += 1;
}

/* The flow's last verdict in the mg_flows LRU (enforced pods only). */
static __always_inline void record_flow(const struct mg_dest *d, const struct mg_decision *out,
					const struct mg_who *who)
{
	struct mg_flow_key key = {};
	struct mg_flow *f, fresh = {};
	__u64 now;

	if (!out->flow)
		return;
	key.pod_cgroup_id = out->pod_cgroup_id;
	__builtin_memcpy(key.addr, d->key.addr, sizeof(key.addr));
	key.port = d->port;
	key.proto = d->proto;
	now = bpf_ktime_get_ns();
	f = bpf_map_lookup_elem(&mg_flows, &key);
	if (f) {
		/* Fields of a concurrent decision may interleave; each is one decision's. */
		f->last_seen_ns = now;
		f->generation = out->generation;
		f->label_id = out->label_id;
		f->uid = who->uid;
		f->verdict = out->verdict;
		f->rule = out->rule;
		f->hook = d->hook;
		__sync_fetch_and_add(&f->count, 1);
		return;
	}
	fresh.last_seen_ns = now;
	fresh.count = 1;
	fresh.generation = out->generation;
	fresh.label_id = out->label_id;
	fresh.uid = who->uid;
	fresh.verdict = out->verdict;
	fresh.rule = out->rule;
	fresh.hook = d->hook;
	bpf_map_update_elem(&mg_flows, &key, &fresh, BPF_NOEXIST);
}

static __always_inline void record(const struct mg_dest *d, const struct mg_decision *out, const struct mg_who *who)
{
	__u32 idx = out->verdict * MG_RULE_COUNT + out->rule, zero = 0, mask = out->event_mask;
	struct mg_trace *tr;
	struct mg_event *ev;
	__u64 *n;

	n = bpf_map_lookup_elem(&mg_counters, &idx);
	if (n)
		*n += 1;
	record_flow(d, out, who);

	tr = bpf_map_lookup_elem(&mg_trace, &zero);
	if (tr && tr->until_ns > bpf_ktime_get_ns())
		mask |= tr->event_mask;
	if (!(mask & (1u << out->verdict)))
		return;
	if (!rate_limit_allows(out)) {
		count_event_stat(MG_EVENT_STAT_RATE_LIMITED);
		return;
	}
	ev = bpf_ringbuf_reserve(&mg_events, sizeof(*ev), 0);
	if (!ev) {
		count_event_stat(MG_EVENT_STAT_RINGBUF_FULL);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = own_cgroup_id(who);
	ev->pod_cgroup_id = out->pod_cgroup_id;
	__builtin_memcpy(ev->addr, d->key.addr, sizeof(ev->addr));
	ev->port = d->port;
	ev->proto = d->proto;
	ev->verdict = out->verdict;
	ev->rule = out->rule;
	ev->hook = d->hook;
	ev->pad0 = 0;
	ev->label_id = out->label_id;
	/* A packet may leave from softirq: the socket's uid is known, the sending process is not. */
	ev->pid = who->pid;
	ev->uid = who->uid;
	ev->pad1 = 0;
	bpf_ringbuf_submit(ev, 0);
	count_event_stat(MG_EVENT_STAT_EMITTED);
}

#endif /* MESHGATE_DECIDE_BPF_H */
