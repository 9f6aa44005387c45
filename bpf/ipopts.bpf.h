/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 options: is there a source route? Shared by the backstop (packets) and setsockopt (IP_OPTIONS). */
#ifndef MESHGATE_IPOPTS_BPF_H
#define MESHGATE_IPOPTS_BPF_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define IPOPT_END	 0
#define IPOPT_NOOP	 1
#define IPOPT_LSRR	 131
#define IPOPT_SSRR	 137
#define MG_IPV4_OPTS_MAX 40

struct mg_opt_scan {
	__u8 opts[64]; /* a power of two, so a masked index stays inside */
	__u32 at;
	__u32 len;
	int source_routed;
};

/* One IPv4 option per call (bpf_loop): the verifier checks this body once. */
static long scan_one_option(__u32 n, struct mg_opt_scan *s)
{
	__u32 at = s->at;
	__u8 type, olen;

	if (at >= s->len)
		return 1;
	type = s->opts[at & 63];
	if (type == IPOPT_END)
		return 1;
	if (type == IPOPT_NOOP) {
		s->at = at + 1;
		return 0;
	}
	olen = s->opts[(at + 1) & 63];
	if (type == IPOPT_LSRR || type == IPOPT_SSRR || olen < 2) {
		s->source_routed = 1; /* a malformed option counts as the worst case */
		return 1;
	}
	s->at = at + olen;
	return 0;
}

/*
 * All options: bpf_loop, or in the compat variant (before 5.17) a bounded
 * loop around a global function, which the verifier checks once on its own
 * (only the backstop includes this there: one definition in the object).
 */
#ifdef MG_NO_KERN_CTX
__attribute__((noinline)) int mg_scan_one_option(struct mg_opt_scan *s)
{
	return s ? scan_one_option(0, s) : 1;
}

static __always_inline void scan_options(struct mg_opt_scan *s)
{
	__u32 i;

	for (i = 0; i < MG_IPV4_OPTS_MAX; i++)
		if (mg_scan_one_option(s))
			break;
}
#else
static __always_inline void scan_options(struct mg_opt_scan *s)
{
	bpf_loop(MG_IPV4_OPTS_MAX, scan_one_option, s, 0);
}
#endif

#endif /* MESHGATE_IPOPTS_BPF_H */
