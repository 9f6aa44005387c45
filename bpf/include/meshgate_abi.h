/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * meshgate kernel/user ABI: every map key and value, and the enums they carry.
 *
 * This header is the only place these layouts are written. User space never
 * types them again: scripts/gen-abi.mjs reads the compiled object's BTF and
 * generates src/datapath/abi.generated.ts (sizes, offsets, enum values), and
 * test/unit/abi.test.ts fails when the two drift.
 *
 * Rules: explicit padding, naturally aligned fields, a _Static_assert per size.
 * Addresses are always 16 bytes: IPv4 is stored as ::ffff:a.b.c.d, so one
 * trie serves both families and a v4-mapped destination on an AF_INET6 socket
 * is decided exactly as the IPv4 address.
 */
#ifndef MESHGATE_ABI_H
#define MESHGATE_ABI_H

#include <linux/types.h>

enum mg_verdict {
	MG_VERDICT_PASS = 0,
	MG_VERDICT_REDIRECT = 1,
	MG_VERDICT_DENY = 2,
	MG_VERDICT_AUDIT = 3, /* let through untouched, recorded as "would deny" (blocked_egress_action audit) */
	MG_VERDICT_COUNT = 4,
};

/* The rule that decided, in SPEC §2 order. Counters are indexed verdict * MG_RULE_COUNT + rule. */
enum mg_rule {
	MG_RULE_NO_POLICY = 0,	      /* no policy applied yet: pass */
	MG_RULE_NOT_ENFORCED = 1,     /* a known pod that is not meshed, or opted out */
	MG_RULE_UNKNOWN_POD = 2,      /* a cgroup the agent has not mapped: unknown_pod_policy */
	MG_RULE_PROXY_CGROUP = 3,     /* rule 1: the sidecar's own container cgroup */
	MG_RULE_PROXY_UID = 4,	      /* rule 1 fallback: proxy_uid, when the sidecar cgroup is unknown */
	MG_RULE_LOOPBACK = 5,	      /* rule 2 */
	MG_RULE_EXCLUDED_CIDR = 6,    /* rule 3: outbound_ip_range_exclusion_list */
	MG_RULE_EXCLUDED_PORT = 7,    /* rule 3: outbound_port_exclusion_list */
	MG_RULE_MESH_CIDR = 8,	      /* rule 4 */
	MG_RULE_EGRESS_ENABLED = 9,   /* rule 5 */
	MG_RULE_ALLOW_NAMESPACE = 10, /* rule 6: the pod namespace's allowlist */
	MG_RULE_ALLOW_GLOBAL = 11,    /* rule 6: egress_allowlist */
	MG_RULE_NO_MESH_CIDRS = 12,   /* special case: egress off and no mesh CIDRs */
	MG_RULE_BLOCKED = 13,	      /* rule 7: blocked_egress_action */
	MG_RULE_ALLOW_LEARNED = 14,   /* rule 6: an address learned from the pod's own DNS answer (mg_learned) */
	MG_RULE_EGRESS_BACKSTOP = 15, /* a packet the backstop dropped (cgroup_skb/egress): see docs/decisions.md */
	MG_RULE_SOURCE_ROUTE = 16,    /* a source-route option refused (cgroup/setsockopt) or dropped (backstop) */
	MG_RULE_REPLY = 17,	      /* a UDP reply to a peer that recently sent to this socket (mg_reply_peers) */
	MG_RULE_COUNT = 18,
};

/* Which hook made the decision (events only). */
enum mg_hook {
	MG_HOOK_CONNECT4 = 0,
	MG_HOOK_CONNECT6 = 1,
	MG_HOOK_SENDMSG4 = 2,
	MG_HOOK_SENDMSG6 = 3,
	MG_HOOK_EGRESS = 4,	/* the packet backstop, cgroup_skb/egress */
	MG_HOOK_SETSOCKOPT = 5, /* cgroup/setsockopt: source-route options */
	MG_HOOK_DNS_LEARN = 6,	/* cgroup_skb/ingress: addresses learned from a pod's DNS answer (trace only) */
};

/* mg_sk_state flags. */
enum mg_sk_flags {
	MG_SK_ORIGDST_PENDING = 1, /* redirected: the backstop files origdst under the client end at the SYN */
	MG_SK_PEER_PASSED = 2,	   /* the backstop let peer/peer_port/peer_proto through for this socket */
	MG_SK_CONNECT_POD = 4,	   /* compat: connect() decided this TCP socket as connect_pod (checked at the SYN) */
	MG_SK_HOST_NETNS = 8,	   /* a socket hook saw this socket in mg_state.host_netns_cookie's netns */
};

/* The policy tables sharing mg_policy_trie; part of every trie key. */
enum mg_table {
	MG_TABLE_MESH = 1,
	MG_TABLE_EXCLUDE = 2,
	MG_TABLE_ALLOW = 3,
};

enum mg_cgroup_kind {
	MG_CGROUP_POD = 1,	  /* a meshed pod's cgroup: enforced */
	MG_CGROUP_PROXY = 2,	  /* a sidecar's container cgroup: always passes */
	MG_CGROUP_UNENFORCED = 3, /* a known pod that is not meshed, opted out or hostNetwork */
};

enum mg_blocked_action {
	MG_ACTION_DENY = 0,
	MG_ACTION_REDIRECT = 1,
	MG_ACTION_AUDIT = 2,
};

enum mg_unknown_pod_policy {
	MG_UNKNOWN_PASS = 0,
	MG_UNKNOWN_DENY_EXTERNAL = 1,
};

/*
 * Cgroup levels the decision looks at, from mg_state.cgroup_walk_start down (bpf/decide.bpf.h):
 * pod cgroups sit a few levels below the attach point (QoS slice, pod, container).
 */
enum mg_walk_limits {
	MG_MAX_CGROUP_WALK = 8,
};

enum mg_config_flags {
	MG_CFG_LOADED = 1,	   /* a complete policy is in this slot */
	MG_CFG_EGRESS = 2,	   /* egress: "true" */
	MG_CFG_HAS_MESH_CIDRS = 4, /* mesh_cidr_ranges is non-empty */
};

enum mg_cgroup_flags {
	MG_POD_PROXY_CGROUP_KNOWN = 1, /* rule 1 uses the proxy cgroup, never proxy_uid */
};

enum mg_event_stat {
	MG_EVENT_STAT_EMITTED = 0,
	MG_EVENT_STAT_RATE_LIMITED = 1,
	MG_EVENT_STAT_RINGBUF_FULL = 2,
	MG_EVENT_STAT_COUNT = 3,
};

enum mg_label_limits {
	MG_LABEL_TEXT_SIZE = 512,
};

/* Number of generation slots: the active one and the one being built. */
#define MG_SLOTS 2
/* Key bits before the address: slot, table, proto, pad, port, pad, namespace_id. */
#define MG_LPM_HEADER_BITS    96
#define MG_LPM_FULL_PREFIXLEN (MG_LPM_HEADER_BITS + 128)

/* mg_policy_trie key. prefixlen counts the bits after itself; every entry fixes
 * the 96 header bits, so a lookup only ever matches its own slot and table. */
struct mg_lpm_key {
	__u32 prefixlen;
	__u8 slot;
	__u8 table; /* enum mg_table */
	__u8 proto; /* MG_TABLE_ALLOW: IPPROTO_TCP or IPPROTO_UDP; else 0 */
	__u8 pad0;
	__u16 port; /* MG_TABLE_ALLOW: destination port, host order; else 0 */
	__u16 pad1;
	__u32 namespace_id; /* MG_TABLE_ALLOW: the namespace's id; 0 is the global allowlist */
	__u8 addr[16];	    /* network order; IPv4 as ::ffff:a.b.c.d */
};
_Static_assert(sizeof(struct mg_lpm_key) == 32, "mg_lpm_key size");

struct mg_lpm_value {
	__u32 label_id; /* mg_labels key naming the entry (0: none) */
};
_Static_assert(sizeof(struct mg_lpm_value) == 4, "mg_lpm_value size");

/* mg_excluded_ports key: outbound_port_exclusion_list, per slot. */
struct mg_port_key {
	__u16 port; /* host order */
	__u8 slot;
	__u8 pad0;
};
_Static_assert(sizeof(struct mg_port_key) == 4, "mg_port_key size");

/* mg_namespaces key: per-namespace settings of one slot (written with the rest of the policy). */
struct mg_namespace_key {
	__u32 namespace_id; /* the namespace's id (mg_cgroup.namespace_id) */
	__u8 slot;
	__u8 pad0;
	__u16 pad1;
};
_Static_assert(sizeof(struct mg_namespace_key) == 8, "mg_namespace_key size");

/* mg_namespaces value: present only for a namespace whose allowlists set blocked_egress_action. */
struct mg_namespace {
	__u8 blocked_action; /* enum mg_blocked_action: overrides mg_config.blocked_action */
	__u8 pad0;
	__u16 pad1;
};
_Static_assert(sizeof(struct mg_namespace) == 4, "mg_namespace size");

/* mg_flows key: one recent flow of an enforced pod. */
struct mg_flow_key {
	__u64 pod_cgroup_id; /* the pod's cgroup (mg_cgroups key) */
	__u8 addr[16];	     /* destination, network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;	     /* destination port, host order */
	__u8 proto;	     /* IPPROTO_TCP or IPPROTO_UDP (MPTCP as TCP) */
	__u8 pad0;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_flow_key) == 32, "mg_flow_key size");

/* mg_flows value: what the kernel decided for that flow the last time. */
struct mg_flow {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last decision */
	__u64 count;	    /* decisions since the flow entered the LRU */
	__u64 generation;   /* mg_config.generation of the policy that decided last */
	__u32 label_id;	    /* the deciding entry, 0 when none */
	__u32 uid;	    /* the caller's uid at the last decision */
	__u8 verdict;	    /* enum mg_verdict */
	__u8 rule;	    /* enum mg_rule */
	__u8 hook;	    /* enum mg_hook */
	__u8 pad0;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_flow) == 40, "mg_flow size");

/* mg_config value, one per slot. */
struct mg_config {
	__u32 flags;		 /* enum mg_config_flags */
	__u16 proxy_port;	 /* proxy_outbound_port, host order */
	__u8 blocked_action;	 /* enum mg_blocked_action */
	__u8 unknown_pod_policy; /* enum mg_unknown_pod_policy */
	__u32 proxy_uid;
	__u32 event_mask; /* bit (1 << verdict): emit events for that verdict */
	__u64 generation;
};
_Static_assert(sizeof(struct mg_config) == 24, "mg_config size");

enum mg_state_flags {
	MG_STATE_RECORD_FLOWS = 1, /* decisions of enforced pods are filed in mg_flows */
};

/* mg_state value (one entry): which slot every decision reads. Switching
 * active_slot is the one write that moves the datapath to a new policy. */
struct mg_state {
	__u32 active_slot;
	__u32 cgroup_walk_start; /* cgroup level of the attach point */
	__u32 events_per_sec;	 /* per-CPU rate limit of ring buffer events */
	__u32 events_burst;
	__u32 flags; /* enum mg_state_flags */
	__u32 pad0;
	/* The netns the agent runs in (the node's: the agent is hostNetwork), as
	 * bpf_get_netns_cookie names it; 0: unknown. A socket in it is never
	 * enforced by unknown_pod_policy (hostNetwork pods, SPEC 1.3). */
	__u64 host_netns_cookie;
};
_Static_assert(sizeof(struct mg_state) == 32, "mg_state size");

/* mg_agent_status value (one entry): written by the agent after each reconcile,
 * read by `meshgate status`. Never read by programs. It lives with the pins, so
 * it outlives the agent process. */
enum mg_agent_mode {
	MG_AGENT_STANDALONE = 1,
	MG_AGENT_CLUSTER = 2,
};

/* Which build of the programs the agent loaded (bpf/kernel.bpf.h, src/datapath/variant.ts). */
enum mg_datapath_variant {
	MG_VARIANT_KERN_CTX = 1, /* socket hooks read the socket's cgroup (bpf_cast_to_kern_ctx) */
	MG_VARIANT_COMPAT = 2,	 /* Linux 5.15 helpers: socket hooks use the calling task's cgroup */
};

struct mg_agent_status {
	__u64 last_apply_unix_ms;     /* wall clock of the last successful apply */
	__u64 last_reconcile_unix_ms; /* wall clock of the last reconcile, applied or not */
	__u64 generation;	      /* the generation that apply made active */
	__u32 agent_pid;
	__u32 mode;		/* enum mg_agent_mode */
	__u32 objects_total;	/* config objects the agent read */
	__u32 objects_invalid;	/* of which rejected (their last good state is kept) */
	__u32 datapath_variant; /* enum mg_datapath_variant, 0 when unknown */
	__u32 pad0;
};
_Static_assert(sizeof(struct mg_agent_status) == 48, "mg_agent_status size");

/* mg_trace value (one entry): extra event verdicts asked for by `meshgate trace`, until a deadline. */
struct mg_trace {
	__u32 event_mask;
	__u32 pad0;
	__u64 until_ns; /* bpf_ktime_get_ns() deadline */
};
_Static_assert(sizeof(struct mg_trace) == 16, "mg_trace size");

/* mg_cgroups value: a pod-level or container-level cgroup id the agent knows. */
struct mg_cgroup {
	__u32 kind;	    /* enum mg_cgroup_kind */
	__u32 namespace_id; /* the pod's namespace (its allowlist in mg_policy_trie) */
	__u32 flags;	    /* enum mg_cgroup_flags */
	__u32 label_id;	    /* mg_labels key naming the pod */
};
_Static_assert(sizeof(struct mg_cgroup) == 16, "mg_cgroup size");

/* mg_labels value: display text for ids in other maps (pods, namespaces, entries). */
struct mg_label {
	char text[MG_LABEL_TEXT_SIZE];
};
_Static_assert(sizeof(struct mg_label) == 512, "mg_label size");

/* mg_ratelimit value (per CPU): token bucket for ring buffer events. */
struct mg_ratelimit {
	__u64 last_ns;
	__u64 tokens_milli; /* tokens * 1000 */
};
_Static_assert(sizeof(struct mg_ratelimit) == 16, "mg_ratelimit size");

/* The original destination of a redirected connection. */
struct mg_origdst {
	__u8 addr[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;    /* network order */
	__u16 pad0;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_origdst) == 24, "mg_origdst size");

/* mg_origdst_by_peer key: the client end of a redirected connection as the proxy sees it. */
struct mg_peer_key {
	__u64 netns_cookie;
	__u8 addr[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;    /* network order */
	__u16 pad0;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_peer_key) == 32, "mg_peer_key size");

/* mg_sk value (socket storage): what meshgate decided for one socket.
 * connect4/6 create it for redirected sockets only; the backstop for sockets
 * whose packets it had to decide itself (ping, raw, unconnected UDP). */
struct mg_sk_state {
	__u8 peer[16];	 /* network order; IPv4 as ::ffff:a.b.c.d */
	__u16 peer_port; /* network order; 0 when the packet had none readable */
	__u8 peer_proto; /* IPPROTO_* of that packet */
	__u8 flags;	 /* enum mg_sk_flags */
	__u32 pad0;
	__u64 netns_cookie;	   /* redirected: the netns of the connect, part of mg_peer_key */
	struct mg_origdst origdst; /* redirected: where connect() was going */
	__u64 generation;	   /* MG_SK_PEER_PASSED: the policy generation that let it through */
	__u64 connect_pod;	   /* MG_SK_CONNECT_POD: the pod (or sidecar) cgroup id connect() decided as, 0: none */
};
_Static_assert(sizeof(struct mg_sk_state) == 72, "mg_sk_state size");

/* mg_events record. */
struct mg_event {
	__u64 ts_ns;	     /* bpf_ktime_get_ns() */
	__u64 cgroup_id;     /* the caller's own cgroup */
	__u64 pod_cgroup_id; /* the mapped pod cgroup, 0 when unknown */
	__u8 addr[16];	     /* destination, network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;	     /* destination port, host order */
	__u8 proto;	     /* IPPROTO_* */
	__u8 verdict;	     /* enum mg_verdict */
	__u8 rule;	     /* enum mg_rule */
	__u8 hook;	     /* enum mg_hook */
	__u16 pad0;
	__u32 label_id; /* the deciding entry, 0 when none */
	__u32 pid;
	__u32 uid;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_event) == 64, "mg_event size");

/*
 * Hostnames learned from the pods' own DNS answers (bpf/dns.bpf.c).
 *
 * Names are compared in DNS wire format, lower-cased, without the root label:
 * "api.example.com" is "\x03api\x07example\x03com". Two FNV-1a 64 hashes are
 * used: MG_DNS_HASH_FORWARD over the bytes in order (the question of a query,
 * CNAME chains inside one answer), and MG_DNS_HASH_SUFFIX over the bytes in
 * reverse order, so one backward pass over a question yields the hash of every
 * suffix (exact hosts and wildcard suffixes). A hash hit is then confirmed
 * byte by byte against the name stored in mg_dns_hosts: a crafted collision
 * teaches nothing.
 */
enum mg_dns_limits {
	MG_DNS_NAME_MAX = 255,		/* wire-format bytes of a name, root excluded */
	MG_DNS_PENDING = 4,		/* outstanding queries remembered per socket */
	MG_DNS_LEARNED_HOSTS = 4,	/* hosts one learned address serves at once */
	MG_DNS_MAX_RECORDS = 32,	/* records (all sections) read per response; more is refused */
	MG_DNS_MAX_LABELS = 32,		/* labels of a question considered for wildcard suffixes */
	MG_DNS_PACKET_MAX = 4095,	/* DNS payload bytes read; a longer answer is refused */
	MG_DNS_LEARNED_DEFAULT = 32768, /* mg_learned entries unless the agent says otherwise */
};

enum mg_dns_host_kind {
	MG_DNS_HOST_EXACT = 1,	  /* api.example.com */
	MG_DNS_HOST_WILDCARD = 2, /* *.example.com: name holds example.com; any deeper name matches */
};

/* Counters of the DNS reader (per CPU), indexed by this enum. */
enum mg_dns_stat {
	MG_DNS_STAT_QUERIES = 0,	   /* queries recorded from enforced pods to a trusted resolver */
	MG_DNS_STAT_ANSWERS_LEARNED = 1,   /* answers that taught at least one address */
	MG_DNS_STAT_ADDRESSES_LEARNED = 2, /* addresses written (one per address and host) */
	MG_DNS_STAT_NOT_ALLOWLISTED = 3,   /* good answers whose question is no allowlisted host */
	MG_DNS_STAT_UNTRUSTED = 4,	   /* refused: from a resolver port, not a trusted address */
	MG_DNS_STAT_UNSOLICITED = 5,	   /* refused: no matching query was sent by that socket */
	MG_DNS_STAT_MALFORMED = 6,	   /* refused: truncated, bad names, counts, classes, sizes */
	MG_DNS_STAT_EVICTED = 7,	   /* unexpired learned addresses pushed out by newer ones */
	MG_DNS_STAT_LEARN_FAILED = 8,	   /* map update failed */
	MG_DNS_STAT_COUNT = 9,
};

/* mg_dns_resolvers key: a trusted resolver (value: __u8 1). */
struct mg_dns_resolver_key {
	__u8 addr[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;    /* host order */
	__u16 pad0;
};
_Static_assert(sizeof(struct mg_dns_resolver_key) == 20, "mg_dns_resolver_key size");

/* mg_dns_config value (one entry), written by the agent. */
struct mg_dns_config {
	__u64 ttl_floor_ns; /* a record's TTL is clamped to [floor, ceiling] */
	__u64 ttl_ceiling_ns;
	__u64 grace_ns;	   /* added to the clamped TTL */
	__u32 learned_max; /* capacity of mg_learned (and of the eviction ring); 0: learn nothing */
	__u32 pad0;
};
_Static_assert(sizeof(struct mg_dns_config) == 32, "mg_dns_config size");

/* mg_dns_state value (one entry): the eviction ring's next position. Kernel only. */
struct mg_dns_state {
	__u64 next_seq;
};
_Static_assert(sizeof(struct mg_dns_state) == 8, "mg_dns_state size");

/* mg_dns_hosts key: an allowlisted hostname of one namespace, per slot. */
struct mg_dns_host_key {
	__u64 name_hash;    /* MG_DNS_HASH_SUFFIX of the name (of a wildcard: the part after "*.") */
	__u32 namespace_id; /* 0: the global allowlist */
	__u8 slot;
	__u8 kind; /* enum mg_dns_host_kind */
	__u16 pad0;
};
_Static_assert(sizeof(struct mg_dns_host_key) == 16, "mg_dns_host_key size");

struct mg_dns_host {
	__u32 host_id;	/* mg_labels id of {kind: host, namespace, host} */
	__u16 name_len; /* bytes used in name */
	__u16 pad0;
	__u8 name[MG_DNS_NAME_MAX + 1]; /* lower-case wire format, confirms a hash hit */
};
_Static_assert(sizeof(struct mg_dns_host) == 264, "mg_dns_host size");

/* mg_dns_ports key: a host's entry ports, per slot (value: __u32 label id of the entry). */
struct mg_dns_port_key {
	__u32 host_id;
	__u16 port; /* host order */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 slot;
};
_Static_assert(sizeof(struct mg_dns_port_key) == 8, "mg_dns_port_key size");

/* One query a socket sent to a trusted resolver and has not had answered. */
struct mg_dns_query {
	__u64 name_hash; /* MG_DNS_HASH_FORWARD of the question */
	__u16 id;	 /* DNS id, network order as on the wire */
	__u16 qtype;	 /* host order */
	__u32 used;	 /* 1 while outstanding */
};
_Static_assert(sizeof(struct mg_dns_query) == 16, "mg_dns_query size");

/* mg_dns_sockets value (socket storage of an enforced pod's DNS socket). */
struct mg_dns_socket {
	struct mg_dns_query pending[MG_DNS_PENDING];
	__u32 namespace_id; /* the pod's namespace when it asked */
	__u32 next;	    /* round-robin slot for the next query */
};
_Static_assert(sizeof(struct mg_dns_socket) == 72, "mg_dns_socket size");

/* mg_learned key: an address learned for a namespace (0: a global host). */
struct mg_learned_key {
	__u32 namespace_id;
	__u32 pad0;
	__u8 addr[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
};
_Static_assert(sizeof(struct mg_learned_key) == 24, "mg_learned_key size");

struct mg_learned_host {
	__u32 host_id;	  /* 0: a free place */
	__u32 ttl_s;	  /* the record's TTL as answered */
	__u64 learned_ns; /* bpf_ktime_get_ns() of the answer */
	__u64 expires_ns; /* learned_ns + clamp(ttl) + grace */
	__u64 name_hash;  /* MG_DNS_HASH_FORWARD of the question (mg_dns_names) */
};
_Static_assert(sizeof(struct mg_learned_host) == 32, "mg_learned_host size");

struct mg_learned {
	__u64 seq; /* its place in the eviction ring: seq % learned_max */
	struct mg_learned_host hosts[MG_DNS_LEARNED_HOSTS];
};
_Static_assert(sizeof(struct mg_learned) == 136, "mg_learned size");

/* mg_learned_ring value: which key holds a ring place (oldest learned goes first). */
struct mg_learned_ring_slot {
	struct mg_learned_key key;
	__u64 seq_plus1; /* 0: empty */
};
_Static_assert(sizeof(struct mg_learned_ring_slot) == 32, "mg_learned_ring_slot size");

/* mg_dns_names value: the question a learned address answered (for explain and dump). */
struct mg_dns_name {
	__u32 len;
	__u8 name[MG_DNS_NAME_MAX + 1]; /* lower-case wire format */
};
_Static_assert(sizeof(struct mg_dns_name) == 260, "mg_dns_name size");

/*
 * Replies (bpf/reply.bpf.h): the peers an enforced pod's unconnected UDP
 * socket received datagrams from, so that its replies to them pass (rule
 * reply) like conntrack's ESTABLISHED. An entry lives MG_REPLY_UNREPLIED_MS
 * after a datagram came in, MG_REPLY_ASSURED_MS once the socket has replied
 * (conntrack's nf_conntrack_udp_timeout and _timeout_stream); only inbound
 * datagrams refresh it.
 */
enum mg_reply_limits {
	MG_REPLY_PEERS_MAX = 65536,	/* mg_reply_peers entries (LRU: the least recently used goes) */
	MG_REPLY_UNREPLIED_MS = 30000,	/* default lifetime before the socket replied */
	MG_REPLY_ASSURED_MS = 120000,	/* default lifetime once it has replied */
	MG_REPLY_LOOPBACK_IFINDEX = 1,	/* datagrams that came in on lo are never recorded */
	MG_REPLY_POD_RECHECK_MS = 1000, /* a socket's pod (mg_reply_sk) is looked up again after this */
	MG_REPLY_FRESH_SHIFT = 3,	/* the last peer filed is not written again for lifetime >> this (1/8) */
};

enum mg_reply_flags {
	MG_REPLY_ASSURED = 1, /* the socket has replied to this peer */
};

/* mg_reply_peers key: one peer of one socket. */
struct mg_reply_key {
	__u64 sock_cookie; /* bpf_get_socket_cookie() of the receiving socket: never reused */
	__u8 addr[16];	   /* the peer, network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;	   /* the peer's port, network order */
	__u16 pad0;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_reply_key) == 32, "mg_reply_key size");

struct mg_reply {
	__u64 expires_ns;    /* bpf_ktime_get_ns() after which the peer is no longer one */
	__u64 last_in_ns;    /* the last datagram from the peer */
	__u64 pod_cgroup_id; /* the pod that owns the socket (dump only) */
	__u32 flags;	     /* enum mg_reply_flags */
	__u32 pad0;
};
_Static_assert(sizeof(struct mg_reply) == 32, "mg_reply size");

/*
 * mg_reply_sk value (socket storage): the pod a UDP socket belongs to, as last
 * looked up, and the last peer filed (the fast path: a datagram from that peer
 * before fresh_until_ns leaves mg_reply_peers alone).
 */
struct mg_reply_sock {
	__u64 pod_cgroup_id;  /* the enforced pod that owns the socket; 0: none (unmapped, unenforced, sidecar) */
	__u64 checked_ns;     /* bpf_ktime_get_ns() of that lookup */
	__u64 fresh_until_ns; /* its entry's write + (lifetime >> MG_REPLY_FRESH_SHIFT); 0: none, or it replied since */
	__u8 last_addr[16];   /* the last peer filed, as in mg_reply_key */
	__u16 last_port;      /* network order */
	__u16 pad0;
	__u32 pad1;
};
_Static_assert(sizeof(struct mg_reply_sock) == 48, "mg_reply_sock size");

/* mg_reply_config value (one entry), written by the agent; 0 means the default. */
struct mg_reply_config {
	__u64 unreplied_ns; /* --udp-reply-timeout */
	__u64 assured_ns;   /* --udp-reply-stream-timeout */
};
_Static_assert(sizeof(struct mg_reply_config) == 16, "mg_reply_config size");

#endif /* MESHGATE_ABI_H */
