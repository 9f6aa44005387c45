/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel structures the socket hooks read (with CO-RE, so offsets come
 * from the running kernel's BTF): a socket's cgroup, its ancestors and uid.
 * Only the fields used are declared; libbpf matches them by name.
 */
#ifndef MESHGATE_KERNEL_BPF_H
#define MESHGATE_KERNEL_BPF_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct kernfs_node___mg {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___mg {
	struct kernfs_node___mg *kn;
	int level;
	struct cgroup___mg *ancestors[];
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

/* Any program's context as the kernel holds it (6.2+); for socket hooks, struct sock comes first. */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#endif /* MESHGATE_KERNEL_BPF_H */
