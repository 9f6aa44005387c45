// The production lookup: Node's c-ares resolver, queried directly (no /etc/hosts, no search domains).
import { promises as dnsPromises } from 'node:dns';
import { HostResolverOptionsError } from './errors.js';

export interface TtlAnswer {
  readonly address: string;
  /** Seconds. */
  readonly ttl: number;
}

export type ResolveFamily = (host: string, family: 4 | 6) => Promise<TtlAnswer[]>;

export interface SystemResolve {
  readonly resolve: ResolveFamily;
  /** Abort every query in flight; each rejects with ECANCELLED. */
  cancel(): void;
}

export function createSystemResolve(opts: {
  servers: readonly string[] | undefined;
  timeoutMs: number;
  tries: number;
}): SystemResolve {
  const resolver = new dnsPromises.Resolver({ timeout: opts.timeoutMs, tries: opts.tries });
  if (opts.servers !== undefined) {
    try {
      resolver.setServers([...opts.servers]);
    } catch (cause) {
      throw new HostResolverOptionsError('servers', `cannot use ${JSON.stringify(opts.servers)}`, { cause });
    }
  }
  return {
    resolve: (host, family) =>
      family === 4 ? resolver.resolve4(host, { ttl: true }) : resolver.resolve6(host, { ttl: true }),
    cancel: () => resolver.cancel(),
  };
}
