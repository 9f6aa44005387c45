// The resolvers whose answers the kernel reads (--dns-server): the given ones,
// else the node's /etc/resolv.conf nameservers (what node:dns reads).
import { getServers } from 'node:dns';
import { parseResolver } from '../datapath/dnsCodec.js';
import type { TrustedResolver } from '../datapath/dnsLearned.js';
import { DEFAULTS } from './hostResolver.js';

export const DNS_DEFAULTS = Object.freeze({
  floorMs: DEFAULTS.floorMs,
  ceilingMs: DEFAULTS.ceilingMs,
  graceMs: DEFAULTS.graceMs,
});

/** "host[:port]" texts (default port 53) to addresses and ports, without duplicates. Throws on a bad one. */
export function trustedResolvers(
  servers: readonly string[] | undefined,
  system: () => string[] = getServers,
): TrustedResolver[] {
  const seen = new Map<string, TrustedResolver>();
  for (const text of servers ?? system()) {
    const r = parseResolver(text);
    seen.set(`${r.address}|${r.port}`, r);
  }
  return [...seen.values()];
}
