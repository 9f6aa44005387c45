// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The original destination of a redirected connection, for the sidecar:
 * getsockopt(SOL_IP, SO_ORIGINAL_DST) and getsockopt(SOL_IPV6,
 * IP6T_SO_ORIGINAL_DST) on the accepted socket answer as after an iptables
 * REDIRECT, so Envoy needs no change.
 *
 * connect4/6 store the destination in the redirected socket's storage (mg_sk).
 * When that socket's SYN leaves, the backstop (backstop.bpf.c) reads the
 * client's address and port from it, which is the peer address of the socket
 * the proxy accepts, and files the destination under that
 * (mg_origdst_by_peer). The proxy's getsockopt is answered from there. No
 * sockops program runs on any connection.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "addr.bpf.h"

#define AF_INET		2
#define AF_INET6	10
#define SOL_IP		0
#define SOL_IPV6	41
#define SO_ORIGINAL_DST 80 /* also IP6T_SO_ORIGINAL_DST */

struct sockaddr_in_abi {
	__u16 sin_family;
	__u16 sin_port;
	__u32 sin_addr;
	__u8 zero[8];
};

struct sockaddr_in6_abi {
	__u16 sin6_family;
	__u16 sin6_port;
	__u32 sin6_flowinfo;
	__u32 sin6_addr[4];
	__u32 sin6_scope_id;
};

SEC("cgroup/getsockopt")
int mg_getsockopt(struct bpf_sockopt *ctx)
{
	struct mg_peer_key key = {};
	__u32 *w = (__u32 *)key.addr;
	struct bpf_sock *sk = ctx->sk;
	struct mg_origdst *od;
	__u8 *optval = ctx->optval;
	__u8 *optval_end = ctx->optval_end;
	const __u32 *orig;

	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	if (!sk)
		return 1;
	key.netns_cookie = bpf_get_netns_cookie(ctx);
	if (sk->family == AF_INET) {
		addr_set_v4(key.addr, sk->dst_ip4);
	} else {
		w[0] = sk->dst_ip6[0];
		w[1] = sk->dst_ip6[1];
		w[2] = sk->dst_ip6[2];
		w[3] = sk->dst_ip6[3];
	}
	key.port = sk->dst_port;
	od = bpf_map_lookup_elem(&mg_origdst_by_peer, &key);
	if (!od)
		return 1;
	orig = (const __u32 *)od->addr;

	if (ctx->level == SOL_IP) {
		struct sockaddr_in_abi *sin = (void *)optval;

		if (!addr_is_v4(od->addr))
			return 1; /* an IPv6 destination has no SOL_IP answer */
		if ((void *)(sin + 1) > (void *)optval_end)
			return 1;
		sin->sin_family = AF_INET;
		sin->sin_port = od->port;
		sin->sin_addr = orig[3];
		__builtin_memset(sin->zero, 0, sizeof(sin->zero));
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6_abi *sin6 = (void *)optval;

		if ((void *)(sin6 + 1) > (void *)optval_end)
			return 1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = od->port;
		sin6->sin6_flowinfo = 0;
		sin6->sin6_addr[0] = orig[0];
		sin6->sin6_addr[1] = orig[1];
		sin6->sin6_addr[2] = orig[2];
		sin6->sin6_addr[3] = orig[3];
		sin6->sin6_scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	return 1;
}
