// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Another tool's program: kernel tests attach it beside meshgate's and check that cleanup spares it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("cgroup/connect4")
int foreign_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
