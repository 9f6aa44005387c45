/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The DNS reader's core, shared by bpf/dns.bpf.c (the cgroup_skb programs)
 * and test/helpers/dnstest.bpf.c (the same core driven by BPF_PROG_TEST_RUN,
 * with the socket's outstanding queries in an array map instead of socket
 * storage, because a test run has no real socket).
 *
 * dns_record_query(): an enforced pod's UDP query to a trusted resolver is
 * remembered (DNS id, question hash, type) on its socket.
 * dns_read_answer(): a UDP answer from a trusted resolver to such a socket is
 * parsed with bounded loops; when it answers an outstanding query of that
 * socket and its question is an allowlisted host (exact or wildcard) of the
 * socket's namespace or of the global list, every A/AAAA in its answer
 * section (following CNAME chains in that answer) is learned in mg_learned.
 * A malformed answer teaches nothing; no answer is ever dropped.
 *
 * Every packet read is copied once into a per-CPU scratch buffer; each byte
 * index is masked with MG_DNS_PACKET_MAX and checked against the payload
 * length, so no read leaves the buffer or the packet. The bounded loops do as
 * much as they can per callback (a whole label of a name, a label of the
 * suffix walk, 32 bytes of a comparison): a callback call and its state in map
 * memory cost more than hashing a byte. Inside a callback nothing branches per
 * byte but the loop's exit (dns_lower() is branch-free), so the verifier's
 * paths do not multiply.
 */
#ifndef MESHGATE_DNS_BPF_H
#define MESHGATE_DNS_BPF_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "addr.bpf.h"

#define MG_DNS_FNV_OFFSET 0xcbf29ce484222325ULL
#define MG_DNS_FNV_PRIME  0x100000001b3ULL
#define MG_DNS_HEADER	  12
#define MG_DNS_TYPE_A	  1
#define MG_DNS_TYPE_CNAME 5
#define MG_DNS_TYPE_AAAA  28
#define MG_DNS_TYPE_DNAME 39
#define MG_DNS_TYPE_RRSIG 46
#define MG_DNS_CLASS_IN	  1
/* Steps of one name walk: labels (at most 127 in 255 bytes), pointer hops (16) and the end. */
#define MG_DNS_NAME_STEPS 160
#define MG_DNS_MAX_JUMPS  16
#define MG_DNS_MAX_CHAIN  8
/* Names already walked from their first byte (the question, CNAME targets): a pointer to one is not walked again. */
#define MG_DNS_NAME_CACHE 4

struct dns_addr {
	__u8 addr[16];
	__u32 ttl;
	__u32 pad;
};

/*
 * The state of every walk lives here, in map memory, not on the stack: the
 * verifier does not track map contents, so a bpf_loop callback converges after
 * one pass instead of being re-verified for every value its state takes.
 */
struct dns_walk {
	__u64 hash;  /* MG_DNS_HASH_FORWARD (names) or MG_DNS_HASH_SUFFIX (suffix walk) */
	__u32 off;   /* next byte */
	__u32 end;   /* first byte after the name where it was written (0 until known) */
	__u32 total; /* wire length so far */
	__u32 limit; /* a compression pointer must point before this (strictly backwards) */
	__u32 jumps;
	__u32 record_labels; /* the question: note where each label starts */
	__u32 done;
	__u32 bad;
	__s32 next_label; /* suffix walk: the label whose start comes next, going backwards */
	__u32 cmp_start;  /* comparison with a host's name */
	__u32 cmp_len;
	__u32 cmp_differs;
	__u32 learned; /* addresses learned from this answer */
};

struct dns_scratch {
	struct dns_walk w;
	__u8 pkt[MG_DNS_PACKET_MAX + 1];
	__u32 len;	 /* DNS payload bytes in pkt */
	__u32 qname_len; /* wire bytes of the question name */
	__u32 nlabels;	 /* labels of the question (at most MG_DNS_MAX_LABELS kept) */
	__u32 off;	 /* answer walk: next record */
	__u32 ancount;
	__u32 nrecords; /* answer, authority and additional records */
	__u32 bad;
	__u32 nchain;
	__u32 naddr;
	__u64 qhash;		       /* MG_DNS_HASH_FORWARD of the question */
	__u64 chain[MG_DNS_MAX_CHAIN]; /* forward hashes of the question and its CNAME targets */
	__u32 ncache;
	__u32 cache_off[MG_DNS_NAME_CACHE];
	__u64 cache_hash[MG_DNS_NAME_CACHE];
	__u16 label_off[MG_DNS_MAX_LABELS];
	__u64 suffix_hash[MG_DNS_MAX_LABELS];
	struct dns_addr addrs[MG_DNS_MAX_RECORDS];
	struct mg_dns_name name; /* the question's text for mg_dns_names */
};

/* Per-CPU scratch, one per direction: a softirq (ingress) may interrupt a sendmsg (egress) on its CPU. */
#define MG_DNS_SCRATCH_EGRESS  0
#define MG_DNS_SCRATCH_INGRESS 1
MG_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} mg_dns_scratch SEC(".maps");

static __always_inline void dns_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&mg_dns_stats, &stat);

	if (n)
		*n += 1;
}

/*
 * ASCII lower case without a branch (BPF has no conditional set: a compare is
 * a jump, and a jump per byte inside an unrolled loop multiplies the verifier's
 * paths). Bit 7 of h + 63 says h >= 'A', of h + 37 that h > 'Z'; bytes >= 0x80
 * stay as they are.
 */
static __always_inline __u8 dns_lower(__u8 c)
{
	__u32 h = c & 0x7f, upper = (~(__u32)c & ((h + 63) ^ (h + 37))) & 0x80;

	return c | (upper >> 2);
}

static __always_inline __u8 dns_byte(const struct dns_scratch *s, __u32 off)
{
	return s->pkt[off & MG_DNS_PACKET_MAX];
}

static __always_inline __u16 dns_u16(const struct dns_scratch *s, __u32 off)
{
	return ((__u16)dns_byte(s, off) << 8) | dns_byte(s, off + 1);
}

/* The UDP payload of a packet: where it starts, its peer address and port. */
struct dns_packet {
	__u32 payload_off;
	__u32 payload_len;
	__u8 addr[16]; /* the source (ingress) or destination (egress) */
	__u16 port;    /* host order */
};

/*
 * Reads the IP and UDP headers (skb->data is the network header in
 * cgroup_skb). Returns 0 when the packet is not UDP or not over IPv4/IPv6
 * without extension headers: then it is nothing the reader looks at.
 */
static __always_inline int dns_udp_peer(struct __sk_buff *skb, int ingress, struct dns_packet *pk)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	__u8 hdr[48];
	__u32 l4, ulen;
	__u8 *udp;

	/* The cheap exit for everything that is not UDP: two bytes of the linear header. */
	if (data + 10 <= data_end) {
		__u8 *ip = data;

		if ((ip[0] >> 4) == 4 ? ip[9] != IPPROTO_UDP : (ip[0] >> 4) == 6 ? ip[6] != IPPROTO_UDP : 1)
			return 0;
	}
	/* The headers straight from the linear data when they are there (nearly always); a helper copy otherwise. */
	if (data + 48 <= data_end)
		__builtin_memcpy(hdr, data, 48);
	else if (bpf_skb_load_bytes(skb, 0, hdr, 28) < 0)
		return 0;
	if ((hdr[0] >> 4) == 4) {
		__u32 ihl = (hdr[0] & 0xf) * 4;

		if (hdr[9] != IPPROTO_UDP || ihl < 20)
			return 0;
		/* Reassembled by now; a fragment offset here would be a bug elsewhere. */
		if (hdr[6] & 0x3f || hdr[7])
			return 0;
		addr_set_v4(pk->addr, *(__u32 *)(hdr + (ingress ? 12 : 16)));
		l4 = ihl;
		if (ihl != 20 && bpf_skb_load_bytes(skb, ihl, hdr + 20, 8) < 0)
			return 0;
		udp = hdr + 20;
	} else if ((hdr[0] >> 4) == 6) {
		if (data + 48 > data_end && bpf_skb_load_bytes(skb, 0, hdr, 48) < 0)
			return 0;
		if (hdr[6] != IPPROTO_UDP)
			return 0;
		__builtin_memcpy(pk->addr, hdr + (ingress ? 8 : 24), 16);
		l4 = 40;
		udp = hdr + 40;
	} else {
		return 0;
	}
	pk->port = ((__u16)udp[ingress ? 0 : 2] << 8) | udp[ingress ? 1 : 3];
	ulen = ((__u32)udp[4] << 8) | udp[5];
	if (ulen < 8 || l4 + ulen > skb->len)
		return 0;
	pk->payload_off = l4 + 8;
	pk->payload_len = ulen - 8;
	return 1;
}

static __always_inline int dns_trusted(const struct dns_packet *pk)
{
	struct mg_dns_resolver_key key = {};

	__builtin_memcpy(key.addr, pk->addr, 16);
	key.port = pk->port;
	return bpf_map_lookup_elem(&mg_dns_resolvers, &key) != 0;
}

/* Copies the DNS payload into the scratch buffer. 0: too short, too long or unreadable. */
static __always_inline struct dns_scratch *dns_load(struct __sk_buff *skb, const struct dns_packet *pk, __u32 which)
{
	__u32 len = pk->payload_len;
	struct dns_scratch *s;

	if (len < MG_DNS_HEADER + 5 || len > MG_DNS_PACKET_MAX)
		return 0;
	s = bpf_map_lookup_elem(&mg_dns_scratch, &which);
	if (!s)
		return 0;
	/* len is in [17, 4095]: the verifier needs the bound spelled out. */
	len &= MG_DNS_PACKET_MAX;
	if (len < MG_DNS_HEADER + 5)
		return 0;
	if (bpf_skb_load_bytes(skb, pk->payload_off, s->pkt, len) < 0)
		return 0;
	s->len = len;
	return s;
}

/* ---- names -------------------------------------------------------------- */

struct dns_learn_ctx;

/* A bpf_loop context: only pointers that do not change while the loop runs. */
struct dns_cb {
	struct dns_scratch *s;
	const struct mg_dns_host *host;
	struct dns_learn_ctx *learn;
};

/*
 * Each walk below runs its step function through bpf_loop, whose callback the
 * verifier checks once. The compat variant (before bpf_loop, 5.17) runs a
 * bounded loop whose body is one call of a global function: the verifier
 * checks a global function once, on its own (pointer arguments: 5.12), so a
 * walk costs it a few instructions per step and walks nested in walks stay
 * far below its instruction limit. The walk's state is in map memory either way.
 * The global functions are weak: dns.bpf.c and backstop.bpf.c (the egress
 * program's query side) both include this file, and the linker keeps one copy.
 */
#ifdef MG_NO_KERN_CTX
#define DNS_STEPS(fn, n, step)                                                                                         \
	__attribute__((noinline, weak)) int fn##_one(__u32 i, struct dns_scratch *s)                                   \
	{                                                                                                              \
		struct dns_cb cb = {.s = s};                                                                           \
                                                                                                                       \
		return s ? step(i, &cb) : 1;                                                                           \
	}                                                                                                              \
	static __always_inline int fn(struct dns_scratch *s)                                                           \
	{                                                                                                              \
		__u32 i;                                                                                               \
                                                                                                                       \
		for (i = 0; i < (n); i++)                                                                              \
			if (fn##_one(i, s))                                                                            \
				break;                                                                                 \
		return 0;                                                                                              \
	}
#else
#define DNS_STEPS(fn, n, step)                                                                                         \
	static __always_inline int fn(struct dns_scratch *s)                                                           \
	{                                                                                                              \
		struct dns_cb cb = {.s = s};                                                                           \
                                                                                                                       \
		bpf_loop((n), step, &cb, 0);                                                                           \
		return 0;                                                                                              \
	}
#endif

/* One label (its length byte and its bytes), one compression pointer, or the end of a name. */
static long dns_name_step(__u32 i, void *ctx)
{
	struct dns_scratch *s = ((struct dns_cb *)ctx)->s;
	struct dns_walk *w;
	__u64 hash;
	__u32 off, j;
	__u8 c;

	if (!s)
		return 1;
	w = &s->w;
	off = w->off;
	if (off >= s->len) {
		w->bad = 1;
		return 1;
	}
	c = dns_byte(s, off);
	if (c == 0) {
		if (!w->end)
			w->end = off + 1;
		w->done = 1;
		return 1;
	}
	if ((c & 0xc0) == 0xc0) {
		__u32 ptr;

		if (off + 1 >= s->len) {
			w->bad = 1;
			return 1;
		}
		ptr = ((__u32)(c & 0x3f) << 8) | dns_byte(s, off + 1);
		if (!w->end)
			w->end = off + 2;
		/* Strictly backwards and few: no loop, no forward reference. */
		if (ptr >= w->limit || ptr < MG_DNS_HEADER || ++w->jumps > MG_DNS_MAX_JUMPS) {
			w->bad = 1;
			return 1;
		}
		w->limit = ptr;
		w->off = ptr;
		return 0;
	}
	if (c & 0xc0) { /* 0x40 and 0x80 label types are obsolete or unknown */
		w->bad = 1;
		return 1;
	}
	/* The whole label must be inside the packet, and the name inside its limit. */
	if (w->total + c + 1 > MG_DNS_NAME_MAX || off + 1 + c > s->len) {
		w->bad = 1;
		return 1;
	}
	if (w->record_labels) {
		__u32 n = s->nlabels;

		if (n < MG_DNS_MAX_LABELS)
			s->label_off[n & (MG_DNS_MAX_LABELS - 1)] = off;
		s->nlabels = n + 1;
	}
	hash = (w->hash ^ c) * MG_DNS_FNV_PRIME;
	for (j = 1; j <= 63; j++) {
		if (j > c)
			break;
		hash = (hash ^ dns_lower(dns_byte(s, off + j))) * MG_DNS_FNV_PRIME;
	}
	w->hash = hash;
	w->total += c + 1;
	w->off = off + 1 + c;
	return 0;
}

DNS_STEPS(dns_name_steps, MG_DNS_NAME_STEPS, dns_name_step)

/* Walks the name at off into s->w. Returns 0 when it is malformed; s->w.end is where its record goes on. */
static __always_inline int dns_walk_name(struct dns_scratch *s, __u32 off, __u32 limit, __u32 record_labels)
{
	struct dns_walk *w = &s->w;

	w->hash = MG_DNS_FNV_OFFSET;
	w->off = off;
	w->end = 0;
	w->total = 0;
	w->limit = limit;
	w->jumps = 0;
	w->record_labels = record_labels;
	w->done = 0;
	w->bad = 0;
	dns_name_steps(s);
	return w->done && !w->bad;
}

/*
 * The question: at offset 12, written out (no pointers). Sets s->qhash,
 * s->qname_len, the label offsets, and returns the offset after QTYPE/QCLASS,
 * or 0 when malformed or not an IN question.
 */
static __always_inline __u32 dns_read_question(struct dns_scratch *s, __u16 *qtype)
{
	__u32 end;

	s->nlabels = 0;
	if (!dns_walk_name(s, MG_DNS_HEADER, 0, 1))
		return 0;
	if (s->w.total == 0) /* the root: never an allowlisted host */
		return 0;
	end = s->w.end;
	if (end + 4 > s->len)
		return 0;
	*qtype = dns_u16(s, end);
	if (dns_u16(s, end + 2) != MG_DNS_CLASS_IN)
		return 0;
	s->qhash = s->w.hash;
	s->qname_len = s->w.total;
	return end + 4;
}

/* Bytes one call of the comparison's callback compares: fewer calls, the same comparison. */
#define MG_DNS_CHUNK 32

/*
 * Suffix hashes of the question, from its last byte backwards
 * (MG_DNS_HASH_SUFFIX), one kept label a call: call i hashes the bytes of
 * label top - i (the last kept label takes every byte after it too, when the
 * question has more labels than kept) and notes the suffix hash there.
 */
static long dns_suffix_step(__u32 i, void *ctx)
{
	struct dns_scratch *s = ((struct dns_cb *)ctx)->s;
	struct dns_walk *w;
	__u32 j, start, end;
	__u64 hash;
	__s32 k;

	if (!s)
		return 1;
	w = &s->w;
	k = w->next_label - (__s32)i;
	if (k < 0 || k >= MG_DNS_MAX_LABELS)
		return 1;
	start = s->label_off[k & (MG_DNS_MAX_LABELS - 1)];
	end = i == 0 ? MG_DNS_HEADER + s->qname_len : s->label_off[(k + 1) & (MG_DNS_MAX_LABELS - 1)];
	hash = w->hash;
	for (j = 0; j < MG_DNS_NAME_MAX; j++) {
		if (start + j >= end)
			break;
		hash = (hash ^ dns_lower(dns_byte(s, end - 1 - j))) * MG_DNS_FNV_PRIME;
	}
	w->hash = hash;
	s->suffix_hash[k & (MG_DNS_MAX_LABELS - 1)] = hash;
	return 0;
}

DNS_STEPS(dns_suffix_steps, MG_DNS_MAX_LABELS, dns_suffix_step)

static __always_inline void dns_suffix_hashes(struct dns_scratch *s)
{
	__u32 n = s->nlabels;

	s->w.hash = MG_DNS_FNV_OFFSET;
	/* More labels than kept: the first ones are not wildcard candidates (exact match neither). */
	s->w.next_label = (n > MG_DNS_MAX_LABELS ? MG_DNS_MAX_LABELS : n) - 1;
	dns_suffix_steps(s);
}

/* Byte-wise confirmation of a hash hit, a chunk a call: the host's name against the question from label k on. */
static long dns_cmp_step(__u32 i, void *ctx)
{
	struct dns_cb *cb = ctx;
	struct dns_scratch *s = cb->s;
	const struct mg_dns_host *host = cb->host;
	__u32 j, at;

	if (!s || !host)
		return 1;
	for (j = 0; j < MG_DNS_CHUNK; j++) {
		at = i * MG_DNS_CHUNK + j;
		if (at >= s->w.cmp_len)
			return 1;
		if (dns_lower(dns_byte(s, s->w.cmp_start + at)) != host->name[at & MG_DNS_NAME_MAX]) {
			s->w.cmp_differs = 1;
			return 1;
		}
	}
	return 0;
}

#ifdef MG_NO_KERN_CTX
__attribute__((noinline, weak)) int dns_cmp_steps_one(__u32 i, struct dns_scratch *s, const struct mg_dns_host *host)
{
	struct dns_cb cb = {.s = s, .host = host};

	return s && host ? dns_cmp_step(i, &cb) : 1;
}

static __always_inline int dns_cmp_steps(struct dns_scratch *s, const struct mg_dns_host *host)
{
	__u32 i;

	for (i = 0; i < (MG_DNS_NAME_MAX + 1) / MG_DNS_CHUNK; i++)
		if (dns_cmp_steps_one(i, s, host))
			break;
	return 0;
}
#else
static __always_inline int dns_cmp_steps(struct dns_scratch *s, const struct mg_dns_host *host)
{
	struct dns_cb cb = {.s = s, .host = host};

	bpf_loop((MG_DNS_NAME_MAX + 1) / MG_DNS_CHUNK, dns_cmp_step, &cb, 0);
	return 0;
}
#endif

/* The host id of the allowlisted host that the question's suffix from label k is, or 0. */
static __always_inline __u32 dns_host_at_body(struct dns_scratch *s, __u32 k, __u8 kind, __u32 namespace_id, __u8 slot)
{
	struct mg_dns_host_key key = {};
	const struct mg_dns_host *host;
	__u32 start;

	if (k >= MG_DNS_MAX_LABELS || k >= s->nlabels)
		return 0;
	barrier_var(k); /* keep the masks below: a global function's verifier sees k's check in another register */
	key.name_hash = s->suffix_hash[k & (MG_DNS_MAX_LABELS - 1)];
	key.namespace_id = namespace_id;
	key.slot = slot;
	key.kind = kind;
	host = bpf_map_lookup_elem(&mg_dns_hosts, &key);
	if (!host)
		return 0;
	start = s->label_off[k & (MG_DNS_MAX_LABELS - 1)];
	if (host->name_len != MG_DNS_HEADER + s->qname_len - start)
		return 0;
	s->w.cmp_start = start;
	s->w.cmp_len = host->name_len;
	s->w.cmp_differs = 0;
	dns_cmp_steps(s, host);
	return s->w.cmp_differs ? 0 : host->host_id;
}

#ifdef MG_NO_KERN_CTX
/* Compat: a global function too, so the comparison walks of the candidates do not pile up in one verification. */
__attribute__((noinline, weak)) int dns_host_at_one(struct dns_scratch *s, __u32 k, __u32 kind, __u32 namespace_id,
						    __u32 slot)
{
	return s ? dns_host_at_body(s, k, kind, namespace_id, slot) : 0;
}
#define dns_host_at(s, k, kind, namespace_id, slot) dns_host_at_one(s, k, kind, namespace_id, slot)
#else
#define dns_host_at(s, k, kind, namespace_id, slot) dns_host_at_body(s, k, kind, namespace_id, slot)
#endif

/* Exact first, then the most specific wildcard (Istio: *.example.com matches any deeper name). */
static __always_inline __u32 dns_match_host(struct dns_scratch *s, __u32 namespace_id, __u8 slot)
{
	__u32 id, k, n = s->nlabels;

	/* A question with more labels than kept has no exact match, and only kept suffixes are tried. */
	if (n <= MG_DNS_MAX_LABELS) {
		id = dns_host_at(s, 0, MG_DNS_HOST_EXACT, namespace_id, slot);
		if (id)
			return id;
	}
	for (k = 1; k < MG_DNS_MAX_LABELS; k++) {
		if (k >= n)
			break;
		id = dns_host_at(s, k, MG_DNS_HOST_WILDCARD, namespace_id, slot);
		if (id)
			return id;
	}
	return 0;
}

/* ---- queries ------------------------------------------------------------ */

/*
 * Remembers a query on the socket's slots. The caller has checked that the
 * packet goes to a trusted resolver from an enforced pod.
 */
static __always_inline void dns_record_query(struct __sk_buff *skb, const struct dns_packet *pk,
					     struct mg_dns_socket *sock, __u32 namespace_id)
{
	struct dns_scratch *s = dns_load(skb, pk, MG_DNS_SCRATCH_EGRESS);
	struct mg_dns_query *q;
	__u16 qtype = 0;
	__u32 i;

	if (!s)
		return;
	/* A query (QR 0, opcode QUERY) with one question. */
	if ((dns_byte(s, 2) & 0xf8) != 0 || dns_u16(s, 4) != 1)
		return;
	if (!dns_read_question(s, &qtype))
		return;
	if (qtype != MG_DNS_TYPE_A && qtype != MG_DNS_TYPE_AAAA)
		return;
	i = sock->next++ & (MG_DNS_PENDING - 1);
	q = &sock->pending[i];
	q->name_hash = s->qhash;
	q->id = dns_u16(s, 0);
	q->qtype = qtype;
	q->used = 1;
	sock->namespace_id = namespace_id;
	dns_count(MG_DNS_STAT_QUERIES);
}

static __always_inline int dns_resolver_port(__u16 port)
{
	__u32 key = port;
	__u8 *known = bpf_map_lookup_elem(&mg_dns_resolver_ports, &key);

	return known && *known;
}

/* Pod cgroups sit a few levels below the attach point (QoS slice, pod, container). */
#define MG_DNS_CGROUP_WALK 8

/*
 * The namespace of an enforced pod's socket, or 0 (unmapped, not enforced, or
 * the sidecar); *pod_id is the pod's cgroup id.
 */
static __always_inline __u32 dns_pod_namespace(struct __sk_buff *skb, __u64 *pod_id)
{
	struct mg_cgroup *pod = 0;
	struct mg_state *st;
	__u32 zero = 0, start;
	int i;

	st = bpf_map_lookup_elem(&mg_state, &zero);
	if (!st)
		return 0;
	start = st->cgroup_walk_start;
	for (i = 0; i < MG_DNS_CGROUP_WALK; i++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, start + i);
		struct mg_cgroup *cg;

		if (!id)
			break;
		cg = bpf_map_lookup_elem(&mg_cgroups, &id);
		if (!cg)
			continue;
		if (cg->kind == MG_CGROUP_PROXY)
			return 0;
		if (!pod) {
			pod = cg;
			*pod_id = id;
		}
	}
	if (!pod || pod->kind != MG_CGROUP_POD)
		return 0;
	return pod->namespace_id;
}

/*
 * The egress program's DNS part (bpf/backstop.bpf.c calls it for a UDP
 * datagram to a resolver port that the backstop lets leave): a query of an
 * enforced pod to a trusted resolver is remembered on its socket.
 */
static __always_inline void dns_egress_query(struct __sk_buff *skb, struct bpf_sock *sk)
{
	struct mg_dns_socket *sock;
	struct dns_packet pk;
	__u32 namespace_id;
	__u64 pod_id = 0;

	if (!dns_udp_peer(skb, 0, &pk) || !dns_resolver_port(pk.port) || !dns_trusted(&pk))
		return;
	namespace_id = dns_pod_namespace(skb, &pod_id);
	if (!namespace_id)
		return;
	sock = bpf_sk_storage_get(&mg_dns_sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sock)
		return;
	dns_record_query(skb, &pk, sock, namespace_id);
}

/* ---- answers ------------------------------------------------------------ */

static __always_inline int dns_in_chain(const struct dns_scratch *s, __u64 hash)
{
	__u32 i;

	for (i = 0; i < MG_DNS_MAX_CHAIN; i++) {
		if (i >= s->nchain)
			break;
		if (s->chain[i] == hash)
			return 1;
	}
	return 0;
}

/*
 * A name that is only a compression pointer to a name walked before (an owner
 * pointing at the question, or at a CNAME target): its hash without walking it
 * again. The same checks as a walk: strictly backwards, inside the packet.
 */
static __always_inline int dns_cached_name(struct dns_scratch *s, __u32 off, __u64 *hash)
{
	__u32 i, ptr;
	__u8 c;

	if (off + 1 >= s->len)
		return 0;
	c = dns_byte(s, off);
	if ((c & 0xc0) != 0xc0)
		return 0;
	ptr = ((__u32)(c & 0x3f) << 8) | dns_byte(s, off + 1);
	if (ptr >= off || ptr < MG_DNS_HEADER)
		return 0;
	for (i = 0; i < MG_DNS_NAME_CACHE; i++) {
		if (i >= s->ncache)
			break;
		if (s->cache_off[i] == ptr) {
			*hash = s->cache_hash[i];
			return 1;
		}
	}
	return 0;
}

static __always_inline void dns_cache_name(struct dns_scratch *s, __u32 off, __u64 hash)
{
	__u32 n = s->ncache;

	if (n >= MG_DNS_NAME_CACHE)
		return;
	s->cache_off[n & (MG_DNS_NAME_CACHE - 1)] = off;
	s->cache_hash[n & (MG_DNS_NAME_CACHE - 1)] = hash;
	s->ncache = n + 1;
}

/* One answer record. Sets s->bad and stops on anything malformed. */
static long dns_record_step(__u32 i, void *ctx)
{
	struct dns_scratch *s = ((struct dns_cb *)ctx)->s;
	__u32 off, rdata, rdlen, ttl;
	__u64 owner;
	__u16 type;
	int owned;

	if (!s || i >= s->nrecords)
		return 1;
	off = s->off;
	if (dns_cached_name(s, off, &owner)) {
		off += 2;
	} else {
		if (!dns_walk_name(s, off, off, 0)) {
			s->bad = 1;
			return 1;
		}
		owner = s->w.hash;
		off = s->w.end;
	}
	if (off + 10 > s->len) {
		s->bad = 1;
		return 1;
	}
	type = dns_u16(s, off);
	ttl = ((__u32)dns_u16(s, off + 4) << 16) | dns_u16(s, off + 6);
	rdlen = dns_u16(s, off + 8);
	rdata = off + 10;
	if (rdata + rdlen > s->len) {
		s->bad = 1;
		return 1;
	}
	/* Authority and additional records (OPT's class is a size) are only checked for their bounds. */
	if (i >= s->ancount) {
		s->off = rdata + rdlen;
		return 0;
	}
	if (dns_u16(s, off + 2) != MG_DNS_CLASS_IN) {
		s->bad = 1;
		return 1;
	}
	owned = dns_in_chain(s, owner);
	/*
	 * An answer to an A/AAAA question holds CNAME, DNAME (with its synthesised
	 * CNAME), A/AAAA and their signatures; anything else there is refused.
	 */
	if (type == MG_DNS_TYPE_CNAME || type == MG_DNS_TYPE_DNAME) {
		if (!dns_walk_name(s, rdata, rdata, 0) || s->w.end != rdata + rdlen) {
			s->bad = 1;
			return 1;
		}
		dns_cache_name(s, rdata, s->w.hash);
		if (type == MG_DNS_TYPE_CNAME && owned && s->nchain < MG_DNS_MAX_CHAIN) {
			s->chain[s->nchain & (MG_DNS_MAX_CHAIN - 1)] = s->w.hash;
			s->nchain++;
		}
	} else if (type == MG_DNS_TYPE_A || type == MG_DNS_TYPE_AAAA) {
		struct dns_addr *a;
		__u32 n = s->naddr;

		if (rdlen != (type == MG_DNS_TYPE_A ? 4 : 16)) {
			s->bad = 1;
			return 1;
		}
		if (owned && n < MG_DNS_MAX_RECORDS) {
			a = &s->addrs[n & (MG_DNS_MAX_RECORDS - 1)];
			if (type == MG_DNS_TYPE_A) {
				__u32 j;

				addr_set_v4(a->addr, 0);
				for (j = 0; j < 4; j++)
					a->addr[12 + j] = dns_byte(s, rdata + j);
			} else {
				__u32 j;

				for (j = 0; j < 16; j++)
					a->addr[j] = dns_byte(s, rdata + j);
			}
			a->ttl = ttl;
			s->naddr = n + 1;
		}
	} else if (type != MG_DNS_TYPE_RRSIG) {
		s->bad = 1;
		return 1;
	}
	s->off = rdata + rdlen;
	return 0;
}

DNS_STEPS(dns_record_steps, MG_DNS_MAX_RECORDS, dns_record_step)

static __always_inline int dns_same_key(const struct mg_learned_key *a, const struct mg_learned_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

struct dns_learn_ctx {
	struct dns_scratch *s;
	const struct mg_dns_config *cfg;
	struct mg_dns_state *state;
	__u64 now;
	__u32 namespace_id;
	__u32 host_id;
};

/*
 * Writes one address for one host; the oldest learned entry goes when the ring
 * comes round. Refreshing a host the address already serves (the common case:
 * pods resolve the same names again and again) writes its place in the map
 * value directly, fields a reader may see in either state; anything else
 * writes a whole new value with bpf_map_update_elem(). Either way (as the
 * value copy did before) the element is trusted not to be deleted and reused
 * for another address between the lookup and the write: the ring of another
 * CPU would have to evict this very address at that instant.
 */
static __always_inline void dns_learn_one(struct dns_learn_ctx *c, const struct dns_addr *a)
{
	const struct mg_dns_config *cfg = c->cfg;
	struct mg_learned_ring_slot *slot;
	struct mg_learned_key key = {};
	struct mg_learned_host fresh = {};
	struct mg_learned val = {};
	struct mg_learned *old;
	__u64 ttl_ns, seq, best_exp = ~0ULL;
	__u32 i, place = 0, ring_idx;
	int refresh = 0;

	key.namespace_id = c->namespace_id;
	__builtin_memcpy(key.addr, a->addr, 16);
	old = bpf_map_lookup_elem(&mg_learned, &key);
	if (old) {
		for (i = 0; i < MG_DNS_LEARNED_HOSTS; i++) {
			if (old->hosts[i].host_id == c->host_id) {
				place = i;
				refresh = 1;
				break;
			}
		}
		if (!refresh)
			val = *old;
	}
	/* A new host: a free or expired place, else the one expiring first. */
	for (i = 0; !refresh && i < MG_DNS_LEARNED_HOSTS; i++) {
		__u64 exp = val.hosts[i].host_id ? val.hosts[i].expires_ns : 0;

		if (exp < best_exp || (exp <= c->now && best_exp > c->now)) {
			best_exp = exp;
			place = i;
		}
	}
	ttl_ns = (__u64)a->ttl * 1000000000ULL;
	if (ttl_ns < cfg->ttl_floor_ns)
		ttl_ns = cfg->ttl_floor_ns;
	if (ttl_ns > cfg->ttl_ceiling_ns)
		ttl_ns = cfg->ttl_ceiling_ns;
	place &= MG_DNS_LEARNED_HOSTS - 1;
	fresh.host_id = c->host_id;
	fresh.ttl_s = a->ttl;
	fresh.learned_ns = c->now;
	fresh.expires_ns = c->now + ttl_ns + cfg->grace_ns;
	fresh.name_hash = c->s->qhash;

	/* Take the next ring place; whoever held it (learned longest ago) is evicted. */
	seq = __sync_fetch_and_add(&c->state->next_seq, 1);
	ring_idx = seq % cfg->learned_max;
	slot = bpf_map_lookup_elem(&mg_learned_ring, &ring_idx);
	if (!slot)
		return;
	if (slot->seq_plus1 && !dns_same_key(&slot->key, &key)) {
		struct mg_learned *victim = bpf_map_lookup_elem(&mg_learned, &slot->key);

		if (victim && victim->seq == slot->seq_plus1 - 1) {
			int live = 0;

			for (i = 0; i < MG_DNS_LEARNED_HOSTS; i++)
				live |= victim->hosts[i].host_id && victim->hosts[i].expires_ns > c->now;
			bpf_map_delete_elem(&mg_learned, &slot->key);
			if (live)
				dns_count(MG_DNS_STAT_EVICTED);
		}
	}
	slot->key = key;
	slot->seq_plus1 = seq + 1;
	if (refresh && old) {
		old->hosts[place] = fresh;
		old->seq = seq;
	} else {
		val.hosts[place] = fresh;
		val.seq = seq;
		if (bpf_map_update_elem(&mg_learned, &key, &val, BPF_ANY) < 0) {
			dns_count(MG_DNS_STAT_LEARN_FAILED);
			return;
		}
	}
	dns_count(MG_DNS_STAT_ADDRESSES_LEARNED);
	c->s->w.learned++;
}

static long dns_learn_step(__u32 i, void *ctx)
{
	struct dns_learn_ctx *c = ((struct dns_cb *)ctx)->learn;
	struct dns_scratch *s;

	if (!c)
		return 1;
	s = c->s;
	/* bpf_loop runs at most MG_DNS_MAX_RECORDS times: the mask alone bounds the index. */
	if (!s || i >= s->naddr)
		return 1;
	dns_learn_one(c, &s->addrs[i & (MG_DNS_MAX_RECORDS - 1)]);
	return 0;
}

/* Learns every address of the answer for one host of one namespace (c->host_id, c->namespace_id). */
#ifdef MG_NO_KERN_CTX
__attribute__((noinline, weak)) int dns_learn_steps_one(__u32 i, struct dns_scratch *s, __u64 now, __u32 namespace_id,
							__u32 host_id)
{
	struct dns_learn_ctx c = {.s = s, .now = now, .namespace_id = namespace_id, .host_id = host_id};
	struct dns_cb cb = {.s = s, .learn = &c};
	__u32 zero = 0;

	c.cfg = bpf_map_lookup_elem(&mg_dns_config, &zero);
	c.state = bpf_map_lookup_elem(&mg_dns_state, &zero);
	if (!s || !c.cfg || !c.state || !c.cfg->learned_max)
		return 1;
	return dns_learn_step(i, &cb);
}

static __always_inline void dns_learn_steps_compat(struct dns_scratch *s, __u64 now, __u32 namespace_id, __u32 host_id)
{
	__u32 i;

	for (i = 0; i < MG_DNS_MAX_RECORDS; i++)
		if (dns_learn_steps_one(i, s, now, namespace_id, host_id))
			break;
}
#define dns_learn_steps(c, cb) dns_learn_steps_compat((c)->s, (c)->now, (c)->namespace_id, (c)->host_id)
#else
#define dns_learn_steps(c, cb) bpf_loop(MG_DNS_MAX_RECORDS, dns_learn_step, cb, 0)
#endif

/* Keeps the question's text for dump and explain ("learned from the DNS answer for ..."). */
static __always_inline void dns_remember_name(struct dns_scratch *s)
{
	__u64 key = s->qhash;
	__u32 j, len = s->qname_len;

	if (bpf_map_lookup_elem(&mg_dns_names, &key))
		return;
	s->name.len = len;
	for (j = 0; j < MG_DNS_NAME_MAX; j++) {
		if (j >= len)
			break;
		s->name.name[j] = dns_lower(dns_byte(s, MG_DNS_HEADER + j));
	}
	bpf_map_update_elem(&mg_dns_names, &key, &s->name, BPF_ANY);
}

/*
 * Reads an answer from a trusted resolver to a socket with outstanding
 * queries. The packet is always delivered. Returns the host id it learned
 * addresses for (the namespace's, else the global one), 0 when none; the
 * first learned address is then s->addrs[0].
 */
static __always_inline __u32 dns_read_answer(struct __sk_buff *skb, const struct dns_packet *pk,
					     struct mg_dns_socket *sock)
{
	struct dns_learn_ctx c = {};
	struct dns_cb cb = {};
	struct mg_dns_state *state;
	struct mg_dns_config *cfg;
	struct dns_scratch *s;
	struct mg_state *st;
	__u32 zero = 0, i, end, ns_host, global_host;
	__u16 qtype = 0, id;
	__u8 flags, slot;
	int matched = -1;

	s = dns_load(skb, pk, MG_DNS_SCRATCH_INGRESS);
	if (!s) {
		dns_count(MG_DNS_STAT_MALFORMED);
		return 0;
	}
	flags = dns_byte(s, 2);
	/* A response (QR 1), opcode QUERY, not truncated (TC answers are retried over TCP), NOERROR. */
	if ((flags & 0xfa) != 0x80 || (dns_byte(s, 3) & 0x0f) != 0 || dns_u16(s, 4) != 1) {
		dns_count(MG_DNS_STAT_MALFORMED);
		return 0;
	}
	s->ancount = dns_u16(s, 6);
	s->nrecords = s->ancount + dns_u16(s, 8) + dns_u16(s, 10);
	if (s->ancount == 0 || s->nrecords > MG_DNS_MAX_RECORDS) {
		dns_count(MG_DNS_STAT_MALFORMED);
		return 0;
	}
	end = dns_read_question(s, &qtype);
	if (!end || (qtype != MG_DNS_TYPE_A && qtype != MG_DNS_TYPE_AAAA)) {
		dns_count(MG_DNS_STAT_MALFORMED);
		return 0;
	}

	/* Solicited: this socket asked exactly this (id, name, type). The query is then used up. */
	id = dns_u16(s, 0);
	for (i = 0; i < MG_DNS_PENDING; i++) {
		struct mg_dns_query *q = &sock->pending[i];

		if (q->used && q->id == id && q->qtype == qtype && q->name_hash == s->qhash) {
			q->used = 0;
			matched = i;
			break;
		}
	}
	if (matched < 0) {
		dns_count(MG_DNS_STAT_UNSOLICITED);
		return 0;
	}

	/* Parse the whole answer section before learning anything from it. */
	s->off = end;
	s->bad = 0;
	s->naddr = 0;
	s->nchain = 1;
	s->chain[0] = s->qhash;
	s->ncache = 0;
	dns_cache_name(s, MG_DNS_HEADER, s->qhash);
	dns_record_steps(s);
	if (s->bad) {
		dns_count(MG_DNS_STAT_MALFORMED);
		return 0;
	}

	st = bpf_map_lookup_elem(&mg_state, &zero);
	cfg = bpf_map_lookup_elem(&mg_dns_config, &zero);
	state = bpf_map_lookup_elem(&mg_dns_state, &zero);
	if (!st || !cfg || !state || !cfg->learned_max)
		return 0;
	slot = st->active_slot & 1;
	dns_suffix_hashes(s);
	ns_host = sock->namespace_id ? dns_match_host(s, sock->namespace_id, slot) : 0;
	global_host = dns_match_host(s, 0, slot);
	if (!ns_host && !global_host) {
		dns_count(MG_DNS_STAT_NOT_ALLOWLISTED);
		return 0;
	}
	if (!s->naddr)
		return 0;

	c.s = s;
	c.cfg = cfg;
	c.state = state;
	c.now = bpf_ktime_get_ns();
	cb.s = s;
	cb.learn = &c;
	s->w.learned = 0;
	if (ns_host) {
		c.namespace_id = sock->namespace_id;
		c.host_id = ns_host;
		dns_learn_steps(&c, &cb);
	}
	if (global_host) {
		c.namespace_id = 0;
		c.host_id = global_host;
		dns_learn_steps(&c, &cb);
	}
	if (!s->w.learned)
		return 0;
	dns_count(MG_DNS_STAT_ANSWERS_LEARNED);
	dns_remember_name(s);
	return ns_host ? ns_host : global_host;
}

#endif /* MESHGATE_DNS_BPF_H */
