// Config, allowlists, resolved hostnames and pods -> the datapath's desired state.
// Pure and deterministic: the same input always gives an equal output. A
// compiler instance remembers the groups it built, and returns the very same
// group object when a group's input is unchanged, so Datapath.apply skips it:
// a one-entry change costs one group's diff, not a rebuild.
import type { AllowlistEntry, BlockedEgressAction, GlobalConfig } from '../config/types.js';
import { BUCKET_SIZE, CidrLists } from './cidrBuckets.js';
import {
  POLICY_CAPACITY,
  fitCapacity,
  type CompiledAllowlist,
  type HeldBack,
  type PolicyCapacity,
} from './capacity.js';
import type {
  DesiredCgroup,
  DesiredDnsHost,
  DesiredGroup,
  DesiredState,
  DesiredTrieEntry,
} from '../datapath/desired.js';
import { isWildcardHost } from '../config/hostname.js';
import { parseCidr } from '../config/cidr.js';
import type { VerdictName } from '../datapath/codec.js';
import { entryLabel } from '../datapath/labels.js';

export interface PodInput {
  readonly namespace: string;
  readonly name: string;
  readonly podCgroupId: bigint;
  /** The sidecar's container cgroup, when found. */
  readonly proxyCgroupId: bigint | null;
  /** Meshed pods are enforced; the others are explicitly marked as not enforced. */
  readonly meshed: boolean;
}

export interface CompileInput {
  readonly global: GlobalConfig;
  /** Merged allowlist entries per namespace. */
  readonly allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>;
  /** Current addresses of each allowlisted hostname (lower-case). */
  readonly resolved: ReadonlyMap<string, readonly string[]>;
  readonly pods: readonly PodInput[];
  /** blocked_egress_action set by a namespace's allowlists (overrides the global one there). */
  readonly namespaceActions?: ReadonlyMap<string, BlockedEgressAction>;
  readonly eventVerdicts?: readonly VerdictName[];
}

/** Verdicts that emit ring buffer events unless asked otherwise: denies and audits ("would deny"). */
export const DEFAULT_EVENT_VERDICTS: readonly VerdictName[] = Object.freeze(['deny', 'audit']);

/**
 * A resolved address as the canonical CIDR text the config normaliser gives
 * (an IPv4-mapped ::ffff:a.b.c.d is a.b.c.d/32): one trie key, one text, so one
 * bucket and one entry, whatever source spelled it. Text that is no address is
 * kept as it is, for the datapath's check to name.
 */
function cidrOf(address: string): string {
  const parsed = parseCidr(address.includes('/') ? address : `${address}/${address.includes(':') ? 128 : 32}`);
  return parsed.ok ? parsed.cidr.text : address;
}

/** A list's entries, and each one's bucket hash: fnv1a of its key text `cidr|proto|port`. */
interface ListEntries {
  readonly entries: DesiredTrieEntry[];
  readonly hashes: number[];
}

function allowEntries(
  namespace: string,
  entries: readonly AllowlistEntry[],
  resolved: ReadonlyMap<string, readonly string[]>,
): ListEntries {
  const out: DesiredTrieEntry[] = [];
  const hashes: number[] = [];
  // The CIDRs already allowed on each port, by `|proto|port` (no key text made per entry).
  const seen = new Map<string, Set<string>>();
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of sorted) {
    const ports = entry.ports.map((p) => {
      const proto = p.protocol === 'UDP' ? ('udp' as const) : ('tcp' as const);
      const suffix = `|${proto}|${p.number}`;
      const cidrs = seen.get(suffix) ?? seen.set(suffix, new Set()).get(suffix)!;
      return { proto, port: p.number, suffix, cidrs };
    });
    // One label string per (entry, host), shared by all its trie entries: 50,000 addresses of one entry are one label.
    const add = (cidr: string, label: string): void => {
      let cidrHash = -1;
      for (const { proto, port, suffix, cidrs } of ports) {
        if (cidrs.has(cidr)) continue; // the first entry (by name) that allows it is the one shown
        cidrs.add(cidr);
        out.push({ table: 'allow', cidr, proto, port, namespace, label });
        if (cidrHash < 0) cidrHash = fnv1a(cidr);
        hashes.push(fnv1a(suffix, cidrHash));
      }
    };
    if (entry.addresses.length) {
      const label = entryLabel(namespace, entry.name, undefined);
      for (const address of entry.addresses) add(address, label);
    }
    for (const host of entry.hosts) {
      const addresses = resolved.get(host) ?? [];
      if (!addresses.length) continue;
      const label = entryLabel(namespace, entry.name, host);
      for (const address of addresses) add(cidrOf(address), label);
    }
  }
  return { entries: out, hashes };
}

/**
 * Every allowlisted host of every namespace ('' = global), with the ports of
 * the entries that name it: what the kernel learns addresses for from the
 * pods' own DNS answers. The first entry by name that allows a port labels it.
 */
export function dnsHosts(
  global: GlobalConfig,
  allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>,
): DesiredDnsHost[] {
  const out: DesiredDnsHost[] = [];
  const namespaces: Array<[string, readonly AllowlistEntry[]]> = [
    ['', global.globalAllowlist],
    ...[...allowlists].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  ];
  for (const [namespace, entries] of namespaces) {
    const byHost = new Map<string, Map<string, { proto: 'tcp' | 'udp'; port: number; label: string }>>();
    for (const entry of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      for (const host of entry.hosts) {
        const ports = byHost.get(host) ?? new Map();
        byHost.set(host, ports);
        for (const port of entry.ports) {
          const proto = port.protocol === 'UDP' ? 'udp' : 'tcp';
          const key = `${proto}/${port.number}`;
          if (!ports.has(key))
            ports.set(key, { proto, port: port.number, label: entryLabel(namespace, entry.name, host) });
        }
      }
    }
    for (const host of [...byHost.keys()].sort()) out.push({ namespace, host, ports: [...byHost.get(host)!.values()] });
  }
  return out;
}

export { BUCKET_SIZE };

/** 32-bit FNV-1a of a string (continued from `from`, the hash of what precedes it): a stable bucket for an entry key. */
function fnv1a(text: string, from = 0x811c9dc5): number {
  let h = from;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Two entry lists are equal field by field: what the group memo compares (no digest to compute on a cold start). */
function sameEntries(a: readonly DesiredTrieEntry[], b: readonly DesiredTrieEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x !== y &&
      (x.cidr !== y.cidr ||
        x.table !== y.table ||
        x.proto !== y.proto ||
        x.port !== y.port ||
        x.namespace !== y.namespace ||
        x.label !== y.label)
    )
      return false;
  }
  return true;
}

const sameTexts = (a: readonly string[], b: readonly string[]): boolean =>
  a === b || (a.length === b.length && a.every((x, i) => x === b[i]));

/** Two parsed allowlists compile alike: the same entries, field by field, in the same order. */
function sameAllowlist(a: readonly AllowlistEntry[], b: readonly AllowlistEntry[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return (
      x === y ||
      (x.name === y.name &&
        sameTexts(x.hosts, y.hosts) &&
        sameTexts(x.addresses, y.addresses) &&
        x.ports.length === y.ports.length &&
        x.ports.every((p, j) => p.number === y.ports[j]!.number && p.protocol === y.ports[j]!.protocol))
    );
  });
}

export class PolicyCompiler {
  /** What each allowlist was given by the last compile (its groups, or the earlier ones it kept). */
  private given: ReadonlyMap<string, readonly DesiredGroup[]> = new Map();
  /** The allowlists the last compile held back because the whole policy did not fit (src/policy/capacity.ts). */
  heldBack: readonly HeldBack[] = [];

  /** `capacity`: what one policy may hold (the kernel's maps); tests inject small ones. */
  constructor(private readonly capacity: PolicyCapacity = POLICY_CAPACITY) {}

  /** Mesh CIDRs and exclusions: bucketed, updated incrementally, no entry objects. */
  private readonly cidrLists = new CidrLists();
  /** Each allowlist's last input (its entries and its hosts' addresses) and the groups it compiled to. */
  private readonly lists = new Map<
    string,
    { entries: readonly AllowlistEntry[]; resolvedKey: string; groups: readonly DesiredGroup[] }
  >();
  /** The last group of each id: returned again, the very same object, while its entries are equal. */
  private readonly groups = new Map<string, DesiredGroup>();

  /**
   * One allowlist's groups. A list longer than BUCKET_SIZE is split by a hash
   * of each entry's key into 2^k buckets, each its own group: a one-entry
   * change to a 100,000-entry list then rebuilds (and the datapath diffs) one
   * bucket of about a thousand entries, not the whole list. An unchanged list
   * returns the very same group objects.
   */
  private list(
    id: string,
    entries: readonly AllowlistEntry[],
    resolvedKey: string,
    build: () => ListEntries,
  ): readonly DesiredGroup[] {
    const cached = this.lists.get(id);
    if (cached && cached.resolvedKey === resolvedKey && sameAllowlist(cached.entries, entries)) {
      cached.entries = entries; // the next compile of this very object compares references only
      return cached.groups;
    }
    const built = build();
    let groups: DesiredGroup[];
    if (built.entries.length <= BUCKET_SIZE) {
      groups = [this.group(id, built.entries)];
    } else {
      const n = 2 ** Math.ceil(Math.log2(built.entries.length / BUCKET_SIZE));
      const buckets: DesiredTrieEntry[][] = Array.from({ length: n }, () => []);
      for (let i = 0; i < built.entries.length; i++) buckets[built.hashes[i]! % n]!.push(built.entries[i]!);
      groups = buckets.map((b, i) => this.group(`${id}#${i}/${n}`, b));
    }
    groups = groups.filter((x) => x.entries.length);
    this.lists.set(id, { entries, resolvedKey, groups });
    return groups;
  }

  private group(id: string, entries: DesiredTrieEntry[]): DesiredGroup {
    const cached = this.groups.get(id);
    if (cached && sameEntries(cached.entries, entries)) return cached;
    const group = Object.freeze({ id, entries: Object.freeze(entries) });
    this.groups.set(id, group);
    return group;
  }

  private dnsCache: { fingerprint: string; hosts: readonly DesiredDnsHost[] } | null = null;

  /** The same array while the hosts and their ports are unchanged, so Datapath.apply skips them. */
  private dnsHostsOf(
    g: GlobalConfig,
    allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>,
  ): readonly DesiredDnsHost[] {
    const hosts = dnsHosts(g, allowlists);
    const fingerprint = JSON.stringify(hosts);
    if (this.dnsCache?.fingerprint !== fingerprint) this.dnsCache = { fingerprint, hosts: Object.freeze(hosts) };
    return this.dnsCache.hosts;
  }

  /** The pods' cgroups: the pod cgroup (enforced or not), and its sidecar's when known. Sorted by id. */
  compileCgroups(pods: readonly PodInput[]): readonly DesiredCgroup[] {
    const cgroups: DesiredCgroup[] = [];
    for (const pod of [...pods].sort((a, b) =>
      a.podCgroupId < b.podCgroupId ? -1 : a.podCgroupId > b.podCgroupId ? 1 : 0,
    )) {
      const label = `${pod.namespace}/${pod.name}`;
      const proxyCgroupKnown = pod.meshed && pod.proxyCgroupId !== null;
      cgroups.push({
        cgroupId: pod.podCgroupId,
        kind: pod.meshed ? 'pod' : 'unenforced',
        namespace: pod.namespace,
        label,
        proxyCgroupKnown,
      });
      if (proxyCgroupKnown) {
        cgroups.push({
          cgroupId: pod.proxyCgroupId!,
          kind: 'proxy',
          namespace: pod.namespace,
          label: `${label} sidecar`,
          proxyCgroupKnown,
        });
      }
    }
    return Object.freeze(cgroups);
  }

  compile(input: CompileInput): DesiredState {
    const g = input.global;
    const groups: DesiredGroup[] = [];
    const lists: string[] = [];
    if (g.meshCidrs.length) groups.push(...this.cidrLists.groups('mesh', 'mesh', g.meshCidrs));
    if (g.excludedCidrs.length) groups.push(...this.cidrLists.groups('exclude', 'exclude', g.excludedCidrs));
    this.cidrLists.retain(
      new Set([...(g.meshCidrs.length ? ['mesh'] : []), ...(g.excludedCidrs.length ? ['exclude'] : [])]),
    );
    const namespaces: Array<[string, readonly AllowlistEntry[]]> = [
      ['', g.globalAllowlist],
      ...[...input.allowlists].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    ];
    const compiled: CompiledAllowlist[] = [];
    for (const [namespace, entries] of namespaces) {
      if (entries.length === 0) continue;
      const id = `allow:${namespace}`;
      const hosts = [...new Set(entries.flatMap((e) => e.hosts))].sort();
      const resolvedKey = JSON.stringify(hosts.map((h) => input.resolved.get(h) ?? []));
      lists.push(id);
      const built = this.list(id, entries, resolvedKey, () => allowEntries(namespace, entries, input.resolved));
      compiled.push({ id, namespace, groups: built });
    }
    const dnsHosts = this.dnsHostsOf(g, input.allowlists);
    const fixedEntries = groups.reduce((n, x) => n + (x.cidrs ? x.cidrs.length : x.entries.length), 0);
    // Labels besides the allowlists' own: each pod and sidecar, each DNS host port, each namespace action.
    const fixedLabels =
      2 * input.pods.length + dnsHosts.reduce((n, h) => n + h.ports.length, 0) + (input.namespaceActions?.size ?? 0);
    const fit = fitCapacity(fixedEntries, fixedLabels, compiled, this.given, this.capacity);
    this.given = fit.given;
    this.heldBack = fit.heldBack;
    groups.push(...fit.groups);
    const ids = new Set(groups.map((x) => x.id));
    for (const id of [...this.groups.keys()]) if (!ids.has(id)) this.groups.delete(id);
    for (const id of [...this.lists.keys()]) if (!lists.includes(id)) this.lists.delete(id);

    const cgroups = this.compileCgroups(input.pods);

    return Object.freeze({
      policy: Object.freeze({
        egress: g.egress,
        proxyPort: g.proxyOutboundPort,
        proxyUid: g.proxyUid,
        blockedAction: g.blockedEgressAction,
        namespaceActions: Object.freeze(
          [...(input.namespaceActions ?? [])]
            .filter(([namespace]) => namespace !== '')
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([namespace, action]) => Object.freeze({ namespace, action })),
        ),
        unknownPodPolicy: g.unknownPodPolicy,
        eventVerdicts: input.eventVerdicts ?? DEFAULT_EVENT_VERDICTS,
        groups: Object.freeze(groups),
        excludedPorts: Object.freeze([...g.excludedPorts].sort((a, b) => a - b)),
        dnsHosts,
      }),
      cgroups,
    });
  }
}

/** Every exact hostname the allowlists name: what the agent's own resolver tracks (wildcards are learned only). */
export function allowlistHosts(
  global: GlobalConfig,
  allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>,
): string[] {
  const hosts = new Set<string>();
  for (const e of global.globalAllowlist) for (const h of e.hosts) hosts.add(h);
  for (const entries of allowlists.values()) for (const e of entries) for (const h of e.hosts) hosts.add(h);
  return [...hosts].filter((h) => !isWildcardHost(h)).sort();
}
