// The one error base of meshgate outside config (config issues carry their own
// codes: src/config/codes.ts). Every code is in ERROR_CODES, documented with an
// example in docs/errors.md, and a unit test fails when one is missing there.
// A message names what was being done and with what input; an error caught
// and thrown again is passed as `cause`, never flattened into text only.

const ERROR_TABLE = {
  // Kernel and pins (src/datapath, native)
  MG_BPF_CALL_FAILED:
    'A libbpf or bpf() call failed: the error carries the operation, the errno and what libbpf printed (the verifier log for a load).',
  MG_ABI_MISMATCH:
    'The compiled BPF object, its BTF and the TypeScript encoders disagree about a layout, field or number (a build mixes versions).',
  MG_MAP_LAYOUT_MISMATCH:
    'A map in the kernel has other key or value sizes than the encoders expect: meshgate refuses to read or write it.',
  MG_MAP_ENTRY_UNDECODABLE: 'A map entry holds a value no version of this ABI writes.',
  MG_OBJECT_CLOSED: 'The BPF object was used after it was closed (a meshgate bug).',
  MG_PIN_DIR_NOT_BPFFS: 'The pin directory is not on a bpf filesystem.',
  MG_PINS_NOT_FOUND:
    'The maps of this meshgate version are not pinned under the pin directory (no agent ran, another version did, or cleanup removed them).',
  MG_FLOWS_MAX_INVALID: 'The capacity of the recent-flows LRU is out of range.',
  MG_VALUE_OUT_OF_RANGE:
    "A value given to an encoder or a map does not fit its field or map (a caller's bug: config validation keeps user input in range).",
  MG_LEARNED_MAX_INVALID: 'The capacity of the learned-address map is out of range.',
  MG_DATAPATH_VARIANT_INVALID: 'MESHGATE_DATAPATH_VARIANT names no datapath variant (auto, kern-ctx, compat).',
  MG_DESIRED_STATE_INVALID: 'The compiled policy is inconsistent; it is refused before any kernel write.',
  MG_APPLY_FAILED: 'Writing a policy to the maps failed; the previous generation stays in force.',
  MG_POLICY_CAPACITY_EXCEEDED:
    "The whole policy does not fit the kernel's maps: a namespace's allowlists are held back (their earlier allowlist, or nothing, stays in force); the rest is enforced.",
  MG_ATTACH_ROOT_CGROUP: "Attaching to the root cgroup was asked for: meshgate never enforces the node's own daemons.",
  MG_ATTACH_CGROUP_MISMATCH: 'A pinned link is attached to another cgroup than the one asked for.',
  // Nodes and cgroups (src/node, src/agent)
  MG_NO_CGROUP2: 'No cgroup v2 filesystem is mounted.',
  MG_CGROUP_OUTSIDE_MOUNT: 'A cgroup directory is not below the cgroup2 mount.',
  MG_PROCESS_NO_CGROUP: 'A process has no cgroup v2 entry in /proc/PID/cgroup.',
  MG_KUBEPODS_NOT_FOUND: 'No kubepods cgroup was found to attach to (pass --cgroup-root).',
  // Kubernetes API (src/kube)
  MG_KUBECONFIG_INVALID:
    'The kubeconfig file cannot be used: not a map, or its current context names a cluster, user or context that is not there.',
  MG_KUBE_REQUEST_FAILED: 'A request to the Kubernetes API failed (HTTP status or network error).',
  // DNS (src/dns)
  MG_DNS_RESOLVER_OPTIONS:
    'A resolver option (TTL floor, ceiling, grace, retry, timeout, tries, servers) is out of range or inconsistent.',
  // Commands (src/cli, src/explain, src/report)
  MG_CLI_BAD_FLAG: 'A command-line flag has a value the command cannot use, or a mode lacks a flag it needs.',
  MG_CLI_NEEDS_ROOT: 'A command that reads pinned maps was run without root.',
  MG_EXPLAIN_BAD_DESTINATION: "explain's destination is not ADDRESS:PORT with an IP address.",
  MG_POD_NOT_FOUND: 'No mapped pod has the name asked for.',
  MG_POD_AMBIGUOUS:
    'A pod name is mapped more than once (use --cgroup ID), or a bare pod name is in several namespaces (give NAMESPACE/NAME).',
  MG_CGROUP_NOT_FOUND: 'No cgroup has the id asked for.',
  MG_CGROUP_OUTSIDE_ATTACH: 'A cgroup is not below the cgroup the hooks are attached to: they never see its connects.',
  MG_DEMO_FAILED: "The demo's agent did not start.",
  MG_INTERNAL: 'A check that cannot fail did (a meshgate bug).',
} as const satisfies Record<string, string>;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** Code -> one-line description, for every code outside config. */
export const ERROR_CODES: Readonly<Record<ErrorCode, string>> = Object.freeze({ ...ERROR_TABLE });

export class MeshgateError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MeshgateError';
    this.code = code;
  }
}

/** Whether `err` is a MeshgateError (with this code, when one is given). */
export function isMeshgateError(err: unknown, code?: ErrorCode): err is MeshgateError {
  return err instanceof MeshgateError && (code === undefined || err.code === code);
}
