// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Never attached. The loader loads it to learn whether the main variant can
 * run here (src/datapath/variant.ts): the socket hooks' identity, exactly as
 * decide.bpf.h reads it (bpf_cast_to_kern_ctx, then plain loads up the
 * cgroup tree), in both program types that use it. A kernel where this
 * object loads runs build/meshgate.bpf.o; anywhere else the compat variant.
 * Which kernel version allows what is in docs/decisions.md; a trial load
 * answers for the running kernel, backports included.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "kernel.bpf.h"

static __always_inline int probe_identity(void *ctx)
{
	struct bpf_sock_addr_kern___mg *kctx = bpf_cast_to_kern_ctx(ctx);
	struct sock___mg *sk = kctx->sk;
	struct cgroup___mg *c;

	if (!sk)
		return 1;
	c = sk->sk_cgrp_data.cgroup;
	if (!c || !c->self.parent)
		return 1;
	c = c->self.parent->cgroup;
	return c && c->kn->id && c->level >= 0 && sk->sk_uid.val != 0xffffffff;
}

SEC("cgroup/connect4")
int mg_probe_connect4(struct bpf_sock_addr *ctx)
{
	probe_identity(ctx);
	return 1;
}

SEC("cgroup/setsockopt")
int mg_probe_setsockopt(struct bpf_sockopt *ctx)
{
	probe_identity(ctx);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
