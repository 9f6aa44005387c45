/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Replies are not egress: a UDP datagram an enforced pod's socket sends to a
 * peer that sent to that same socket a moment ago passes (rule reply), as
 * conntrack's ESTABLISHED does for iptables egress rules.
 *
 * - reply_note() (cgroup_skb/ingress, bpf/dns.bpf.c): a datagram delivered to
 *   an unconnected UDP socket of an enforced pod files its source address and
 *   port under the socket's cookie in mg_reply_peers, for
 *   MG_REPLY_UNREPLIED_MS, or MG_REPLY_ASSURED_MS once the socket has replied
 *   (mg_reply_config overrides both). Only inbound datagrams refresh an entry.
 *   The fast path: the socket's storage keeps the last peer filed; its
 *   datagrams within 1/8 of the lifetime written (MG_REPLY_FRESH_SHIFT) of
 *   that write touch no entry, so a peer may expire up to 1/8 of its lifetime
 *   early. A peer's first reply clears it (the next datagram writes the
 *   replied lifetime).
 * - reply_allows() (cgroup/sendmsg4/6 after rule 6, and the packet backstop):
 *   the destination is a live peer of this very socket.
 *
 * No side door: entries are written only from packets that arrived on a
 * device other than loopback (the pod cannot talk to itself to make a peer),
 * never from anything the pod sends, and the key is the socket's cookie
 * (never reused), so socket B cannot reply to socket A's peer. Loopback,
 * unspecified, multicast and broadcast sources are never peers. TCP needs none
 * of this: an accepted socket's peer is its own (the backstop's ordinary()).
 */
#ifndef MESHGATE_REPLY_BPF_H
#define MESHGATE_REPLY_BPF_H

#include "decide.bpf.h"

#define MG_REPLY_SOCK_DGRAM 2

static __always_inline __u64 reply_lifetime_ns(int assured)
{
	struct mg_reply_config *c;
	__u32 zero = 0;
	__u64 ns = 0;

	c = bpf_map_lookup_elem(&mg_reply_config, &zero);
	if (c)
		ns = assured ? c->assured_ns : c->unreplied_ns;
	if (!ns)
		ns = (assured ? MG_REPLY_ASSURED_MS : MG_REPLY_UNREPLIED_MS) * 1000000ULL;
	return ns;
}

/*
 * The enforced pod that owns the skb's socket (its cgroup id), or 0 (unmapped,
 * unenforced, the sidecar). The walk runs once per MG_REPLY_POD_RECHECK_MS per
 * socket; in between the socket's storage answers (a pod mapped a moment ago
 * is seen within that time).
 */
static __always_inline __u64 reply_enforced_pod(struct __sk_buff *skb, struct mg_reply_sock *rs, __u64 now)
{
	struct mg_decision out = {};
	struct mg_who who = {.skb = skb};
	struct mg_cgroup *pod = 0;
	struct mg_state *st;
	__u32 zero = 0;
	__u64 id = 0;

	if (rs && rs->checked_ns && now - rs->checked_ns < MG_REPLY_POD_RECHECK_MS * 1000000ULL)
		return rs->pod_cgroup_id;
	st = bpf_map_lookup_elem(&mg_state, &zero);
	if (st && !find_pod(&who, st->cgroup_walk_start, &pod, &out) && pod && pod->kind == MG_CGROUP_POD)
		id = out.pod_cgroup_id;
	if (rs) {
		rs->pod_cgroup_id = id;
		rs->checked_ns = now;
	}
	return id;
}

/*
 * Only a peer whose answers rule 7 could stop is worth an entry: none while no
 * policy is loaded, with egress "true" or without mesh CIDRs (UDP passes), and
 * none inside the mesh CIDRs (rule 4 passes UDP there). Checked for a new peer
 * only, before its insert, so in-mesh clients never crowd out external ones.
 */
static __always_inline int reply_peer_external(const __u8 *addr)
{
	struct mg_dest d = {};
	struct mg_config *cfg;
	struct mg_state *st;
	__u32 zero = 0, slot, label = 0;

	st = bpf_map_lookup_elem(&mg_state, &zero);
	if (!st)
		return 0;
	slot = st->active_slot & 1;
	cfg = bpf_map_lookup_elem(&mg_config, &slot);
	if (!cfg || (cfg->flags & (MG_CFG_LOADED | MG_CFG_EGRESS | MG_CFG_HAS_MESH_CIDRS)) !=
			    (MG_CFG_LOADED | MG_CFG_HAS_MESH_CIDRS))
		return 0;
	__builtin_memcpy(d.key.addr, addr, sizeof(d.key.addr));
	d.key.slot = slot;
	return !trie_lookup(&d, MG_TABLE_MESH, 0, 0, 0, &label);
}

/* The socket's last peer filed is key's (address and port). */
static __always_inline int reply_same_peer(const struct mg_reply_sock *rs, const struct mg_reply_key *key)
{
	const __u64 *a = (const __u64 *)rs->last_addr, *b = (const __u64 *)key->addr;

	return rs->last_port == key->port && a[0] == b[0] && a[1] == b[1];
}

/*
 * A UDP datagram from addr:port (port in host order) is being delivered to
 * the skb's socket (cgroup_skb/ingress): file the peer. The socket's storage
 * tells its pod (a socket of a pod that is not enforced stops there), and
 * whether this peer's entry was written a moment ago (then nothing more to
 * do); else one lookup refreshes a known peer, or a new one outside the mesh
 * is inserted, and the storage remembers it.
 */
static __always_inline void reply_note(struct __sk_buff *skb, const __u8 *addr, __u16 port)
{
	struct mg_reply_key key = {};
	struct mg_reply *r, fresh = {};
	struct bpf_sock *sk = skb->sk;
	struct mg_reply_sock *rs;
	__u64 now, pod, life;

	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	/* A connected socket's peer was decided by connect(): its datagrams pass anyway. */
	if (!sk || sk->type != MG_REPLY_SOCK_DGRAM || sk->protocol != IPPROTO_UDP || sk->dst_port)
		return;
	if (skb->ifindex == MG_REPLY_LOOPBACK_IFINDEX || port == 0)
		return;
	if (addr_is_loopback_or_unspecified(addr) || addr_is_multicast_or_broadcast(addr))
		return;
	now = bpf_ktime_get_ns();
	rs = bpf_sk_storage_get(&mg_reply_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	pod = reply_enforced_pod(skb, rs, now);
	if (!pod)
		return;
	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	key.port = bpf_htons(port);
	if (rs && now < rs->fresh_until_ns && reply_same_peer(rs, &key))
		return;
	key.sock_cookie = bpf_get_socket_cookie(skb);
	r = bpf_map_lookup_elem(&mg_reply_peers, &key);
	if (r) {
		/* An expired peer starts over as unreplied. */
		if (now > r->expires_ns)
			r->flags = 0;
		life = reply_lifetime_ns(r->flags & MG_REPLY_ASSURED);
		r->last_in_ns = now;
		r->expires_ns = now + life;
	} else {
		if (!reply_peer_external(addr))
			return;
		life = reply_lifetime_ns(0);
		fresh.pod_cgroup_id = pod;
		fresh.last_in_ns = now;
		fresh.expires_ns = now + life;
		if (bpf_map_update_elem(&mg_reply_peers, &key, &fresh, BPF_ANY))
			return;
	}
	if (!rs)
		return;
	__builtin_memcpy(rs->last_addr, key.addr, sizeof(rs->last_addr));
	rs->last_port = key.port;
	rs->fresh_until_ns = now + (life >> MG_REPLY_FRESH_SHIFT);
}

/* A peer of the socket sk got its first reply: its next datagram writes the replied lifetime. */
static __always_inline void reply_forget_fresh(struct bpf_sock *sk)
{
	struct mg_reply_sock *rs;

	if (!sk)
		return;
	rs = bpf_sk_storage_get(&mg_reply_sk, sk, 0, 0);
	if (rs)
		rs->fresh_until_ns = 0;
}

/*
 * addr:port (port in network order) is a live peer of the socket sk with this
 * cookie; marks it replied (the first time, sk's fast path forgets its peer).
 */
static __always_inline int reply_allows(struct bpf_sock *sk, __u64 cookie, const __u8 *addr, __u16 port)
{
	struct mg_reply_key key = {};
	struct mg_reply *r;

	key.sock_cookie = cookie;
	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	key.port = port;
	r = bpf_map_lookup_elem(&mg_reply_peers, &key);
	if (!r || bpf_ktime_get_ns() > r->expires_ns)
		return 0;
	if (!(r->flags & MG_REPLY_ASSURED)) {
		r->flags |= MG_REPLY_ASSURED;
		reply_forget_fresh(sk);
	}
	return 1;
}

/*
 * cgroup/sendmsg4/6: after rule 6, before rule 7. A UDP datagram that rule 7
 * would stop (deny, or audit) passes as rule reply when it answers a peer of
 * this socket.
 */
static __always_inline void reply_decide_sendmsg(struct bpf_sock_addr *ctx, const struct mg_dest *d,
						 struct mg_decision *out)
{
	if (d->proto != IPPROTO_UDP || out->rule != MG_RULE_BLOCKED || out->verdict == MG_VERDICT_PASS)
		return;
	if (d->hook != MG_HOOK_SENDMSG4 && d->hook != MG_HOOK_SENDMSG6)
		return;
	if (!reply_allows(ctx->sk, bpf_get_socket_cookie(ctx), d->key.addr, bpf_htons(d->port)))
		return;
	out->verdict = MG_VERDICT_PASS;
	out->rule = MG_RULE_REPLY;
	out->label_id = 0;
}

/*
 * The backstop: a UDP datagram of an unconnected UDP socket to a live peer of
 * that socket passes with one lookup, before the full decision (sendmsg
 * already counted it as reply).
 */
static __always_inline int reply_packet(struct __sk_buff *skb, struct bpf_sock *sk, __u8 proto, int has_port,
					const __u8 *addr, __u16 port)
{
	if (proto != IPPROTO_UDP || !has_port || sk->type != MG_REPLY_SOCK_DGRAM || sk->protocol != IPPROTO_UDP)
		return 0;
	return reply_allows(sk, bpf_get_socket_cookie(skb), addr, bpf_htons(port));
}

#endif /* MESHGATE_REPLY_BPF_H */
