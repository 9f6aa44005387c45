// `meshgate dump learned`: the addresses hostnames stand for right now, from
// both sources: learned by the kernel from pods' own DNS answers (mg_learned),
// and resolved by the agent itself (the trie's entries that carry a host).
import { decodeTrieKey, decodeTrieValue, formatPrefix } from '../datapath/codec.js';
import { readDnsStats, readLearned } from '../datapath/dnsLearned.js';
import type { Maps } from '../datapath/loader.js';
import type { ParsedLabel } from '../datapath/labels.js';

export interface LearnedDump {
  /** '' for a global host */
  namespace: string;
  address: string;
  host: string;
  /** the question the pod asked (a wildcard's concrete name), when known */
  name: string | null;
  /** 'pod-dns': learned by the kernel from a pod's answer; 'agent': the agent's own resolution */
  source: 'pod-dns' | 'agent';
  /** pod-dns only */
  ttlS: number | null;
  ageMs: number | null;
  expiresInMs: number | null;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function dumpLearned(
  maps: Maps,
  slot: number,
  label: (id: number) => ParsedLabel | null,
): { learned: LearnedDump[]; dnsReader: Record<string, number> } {
  const learned: LearnedDump[] = readLearned(maps)
    .filter((l) => !l.expired)
    .map((l) => ({
      namespace: l.namespace,
      address: l.address,
      host: l.host,
      name: l.name,
      source: 'pod-dns',
      ttlS: l.ttlS,
      ageMs: l.ageMs,
      expiresInMs: l.expiresInMs,
    }));
  const agent = new Set<string>();
  for (const [kb, vb] of maps.mg_policy_trie.entries()) {
    const k = decodeTrieKey(kb);
    if (k.slot !== slot || k.table !== 'allow') continue;
    const entry = label(decodeTrieValue(vb).labelId);
    if (!entry?.host) continue;
    const namespace = k.namespaceId === 0 ? '' : (label(k.namespaceId)?.namespace ?? `#${k.namespaceId}`);
    const cidr = formatPrefix(k.prefix.bytes, k.prefix.bits);
    const key = `${namespace}|${cidr}|${entry.host}`;
    if (agent.has(key)) continue;
    agent.add(key);
    learned.push({
      namespace,
      address: cidr.slice(0, cidr.lastIndexOf('/')),
      host: entry.host,
      name: null,
      source: 'agent',
      ttlS: null,
      ageMs: null,
      expiresInMs: null,
    });
  }
  learned.sort(
    (a, b) =>
      byText(a.namespace, b.namespace) ||
      byText(a.address, b.address) ||
      byText(a.host, b.host) ||
      byText(a.source, b.source),
  );
  const dnsReader = Object.fromEntries(Object.entries(readDnsStats(maps.mg_dns_stats)).map(([k, v]) => [k, Number(v)]));
  return { learned, dnsReader };
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;

export function formatLearned(learned: readonly LearnedDump[], dnsReader: Record<string, number>): string[] {
  const lines: string[] = [];
  let ns: string | null = null;
  for (const l of learned) {
    if (l.namespace !== ns) {
      ns = l.namespace;
      lines.push(ns ? `namespace ${ns}` : 'global (every namespace)');
    }
    const host = l.name && l.name !== l.host ? `${l.host} (${l.name})` : l.host;
    const timing =
      l.source === 'pod-dns'
        ? `pod DNS, ttl ${l.ttlS}s, ${seconds(l.ageMs ?? 0)} ago, ${seconds(l.expiresInMs ?? 0)} left`
        : 'agent';
    lines.push(`  ${l.address.padEnd(15)} ${host}  ${timing}`);
  }
  const r = dnsReader;
  lines.push(
    `DNS reader: ${r['queries'] ?? 0} queries, ${r['answers_learned'] ?? 0} answers learned (${r['addresses_learned'] ?? 0} addresses),`,
    `  ${r['not_allowlisted'] ?? 0} not allowlisted, ${r['evicted'] ?? 0} evicted, ${r['learn_failed'] ?? 0} failed writes;`,
    `  refused: ${r['untrusted'] ?? 0} untrusted, ${r['unsolicited'] ?? 0} unsolicited, ${r['malformed'] ?? 0} malformed`,
  );
  return lines;
}
