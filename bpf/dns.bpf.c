// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The DNS reader: cgroup_skb/egress and cgroup_skb/ingress.
 *
 * Egress remembers, on the socket (mg_dns_sockets), each UDP query an
 * enforced pod sends to a trusted resolver. Ingress reads the UDP answers
 * from a trusted resolver to such a socket and learns the allowlisted
 * addresses (dns.bpf.h). cgroup_skb/ingress runs before the packet is queued
 * to the socket, so the address is allowed before the pod can read the answer.
 * Both always return 1: the reader never drops a packet.
 */
#include "dns.bpf.h"

/* Pod cgroups sit a few levels below the attach point (QoS slice, pod, container). */
#define MG_DNS_CGROUP_WALK 8

/* The namespace of an enforced pod's socket, or 0 (unmapped, not enforced, or the sidecar). */
static __always_inline __u32 dns_pod_namespace(struct __sk_buff *skb)
{
	struct mg_cgroup *pod = 0;
	struct mg_state *st;
	__u32 zero = 0, start;
	int i;

	st = bpf_map_lookup_elem(&mg_state, &zero);
	if (!st)
		return 0;
	start = st->cgroup_walk_start;
	for (i = 0; i < MG_DNS_CGROUP_WALK; i++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, start + i);
		struct mg_cgroup *cg;

		if (!id)
			break;
		cg = bpf_map_lookup_elem(&mg_cgroups, &id);
		if (!cg)
			continue;
		if (cg->kind == MG_CGROUP_PROXY)
			return 0;
		if (!pod)
			pod = cg;
	}
	if (!pod || pod->kind != MG_CGROUP_POD)
		return 0;
	return pod->namespace_id;
}

static __always_inline int dns_resolver_port(__u16 port)
{
	__u32 key = port;
	__u8 *known = bpf_map_lookup_elem(&mg_dns_resolver_ports, &key);

	return known && *known;
}

SEC("cgroup_skb/egress")
int mg_dns_egress(struct __sk_buff *skb)
{
	struct mg_dns_socket *sock;
	struct dns_packet pk;
	struct bpf_sock *sk;
	__u32 namespace_id;

	if (!dns_udp_peer(skb, 0, &pk) || !dns_resolver_port(pk.port) || !dns_trusted(&pk))
		return 1;
	namespace_id = dns_pod_namespace(skb);
	if (!namespace_id)
		return 1;
	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	sock = bpf_sk_storage_get(&mg_dns_sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sock)
		return 1;
	dns_record_query(skb, &pk, sock, namespace_id);
	return 1;
}

SEC("cgroup_skb/ingress")
int mg_dns_ingress(struct __sk_buff *skb)
{
	struct mg_dns_socket *sock;
	struct dns_packet pk;
	struct bpf_sock *sk;

	if (!dns_udp_peer(skb, 1, &pk) || !dns_resolver_port(pk.port))
		return 1;
	if (!dns_trusted(&pk)) {
		dns_count(MG_DNS_STAT_UNTRUSTED);
		return 1;
	}
	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	sock = bpf_sk_storage_get(&mg_dns_sockets, sk, 0, 0);
	if (!sock) {
		dns_count(MG_DNS_STAT_UNSOLICITED);
		return 1;
	}
	dns_read_answer(skb, &pk, sock);
	return 1;
}
