// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Never loaded. Compiled only so that its BTF carries every enum and the
 * event record of include/meshgate_abi.h, which no map names: the maps'
 * own types come from meshgate.bpf.o. scripts/gen-abi.mjs reads both.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <asm/socket.h>
#include <linux/sched.h>
#include "include/meshgate_abi.h"

/* Kernel UAPI numbers user space needs to read a netns cookie (native/libbpf.ts netnsCookie()). */
enum mg_uapi_netns {
	MG_UAPI_SOL_SOCKET = SOL_SOCKET,
	MG_UAPI_SO_NETNS_COOKIE = SO_NETNS_COOKIE,
	MG_UAPI_CLONE_NEWNET = CLONE_NEWNET,
};

struct mg_abi_anchor {
	enum mg_verdict verdict;
	enum mg_rule rule;
	enum mg_hook hook;
	enum mg_table table;
	enum mg_cgroup_kind cgroup_kind;
	enum mg_blocked_action blocked_action;
	enum mg_unknown_pod_policy unknown_pod_policy;
	enum mg_config_flags config_flags;
	enum mg_cgroup_flags cgroup_flags;
	enum mg_event_stat event_stat;
	enum mg_dns_limits dns_limits;
	enum mg_dns_host_kind dns_host_kind;
	enum mg_dns_stat dns_stat;
	enum mg_label_limits label_limits;
	enum mg_agent_mode agent_mode;
	enum mg_datapath_variant datapath_variant;
	enum mg_state_flags state_flags;
	enum mg_sk_flags sk_flags;
	struct mg_event event;
	enum mg_walk_limits walk_limits;
	enum mg_reply_limits reply_limits;
	enum mg_reply_flags reply_flags;
	enum mg_uapi_netns uapi_netns;
	/* Kernel UAPI layouts user space reads (bpf_obj_get_info_by_fd), for their offsets. */
	struct bpf_map_info map_info;
	struct bpf_link_info link_info;
	struct bpf_prog_info prog_info;
	/* Kernel UAPI numbers user space passes (attach, probe), for their values. */
	enum bpf_attach_type attach_type;
	enum bpf_prog_type prog_type;
	enum bpf_map_type map_type;
};

struct mg_abi_anchor mg_abi_anchor;

char LICENSE[] SEC("license") = "Dual BSD/GPL";
