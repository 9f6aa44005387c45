// `meshgate dump`: every pinned map decoded for humans (or --json).
import {
  CGROUP_KIND, CONFIG_FLAG, decodeCgroup, decodeConfig, decodeLabel, decodePortKey,
  decodeState, decodeTrieKey, encodeU32, formatPrefix, protoName,
} from '../datapath/codec.js';
import { readVerdictCounters } from '../datapath/counters.js';
import type { Maps } from '../datapath/loader.js';

const KIND_NAMES = new Map(Object.entries(CGROUP_KIND).map(([k, v]) => [v, k.replace('MG_CGROUP_', '').toLowerCase()]));

function labelOf(labels: Map<number, string>, id: number): Record<string, string> | null {
  const text = labels.get(id);
  if (!text) return null;
  try {
    return JSON.parse(text) as Record<string, string>;
  } catch {
    return { text };
  }
}

export function dumpMaps(maps: Maps) {
  const labels = new Map(maps.mg_labels.entries().map(([k, v]) => [k.readUInt32LE(0), decodeLabel(v)]));
  const state = decodeState(maps.mg_state.lookup(encodeU32(0))!);
  const slot = state.activeSlot & 1;
  const config = decodeConfig(maps.mg_config.lookup(encodeU32(slot))!);
  const mesh: string[] = [];
  const exclude: string[] = [];
  const allow: Record<string, Record<string, string[]>> = {};
  for (const [kb, vb] of maps.mg_policy_trie.entries()) {
    const k = decodeTrieKey(kb);
    if (k.slot !== slot) continue;
    const cidr = formatPrefix(k.prefix.bytes, k.prefix.bits);
    if (k.table === 'mesh') mesh.push(cidr);
    else if (k.table === 'exclude') exclude.push(cidr);
    else {
      const ns = k.namespaceId === 0 ? '(global)' : (labelOf(labels, k.namespaceId)?.namespace ?? `#${k.namespaceId}`);
      const entry = labelOf(labels, vb.readUInt32LE(0));
      const name = entry ? `${entry.name}${entry.host ? ` (${entry.host})` : ''}` : '(unnamed)';
      ((allow[ns] ??= {})[name] ??= []).push(`${cidr} ${k.port}/${protoName(k.proto)}`);
    }
  }
  const excludedPorts = maps.mg_excluded_ports.keys().map(decodePortKey).filter((p) => p.slot === slot).map((p) => p.port).sort((a, b) => a - b);
  const pods = maps.mg_cgroups.entries().map(([k, v]) => {
    const c = decodeCgroup(v);
    return { cgroupId: k.readBigUInt64LE(0).toString(), kind: (KIND_NAMES as Map<number, string>).get(c.kind) ?? String(c.kind), pod: labelOf(labels, c.labelId)?.pod ?? '?', proxyCgroupKnown: Boolean(c.flags & 1) };
  });
  const counters: Record<string, Record<string, number>> = {};
  for (const { verdict, rule, count } of readVerdictCounters(maps.mg_counters)) (counters[verdict] ??= {})[rule] = Number(count);
  return {
    generation: config.generation.toString(),
    activeSlot: slot,
    config: {
      egress: Boolean(config.flags & CONFIG_FLAG.MG_CFG_EGRESS),
      proxyOutboundPort: config.proxyPort,
      proxyUid: config.proxyUid,
      blockedEgressAction: config.blockedAction ? 'redirect' : 'deny',
      unknownPodPolicy: config.unknownPodPolicy ? 'deny-external' : 'pass',
    },
    meshCidrs: mesh.sort(),
    excludedCidrs: exclude.sort(),
    excludedPorts,
    allowlists: allow,
    pods,
    counters,
  };
}

export function formatDump(d: ReturnType<typeof dumpMaps>, only?: string): string {
  const lines: string[] = [];
  const section = (name: string, body: string[]) => {
    if (only && only !== name) return;
    lines.push(`${name}:`, ...(body.length ? body.map((l) => `  ${l}`) : ['  (none)']), '');
  };
  section('config', [`generation ${d.generation} (slot ${d.activeSlot})`, ...Object.entries(d.config).map(([k, v]) => `${k}: ${v}`)]);
  section('mesh', d.meshCidrs);
  section('exclusions', [...d.excludedCidrs, ...(d.excludedPorts.length ? [`ports ${d.excludedPorts.join(', ')}`] : [])]);
  section('allowlists', Object.entries(d.allowlists).flatMap(([ns, entries]) => [
    `namespace ${ns}`, ...Object.entries(entries).flatMap(([name, dests]) => [`  ${name}`, ...dests.sort().map((x) => `    ${x}`)]),
  ]));
  section('pods', d.pods.map((p) => `${p.cgroupId.padEnd(8)} ${p.kind.padEnd(11)} ${p.pod}`));
  section('counters', Object.entries(d.counters).flatMap(([v, rules]) => Object.entries(rules).map(([r, n]) => `${v.padEnd(9)} ${r.padEnd(18)} ${n}`)));
  return lines.join('\n');
}
