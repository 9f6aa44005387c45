// The decision of bpf/decide.bpf.h (socket hooks and packet backstop), written once in TypeScript as an ordered
// table: `meshgate explain` walks it over the live maps, and the kernel
// agreement test (test/kernel/explain.test.ts) checks on random configs and
// destinations that it gives exactly the verdict the kernel gives. The order
// of DECISION_STEPS is the order of decide() and decide_destination() in the
// C program; rule ids come from the ABI (RULE_NAMES), never from here.
import {
  BLOCKED_ACTION,
  CGROUP_FLAG,
  CGROUP_KIND,
  CONFIG_FLAG,
  IPPROTO_TCP,
  IPPROTO_UDP,
  RULE_NAMES,
  blockedActionName,
  formatAddress,
  protoName,
  type KernelCgroup,
  type KernelConfig,
  type TableName,
  type VerdictName,
} from '../datapath/codec.js';
import { MeshgateError } from '../errors.js';

/** A trie or port-map hit: which entry decided (for the message and --json). */
export interface MapHit {
  readonly map: 'mg_policy_trie' | 'mg_excluded_ports' | 'mg_learned';
  readonly table?: TableName;
  readonly labelId: number;
  /** mg_learned: the answer the address was learned from. */
  readonly learned?: LearnedHit;
}

/** An address learned from a pod's DNS answer, as learned_allows() (bpf/learned.bpf.h) finds it. */
export interface LearnedHit {
  /** 0: a global host */
  readonly namespaceId: number;
  /** the allowlisted host ("api.example.com", "*.example.com") */
  readonly host: string;
  /** the question the pod asked, when still known */
  readonly name: string | null;
  readonly ttlS: number;
  readonly ageMs: number;
  readonly expiresInMs: number;
}

/** The live maps as the decision reads them, at one generation slot. */
export interface PolicyLookups {
  /** LPM lookup with a full-length key, as trie_lookup() does; null on a miss. */
  trie(table: TableName, proto: number, port: number, namespaceId: number, address: Uint8Array): MapHit | null;
  excludedPort(port: number): boolean;
  /** mg_namespaces: the namespace's own blocked action (enum mg_blocked_action), null when it has none. */
  namespaceAction(namespaceId: number): number | null;
  /** Display text of a namespace id (for messages only). */
  namespaceName(namespaceId: number): string;
  /** mg_learned: an unexpired learned address whose host's entry allows proto/port (absent: nothing learned). */
  learned?(namespaceId: number, proto: number, port: number, address: Uint8Array): MapHit | null;
}

/** One mapped cgroup met on the walk from mg_state.cgroup_walk_start down to the caller. */
export interface WalkStep {
  readonly level: number;
  readonly cgroupId: bigint;
  readonly entry: KernelCgroup | null;
}

export interface DecisionInput {
  /** null when mg_state or the active slot's mg_config is missing or not loaded. */
  readonly config: KernelConfig | null;
  readonly walk: readonly WalkStep[];
  /**
   * The caller's socket is in the node's netns (mg_state.host_netns_cookie): an unmapped cgroup's
   * then passes under deny-external too (hostNetwork pods). Absent: not.
   */
  readonly hostNetns?: boolean;
  /** The caller's uid; null when unknown (explain assumes it is not proxy_uid and says so). */
  readonly uid: number | null;
  /** 16 bytes, IPv4 as ::ffff:a.b.c.d (a v4-mapped destination is the IPv4 address). */
  readonly address: Uint8Array;
  readonly port: number;
  /** IPPROTO_TCP, IPPROTO_UDP (MPTCP counts as TCP) */
  readonly proto: number;
  readonly lookups: PolicyLookups;
}

/** What the steps see: the input plus what the cgroup walk found. */
export interface DecisionContext extends DecisionInput {
  readonly proxyCgroup: WalkStep | null;
  /** The shallowest mapped ancestor that is not a proxy: the pod. */
  readonly pod: WalkStep | null;
  /** A meshed pod (redirects allowed), as opposed to an unmapped cgroup under deny-external. */
  readonly enforced: boolean;
  readonly namespaceId: number;
  readonly tcp: boolean;
  readonly dest: string;
}

export interface DecisionStep {
  readonly rule: string;
  /** Where SPEC §2 states it. */
  readonly spec: string;
  /** null: the step does not decide, go on. Otherwise the verdict and the entry that decided. */
  decide(ctx: DecisionContext): { verdict: VerdictName; hit?: MapHit } | null;
  /** One line saying why, for a human, e.g. "denied: no allowlist entry ... covers ...". */
  message(ctx: DecisionContext, verdict: VerdictName, hit: MapHit | undefined): string;
}

export interface Decision {
  readonly verdict: VerdictName;
  readonly rule: string;
  readonly ruleId: number;
  readonly spec: string;
  readonly message: string;
  readonly hit: MapHit | null;
  /** The rules looked at before the one that decided, in order. */
  readonly checked: readonly string[];
  readonly context: DecisionContext;
}

const flag = (cfg: KernelConfig | null, f: number): boolean => Boolean(cfg && cfg.flags & f);

export function isV4(a: Uint8Array): boolean {
  return a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff;
}

/** addr_is_loopback_or_unspecified(): 127/8 and 0.0.0.0 (and v4-mapped), ::1 and ::. */
export function isLoopbackOrUnspecified(a: Uint8Array): boolean {
  if (isV4(a)) return a[12] === 127 || a.subarray(12).every((b) => b === 0);
  return a.subarray(0, 15).every((b) => b === 0) && (a[15] === 0 || a[15] === 1);
}

/** addr_is_multicast_or_broadcast(): 224/4 and 255.255.255.255, ff00::/8. */
export function isMulticastOrBroadcast(a: Uint8Array): boolean {
  if (isV4(a)) return (a[12]! & 0xf0) === 0xe0 || a.subarray(12).every((b) => b === 0xff);
  return a[0] === 0xff;
}

const verb: Record<VerdictName, string> = {
  pass: 'passed',
  redirect: 'redirected to the proxy',
  deny: 'denied',
  audit: 'audit: would be denied by rule 7',
};

/** Rule 7's action for the caller: the namespace's own, else the global blocked_egress_action. */
function blockedAction(c: DecisionContext): { action: number; source: string } {
  const own = c.namespaceId ? c.lookups.namespaceAction(c.namespaceId) : null;
  if (own !== null)
    return { action: own, source: `namespace ${c.lookups.namespaceName(c.namespaceId)}'s blocked_egress_action` };
  return { action: c.config!.blockedAction, source: 'blocked_egress_action' };
}
const nsText = (ctx: DecisionContext): string =>
  ctx.namespaceId ? `namespace ${ctx.lookups.namespaceName(ctx.namespaceId)}` : 'the global allowlist';

/** The ordered decision. Several steps may report the same rule (unknown-pod passes early and denies late). */
export const DECISION_STEPS: readonly DecisionStep[] = Object.freeze([
  {
    rule: 'no-policy',
    spec: 'no policy applied yet',
    decide: (c) => (flag(c.config, CONFIG_FLAG.MG_CFG_LOADED) ? null : { verdict: 'pass' }),
    message: () => 'passed: no complete policy is loaded (mg_state or mg_config of the active slot is empty)',
  },
  {
    rule: 'proxy-cgroup',
    spec: 'rule 1',
    decide: (c) => (c.proxyCgroup ? { verdict: 'pass' } : null),
    message: (c) =>
      `passed: cgroup ${c.proxyCgroup!.cgroupId} is a sidecar's container cgroup; the proxy's own traffic always passes`,
  },
  {
    rule: 'unknown-pod',
    spec: 'unknown_pod_policy pass',
    decide: (c) => (!c.pod && (c.config!.unknownPodPolicy === 0 || c.hostNetns) ? { verdict: 'pass' } : null),
    message: (c) =>
      c.config!.unknownPodPolicy === 0
        ? 'passed: no pod is mapped for this cgroup and unknown_pod_policy is pass'
        : "passed: no pod is mapped for this cgroup, and the socket is in the node's network namespace (a hostNetwork pod's): unknown_pod_policy deny-external never applies there",
  },
  {
    rule: 'not-enforced',
    spec: 'pods that are not meshed',
    decide: (c) => (c.pod && c.pod.entry!.kind !== CGROUP_KIND.MG_CGROUP_POD ? { verdict: 'pass' } : null),
    message: (c) => `passed: the pod (cgroup ${c.pod!.cgroupId}) is known but not meshed, so it is not enforced`,
  },
  {
    rule: 'proxy-uid',
    spec: 'rule 1 fallback',
    decide: (c) =>
      c.pod &&
      !(c.pod.entry!.flags & CGROUP_FLAG.MG_POD_PROXY_CGROUP_KNOWN) &&
      c.uid !== null &&
      c.uid === c.config!.proxyUid
        ? { verdict: 'pass' }
        : null,
    message: (c) =>
      `passed: uid ${c.uid} is proxy_uid and the pod's sidecar cgroup is unknown, so the caller counts as the proxy`,
  },
  {
    rule: 'loopback',
    spec: 'rule 2',
    decide: (c) => (isLoopbackOrUnspecified(c.address) ? { verdict: 'pass' } : null),
    message: (c) => `passed: ${c.dest} is loopback or the unspecified address`,
  },
  {
    rule: 'excluded-cidr',
    spec: 'rule 3',
    decide: (c) => {
      const hit = c.lookups.trie('exclude', 0, 0, 0, c.address);
      return hit ? { verdict: 'pass', hit } : null;
    },
    message: (c) => `passed: ${formatAddress(c.address)} is in outbound_ip_range_exclusion_list`,
  },
  {
    rule: 'excluded-port',
    spec: 'rule 3',
    decide: (c) =>
      c.lookups.excludedPort(c.port) ? { verdict: 'pass', hit: { map: 'mg_excluded_ports', labelId: 0 } } : null,
    message: (c) => `passed: port ${c.port} is in outbound_port_exclusion_list`,
  },
  {
    rule: 'mesh-cidr',
    spec: 'rule 4',
    decide: (c) => {
      if (isMulticastOrBroadcast(c.address)) return null;
      const hit = c.lookups.trie('mesh', 0, 0, 0, c.address);
      if (!hit) return null;
      return { verdict: c.tcp && c.enforced ? 'redirect' : 'pass', hit };
    },
    message: (c, v) =>
      `${verb[v]}: ${formatAddress(c.address)} is in mesh_cidr_ranges` +
      (v === 'redirect' ? '' : c.tcp ? ' (an unmapped cgroup is never redirected)' : '; UDP to the mesh passes'),
  },
  {
    rule: 'egress-enabled',
    spec: 'rule 5',
    decide: (c) => (flag(c.config, CONFIG_FLAG.MG_CFG_EGRESS) ? { verdict: 'pass' } : null),
    message: (c) => `passed: egress is on, so ${c.dest} outside the mesh may be reached`,
  },
  {
    rule: 'allow-namespace',
    spec: 'rule 6',
    decide: (c) => {
      if ((c.proto !== IPPROTO_TCP && c.proto !== IPPROTO_UDP) || !c.namespaceId) return null;
      const hit = c.lookups.trie('allow', c.proto, c.port, c.namespaceId, c.address);
      return hit ? { verdict: 'pass', hit } : null;
    },
    message: (c) =>
      `passed: an allowlist entry of namespace ${c.lookups.namespaceName(c.namespaceId)} covers ${c.dest}`,
  },
  {
    rule: 'allow-global',
    spec: 'rule 6',
    decide: (c) => {
      if (c.proto !== IPPROTO_TCP && c.proto !== IPPROTO_UDP) return null;
      const hit = c.lookups.trie('allow', c.proto, c.port, 0, c.address);
      return hit ? { verdict: 'pass', hit } : null;
    },
    message: (c) => `passed: an entry of the global egress_allowlist covers ${c.dest}`,
  },
  {
    rule: 'allow-learned',
    spec: 'rule 6 (DNS)',
    decide: (c) => {
      if ((c.proto !== IPPROTO_TCP && c.proto !== IPPROTO_UDP) || !c.lookups.learned) return null;
      const hit =
        (c.namespaceId ? c.lookups.learned(c.namespaceId, c.proto, c.port, c.address) : null) ??
        c.lookups.learned(0, c.proto, c.port, c.address);
      return hit ? { verdict: 'pass', hit } : null;
    },
    message: (c, _v, hit) => {
      const l = hit?.learned;
      if (!l) return `passed: ${c.dest} was learned from a DNS answer`;
      const name = l.name && l.name !== l.host ? `${l.name} (${l.host})` : l.host;
      return (
        `passed: learned from the DNS answer for ${name} ${(l.ageMs / 1000).toFixed(1)}s ago (TTL ${l.ttlS}s); ` +
        `allowed for ${(l.expiresInMs / 1000).toFixed(1)}s more`
      );
    },
  },
  {
    rule: 'no-mesh-cidrs',
    spec: 'special case (OSM)',
    decide: (c) =>
      flag(c.config, CONFIG_FLAG.MG_CFG_HAS_MESH_CIDRS) ? null : { verdict: c.tcp && c.enforced ? 'redirect' : 'pass' },
    message: (c, v) =>
      `${verb[v]}: egress is off and mesh_cidr_ranges is empty, so in-mesh and external cannot be told apart; ` +
      (c.tcp ? (v === 'redirect' ? 'TCP goes to the proxy' : 'an unmapped cgroup is never redirected') : 'UDP passes'),
  },
  {
    rule: 'unknown-pod',
    spec: 'unknown_pod_policy deny-external',
    decide: (c) => (c.enforced ? null : { verdict: 'deny' }),
    message: (c) =>
      `denied: no pod is mapped for this cgroup, unknown_pod_policy is deny-external, and no global allowlist entry covers ${c.dest}`,
  },
  {
    rule: 'blocked',
    spec: 'rule 7',
    decide: (c) => {
      const { action } = blockedAction(c);
      if (action === BLOCKED_ACTION.MG_ACTION_AUDIT) return { verdict: 'audit' };
      return { verdict: action === BLOCKED_ACTION.MG_ACTION_REDIRECT && c.tcp ? 'redirect' : 'deny' };
    },
    message: (c, v) => {
      const { action, source } = blockedAction(c);
      const why = v === 'deny' && action === BLOCKED_ACTION.MG_ACTION_REDIRECT ? ' (redirect applies to TCP only)' : '';
      return (
        `${verb[v]}: no allowlist entry in ${nsText(c)} or the global allowlist covers ${c.dest}; egress is off` +
        ` and ${source} is ${blockedActionName(action)}${why}`
      );
    },
  },
] satisfies DecisionStep[]);

for (const s of DECISION_STEPS) {
  if (!RULE_NAMES.includes(s.rule))
    throw new MeshgateError('MG_ABI_MISMATCH', `decision table names rule ${s.rule}, which the BPF ABI does not have`);
}

/** The pod-level part of decide(): proxy cgroup anywhere on the walk wins, else the shallowest mapped cgroup is the pod. */
function readWalk(walk: readonly WalkStep[]): { proxyCgroup: WalkStep | null; pod: WalkStep | null } {
  let pod: WalkStep | null = null;
  for (const step of walk) {
    if (!step.entry) continue;
    if (step.entry.kind === CGROUP_KIND.MG_CGROUP_PROXY) return { proxyCgroup: step, pod };
    pod ??= step;
  }
  return { proxyCgroup: null, pod };
}

export function formatDestination(address: Uint8Array, port: number, proto: number): string {
  const a = formatAddress(address);
  return `${isV4(address) ? a : `[${a}]`}:${port}/${protoName(proto)}`;
}

/** Walks DECISION_STEPS in order; the first step that decides is the answer. */
export function decide(input: DecisionInput): Decision {
  const { proxyCgroup, pod } = readWalk(input.walk);
  const proto = input.proto === 262 ? IPPROTO_TCP : input.proto;
  const ctx: DecisionContext = {
    ...input,
    proto,
    proxyCgroup,
    pod,
    enforced: pod !== null,
    namespaceId: pod?.entry?.namespaceId ?? 0,
    tcp: proto === IPPROTO_TCP,
    dest: formatDestination(input.address, input.port, proto),
  };
  const checked: string[] = [];
  for (const step of DECISION_STEPS) {
    const r = step.decide(ctx);
    if (!r) {
      checked.push(step.rule);
      continue;
    }
    return {
      verdict: r.verdict,
      rule: step.rule,
      ruleId: RULE_NAMES.indexOf(step.rule),
      spec: step.spec,
      message: step.message(ctx, r.verdict, r.hit),
      hit: r.hit ?? null,
      checked,
      context: ctx,
    };
  }
  throw new MeshgateError('MG_INTERNAL', 'decision table fell through: the last step always decides');
}
