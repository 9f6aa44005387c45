// Whether the running kernel can load the program types and create the map
// types meshgate uses, asked through libbpf's probes (for the agent's preflight).
import { libbpf } from '../../native/libbpf.js';

// enum bpf_prog_type / bpf_map_type values (include/uapi/linux/bpf.h).
const PROG_TYPES = {
  'cgroup/connect and cgroup/sendmsg (BPF_PROG_TYPE_CGROUP_SOCK_ADDR)': 18,
  'cgroup/getsockopt and cgroup/setsockopt (BPF_PROG_TYPE_CGROUP_SOCKOPT)': 25,
  'cgroup_skb/egress, the packet backstop (BPF_PROG_TYPE_CGROUP_SKB)': 8,
};
const MAP_TYPES = {
  'LPM trie (BPF_MAP_TYPE_LPM_TRIE)': 11, 'ring buffer (BPF_MAP_TYPE_RINGBUF)': 27, 'map-in-map (BPF_MAP_TYPE_ARRAY_OF_MAPS)': 12,
  'LRU hash (BPF_MAP_TYPE_LRU_HASH)': 9, 'socket storage (BPF_MAP_TYPE_SK_STORAGE)': 24,
};

/** One line per program or map type the kernel cannot provide (or that could not be probed). */
export function missingKernelFeatures(): string[] {
  const problems: string[] = [];
  for (const [what, type] of Object.entries(PROG_TYPES)) {
    try {
      if (!libbpf.probeProgType(type, what)) problems.push(`the kernel cannot load ${what} programs`);
    } catch (err) {
      problems.push(`probing ${what} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  for (const [what, type] of Object.entries(MAP_TYPES)) {
    try {
      if (!libbpf.probeMapType(type, what)) problems.push(`the kernel cannot create ${what} maps`);
    } catch (err) {
      problems.push(`probing ${what} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return problems;
}
