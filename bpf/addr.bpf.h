/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Addresses as every map stores them: 16 bytes, IPv4 as ::ffff:a.b.c.d. */
#ifndef MESHGATE_ADDR_BPF_H
#define MESHGATE_ADDR_BPF_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

static __always_inline void addr_set_v4(__u8 *addr, __u32 ip4_be)
{
	__u32 *w = (__u32 *)addr;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = ip4_be;
}

static __always_inline int addr_is_v4(const __u8 *addr)
{
	const __u32 *w = (const __u32 *)addr;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

#endif /* MESHGATE_ADDR_BPF_H */
