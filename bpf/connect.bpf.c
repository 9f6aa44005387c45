// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The decision: cgroup/connect4, connect6, sendmsg4, sendmsg6.
 *
 * Every connect() (TCP, UDP) and unconnected UDP sendmsg() of a process under
 * the attach cgroup comes here. The rules of SPEC §2 are applied in order and
 * the first match decides: pass (return 1), redirect (rewrite the destination
 * to the sidecar, return 1), deny (return 0: the call fails with EPERM) or
 * audit (return 1 untouched: counted and traced as "would deny").
 * The decision itself is decide.bpf.h, shared with the packet backstop.
 *
 * cgroup/setsockopt lives here too: it needs the socket's identity like the
 * others (bpf_cast_to_kern_ctx), and libbpf 1.1's static linker cannot link
 * one extern kfunc referenced from two objects. The compat variant
 * (MG_NO_KERN_CTX) builds it out.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "addr.bpf.h"

#include "decide.bpf.h"
#ifndef MG_NO_KERN_CTX
#include "ipopts.bpf.h"
#endif
#include "reply.bpf.h"

static __always_inline __u8 socket_proto(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;

	/* MPTCP is TCP to the policy: the same verdict, no side door. */
	if (proto == IPPROTO_MPTCP_NUMBER)
		return IPPROTO_TCP;
	return proto > 255 ? 255 : proto;
}

/*
 * Remember where a redirected connection was going, for SO_ORIGINAL_DST: in the
 * socket's own storage, so only redirected sockets pay anything. connect()
 * sends the SYN before it returns; the backstop files this under the client's
 * address and port then (mg_origdst_by_peer), which getsockopt reads.
 */
static __always_inline void remember_original(struct bpf_sock_addr *ctx, const struct mg_dest *d)
{
	struct mg_sk_state *st;

	st = bpf_sk_storage_get(&mg_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	__builtin_memcpy(st->origdst.addr, d->key.addr, sizeof(st->origdst.addr));
	st->origdst.port = bpf_htons(d->port);
	st->netns_cookie = bpf_get_netns_cookie(ctx);
	st->flags |= MG_SK_ORIGDST_PENDING;
}

#ifdef MG_NO_KERN_CTX
/*
 * Compat: the hook decided as the calling task, which may not be the socket's
 * pod (a kernel worker's MPTCP join, a socket passed to another pod). Note who
 * it was on a TCP socket: the backstop decides the SYN again as the socket's
 * own pod when they differ (backstop.bpf.c, connect_pod_differs()).
 */
static __always_inline void remember_connect_pod(struct bpf_sock_addr *ctx, const struct mg_decision *out)
{
	struct mg_sk_state *st;

	if (ctx->type != 1 /* SOCK_STREAM */)
		return;
	st = bpf_sk_storage_get(&mg_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	st->connect_pod = out->pod_cgroup_id;
	st->flags |= MG_SK_CONNECT_POD;
}
#endif

/*
 * A host-netns socket of an unmapped cgroup passed under deny-external: the
 * backstop, which cannot read a netns cookie in cgroup_skb on the kernels
 * meshgate supports, lets its packets pass too (decide.bpf.h, in_host_netns()).
 */
static __always_inline void remember_host_netns(struct bpf_sock_addr *ctx)
{
	struct mg_sk_state *st = bpf_sk_storage_get(&mg_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (st)
		st->flags |= MG_SK_HOST_NETNS;
}

static __always_inline int finish(struct bpf_sock_addr *ctx, struct mg_dest *d, int v6_socket)
{
	struct mg_decision out = {};
	struct mg_who who = {};

	sock_identity(ctx, &who);
	who.pid = bpf_get_current_pid_tgid() >> 32;
	who.netns_cookie = bpf_get_netns_cookie(ctx);
	decide(d, &out, &who);
	reply_decide_sendmsg(ctx, d, &out);
	record(d, &out, &who);
	if (out.verdict == MG_VERDICT_DENY)
		return 0;
	if (out.host_netns)
		remember_host_netns(ctx);
#ifdef MG_NO_KERN_CTX
	remember_connect_pod(ctx, &out);
#endif
	if (out.verdict != MG_VERDICT_REDIRECT)
		return 1;

	remember_original(ctx, d);
	ctx->user_port = bpf_htons(out.proxy_port);
	if (!v6_socket) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	} else if (addr_is_v4(d->key.addr)) {
		/* A v4-mapped destination goes to the v4 loopback, as the v4 connect it is. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	return 1;
}

static __always_inline int handle4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct mg_dest d = {};

	addr_set_v4(d.key.addr, ctx->user_ip4);
	d.port = bpf_ntohs(ctx->user_port);
	d.proto = socket_proto(ctx);
	d.hook = hook;
	return finish(ctx, &d, 0);
}

static __always_inline int handle6(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct mg_dest d = {};
	__u32 *w = (__u32 *)d.key.addr;

	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	d.port = bpf_ntohs(ctx->user_port);
	d.proto = socket_proto(ctx);
	d.hook = hook;
	return finish(ctx, &d, 1);
}

SEC("cgroup/connect4")
int mg_connect4(struct bpf_sock_addr *ctx)
{
	return handle4(ctx, MG_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int mg_connect6(struct bpf_sock_addr *ctx)
{
	return handle6(ctx, MG_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int mg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return handle4(ctx, MG_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int mg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return handle6(ctx, MG_HOOK_SENDMSG6);
}

#ifndef MG_NO_KERN_CTX
/*
 * Defence in depth: cgroup/setsockopt refuses source routes to enforced pods.
 *
 * A source route makes the packet's IP destination the first hop, not the
 * address connect() or sendmsg() decided. The backstop drops such packets
 * anyway; refusing the option up front turns a silent drop into an error the
 * application sees (EPERM) at the call that asked for it:
 * IP_OPTIONS with LSRR or SSRR, IPV6_RTHDR and IPV6_2292RTHDR (any type).
 * Clearing an option (optlen 0) stays allowed, and so does every other option.
 *
 * "Enforced" is what the decision says for an external destination: the
 * identity rules (no policy, unenforced pod, unknown pod under pass, the
 * sidecar) pass before any destination rule is looked at; anything else is
 * enforced (decide.bpf.h, the same code connect uses).
 *
 * The compat variant has no cgroup/setsockopt: before 6.4 no helper of that
 * program type finds the pod (bpf_get_current_ancestor_cgroup_id), and the
 * backstop drops a source-routed packet of an enforced pod anyway. The
 * event's pid stays 0: bpf_get_current_pid_tgid reaches sockopt programs in
 * 6.10 only.
 */
#define SOL_IP	       0
#define SOL_IPV6       41
#define IP_OPTIONS     4
#define IPV6_2292RTHDR 5
#define IPV6_RTHDR     57

static __always_inline int wants_source_route(struct bpf_sockopt *ctx)
{
	struct mg_opt_scan s = {};
	__u8 *optval = ctx->optval, *end = ctx->optval_end;
	int i;

	if (ctx->optlen <= 0)
		return 0;
	if (ctx->level == SOL_IPV6)
		return ctx->optname == IPV6_RTHDR || ctx->optname == IPV6_2292RTHDR;
	if (ctx->level != SOL_IP || ctx->optname != IP_OPTIONS)
		return 0;
	for (i = 0; i < MG_IPV4_OPTS_MAX; i++) {
		if (optval + i + 1 > end || i >= ctx->optlen)
			break;
		s.opts[i] = optval[i];
		s.len = i + 1;
	}
	if (s.len == 0)
		return 0;
	scan_options(&s);
	return s.source_routed;
}

SEC("cgroup/setsockopt")
int mg_setsockopt(struct bpf_sockopt *ctx)
{
	struct mg_decision out = {};
	struct mg_who who = {};
	struct mg_dest d = {};

	if (!wants_source_route(ctx))
		return 1;
	sock_identity(ctx, &who);
	who.netns_cookie = bpf_get_netns_cookie(ctx);
	/* An external destination (the limited broadcast address) tells the identity apart. */
	addr_set_v4(d.key.addr, 0xffffffff);
	d.proto = ctx->level == SOL_IP ? IPPROTO_IP : IPPROTO_IPV6;
	d.hook = MG_HOOK_SETSOCKOPT;
	decide(&d, &out, &who);
	if (out.rule < MG_RULE_LOOPBACK)
		return 1;
	out.verdict = MG_VERDICT_DENY;
	out.rule = MG_RULE_SOURCE_ROUTE;
	record(&d, &out, &who);
	return 0; /* EPERM */
}
#endif /* !MG_NO_KERN_CTX */
