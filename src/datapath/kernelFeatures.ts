// Whether the running kernel can load the program types and create the map
// types meshgate uses, asked through libbpf's probes (for the agent's preflight).
import { libbpf } from '../../native/libbpf.js';
import { KERNEL_ENUMS } from './abi.generated.js';

// enum bpf_prog_type / bpf_map_type values, from the BTF of bpf/abi.bpf.c (include/uapi/linux/bpf.h).
const PROG = KERNEL_ENUMS.bpf_prog_type;
const MAP = KERNEL_ENUMS.bpf_map_type;
const PROG_TYPES = {
  'cgroup/connect and cgroup/sendmsg (BPF_PROG_TYPE_CGROUP_SOCK_ADDR)': PROG.BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
  'cgroup/getsockopt and cgroup/setsockopt (BPF_PROG_TYPE_CGROUP_SOCKOPT)': PROG.BPF_PROG_TYPE_CGROUP_SOCKOPT,
  'cgroup_skb/egress, the packet backstop (BPF_PROG_TYPE_CGROUP_SKB)': PROG.BPF_PROG_TYPE_CGROUP_SKB,
};
const MAP_TYPES = {
  'LPM trie (BPF_MAP_TYPE_LPM_TRIE)': MAP.BPF_MAP_TYPE_LPM_TRIE,
  'ring buffer (BPF_MAP_TYPE_RINGBUF)': MAP.BPF_MAP_TYPE_RINGBUF,
  'map-in-map (BPF_MAP_TYPE_ARRAY_OF_MAPS)': MAP.BPF_MAP_TYPE_ARRAY_OF_MAPS,
  'LRU hash (BPF_MAP_TYPE_LRU_HASH)': MAP.BPF_MAP_TYPE_LRU_HASH,
  'socket storage (BPF_MAP_TYPE_SK_STORAGE)': MAP.BPF_MAP_TYPE_SK_STORAGE,
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
