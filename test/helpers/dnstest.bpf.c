// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The DNS reader's core (bpf/dns.bpf.h) behind test entry points, for
 * BPF_PROG_TEST_RUN. A test run gives a cgroup_skb program a dummy socket
 * with no storage shared between runs, so the socket's outstanding queries
 * live in mg_test_socket instead; everything else (parsing, matching,
 * learning, eviction, counters) is the production code.
 *
 * mg_test_socket[0]: the socket's queries and namespace, as egress leaves them.
 * mg_test_socket[1]: with rearm set, copied over [0] before each answer, so a
 *                    benchmark can replay one answer many times.
 */
#define MG_DEFINE_MAPS
#include "dns.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct mg_dns_socket);
} mg_test_socket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mg_test_rearm SEC(".maps");

SEC("cgroup_skb/egress")
int mg_test_dns_egress(struct __sk_buff *skb)
{
	struct mg_dns_socket *sock;
	struct dns_packet pk;
	__u32 zero = 0;

	sock = bpf_map_lookup_elem(&mg_test_socket, &zero);
	if (!sock || !dns_udp_peer(skb, 0, &pk) || !dns_trusted(&pk))
		return 1;
	dns_record_query(skb, &pk, sock, sock->namespace_id);
	return 1;
}

SEC("cgroup_skb/ingress")
int mg_test_dns_ingress(struct __sk_buff *skb)
{
	struct mg_dns_socket *sock, *saved;
	struct dns_packet pk;
	__u32 zero = 0, one = 1, *rearm;

	if (!dns_udp_peer(skb, 1, &pk))
		return 1;
	if (!dns_trusted(&pk)) {
		dns_count(MG_DNS_STAT_UNTRUSTED);
		return 1;
	}
	sock = bpf_map_lookup_elem(&mg_test_socket, &zero);
	saved = bpf_map_lookup_elem(&mg_test_socket, &one);
	rearm = bpf_map_lookup_elem(&mg_test_rearm, &zero);
	if (!sock || !saved || !rearm)
		return 1;
	if (*rearm)
		*sock = *saved;
	dns_read_answer(skb, &pk, sock);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
