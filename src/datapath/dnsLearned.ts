// The DNS reader seen from user space: the trusted resolvers and timing it
// reads (written once per agent start), what it learned (dump, explain), and
// its counters (metrics). The learned addresses themselves are written only by
// the kernel; the agent never adds to them.
import { encodeU32, formatAddress, decodeLabel } from './codec.js';
import {
  DNS_STAT,
  DNS_STAT_NAMES,
  decodeDnsConfig,
  decodeDnsName,
  decodeLearned,
  encodeDnsConfig,
  encodeNameKey,
  encodeResolverKey,
  decodeResolverPort,
  encodeLearnedKey,
  encodeDnsPortKey,
  type DnsKernelConfig,
  type LearnedHost,
} from './dnsCodec.js';
import type { MapHandle } from './maps.js';

export interface TrustedResolver {
  /** IPv4 or IPv6 address */
  readonly address: string;
  readonly port: number;
}

export interface DnsLearningSettings {
  readonly resolvers: readonly TrustedResolver[];
  readonly ttlFloorMs: number;
  readonly ttlCeilingMs: number;
  readonly graceMs: number;
  readonly learnedMax: number;
}

type DnsMaps = Record<'mg_dns_resolvers' | 'mg_dns_resolver_ports' | 'mg_dns_config', MapHandle>;

const ns = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/** Makes the kernel trust exactly these resolvers, with this timing. Writes the config last. */
export function writeDnsSettings(maps: DnsMaps, s: DnsLearningSettings): void {
  const want = new Map(s.resolvers.map((r) => [encodeResolverKey(r.address, r.port).toString('hex'), r]));
  const ports = new Set(s.resolvers.map((r) => r.port));
  // Ports first, resolvers second: a port is never marked without its resolvers being there too.
  for (const port of ports) maps.mg_dns_resolver_ports.update(encodeU32(port), Buffer.from([1]));
  const oldPorts = new Set<number>();
  for (const key of maps.mg_dns_resolvers.keys()) {
    if (want.has(key.toString('hex'))) continue;
    maps.mg_dns_resolvers.delete(key);
    oldPorts.add(decodeResolverPort(key));
  }
  for (const hex of want.keys()) maps.mg_dns_resolvers.update(Buffer.from(hex, 'hex'), Buffer.from([1]));
  for (const port of oldPorts)
    if (!ports.has(port)) maps.mg_dns_resolver_ports.update(encodeU32(port), Buffer.from([0]));
  maps.mg_dns_config.update(
    encodeU32(0),
    encodeDnsConfig({
      ttlFloorNs: ns(s.ttlFloorMs),
      ttlCeilingNs: ns(s.ttlCeilingMs),
      graceNs: ns(s.graceMs),
      learnedMax: s.learnedMax,
    }),
  );
}

export function readDnsConfig(maps: Pick<DnsMaps, 'mg_dns_config'>): DnsKernelConfig | null {
  const raw = maps.mg_dns_config.lookup(encodeU32(0));
  return raw ? decodeDnsConfig(raw) : null;
}

export interface LearnedView {
  /** '' for a global host */
  readonly namespace: string;
  readonly address: string;
  readonly host: string;
  /** The question the pod asked (differs from host for a wildcard), when still known. */
  readonly name: string | null;
  readonly ttlS: number;
  readonly ageMs: number;
  /** Milliseconds until it stops allowing (0 when expired). */
  readonly expiresInMs: number;
  readonly expired: boolean;
  readonly hostId: number;
}

type LearnedMaps = Record<'mg_learned' | 'mg_labels' | 'mg_dns_names', MapHandle>;

/** Every learned (address, host), sorted by namespace, address and host. nowNs: CLOCK_MONOTONIC. */
export function readLearned(maps: LearnedMaps, nowNs: bigint = process.hrtime.bigint()): LearnedView[] {
  const labels = new Map<number, { namespace: string; host: string }>();
  const label = (id: number) => {
    if (!labels.has(id)) {
      const raw = maps.mg_labels.lookup(encodeU32(id));
      let parsed = { namespace: '?', host: `host #${id}` };
      try {
        if (raw) parsed = JSON.parse(decodeLabel(raw)) as { namespace: string; host: string };
      } catch {
        /* not JSON: keep the placeholder */
      }
      labels.set(id, parsed);
    }
    return labels.get(id)!;
  };
  const names = new Map<bigint, string | null>();
  const name = (h: LearnedHost) => {
    if (!names.has(h.nameHash)) {
      const raw = maps.mg_dns_names.lookup(encodeNameKey(h.nameHash));
      names.set(h.nameHash, raw ? decodeDnsName(raw) : null);
    }
    return names.get(h.nameHash)!;
  };
  const out: LearnedView[] = [];
  for (const [key, value] of maps.mg_learned.entries()) {
    const l = decodeLearned(key, value);
    for (const h of l.hosts) {
      const { namespace, host } = label(h.hostId);
      const left = h.expiresNs > nowNs ? h.expiresNs - nowNs : 0n;
      out.push({
        namespace: l.namespaceId === 0 ? '' : namespace,
        address: formatAddress(l.address),
        host,
        name: name(h),
        ttlS: h.ttlS,
        ageMs: Number((nowNs - h.learnedNs) / 1_000_000n),
        expiresInMs: Number(left / 1_000_000n),
        expired: left === 0n,
        hostId: h.hostId,
      });
    }
  }
  return out.sort(
    (a, b) =>
      a.namespace.localeCompare(b.namespace) || a.address.localeCompare(b.address) || a.host.localeCompare(b.host),
  );
}

/**
 * What learned_allows() (bpf/learned.bpf.h) finds for one namespace: the first
 * unexpired host of the address whose entry allows proto/port at `slot`.
 */
export function learnedLookup(
  maps: Record<'mg_learned' | 'mg_dns_ports' | 'mg_labels' | 'mg_dns_names', MapHandle>,
  slot: number,
  namespaceId: number,
  proto: number,
  port: number,
  address: Uint8Array,
  nowNs: bigint = process.hrtime.bigint(),
): {
  map: 'mg_learned';
  labelId: number;
  learned: { namespaceId: number; host: string; name: string | null; ttlS: number; ageMs: number; expiresInMs: number };
} | null {
  const key = encodeLearnedKey(namespaceId, formatAddress(address));
  const raw = maps.mg_learned.lookup(key);
  if (!raw) return null;
  for (const h of decodeLearned(key, raw).hosts) {
    if (h.expiresNs <= nowNs) continue;
    const label = maps.mg_dns_ports.lookup(encodeDnsPortKey(h.hostId, port, proto, slot));
    if (!label) continue;
    let host = `host #${h.hostId}`;
    try {
      const text = maps.mg_labels.lookup(encodeU32(h.hostId));
      if (text) host = (JSON.parse(decodeLabel(text)) as { host: string }).host;
    } catch {
      /* keep the placeholder */
    }
    const nameRaw = maps.mg_dns_names.lookup(encodeNameKey(h.nameHash));
    return {
      map: 'mg_learned',
      labelId: label.readUInt32LE(0),
      learned: {
        namespaceId,
        host,
        name: nameRaw ? decodeDnsName(nameRaw) : null,
        ttlS: h.ttlS,
        ageMs: Number((nowNs - h.learnedNs) / 1_000_000n),
        expiresInMs: Number((h.expiresNs - nowNs) / 1_000_000n),
      },
    };
  }
  return null;
}

/** The DNS reader's counters, summed over CPUs, by name (answers_learned, evicted, ...). */
export function readDnsStats(stats: MapHandle): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  DNS_STAT_NAMES.forEach((name, i) => {
    out[name] = stats.sumPerCpuU64(encodeU32(i));
  });
  return out;
}

export { DNS_STAT };
