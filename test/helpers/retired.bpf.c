// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Stand-ins for programs an older meshgate had (loader.ts RETIRED_PROGRAMS):
 * the migration test pins a link to each and checks that an adopting agent
 * retires it once its own hooks are in place.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Recorded the original destination before the backstop did. */
SEC("sockops")
int mg_sockops(struct bpf_sock_ops *skops)
{
	return 1;
}

/* Recorded DNS queries before mg_egress did (a second egress program). */
SEC("cgroup_skb/egress")
int mg_dns_egress(struct __sk_buff *skb)
{
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
