/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rule 6's second source: an address the pod's namespace (or, for a global
 * host, any pod) learned from its own DNS answer (bpf/dns.bpf.h writes
 * mg_learned). Only consulted after the static allowlist missed: one hash
 * lookup per namespace, then one per live host of that address.
 */
#ifndef MESHGATE_LEARNED_BPF_H
#define MESHGATE_LEARNED_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"

/* 1 when addr:port/proto is allowed through a learned, unexpired host of namespace_id; the entry's label in *label_id. */
static __always_inline int learned_allows(const __u8 *addr, __u8 proto, __u16 port, __u8 slot, __u32 namespace_id,
					  __u32 *label_id)
{
	struct mg_learned_key key = {};
	struct mg_dns_port_key pk = {};
	struct mg_learned *v;
	__u64 now;
	__u32 *label;
	int i;

	key.namespace_id = namespace_id;
	__builtin_memcpy(key.addr, addr, 16);
	v = bpf_map_lookup_elem(&mg_learned, &key);
	if (!v)
		return 0;
	now = bpf_ktime_get_ns();
	pk.port = port;
	pk.proto = proto;
	pk.slot = slot;
	for (i = 0; i < MG_DNS_LEARNED_HOSTS; i++) {
		if (!v->hosts[i].host_id || v->hosts[i].expires_ns <= now)
			continue;
		pk.host_id = v->hosts[i].host_id;
		label = bpf_map_lookup_elem(&mg_dns_ports, &pk);
		if (label) {
			*label_id = *label;
			return 1;
		}
	}
	return 0;
}

#endif /* MESHGATE_LEARNED_BPF_H */
