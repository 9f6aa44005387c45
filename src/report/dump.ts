// `meshgate dump`: every pinned map decoded for humans (or --json), no raw bytes.
// The --json shape is documented in docs/cli.md; keep the two together.
import {
  CGROUP_FLAG,
  CGROUP_KIND,
  CONFIG_FLAG,
  EVENT_STAT,
  VERDICT_NAMES,
  blockedActionName,
  decodeCgroup,
  decodeConfig,
  decodeLabel,
  decodeNamespace,
  decodeNamespaceKey,
  decodePortKey,
  decodeState,
  decodeTrieKey,
  decodeTrieValue,
  encodeU32,
  formatPrefix,
  protoName,
} from '../datapath/codec.js';
import { readVerdictCounters } from '../datapath/counters.js';
import type { Maps } from '../datapath/loader.js';
import { parseLabel, type ParsedLabel } from '../datapath/labels.js';
import { CGROUP_KIND_NAMES } from '../datapath/pinned.js';
import { dumpLearned, formatLearned, type LearnedDump } from './dumpLearned.js';
import { dumpReplies, formatReplies, type RepliesDump } from './dumpReplies.js';

/** The sections `dump MAP` accepts, and the pinned maps each one decodes. */
export const DUMP_SECTIONS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  config: ['mg_config', 'mg_state', 'mg_namespaces'],
  mesh: ['mg_policy_trie'],
  exclusions: ['mg_policy_trie', 'mg_excluded_ports'],
  allowlists: ['mg_policy_trie', 'mg_labels'],
  pods: ['mg_cgroups', 'mg_labels'],
  counters: ['mg_counters', 'mg_event_stats'],
  learned: ['mg_learned', 'mg_dns_names', 'mg_dns_stats'],
  replies: ['mg_reply_peers', 'mg_reply_config'],
});

/** A section name, or a map name standing for the sections that decode it. */
export function sectionsFor(name: string): string[] | null {
  if (name in DUMP_SECTIONS) return [name];
  const s = Object.entries(DUMP_SECTIONS)
    .filter(([, maps]) => maps.includes(name))
    .map(([section]) => section);
  return s.length ? s : null;
}

export interface AllowlistDestination {
  cidr: string;
  host: string | null;
  ports: string[];
}
export interface AllowlistEntryDump {
  name: string;
  destinations: AllowlistDestination[];
}
export interface PodDump {
  cgroupId: string;
  pod: string;
  namespace: string;
  kind: 'pod' | 'unenforced' | 'proxy' | string;
  meshed: boolean;
  proxyCgroupId: string | null;
  proxyIdentity: 'cgroup' | 'uid' | null;
}

export interface Dump {
  generation: string;
  activeSlot: number;
  config: {
    loaded: boolean;
    egress: boolean;
    hasMeshCidrs: boolean;
    proxyOutboundPort: number;
    proxyUid: number;
    blockedEgressAction: string;
    unknownPodPolicy: 'pass' | 'deny-external';
    eventVerdicts: string[];
    /** Namespaces whose allowlists set their own blocked_egress_action. */
    namespaceActions: Array<{ namespace: string; blockedEgressAction: string }>;
    eventsPerSecond: number;
    eventsBurst: number;
    cgroupWalkStart: number;
  };
  meshCidrs: string[];
  exclusions: { cidrs: string[]; ports: number[] };
  /** namespace "" is the global egress_allowlist */
  allowlists: Array<{ namespace: string; entries: AllowlistEntryDump[] }>;
  pods: PodDump[];
  counters: Array<{ verdict: string; rule: string; count: number }>;
  events: { emitted: number; rateLimited: number; ringFull: number };
  /** hostname addresses by namespace: learned from pods' DNS answers, or resolved by the agent */
  learned: LearnedDump[];
  /** the DNS reader's counters (answers_learned, untrusted, unsolicited, malformed, evicted, ...) */
  dnsReader: Record<string, number>;
  /** UDP peers pods' sockets may answer now (rule reply), and the lifetimes in force */
  replies: RepliesDump;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const prefixOrder = (a: string, b: string): number => byText(a, b);

export function dumpMaps(maps: Maps): Dump {
  const labels = new Map(maps.mg_labels.entries().map(([k, v]) => [k.readUInt32LE(0), parseLabel(decodeLabel(v))]));
  const label = (id: number): ParsedLabel | null => labels.get(id) ?? null;
  const rawState = maps.mg_state.lookup(encodeU32(0));
  const state = rawState ? decodeState(rawState) : null;
  const slot = (state?.activeSlot ?? 0) & 1;
  const rawConfig = maps.mg_config.lookup(encodeU32(slot));
  const config = rawConfig ? decodeConfig(rawConfig) : null;

  const mesh: string[] = [];
  const exclude: string[] = [];
  // namespace -> entry name -> "cidr|host" -> ports
  const allow = new Map<string, Map<string, Map<string, Set<string>>>>();
  for (const [kb, vb] of maps.mg_policy_trie.entries()) {
    const k = decodeTrieKey(kb);
    if (k.slot !== slot) continue;
    const cidr = formatPrefix(k.prefix.bytes, k.prefix.bits);
    if (k.table === 'mesh') mesh.push(cidr);
    else if (k.table === 'exclude') exclude.push(cidr);
    else {
      const ns = k.namespaceId === 0 ? '' : (label(k.namespaceId)?.namespace ?? `#${k.namespaceId}`);
      const entry = label(decodeTrieValue(vb).labelId);
      const name = entry?.name ?? '(unnamed)';
      const entries = allow.get(ns) ?? allow.set(ns, new Map()).get(ns)!;
      const dests = entries.get(name) ?? entries.set(name, new Map()).get(name)!;
      const key = `${cidr}|${entry?.host ?? ''}`;
      (dests.get(key) ?? dests.set(key, new Set()).get(key)!).add(`${k.port}/${protoName(k.proto)}`);
    }
  }
  const portOrder = (a: string, b: string) => Number(a.split('/')[0]) - Number(b.split('/')[0]) || byText(a, b);
  const allowlists = [...allow]
    .sort(([a], [b]) => byText(a, b))
    .map(([namespace, entries]) => ({
      namespace,
      entries: [...entries]
        .sort(([a], [b]) => byText(a, b))
        .map(([name, dests]) => ({
          name,
          destinations: [...dests]
            .sort(([a], [b]) => prefixOrder(a, b))
            .map(([key, ports]) => {
              const [cidr, host] = key.split('|') as [string, string];
              return { cidr, host: host || null, ports: [...ports].sort(portOrder) };
            }),
        })),
    }));

  const cgroups = maps.mg_cgroups.entries().map(([k, v]) => {
    const c = decodeCgroup(v);
    const l = label(c.labelId);
    const text = l?.pod ?? l?.text ?? '?';
    const pod = l?.namespace && l.name ? `${l.namespace}/${l.name}` : text.split(' ')[0]!;
    return { id: k.readBigUInt64LE(0), c, pod, namespace: l?.namespace ?? label(c.namespaceId)?.namespace ?? '' };
  });
  const proxies = cgroups.filter((x) => x.c.kind === CGROUP_KIND.MG_CGROUP_PROXY);
  const pods: PodDump[] = cgroups
    .filter((x) => x.c.kind !== CGROUP_KIND.MG_CGROUP_PROXY)
    .map((x) => {
      const meshed = x.c.kind === CGROUP_KIND.MG_CGROUP_POD;
      const proxy = proxies.find((p) => p.pod === x.pod && p.c.namespaceId === x.c.namespaceId);
      const known = Boolean(x.c.flags & CGROUP_FLAG.MG_POD_PROXY_CGROUP_KNOWN);
      return {
        cgroupId: x.id.toString(),
        pod: x.pod,
        namespace: x.namespace,
        kind: CGROUP_KIND_NAMES.get(x.c.kind) ?? `kind-${x.c.kind}`,
        meshed,
        proxyCgroupId: proxy ? proxy.id.toString() : null,
        proxyIdentity: meshed ? (known ? 'cgroup' : 'uid') : null,
      };
    });
  // A sidecar cgroup whose pod is not mapped still shows, so nothing in the map is hidden.
  for (const p of proxies) {
    if (!pods.some((x) => x.proxyCgroupId === p.id.toString())) {
      pods.push({
        cgroupId: p.id.toString(),
        pod: p.pod,
        namespace: p.namespace,
        kind: 'proxy',
        meshed: false,
        proxyCgroupId: null,
        proxyIdentity: null,
      });
    }
  }
  pods.sort((a, b) => byText(a.pod, b.pod) || byText(a.cgroupId, b.cgroupId));

  const stat = (i: number) => Number(maps.mg_event_stats.sumPerCpuU64(encodeU32(i)));
  return {
    generation: (config?.generation ?? 0n).toString(),
    activeSlot: slot,
    config: {
      loaded: Boolean(config && config.flags & CONFIG_FLAG.MG_CFG_LOADED),
      egress: Boolean(config && config.flags & CONFIG_FLAG.MG_CFG_EGRESS),
      hasMeshCidrs: Boolean(config && config.flags & CONFIG_FLAG.MG_CFG_HAS_MESH_CIDRS),
      proxyOutboundPort: config?.proxyPort ?? 0,
      proxyUid: config?.proxyUid ?? 0,
      blockedEgressAction: blockedActionName(config?.blockedAction ?? 0),
      namespaceActions: maps.mg_namespaces
        .entries()
        .map(([k, v]) => ({ key: decodeNamespaceKey(k), action: decodeNamespace(v).blockedAction }))
        .filter((x) => x.key.slot === slot)
        .map((x) => ({
          namespace: label(x.key.namespaceId)?.namespace ?? `#${x.key.namespaceId}`,
          blockedEgressAction: blockedActionName(x.action),
        }))
        .sort((a, b) => byText(a.namespace, b.namespace)),
      unknownPodPolicy: config?.unknownPodPolicy ? 'deny-external' : 'pass',
      eventVerdicts: VERDICT_NAMES.filter((_v, i) => (config?.eventMask ?? 0) & (1 << i)),
      eventsPerSecond: state?.eventsPerSec ?? 0,
      eventsBurst: state?.eventsBurst ?? 0,
      cgroupWalkStart: state?.cgroupWalkStart ?? 0,
    },
    meshCidrs: mesh.sort(prefixOrder),
    exclusions: {
      cidrs: exclude.sort(prefixOrder),
      ports: maps.mg_excluded_ports
        .keys()
        .map(decodePortKey)
        .filter((p) => p.slot === slot)
        .map((p) => p.port)
        .sort((a, b) => a - b),
    },
    allowlists,
    pods,
    counters: readVerdictCounters(maps.mg_counters).map(({ verdict, rule, count }) => ({
      verdict,
      rule,
      count: Number(count),
    })),
    events: {
      emitted: stat(EVENT_STAT.MG_EVENT_STAT_EMITTED),
      rateLimited: stat(EVENT_STAT.MG_EVENT_STAT_RATE_LIMITED),
      ringFull: stat(EVENT_STAT.MG_EVENT_STAT_RINGBUF_FULL),
    },
    ...dumpLearned(maps, slot, label),
    ...dumpReplies(maps, (id) => cgroups.find((x) => x.id === id)?.pod ?? `cgroup ${id}`),
  };
}

/** The --json object for some sections only. */
export function pickSections(d: Dump, sections: readonly string[]): Partial<Dump> {
  const out: Record<string, unknown> = { generation: d.generation, activeSlot: d.activeSlot };
  const fields: Record<string, Array<keyof Dump>> = {
    config: ['config'],
    mesh: ['meshCidrs'],
    exclusions: ['exclusions'],
    allowlists: ['allowlists'],
    pods: ['pods'],
    counters: ['counters', 'events'],
    learned: ['learned', 'dnsReader'],
    replies: ['replies'],
  };
  for (const s of sections) for (const f of fields[s] ?? []) out[f] = d[f];
  return out as Partial<Dump>;
}

const POD_KIND_TEXT: Record<string, string> = {
  pod: 'meshed',
  unenforced: 'not meshed',
  proxy: 'sidecar (pod not mapped)',
};

export function formatDump(d: Dump, only?: string | readonly string[]): string {
  const wanted = only === undefined ? null : new Set(typeof only === 'string' ? (sectionsFor(only) ?? [only]) : only);
  const lines: string[] = [];
  const section = (name: string, title: string, body: string[]) => {
    if (wanted && !wanted.has(name)) return;
    lines.push(`${title}:`, ...(body.length ? body.map((l) => `  ${l}`) : ['  (none)']), '');
  };
  const c = d.config;
  section(
    'config',
    `config (generation ${d.generation}, slot ${d.activeSlot})`,
    c.loaded
      ? [
          `egress                   ${c.egress}`,
          `mesh CIDRs present       ${c.hasMeshCidrs}${c.hasMeshCidrs || c.egress ? '' : ' (TCP not allowlisted goes to the proxy, UDP passes)'}`,
          `proxy_outbound_port      ${c.proxyOutboundPort}`,
          `proxy_uid                ${c.proxyUid}`,
          `blocked_egress_action    ${c.blockedEgressAction}`,
          ...c.namespaceActions.map(
            (a) => `  namespace ${a.namespace.padEnd(14)} ${a.blockedEgressAction} (its allowlists say so)`,
          ),
          `unknown_pod_policy       ${c.unknownPodPolicy}`,
          `events                   ${c.eventVerdicts.join(', ') || 'none'} (${c.eventsPerSecond}/s per CPU, burst ${c.eventsBurst})`,
          `cgroup walk starts at    level ${c.cgroupWalkStart}`,
        ]
      : ['no complete policy is loaded: every decision passes'],
  );
  section('mesh', 'mesh CIDRs', d.meshCidrs);
  section('exclusions', 'exclusions', [
    ...d.exclusions.cidrs,
    ...(d.exclusions.ports.length ? [`ports ${d.exclusions.ports.join(', ')}`] : []),
  ]);
  section(
    'allowlists',
    'allowlists',
    d.allowlists.flatMap(({ namespace, entries }) => [
      namespace ? `namespace ${namespace}` : 'global (every namespace)',
      ...entries.flatMap((e) => {
        const hosts = [...new Set(e.destinations.map((x) => x.host).filter((h): h is string => h !== null))];
        return [
          `  ${e.name}${hosts.length ? ` (${hosts.join(', ')})` : ''}`,
          ...e.destinations.map((x) => `    ${x.cidr} ${x.ports.join(' ')}${x.host ? `  (${x.host})` : ''}`),
        ];
      }),
    ]),
  );
  section(
    'pods',
    'pods (cgroup id, pod, enforcement, sidecar)',
    d.pods.map((p) => {
      const proxy =
        p.proxyIdentity === 'cgroup'
          ? `sidecar cgroup ${p.proxyCgroupId ?? '?'}`
          : p.proxyIdentity === 'uid'
            ? `sidecar by proxy_uid ${c.proxyUid}`
            : '';
      return `${p.cgroupId.padEnd(8)} ${p.pod.padEnd(28)} ${(POD_KIND_TEXT[p.kind] ?? p.kind).padEnd(11)} ${proxy}`.trimEnd();
    }),
  );
  section('counters', 'counters (verdict, rule, count)', [
    ...d.counters.map((x) => `${x.verdict.padEnd(9)} ${x.rule.padEnd(16)} ${x.count}`),
    `events: ${d.events.emitted} emitted, ${d.events.rateLimited} rate-limited, ${d.events.ringFull} ring full`,
  ]);
  section(
    'learned',
    'hostname addresses (address, host (question), source, timing)',
    formatLearned(d.learned, d.dnsReader),
  );
  section('replies', 'UDP peers pods may answer (pod, peer, socket, state)', formatReplies(d.replies));
  return lines.join('\n').trimEnd();
}
