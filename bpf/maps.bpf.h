/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map meshgate pins. maps.bpf.c defines them (MG_DEFINE_MAPS); the hook
 * files see them as extern, and `bpftool gen object` links one object.
 * docs/maps.md has one table per map: who writes it, who reads it.
 */
#ifndef MESHGATE_MAPS_BPF_H
#define MESHGATE_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "include/meshgate_abi.h"

#ifdef MG_DEFINE_MAPS
#define MG_MAP
#else
#define MG_MAP extern
#endif

/*
 * Capacities. They reach user space through the object's BTF (MAPS[...].maxEntries in
 * src/datapath/abi.generated.ts); src/datapath/desired.ts (DATAPATH_LIMITS) refuses a desired
 * state that would not fit, before any kernel write.
 */
#define MG_POLICY_TRIE_MAX    (1 << 19) /* both slots together */
#define MG_EXCLUDED_PORTS_MAX 2048	/* both slots together */
#define MG_CGROUPS_MAX	      65536
#define MG_LABELS_MAX	      131072
#define MG_REDIRECTS_MAX      65536
#define MG_EVENTS_BYTES	      (256 * 1024)
#define MG_NAMESPACES_MAX     16384 /* both slots together */
/* Default only: the agent sets mg_flows' size before load (--flows-max). */
#define MG_FLOWS_MAX	     16384
#define MG_DNS_RESOLVERS_MAX 64
#define MG_DNS_HOSTS_MAX     65536  /* both slots together */
#define MG_DNS_PORTS_MAX     131072 /* both slots together */
#define MG_DNS_NAMES_MAX     8192
/* mg_learned and mg_learned_ring: the agent may set another size before load (--dns-learned-max). */
#define MG_LEARNED_MAX MG_DNS_LEARNED_DEFAULT

/* Mesh CIDRs, excluded CIDRs and allowlists of both slots, in one LPM trie. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MG_POLICY_TRIE_MAX);
	__type(key, struct mg_lpm_key);
	__type(value, struct mg_lpm_value);
} mg_policy_trie SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_EXCLUDED_PORTS_MAX);
	__type(key, struct mg_port_key);
	__type(value, __u8);
} mg_excluded_ports SEC(".maps");

/* Per-namespace settings (blocked_egress_action override), per slot. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MG_NAMESPACES_MAX);
	__type(key, struct mg_namespace_key);
	__type(value, struct mg_namespace);
} mg_namespaces SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MG_SLOTS);
	__type(key, __u32);
	__type(value, struct mg_config);
} mg_config SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_state);
} mg_state SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_trace);
} mg_trace SEC(".maps");

/* Never read by programs: the agent's last reconcile, for `meshgate status`. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_agent_status);
} mg_agent_status SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_CGROUPS_MAX);
	__type(key, __u64);
	__type(value, struct mg_cgroup);
} mg_cgroups SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MG_LABELS_MAX);
	__type(key, __u32);
	__type(value, struct mg_label);
} mg_labels SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_VERDICT_COUNT *MG_RULE_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} mg_counters SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_EVENT_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} mg_event_stats SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_ratelimit);
} mg_ratelimit SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MG_EVENTS_BYTES);
} mg_events SEC(".maps");

/* Per-socket verdict memory (BPF socket storage: freed with the socket). */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mg_sk_state);
} mg_sk SEC(".maps");

/* Client end of an established redirected connection -> its original destination (for SO_ORIGINAL_DST), filed by the backstop at the SYN. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MG_REDIRECTS_MAX);
	__type(key, struct mg_peer_key);
	__type(value, struct mg_origdst);
} mg_origdst_by_peer SEC(".maps");

/* Recent flows of enforced pods and their last verdict, for `meshgate flows` and `preview`. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MG_FLOWS_MAX);
	__type(key, struct mg_flow_key);
	__type(value, struct mg_flow);
} mg_flows SEC(".maps");

/* Never read by programs. User space updates mg_rcu_barrier[0] to wait for an
 * RCU grace period: the kernel waits for every running program after updating
 * a map-in-map, so no decision that read the old active slot is still running. */
MG_MAP struct mg_rcu_inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mg_rcu_inner SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct mg_rcu_inner_map);
} mg_rcu_barrier SEC(".maps");

/* Trusted resolvers (--dns-server): only their answers are read. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_DNS_RESOLVERS_MAX);
	__type(key, struct mg_dns_resolver_key);
	__type(value, __u8);
} mg_dns_resolvers SEC(".maps");

/* The trusted resolvers' ports (value 1): the one check a non-DNS UDP packet costs. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} mg_dns_resolver_ports SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_dns_config);
} mg_dns_config SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_dns_state);
} mg_dns_state SEC(".maps");

/* Allowlisted hostnames per namespace and slot (exact and wildcard). */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MG_DNS_HOSTS_MAX);
	__type(key, struct mg_dns_host_key);
	__type(value, struct mg_dns_host);
} mg_dns_hosts SEC(".maps");

/* A host's entry ports per slot -> the entry's label. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MG_DNS_PORTS_MAX);
	__type(key, struct mg_dns_port_key);
	__type(value, __u32);
} mg_dns_ports SEC(".maps");

/* The queries an enforced pod's socket sent to a trusted resolver. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mg_dns_socket);
} mg_dns_sockets SEC(".maps");

/* Addresses learned from answers, per namespace. Bounded: the ring evicts the oldest. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_LEARNED_MAX);
	__type(key, struct mg_learned_key);
	__type(value, struct mg_learned);
} mg_learned SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MG_LEARNED_MAX);
	__type(key, __u32);
	__type(value, struct mg_learned_ring_slot);
} mg_learned_ring SEC(".maps");

/* The question names learned addresses answered (display only). */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MG_DNS_NAMES_MAX);
	__type(key, __u64);
	__type(value, struct mg_dns_name);
} mg_dns_names SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_DNS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} mg_dns_stats SEC(".maps");

/* The peers an enforced pod's unconnected UDP socket received from (bpf/reply.bpf.h). */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MG_REPLY_PEERS_MAX);
	__type(key, struct mg_reply_key);
	__type(value, struct mg_reply);
} mg_reply_peers SEC(".maps");

MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_reply_config);
} mg_reply_config SEC(".maps");

/* The pod of a UDP socket that received datagrams, so that the cgroup walk runs once a second at most. */
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mg_reply_sock);
} mg_reply_sk SEC(".maps");

#endif /* MESHGATE_MAPS_BPF_H */
