// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Stands in for the mg_sockops of an older meshgate: the migration test pins a link to it and checks that an adopting agent retires it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sockops")
int mg_sockops(struct bpf_sock_ops *skops)
{
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
