// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The packet backstop: cgroup_skb/egress on the attach root, the one egress
 * program. A UDP datagram it lets leave for a resolver port then goes to the
 * DNS reader's query side (dns_egress_query(), dns.bpf.h); nothing else pays
 * for DNS.
 *
 * The socket hooks decide connect() and sendmsg(). Some packets never pass
 * through them: ICMP ping sockets, raw sockets, packets whose IP destination
 * differs from the address the hook saw (IPv4 source routes, IPv6 routing
 * headers). Every IP packet leaving a socket under the attach root comes here
 * and leaves only if its real destination (the IP header's) deserves it:
 *
 * - A TCP packet to its socket's own peer, or a UDP packet of a connected UDP
 *   socket to its peer, passes with no lookup at all (ordinary(): a few direct
 *   packet reads): connect() decided that peer (or, for an accepted socket,
 *   the peer came to us: inbound stays with the mesh). The SYN of a redirected
 *   socket files its original destination for SO_ORIGINAL_DST (one
 *   socket-storage lookup per SYN).
 * - A packet to the peer the backstop already passed for this socket, under
 *   the policy generation still in force, passes with one socket-storage
 *   lookup (mg_sk) and two array reads.
 * - Any other TCP packet of a TCP socket that is not an opening SYN (a
 *   listener's SYN-ACK) passes: only connect() opens connections, and its hook
 *   decided them.
 * - A UDP datagram of an unconnected socket to a peer that sent to that socket
 *   recently (a reply, bpf/reply.bpf.h) passes with one lookup.
 * - Everything else gets the full SPEC §2 decision (decide.bpf.h) on the IP
 *   destination, protocol and port, as the pod that owns the socket (the
 *   skb's socket cgroup and uid, never the current task). A pass is remembered
 *   for the socket; an audit is counted and traced, then remembered and let
 *   through (blocked_egress_action audit); a deny or a redirect (a packet
 *   cannot be redirected here) drops the packet, counted as deny with rule
 *   egress-backstop (or source-route) and sent to the ring buffer.
 *
 * Parsing is bounded: IPv4 options (40 bytes) and at most MG_IPV6_EXT_MAX
 * IPv6 extension headers. A source route in either is dropped for an
 * enforced pod whatever its destination. What cannot be parsed is decided on
 * the IP destination alone (port 0): a non-first fragment, an extension
 * chain longer than the bound, a truncated transport header. A malformed IP
 * header (wrong version, IHL < 5) is dropped for an enforced pod.
 */
#include "decide.bpf.h"
#include "ipopts.bpf.h"
#include "reply.bpf.h"
#include "dns.bpf.h"

#define ETH_P_IP	 0x0800
#define ETH_P_IPV6	 0x86DD
#define SOCK_STREAM	 1
#define SOCK_DGRAM	 2
#define TCP_FLAG_SYN	 0x02
#define TCP_FLAG_ACK	 0x10
#define MG_IPV6_EXT_MAX	 8
#define NEXTHDR_HOP	 0
#define NEXTHDR_ROUTING	 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH	 51
#define NEXTHDR_NONE	 59
#define NEXTHDR_DEST	 60

struct mg_pkt {
	struct mg_dest d; /* key.addr: IP destination; port: host order, 0 if none */
	__u8 saddr[16];
	__u16 sport; /* network order */
	__u8 tcp_flags;
	__u8 has_port;
	__u8 source_routed; /* or malformed: dropped for an enforced pod */
};

static __always_inline void load_ports(struct __sk_buff *skb, __u32 off, struct mg_pkt *p)
{
	__u8 h[14];

	if (p->d.proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, off, h, 14))
			return;
		p->tcp_flags = h[13];
	} else if (p->d.proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, off, h, 4))
			return;
	} else {
		return;
	}
	__builtin_memcpy(&p->sport, h, 2);
	p->d.port = ((__u16)h[2] << 8) | h[3];
	p->has_port = 1;
}

/* 1 when the IPv4 options carry a loose or strict source route. */
static __always_inline int ipv4_source_routed(struct __sk_buff *skb, __u32 len)
{
	struct mg_opt_scan s = {};

	if (len == 0 || len > MG_IPV4_OPTS_MAX)
		return 1;
	if (bpf_skb_load_bytes(skb, 20, s.opts, len))
		return 1;
	s.len = len;
	scan_options(&s);
	return s.source_routed;
}

struct mg_iphdr4 {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct mg_iphdr6 {
	__u32 ver_tc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline void parse_v4(struct __sk_buff *skb, struct mg_pkt *p)
{
	struct mg_iphdr4 iph;
	__u32 ihl;

	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph))) {
		/* No destination to read: an external one, dropped for an enforced pod. */
		addr_set_v4(p->d.key.addr, 0xffffffff);
		p->d.proto = 255;
		p->source_routed = 1;
		return;
	}
	addr_set_v4(p->d.key.addr, iph.daddr);
	addr_set_v4(p->saddr, iph.saddr);
	p->d.proto = iph.protocol;
	ihl = (iph.ver_ihl & 0x0f) * 4;
	if ((iph.ver_ihl >> 4) != 4 || ihl < 20) {
		p->source_routed = 1;
		return;
	}
	if (ihl > 20 && ipv4_source_routed(skb, ihl - 20))
		p->source_routed = 1;
	if (iph.frag_off & bpf_htons(0x1fff))
		return; /* a non-first fragment: no transport header */
	load_ports(skb, ihl, p);
}

static __always_inline void parse_v6(struct __sk_buff *skb, struct mg_pkt *p)
{
	struct mg_iphdr6 ip6;
	__u32 off = sizeof(ip6);
	__u8 nh;
	int i;

	if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6))) {
		addr_set_v4(p->d.key.addr, 0xffffffff);
		p->d.proto = 255;
		p->source_routed = 1;
		return;
	}
	__builtin_memcpy(p->d.key.addr, ip6.daddr, 16);
	__builtin_memcpy(p->saddr, ip6.saddr, 16);
	if ((ip6.ver_tc_flow & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000))
		p->source_routed = 1;
	nh = ip6.nexthdr;
	for (i = 0; i < MG_IPV6_EXT_MAX; i++) {
		__u8 e[4];

		if (nh != NEXTHDR_HOP && nh != NEXTHDR_DEST && nh != NEXTHDR_ROUTING && nh != NEXTHDR_FRAGMENT &&
		    nh != NEXTHDR_AUTH) {
			p->d.proto = nh;
			if (nh != NEXTHDR_NONE)
				load_ports(skb, off, p);
			return;
		}
		if (bpf_skb_load_bytes(skb, off, e, sizeof(e)))
			break;
		if (nh == NEXTHDR_FRAGMENT) {
			p->d.proto = e[0];
			if ((((__u16)e[2] << 8) | e[3]) & 0xfff8)
				return; /* a non-first fragment */
			nh = e[0];
			off += 8;
			continue;
		}
		if (nh == NEXTHDR_ROUTING && e[3] != 0)
			p->source_routed = 1; /* segments left: the destination is only the next hop */
		off += nh == NEXTHDR_AUTH ? ((__u32)e[1] + 2) * 4 : ((__u32)e[1] + 1) * 8;
		nh = e[0];
	}
	p->d.proto = nh; /* a chain beyond the bound: decided on the address alone */
}

static __always_inline int sock_peer_is(const struct bpf_sock *sk, const struct mg_pkt *p)
{
	const __u32 *a = (const __u32 *)p->d.key.addr;

	if (p->has_port && bpf_ntohs(sk->dst_port) != p->d.port)
		return 0;
	if (sk->family == 2)
		return addr_is_v4(p->d.key.addr) && a[3] == sk->dst_ip4 && sk->dst_ip4 != 0;
	return a[0] == sk->dst_ip6[0] && a[1] == sk->dst_ip6[1] && a[2] == sk->dst_ip6[2] && a[3] == sk->dst_ip6[3] &&
	       (a[0] | a[1] | a[2] | a[3]) != 0;
}

/*
 * Sockets whose peer connect() decided: TCP, and connected UDP (sendmsg decides the rest).
 * Compat: not connected UDP, whose connect() was decided as the calling task: its
 * datagrams take the remembered-peer path, decided once as the socket's own pod.
 */
static __always_inline int peer_decided_at_connect(const struct bpf_sock *sk, const struct mg_pkt *p)
{
	if (sk->type == SOCK_STREAM && sk->protocol == IPPROTO_TCP && p->d.proto == IPPROTO_TCP)
		return sock_peer_is(sk, p);
#ifndef MG_NO_KERN_CTX
	if (sk->type == SOCK_DGRAM && sk->protocol == IPPROTO_UDP && p->d.proto == IPPROTO_UDP)
		return sock_peer_is(sk, p);
#endif
	return 0;
}

/* The SYN of a redirected connection: file its original destination under the client's end. */
static __always_inline void file_original_destination(struct bpf_sock *sk, const struct mg_pkt *p)
{
	struct mg_peer_key key = {};
	struct mg_sk_state *st;

	st = bpf_sk_storage_get(&mg_sk, sk, 0, 0);
	if (!st || !(st->flags & MG_SK_ORIGDST_PENDING))
		return;
	key.netns_cookie = st->netns_cookie;
	__builtin_memcpy(key.addr, p->saddr, sizeof(key.addr));
	key.port = p->sport;
	bpf_map_update_elem(&mg_origdst_by_peer, &key, &st->origdst, BPF_ANY);
	st->flags &= ~MG_SK_ORIGDST_PENDING;
}

#ifdef MG_NO_KERN_CTX
/*
 * Compat: 1 when connect() decided this TCP socket as another pod than the
 * socket's own (the skb's cgroup): its SYN is then decided again, here, as
 * the socket's pod. No storage means the connect hook never saw the socket
 * (connected before the attach): it is trusted like any established peer.
 */
static __always_inline int connect_pod_differs(struct __sk_buff *skb, struct bpf_sock *sk)
{
	struct mg_decision out = {};
	struct mg_cgroup *pod = 0;
	struct mg_who who = {.skb = skb};
	struct mg_sk_state *st;
	struct mg_state *state;
	__u32 zero = 0;

	st = bpf_sk_storage_get(&mg_sk, sk, 0, 0);
	if (!st || !(st->flags & MG_SK_CONNECT_POD))
		return 0;
	state = bpf_map_lookup_elem(&mg_state, &zero);
	if (!state)
		return 0;
	if (!find_pod(&who, state->cgroup_walk_start, &pod, &out) && !pod)
		out.pod_cgroup_id = 0;
	return out.pod_cgroup_id != st->connect_pod;
}
#endif

/* The generation of the policy in force (0 when none is loaded). */
static __always_inline __u64 policy_generation(void)
{
	struct mg_config *cfg;
	struct mg_state *st;
	__u32 zero = 0, slot;

	st = bpf_map_lookup_elem(&mg_state, &zero);
	if (!st)
		return 0;
	slot = st->active_slot & 1;
	cfg = bpf_map_lookup_elem(&mg_config, &slot);
	return cfg ? cfg->generation : 0;
}

/* A peer this socket was passed to under the policy still in force. */
static __always_inline int peer_passed_before(struct bpf_sock *sk, const struct mg_pkt *p)
{
	struct mg_sk_state *st = bpf_sk_storage_get(&mg_sk, sk, 0, 0);

	if (!st || !(st->flags & MG_SK_PEER_PASSED) || st->peer_proto != p->d.proto)
		return 0;
	if (st->generation != policy_generation())
		return 0;
	if (p->has_port && st->peer_port != bpf_htons(p->d.port))
		return 0;
	{
		const __u32 *a = (const __u32 *)st->peer, *b = (const __u32 *)p->d.key.addr;

		return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
	}
}

static __always_inline void remember_passed(struct bpf_sock *sk, const struct mg_pkt *p)
{
	struct mg_sk_state *st = bpf_sk_storage_get(&mg_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st)
		return;
	__builtin_memcpy(st->peer, p->d.key.addr, 16);
	st->peer_port = bpf_htons(p->d.port);
	st->peer_proto = p->d.proto;
	st->generation = policy_generation();
	st->flags |= MG_SK_PEER_PASSED;
}

/*
 * The common case without parsing (direct packet reads, no helper): a TCP
 * segment that is not an opening SYN, or a UDP datagram of a connected socket (not in compat),
 * with a plain IP header (no IPv4 options, no IPv6 extension header), going
 * to its socket's peer. Anything else takes the full path below.
 */
static __always_inline int ordinary(struct __sk_buff *skb, const struct bpf_sock *sk)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 proto = sk->protocol;
	__u8 *l4;

	if (!((sk->type == SOCK_STREAM && proto == IPPROTO_TCP) || (sk->type == SOCK_DGRAM && proto == IPPROTO_UDP)))
		return 0;
#ifdef MG_NO_KERN_CTX
	if (proto == IPPROTO_UDP)
		return 0; /* compat: see peer_decided_at_connect() */
#endif
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct mg_iphdr4 *ip = data;

		l4 = data + sizeof(*ip);
		if (l4 + 14 > (__u8 *)end || ip->ver_ihl != 0x45 || ip->protocol != proto ||
		    (ip->frag_off & bpf_htons(0x3fff)) || ip->daddr != sk->dst_ip4 || ip->daddr == 0)
			return 0;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct mg_iphdr6 *ip6 = data;
		__u32 *a;

		l4 = data + sizeof(*ip6);
		if (l4 + 14 > (__u8 *)end || ip6->nexthdr != proto)
			return 0;
		a = (__u32 *)ip6->daddr;
		if (a[0] != sk->dst_ip6[0] || a[1] != sk->dst_ip6[1] || a[2] != sk->dst_ip6[2] ||
		    a[3] != sk->dst_ip6[3])
			return 0;
	} else {
		return 0;
	}
	if (*(__u16 *)(l4 + 2) != sk->dst_port)
		return 0;
	/* An opening SYN may have an original destination to file: the full path does that. */
	return proto == IPPROTO_UDP || (l4[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN;
}

/*
 * The backstop's verdict: 1 lets the packet leave. *udp_port is the UDP
 * destination port (host order) of a datagram it lets leave, else 0.
 */
static __always_inline int backstop(struct __sk_buff *skb, struct bpf_sock *sk, __u16 *udp_port)
{
	struct mg_decision out = {};
	struct mg_who who = {};
	struct mg_pkt p = {};

	if (ordinary(skb, sk)) {
		if (sk->protocol == IPPROTO_UDP)
			*udp_port = bpf_ntohs(sk->dst_port);
		return 1;
	}
	if (skb->protocol == bpf_htons(ETH_P_IP))
		parse_v4(skb, &p);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		parse_v6(skb, &p);
	else
		return 1;
	p.d.hook = MG_HOOK_EGRESS;
	if (p.d.proto == IPPROTO_UDP && p.has_port)
		*udp_port = p.d.port;

	if (!p.source_routed) {
		if (peer_decided_at_connect(sk, &p)) {
			if ((p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
				return 1;
			file_original_destination(sk, &p);
#ifdef MG_NO_KERN_CTX
			if (!connect_pod_differs(skb, sk))
				return 1;
#else
			return 1;
#endif
		}
		/* A listener's SYN-ACK, or TCP of a socket that predates the attach. */
		if (sk->type == SOCK_STREAM && sk->protocol == IPPROTO_TCP && p.d.proto == IPPROTO_TCP &&
		    (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return 1;
		if (peer_passed_before(sk, &p))
			return 1;
		/* A UDP reply to a peer that sent to this socket (bpf/reply.bpf.h). */
		if (reply_packet(skb, sk, p.d.proto, p.has_port, p.d.key.addr, p.d.port))
			return 1;
	}

	who.skb = skb;
	who.sk = sk;
	who.uid = bpf_get_socket_uid(skb);
	decide(&p.d, &out, &who);
	/* Identity rules (no policy, unenforced, unknown pass, proxy) pass anything; the rest are enforced. */
	if (p.source_routed && out.rule >= MG_RULE_LOOPBACK) {
		out.verdict = MG_VERDICT_DENY;
		out.rule = MG_RULE_SOURCE_ROUTE;
	}
	if (out.verdict == MG_VERDICT_PASS) {
		if (!p.source_routed)
			remember_passed(sk, &p);
		return 1;
	}
	/* Audit lets it through, counted and traced once per peer (the socket remembers it). */
	if (out.verdict == MG_VERDICT_AUDIT) {
		record(&p.d, &out, &who);
		remember_passed(sk, &p);
		return 1;
	}
	/* A packet cannot be redirected here: what should have gone to the proxy is dropped. */
	if (out.rule != MG_RULE_SOURCE_ROUTE)
		out.rule = MG_RULE_EGRESS_BACKSTOP;
	out.verdict = MG_VERDICT_DENY;
	record(&p.d, &out, &who);
	return 0;
}

/*
 * The one egress program: the backstop's verdict, then, only for a datagram
 * that leaves for a resolver port, the DNS reader's query side (dns.bpf.h).
 * Any other packet pays one array read for the port.
 */
SEC("cgroup_skb/egress")
int mg_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk;
	__u16 udp_port = 0;

	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	if (!backstop(skb, sk, &udp_port))
		return 0;
	if (udp_port && dns_resolver_port(udp_port))
		dns_egress_query(skb, sk);
	return 1;
}
