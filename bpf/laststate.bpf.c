// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The agent's persisted per-object last good configuration: no program reads
 * it. It lives in its own object, pinned at <pin dir>/state/mg_last_good,
 * outside the ABI-hashed maps directory, so a datapath layout change never
 * loses it. Keys are opaque u64 (object version hash << 16 | chunk index) and
 * values opaque byte chunks of one serialised record; user space reads the
 * sizes from the map itself (src/datapath/lastGoodPins.ts). No preallocation:
 * the kernel holds only the chunks in use.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct mg_last_good_chunk {
	__u8 bytes[4096];
};
_Static_assert(sizeof(struct mg_last_good_chunk) == 4096, "mg_last_good_chunk size");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 32768); /* 128 MiB of chunks at most */
	__type(key, __u64);
	__type(value, struct mg_last_good_chunk);
} mg_last_good SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";
