// The datapath's input: one complete policy plus the cgroups it applies to.
// Produced by src/policy (pure), consumed by Datapath.apply().
import { MAPS } from './abi.generated.js';
import { MeshgateError } from '../errors.js';
import {
  BLOCKED_ACTION_IDS,
  parsePrefix,
  type BlockedActionName,
  type Proto,
  type TableName,
  type VerdictName,
} from './codec.js';

export interface DesiredTrieEntry {
  readonly table: TableName;
  /** "10.0.0.0/8", "2001:db8::/32"; IPv4 and IPv6. */
  readonly cidr: string;
  /** allow table only */
  readonly proto?: Proto;
  /** allow table only, 1..65535 */
  readonly port?: number;
  /** allow table only: the namespace whose pods it applies to; '' is the global allowlist */
  readonly namespace?: string;
  /** display text for dump, explain and trace (which entry, which host) */
  readonly label?: string;
}

/**
 * Trie entries come in groups (mesh CIDRs, exclusions, one allowlist per
 * namespace...). A group that is the same object as in the previous apply is
 * skipped without looking at its entries, so a one-entry change costs one
 * group's diff. No key may appear in two groups.
 */
export interface DesiredGroup {
  readonly id: string;
  readonly entries: readonly DesiredTrieEntry[];
  /**
   * Set for a group of plain CIDRs of one table (mesh or exclude): the
   * datapath reads `cidrs` and never asks for `entries`, so no object per
   * entry is made or kept (src/policy/cidrBuckets.ts).
   */
  readonly table?: 'mesh' | 'exclude';
  readonly cidrs?: readonly string[];
}

/** Entries in a group, without making them. */
export const groupSize = (g: DesiredGroup): number => (g.cidrs ? g.cidrs.length : g.entries.length);

export interface DesiredPolicy {
  readonly egress: boolean;
  readonly proxyPort: number;
  readonly proxyUid: number;
  readonly blockedAction: BlockedActionName;
  /** Namespaces whose allowlists set their own blocked_egress_action (absent: the global one applies). */
  readonly namespaceActions?: readonly NamespaceAction[];
  readonly unknownPodPolicy: 'pass' | 'deny-external';
  /** Verdicts that emit ring buffer events (rate-limited). */
  readonly eventVerdicts: readonly VerdictName[];
  readonly groups: readonly DesiredGroup[];
  readonly excludedPorts: readonly number[];
  /** Allowlisted hostnames the kernel learns addresses for from the pods' own DNS answers. */
  readonly dnsHosts?: readonly DesiredDnsHost[];
}

/** One allowlisted host of one namespace ('' is the global allowlist), with its entries' ports. */
export interface DesiredDnsHost {
  readonly namespace: string;
  /** "api.example.com" or "*.example.com" (lower-case) */
  readonly host: string;
  /** label: the entry that allows the port (dump, explain, trace) */
  readonly ports: readonly { readonly proto: Proto; readonly port: number; readonly label: string }[];
}

export interface NamespaceAction {
  readonly namespace: string;
  readonly action: BlockedActionName;
}

export type CgroupKindName = 'pod' | 'proxy' | 'unenforced';

export interface DesiredCgroup {
  readonly cgroupId: bigint;
  readonly kind: CgroupKindName;
  readonly namespace: string;
  /** "namespace/pod" or "namespace/pod container" */
  readonly label: string;
  /** The pod's sidecar cgroup is mapped: rule 1 never falls back to proxy_uid. */
  readonly proxyCgroupKnown: boolean;
}

export interface DesiredState {
  readonly policy: DesiredPolicy;
  readonly cgroups: readonly DesiredCgroup[];
}

/** Per-policy capacities: the trie and the port map hold two slots each. */
export const DATAPATH_LIMITS = Object.freeze({
  maxPolicyEntries: MAPS.mg_policy_trie.maxEntries / 2,
  maxExcludedPorts: MAPS.mg_excluded_ports.maxEntries / 2,
  maxCgroups: MAPS.mg_cgroups.maxEntries,
  maxLabels: MAPS.mg_labels.maxEntries,
  maxNamespaceActions: MAPS.mg_namespaces.maxEntries / 2,
  maxDnsHosts: MAPS.mg_dns_hosts.maxEntries / 2,
  maxDnsHostPorts: MAPS.mg_dns_ports.maxEntries / 2,
});

function invalid(message: string): never {
  throw new MeshgateError('MG_DESIRED_STATE_INVALID', `desired state rejected before any kernel write: ${message}`);
}

const isPort = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

/**
 * Checks only the groups that changed (the others passed before). Throws
 * MG_DESIRED_STATE_INVALID naming the group, the entry and the value. The
 * datapath passes no groups: its encoder (trieEncode.ts) checks each entry
 * with the same functions while it parses the entry's CIDR for its key.
 */
export function validateDesired(
  state: DesiredState,
  changedGroups: readonly DesiredGroup[],
  totalEntries: number,
): void {
  const p = state.policy;
  if (!isPort(p.proxyPort)) invalid(`proxy port ${p.proxyPort} is not in 1..65535`);
  if (!Number.isInteger(p.proxyUid) || p.proxyUid < 0 || p.proxyUid > 0xfffffffe)
    invalid(`proxy uid ${p.proxyUid} is out of range`);
  if (totalEntries > DATAPATH_LIMITS.maxPolicyEntries) {
    invalid(`${totalEntries} trie entries exceed the map's ${DATAPATH_LIMITS.maxPolicyEntries} per policy`);
  }
  if (p.excludedPorts.length > DATAPATH_LIMITS.maxExcludedPorts) {
    invalid(`${p.excludedPorts.length} excluded ports exceed the map's ${DATAPATH_LIMITS.maxExcludedPorts}`);
  }
  for (const port of p.excludedPorts) if (!isPort(port)) invalid(`excluded port ${port} is not in 1..65535`);
  if (state.cgroups.length > DATAPATH_LIMITS.maxCgroups)
    invalid(`${state.cgroups.length} cgroups exceed ${DATAPATH_LIMITS.maxCgroups}`);
  if (!(p.blockedAction in BLOCKED_ACTION_IDS))
    invalid(`blocked action ${String(p.blockedAction)} is not deny, redirect or audit`);
  const actions = p.namespaceActions ?? [];
  if (actions.length > DATAPATH_LIMITS.maxNamespaceActions)
    invalid(`${actions.length} namespace actions exceed the map's ${DATAPATH_LIMITS.maxNamespaceActions} per policy`);
  const seen = new Set<string>();
  for (const a of actions) {
    if (!a.namespace || seen.has(a.namespace))
      invalid(`namespace action for ${JSON.stringify(a.namespace)} is empty or repeated`);
    if (!(a.action in BLOCKED_ACTION_IDS))
      invalid(`namespace ${a.namespace}: blocked action ${String(a.action)} is not deny, redirect or audit`);
    seen.add(a.namespace);
  }
  const hosts = p.dnsHosts ?? [];
  if (hosts.length > DATAPATH_LIMITS.maxDnsHosts)
    invalid(`${hosts.length} allowlisted hostnames exceed the map's ${DATAPATH_LIMITS.maxDnsHosts} per policy`);
  const hostPorts = hosts.reduce((n, h) => n + h.ports.length, 0);
  if (hostPorts > DATAPATH_LIMITS.maxDnsHostPorts)
    invalid(`${hostPorts} hostname ports exceed the map's ${DATAPATH_LIMITS.maxDnsHostPorts} per policy`);
  for (const h of hosts) {
    for (const port of h.ports) {
      if ((port.proto !== 'tcp' && port.proto !== 'udp') || !isPort(port.port))
        invalid(
          `host ${h.host} of namespace "${h.namespace}": port ${String(port.port)}/${String(port.proto)} is not tcp or udp in 1..65535`,
        );
    }
  }
  for (const group of changedGroups) {
    if (group.cidrs) {
      checkCidrGroupTable(group);
      group.cidrs.forEach((cidr, i) => {
        try {
          parsePrefix(cidr);
        } catch (err) {
          invalidEntryCidr(group, i, err);
        }
      });
      continue;
    }
    group.entries.forEach((e, i) => {
      try {
        parsePrefix(e.cidr);
      } catch (err) {
        invalidEntryCidr(group, i, err);
      }
      checkEntryFields(group, e, i);
    });
  }
}

/** A CIDR group holds mesh or exclude CIDRs. Throws MG_DESIRED_STATE_INVALID naming the group. */
export function checkCidrGroupTable(group: DesiredGroup): void {
  if (group.table !== 'mesh' && group.table !== 'exclude')
    invalid(`group ${group.id}: a CIDR group's table ${String(group.table)} is not mesh or exclude`);
}

/** The refusal of entry `i` of `group`, whose CIDR did not parse (`err` says why). */
export function invalidEntryCidr(group: DesiredGroup, i: number, err: unknown): never {
  invalid(`group ${group.id} entry [${i}]: ${(err as Error).message}`);
}

/**
 * Entry `i`'s fields other than its CIDR (which the caller parses once, to
 * encode it): a known table; an allow entry has tcp or udp and a port, the
 * others have neither nor a namespace. Throws MG_DESIRED_STATE_INVALID naming
 * the group, entry and value.
 */
export function checkEntryFields(group: DesiredGroup, e: DesiredTrieEntry, i: number): void {
  if (e.table !== 'allow' && e.table !== 'mesh' && e.table !== 'exclude')
    invalid(`group ${group.id} entry [${i}]: table ${String(e.table)} is not mesh, exclude or allow`);
  if (e.table === 'allow') {
    if (e.proto !== 'tcp' && e.proto !== 'udp')
      invalid(`group ${group.id} entry [${i}]: protocol ${String(e.proto)} is not tcp or udp`);
    if (!isPort(e.port)) invalid(`group ${group.id} entry [${i}]: port ${String(e.port)} is not in 1..65535`);
  } else if (e.proto !== undefined || e.port !== undefined || e.namespace) {
    invalid(`group ${group.id} entry [${i}]: a ${e.table} entry has no protocol, port or namespace`);
  }
}
