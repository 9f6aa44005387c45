/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel structures the socket hooks read (with CO-RE, so offsets come
 * from the running kernel's BTF): a socket's cgroup, its parents and uid.
 * Only the fields used are declared; libbpf matches them by name. They are
 * read through the trusted pointer bpf_cast_to_kern_ctx() returns, as plain
 * loads (the verifier makes them fault-safe), with no helper call.
 * The compat variant (MG_NO_KERN_CTX) has none of this: see decide.bpf.h.
 */
#ifndef MESHGATE_KERNEL_BPF_H
#define MESHGATE_KERNEL_BPF_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef MG_NO_KERN_CTX

struct kernfs_node___mg {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___mg;

struct cgroup_subsys_state___mg {
	struct cgroup___mg *cgroup;
	struct cgroup_subsys_state___mg *parent;
} __attribute__((preserve_access_index));

struct cgroup___mg {
	struct cgroup_subsys_state___mg self;
	struct kernfs_node___mg *kn;
	int level;
} __attribute__((preserve_access_index));

struct sock_cgroup_data___mg {
	struct cgroup___mg *cgroup;
} __attribute__((preserve_access_index));

typedef struct {
	__u32 val;
} kuid_t___mg;

struct sock___mg {
	struct sock_cgroup_data___mg sk_cgrp_data;
	kuid_t___mg sk_uid;
} __attribute__((preserve_access_index));

/* The socket hooks' kernel contexts (bpf_sock_addr_kern, bpf_sockopt_kern) both start with the sock. */
struct bpf_sock_addr_kern___mg {
	struct sock___mg *sk;
} __attribute__((preserve_access_index));

/* Any program's context as the kernel holds it (6.2+). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#endif /* !MG_NO_KERN_CTX */

#endif /* MESHGATE_KERNEL_BPF_H */
