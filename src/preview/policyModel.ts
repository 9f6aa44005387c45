// A policy held in memory, answering the lookups of the decision table (PolicyLookups) as
// the kernel's maps would: longest-prefix match per (table, protocol, port, namespace).
// Built from the live maps of the active slot, then, for preview, with the candidate's
// compiled parts put in place of the live ones. Nothing here writes to the kernel.
import { GLOBAL_DEFAULTS, type BlockedEgressAction, type GlobalConfig } from '../config/index.js';
import {
  BLOCKED_ACTION_IDS,
  CONFIG_FLAG,
  decodeNamespace,
  decodeNamespaceKey,
  decodePortKey,
  decodeTrieKey,
  decodeTrieValue,
  formatPrefix,
  parsePrefix,
  protoNumber,
  type KernelConfig,
  type TableName,
} from '../datapath/codec.js';
import type { DesiredState } from '../datapath/desired.js';
import { decodeDnsPortKey, decodeLearned } from '../datapath/dnsCodec.js';
import type { MapHit, PolicyLookups } from '../explain/decisionTable.js';
import type { Pins } from '../datapath/pinned.js';
import { PolicyCompiler } from '../policy/compile.js';
import type { Candidate } from './candidate.js';

/** One trie entry, by namespace name ('' is the global allowlist) instead of the kernel's ids. */
export interface ModelEntry {
  readonly table: TableName;
  readonly proto: number;
  readonly port: number;
  readonly namespace: string;
  readonly bytes: Uint8Array;
  readonly bits: number;
  /** The entry's label text (mg_labels JSON), or null. */
  readonly label: string | null;
}

/** An address a namespace ('' : a global host) learned from a pod's DNS answer, for one allowlisted host. */
export interface ModelLearned {
  /** The allowlisted host's namespace and name (its mg_labels host label). */
  readonly hostNamespace: string;
  readonly host: string;
  readonly ttlS: number;
  readonly learnedNs: bigint;
  readonly expiresNs: bigint;
}

export interface ModelSource {
  readonly config: KernelConfig | null;
  readonly entries: readonly ModelEntry[];
  readonly excludedPorts: readonly number[];
  /** blocked_egress_action (enum mg_blocked_action) of namespaces that set their own. */
  readonly actions: ReadonlyMap<string, number>;
  /** mg_learned, live: "namespace|address hex" -> the hosts it was learned for (absent: none). */
  readonly learned?: ReadonlyMap<string, readonly ModelLearned[]>;
  /** mg_dns_ports of the slot: "namespace|host|proto|port" -> the entry's label (absent: none). */
  readonly dnsPorts?: ReadonlyMap<string, string | null>;
}

const dnsPortKey = (namespace: string, host: string, proto: number, port: number): string =>
  `${namespace}|${host}|${proto}|${port}`;
const learnedKey = (namespace: string, address: Uint8Array): string => `${namespace}|${hex(address, 128)}`;

function hostOfLabel(text: string | undefined): { namespace: string; host: string } | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as { kind?: unknown; namespace?: unknown; host?: unknown };
    return v.kind === 'host' && typeof v.host === 'string'
      ? { namespace: typeof v.namespace === 'string' ? v.namespace : '', host: v.host }
      : null;
  } catch {
    return null;
  }
}

const hex = (bytes: Uint8Array, bits: number): string => {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out.toString('hex');
};

/** The live policy of the active slot, decoded from the pins. */
export function livePolicy(pins: Pins): ModelSource {
  const slot = (pins.state()?.activeSlot ?? 0) & 1;
  const config = pins.config(slot);
  const entries: ModelEntry[] = [];
  for (const [kb, vb] of pins.maps.mg_policy_trie.entries()) {
    const k = decodeTrieKey(kb);
    if (k.slot !== slot) continue;
    const labelId = decodeTrieValue(vb).labelId;
    entries.push({
      table: k.table,
      proto: k.proto,
      port: k.port,
      namespace: k.namespaceId ? pins.namespaceName(k.namespaceId) : '',
      bytes: k.prefix.bytes,
      bits: k.prefix.bits,
      label: labelId ? (pins.label(labelId)?.text ?? null) : null,
    });
  }
  const excludedPorts = pins.maps.mg_excluded_ports
    .keys()
    .map(decodePortKey)
    .filter((p) => p.slot === slot)
    .map((p) => p.port);
  const actions = new Map<string, number>();
  for (const [k, v] of pins.maps.mg_namespaces.entries()) {
    const key = decodeNamespaceKey(k);
    if (key.slot === slot) actions.set(pins.namespaceName(key.namespaceId), decodeNamespace(v).blockedAction);
  }
  // Rule 6's learned addresses: by host (namespace and name), since a candidate's hosts have no ids yet.
  const labels = pins.labels(true);
  const dnsPorts = new Map<string, string | null>();
  for (const [k, v] of pins.maps.mg_dns_ports.entries()) {
    const key = decodeDnsPortKey(k);
    const host = hostOfLabel(labels.get(key.hostId));
    if (key.slot !== slot || !host) continue;
    dnsPorts.set(dnsPortKey(host.namespace, host.host, key.proto, key.port), labels.get(v.readUInt32LE(0)) ?? null);
  }
  const learned = new Map<string, ModelLearned[]>();
  for (const [k, v] of pins.maps.mg_learned.entries()) {
    const l = decodeLearned(k, v);
    const hosts: ModelLearned[] = [];
    for (const h of l.hosts) {
      const host = hostOfLabel(labels.get(h.hostId));
      if (host)
        hosts.push({
          hostNamespace: host.namespace,
          host: host.host,
          ttlS: h.ttlS,
          learnedNs: h.learnedNs,
          expiresNs: h.expiresNs,
        });
    }
    if (hosts.length) learned.set(learnedKey(l.namespaceId ? pins.namespaceName(l.namespaceId) : '', l.address), hosts);
  }
  return { config, entries, excludedPorts, actions, learned, dnsPorts };
}

/** Addresses the live maps hold for each hostname (what the agent resolved): the candidate's hosts use them. */
export function liveResolved(live: ModelSource): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of live.entries) {
    if (e.table !== 'allow' || !e.label) continue;
    const host = labelHost(e.label);
    if (!host) continue;
    const cidr = formatPrefix(e.bytes, e.bits);
    const list = out.get(host) ?? out.set(host, []).get(host)!;
    if (!list.includes(cidr)) list.push(cidr);
  }
  return out;
}

function labelHost(label: string): string | null {
  try {
    const v = JSON.parse(label) as { host?: unknown };
    return typeof v.host === 'string' ? v.host : null;
  } catch {
    return null;
  }
}

// Stands in for the global config when the candidate has none: only its allowlists are compiled.
const NO_GLOBAL: GlobalConfig = Object.freeze({
  ...GLOBAL_DEFAULTS,
  meshCidrs: [],
  excludedCidrs: [],
  excludedPorts: [],
  globalAllowlist: [],
});

/** The candidate compiled by the agent's own compiler, exactly as the agent would write it. */
export function compileCandidate(candidate: Candidate, resolved: ReadonlyMap<string, readonly string[]>): DesiredState {
  const actions = new Map<string, BlockedEgressAction>();
  for (const [ns, c] of candidate.namespaces) if (c.action) actions.set(ns, c.action);
  return new PolicyCompiler().compile({
    global: candidate.global ?? NO_GLOBAL,
    allowlists: new Map([...candidate.namespaces].map(([ns, c]) => [ns, c.entries])),
    namespaceActions: actions,
    resolved,
    pods: [],
  });
}

/**
 * The policy once the candidate is applied: a candidate global config replaces the live mesh
 * CIDRs, exclusions, global allowlist and scalars; a candidate namespace replaces that
 * namespace's allowlist and action as a whole. Everything else stays as it is live.
 */
export function overlay(live: ModelSource, candidate: Candidate, compiled: DesiredState): ModelSource {
  const replaced = new Set(candidate.namespaces.keys());
  const globalGiven = candidate.global !== null;
  const keep = (e: ModelEntry): boolean => {
    if (e.table !== 'allow') return !globalGiven;
    if (e.namespace === '') return !globalGiven;
    return !replaced.has(e.namespace);
  };
  const entries = live.entries.filter(keep);
  for (const group of compiled.policy.groups) {
    if (group.cidrs && group.table) {
      // A plain CIDR group (mesh or exclude): read its texts, as the datapath does.
      if (!globalGiven) continue;
      for (const cidr of group.cidrs) {
        const prefix = parsePrefix(cidr);
        entries.push({
          table: group.table,
          proto: 0,
          port: 0,
          namespace: '',
          bytes: prefix.bytes,
          bits: prefix.bits,
          label: null,
        });
      }
      continue;
    }
    for (const e of group.entries) {
      const namespace = e.namespace ?? '';
      const fromCandidate =
        e.table === 'allow' ? (namespace === '' ? globalGiven : replaced.has(namespace)) : globalGiven;
      if (!fromCandidate) continue;
      const prefix = parsePrefix(e.cidr);
      entries.push({
        table: e.table,
        proto: e.proto ? protoNumber(e.proto) : 0,
        port: e.port ?? 0,
        namespace,
        bytes: prefix.bytes,
        bits: prefix.bits,
        label: e.label ?? null,
      });
    }
  }
  const actions = new Map(live.actions);
  for (const [ns, c] of candidate.namespaces) {
    if (c.action) actions.set(ns, BLOCKED_ACTION_IDS[c.action]);
    else actions.delete(ns);
  }
  // A host's ports come with its allowlist: replaced with it. What pods learned stays (the kernel keeps it).
  const dnsPorts = new Map(
    [...(live.dnsPorts ?? [])].filter(([key]) => {
      const namespace = key.slice(0, key.indexOf('|'));
      return namespace === '' ? !globalGiven : !replaced.has(namespace);
    }),
  );
  for (const h of compiled.policy.dnsHosts ?? []) {
    if (!(h.namespace === '' ? globalGiven : replaced.has(h.namespace))) continue;
    for (const p of h.ports) dnsPorts.set(dnsPortKey(h.namespace, h.host, protoNumber(p.proto), p.port), p.label);
  }
  let config = live.config;
  let excludedPorts = live.excludedPorts;
  if (globalGiven) {
    const p = compiled.policy;
    const hasMesh = p.groups.some((g) =>
      g.cidrs ? g.table === 'mesh' && g.cidrs.length > 0 : g.entries.some((e) => e.table === 'mesh'),
    );
    config = {
      flags:
        CONFIG_FLAG.MG_CFG_LOADED |
        (p.egress ? CONFIG_FLAG.MG_CFG_EGRESS : 0) |
        (hasMesh ? CONFIG_FLAG.MG_CFG_HAS_MESH_CIDRS : 0),
      proxyPort: p.proxyPort,
      blockedAction: BLOCKED_ACTION_IDS[p.blockedAction],
      unknownPodPolicy: p.unknownPodPolicy === 'deny-external' ? 1 : 0,
      proxyUid: p.proxyUid,
      eventMask: live.config?.eventMask ?? 0,
      generation: (live.config?.generation ?? 0n) + 1n,
    };
    excludedPorts = p.excludedPorts;
  }
  return { config, entries, excludedPorts, actions, learned: live.learned, dnsPorts };
}

/** PolicyLookups over a ModelSource; namespace ids are the live ones (the pods' mg_cgroups entries carry them). */
export class PolicyModel implements PolicyLookups {
  readonly config: KernelConfig | null;
  private readonly tables = new Map<string, { lengths: number[]; byLength: Map<number, Map<string, number>> }>();
  private readonly excluded: ReadonlySet<number>;
  private readonly actions: ReadonlyMap<string, number>;
  private readonly labels: Array<string | null> = [null];
  private readonly source: ModelSource;

  /** `nowNs`: the monotonic time learned addresses expire against (bpf_ktime_get_ns). */
  constructor(
    source: ModelSource,
    private readonly namespaceOf: (id: number) => string,
    private readonly nowNs: bigint = process.hrtime.bigint(),
  ) {
    this.source = source;
    this.config = source.config;
    this.excluded = new Set(source.excludedPorts);
    this.actions = source.actions;
    for (const e of source.entries) {
      const key = `${e.table}|${e.proto}|${e.port}|${e.namespace}`;
      const t = this.tables.get(key) ?? this.tables.set(key, { lengths: [], byLength: new Map() }).get(key)!;
      let byAddr = t.byLength.get(e.bits);
      if (!byAddr) {
        byAddr = new Map();
        t.byLength.set(e.bits, byAddr);
        t.lengths.push(e.bits);
        t.lengths.sort((a, b) => b - a);
      }
      const addr = hex(e.bytes, e.bits);
      if (!byAddr.has(addr)) {
        this.labels.push(e.label);
        byAddr.set(addr, this.labels.length - 1);
      }
    }
  }

  trie(table: TableName, proto: number, port: number, namespaceId: number, address: Uint8Array): MapHit | null {
    const t = this.tables.get(`${table}|${proto}|${port}|${namespaceId ? this.namespaceOf(namespaceId) : ''}`);
    if (!t) return null;
    for (const bits of t.lengths) {
      const id = t.byLength.get(bits)!.get(hex(address, bits));
      if (id !== undefined) return { map: 'mg_policy_trie', table, labelId: id };
    }
    return null;
  }

  excludedPort(port: number): boolean {
    return this.excluded.has(port);
  }

  /** learned_allows(): an unexpired address the namespace learned for a host whose entry allows proto/port. */
  learned(namespaceId: number, proto: number, port: number, address: Uint8Array): MapHit | null {
    const namespace = namespaceId ? this.namespaceOf(namespaceId) : '';
    for (const h of this.source.learned?.get(learnedKey(namespace, address)) ?? []) {
      if (h.expiresNs <= this.nowNs) continue;
      const label = this.source.dnsPorts?.get(dnsPortKey(h.hostNamespace, h.host, proto, port));
      if (label === undefined) continue;
      this.labels.push(label);
      return {
        map: 'mg_learned',
        labelId: this.labels.length - 1,
        learned: {
          namespaceId,
          host: h.host,
          name: null,
          ttlS: h.ttlS,
          ageMs: Number((this.nowNs - h.learnedNs) / 1_000_000n),
          expiresInMs: Number((h.expiresNs - this.nowNs) / 1_000_000n),
        },
      };
    }
    return null;
  }

  namespaceName(namespaceId: number): string {
    return this.namespaceOf(namespaceId);
  }

  namespaceAction(namespaceId: number): number | null {
    return this.actions.get(this.namespaceOf(namespaceId)) ?? null;
  }

  /** The label text of a hit's entry (labelId as this model's trie() returned it). */
  label(labelId: number): string | null {
    return this.labels[labelId] ?? null;
  }
}
