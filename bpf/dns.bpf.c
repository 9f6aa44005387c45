// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The DNS reader's answer side: cgroup_skb/ingress.
 *
 * The egress program (bpf/backstop.bpf.c) remembers, on the socket
 * (mg_dns_sockets), each UDP query an enforced pod sends to a trusted resolver
 * (dns_egress_query()). Ingress reads the UDP answers from a trusted resolver
 * to such a socket and learns the allowlisted addresses (dns.bpf.h).
 * cgroup_skb/ingress runs before the packet is queued to the socket, so the
 * address is allowed before the pod can read the answer. Ingress also files
 * the peers of UDP servers' sockets (bpf/reply.bpf.h). It always returns 1:
 * the reader never drops a packet.
 */
#include "dns.bpf.h"
#include "reply.bpf.h"

/*
 * A learn event for `meshgate trace --verdict pass`: only while trace asks for
 * pass events, rate-limited like the decision's events.
 */
static __always_inline void dns_trace_learned(struct __sk_buff *skb, __u32 host_id)
{
	struct mg_ratelimit *rl;
	struct dns_scratch *s;
	struct mg_trace *tr;
	struct mg_state *st;
	struct mg_event *ev;
	__u32 zero = 0, which = MG_DNS_SCRATCH_INGRESS;
	__u64 now = bpf_ktime_get_ns(), elapsed, cap, pod_id = 0;

	tr = bpf_map_lookup_elem(&mg_trace, &zero);
	if (!tr || tr->until_ns <= now || !(tr->event_mask & (1u << MG_VERDICT_PASS)))
		return;
	st = bpf_map_lookup_elem(&mg_state, &zero);
	rl = bpf_map_lookup_elem(&mg_ratelimit, &zero);
	s = bpf_map_lookup_elem(&mg_dns_scratch, &which);
	if (!st || !rl || !s)
		return;
	cap = (__u64)st->events_burst * 1000;
	elapsed = now - rl->last_ns;
	rl->last_ns = now;
	if (elapsed > 10000000000ULL)
		rl->tokens_milli = cap;
	else
		rl->tokens_milli += elapsed * st->events_per_sec / 1000000;
	if (rl->tokens_milli > cap)
		rl->tokens_milli = cap;
	if (rl->tokens_milli < 1000)
		return;
	rl->tokens_milli -= 1000;
	ev = bpf_ringbuf_reserve(&mg_events, sizeof(*ev), 0);
	if (!ev)
		return;
	dns_pod_namespace(skb, &pod_id);
	ev->ts_ns = now;
	ev->cgroup_id = bpf_skb_cgroup_id(skb);
	ev->pod_cgroup_id = pod_id;
	__builtin_memcpy(ev->addr, s->addrs[0].addr, sizeof(ev->addr));
	ev->port = 0;
	ev->proto = IPPROTO_UDP;
	ev->verdict = MG_VERDICT_PASS;
	ev->rule = MG_RULE_ALLOW_LEARNED;
	ev->hook = MG_HOOK_DNS_LEARN;
	ev->pad0 = 0;
	ev->label_id = host_id;
	ev->pid = 0;
	ev->uid = bpf_get_socket_uid(skb);
	ev->pad1 = 0;
	bpf_ringbuf_submit(ev, 0);
}

SEC("cgroup_skb/ingress")
int mg_dns_ingress(struct __sk_buff *skb)
{
	struct mg_dns_socket *sock;
	struct dns_packet pk;
	struct bpf_sock *sk;
	__u32 host_id;

	if (!dns_udp_peer(skb, 1, &pk))
		return 1;
	reply_note(skb, pk.addr, pk.port);
	if (!dns_resolver_port(pk.port))
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
	host_id = dns_read_answer(skb, &pk, sock);
	if (host_id)
		dns_trace_learned(skb, host_id);
	return 1;
}
