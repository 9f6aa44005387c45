// Config, allowlists, resolved hostnames and pods -> the datapath's desired state.
// Pure and deterministic: the same input always gives an equal output. A
// compiler instance remembers the groups it built, and returns the very same
// group object when a group's input is unchanged, so Datapath.apply skips it:
// a one-entry change costs one group's diff, not a rebuild.
import type { AllowlistEntry, BlockedEgressAction, GlobalConfig } from '../config/types.js';
import { createHash } from 'node:crypto';
import { BUCKET_SIZE, CidrLists } from './cidrBuckets.js';
import type {
  DesiredCgroup,
  DesiredDnsHost,
  DesiredGroup,
  DesiredState,
  DesiredTrieEntry,
} from '../datapath/desired.js';
import { isWildcardHost } from '../config/hostname.js';
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

const cidrOf = (address: string): string =>
  address.includes('/') ? address : `${address}/${address.includes(':') ? 128 : 32}`;

function allowEntries(
  namespace: string,
  entries: readonly AllowlistEntry[],
  resolved: ReadonlyMap<string, readonly string[]>,
): DesiredTrieEntry[] {
  const out: DesiredTrieEntry[] = [];
  const seen = new Set<string>();
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of sorted) {
    // One label string per (entry, host), shared by all its trie entries: 50,000 addresses of one entry are one label.
    const labels = new Map<string | undefined, string>();
    const labelOf = (host: string | undefined): string =>
      labels.get(host) ?? labels.set(host, entryLabel(namespace, entry.name, host)).get(host)!;
    const sources: Array<[string, string | undefined]> = entry.addresses.map((a) => [a, undefined]);
    for (const host of entry.hosts) for (const a of resolved.get(host) ?? []) sources.push([cidrOf(a), host]);
    for (const [cidr, host] of sources) {
      for (const port of entry.ports) {
        const proto = port.protocol === 'UDP' ? 'udp' : 'tcp';
        const key = `${cidr}|${proto}|${port.number}`;
        if (seen.has(key)) continue; // the first entry (by name) that allows it is the one shown
        seen.add(key);
        out.push({ table: 'allow', cidr, proto, port: port.number, namespace, label: labelOf(host) });
      }
    }
  }
  return out;
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

/** 32-bit FNV-1a of a string: a stable bucket for an entry key. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A digest of a group's entries: what the memo compares (kept instead of the entries' text). */
const entryFingerprint = (entries: readonly DesiredTrieEntry[]): string =>
  digest(
    entries.map((e) => `${e.cidr}|${e.proto ?? ''}|${e.port ?? ''}|${e.namespace ?? ''}|${e.label ?? ''}`).join('\n'),
  );

const digest = (text: string): string => createHash('sha256').update(text).digest('base64');

export class PolicyCompiler {
  /** Mesh CIDRs and exclusions: bucketed, updated incrementally, no entry objects. */
  private readonly cidrLists = new CidrLists();
  /** The last allowlist input per list id, to skip its fingerprint when it is the same object. */
  private readonly allowInputs = new Map<
    string,
    { entries: readonly AllowlistEntry[]; resolvedKey: string; fingerprint: string }
  >();
  private readonly groups = new Map<string, { fingerprint: string; group: DesiredGroup }>();
  private readonly lists = new Map<string, { fingerprint: string; groups: readonly DesiredGroup[] }>();

  /**
   * One list's groups. A list longer than BUCKET_SIZE is split by a hash of
   * each entry's key into 2^k buckets, each its own group: a one-entry change
   * to a 100,000-entry list then rebuilds (and the datapath diffs) one bucket
   * of about a thousand entries, not the whole list. An unchanged list returns
   * the very same group objects.
   */
  private list(id: string, fingerprint: string, build: () => DesiredTrieEntry[]): readonly DesiredGroup[] {
    const cached = this.lists.get(id);
    if (cached && cached.fingerprint === fingerprint) return cached.groups;
    const entries = build();
    let groups: DesiredGroup[];
    if (entries.length <= BUCKET_SIZE) {
      groups = [this.group(id, entryFingerprint(entries), () => entries)];
    } else {
      const n = 2 ** Math.ceil(Math.log2(entries.length / BUCKET_SIZE));
      const buckets: DesiredTrieEntry[][] = Array.from({ length: n }, () => []);
      for (const e of entries) buckets[fnv1a(`${e.cidr}|${e.proto ?? ''}|${e.port ?? ''}`) % n]!.push(e);
      groups = buckets.map((b, i) => this.group(`${id}#${i}/${n}`, entryFingerprint(b), () => b));
    }
    groups = groups.filter((x) => x.entries.length);
    this.lists.set(id, { fingerprint, groups });
    return groups;
  }

  private group(id: string, fingerprint: string, build: () => DesiredTrieEntry[]): DesiredGroup {
    const cached = this.groups.get(id);
    if (cached && cached.fingerprint === fingerprint) return cached.group;
    const group = Object.freeze({ id, entries: Object.freeze(build()) });
    this.groups.set(id, { fingerprint, group });
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
    const add = (id: string, fingerprint: string, build: () => DesiredTrieEntry[]) => {
      lists.push(id);
      groups.push(...this.list(id, fingerprint, build));
    };
    if (g.meshCidrs.length) groups.push(...this.cidrLists.groups('mesh', 'mesh', g.meshCidrs));
    if (g.excludedCidrs.length) groups.push(...this.cidrLists.groups('exclude', 'exclude', g.excludedCidrs));
    this.cidrLists.retain(
      new Set([...(g.meshCidrs.length ? ['mesh'] : []), ...(g.excludedCidrs.length ? ['exclude'] : [])]),
    );
    const namespaces: Array<[string, readonly AllowlistEntry[]]> = [
      ['', g.globalAllowlist],
      ...[...input.allowlists].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    ];
    for (const [namespace, entries] of namespaces) {
      if (entries.length === 0) continue;
      const id = `allow:${namespace}`;
      const hosts = [...new Set(entries.flatMap((e) => e.hosts))].sort();
      const resolvedKey = JSON.stringify(hosts.map((h) => input.resolved.get(h) ?? []));
      // The very same entries (an unchanged object's parse) skip the content fingerprint, which costs
      // about 10 ms for 50,000 addresses.
      const seen = this.allowInputs.get(id);
      const fingerprint =
        seen && seen.entries === entries && seen.resolvedKey === resolvedKey
          ? seen.fingerprint
          : digest(JSON.stringify([entries, resolvedKey]));
      this.allowInputs.set(id, { entries, resolvedKey, fingerprint });
      add(id, fingerprint, () => allowEntries(namespace, entries, input.resolved));
    }
    for (const id of [...this.allowInputs.keys()]) if (!lists.includes(id)) this.allowInputs.delete(id);
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
        dnsHosts: this.dnsHostsOf(g, input.allowlists),
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
