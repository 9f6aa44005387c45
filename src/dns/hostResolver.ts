// Keeps the addresses of allowlisted host names current: resolves A and AAAA, refreshes on TTL expiry
// (clamped to a floor and a ceiling), and on failure keeps the last addresses for a grace period.
import { canonicalAddress, orderAddresses } from './addressOrder.js';
import { type Clock, systemClock } from './clock.js';
import { HostResolverOptionsError } from './errors.js';
import { isQueryableHostname, normalizeHost } from './hostname.js';
import {
  decideRefresh,
  EMPTY_FAMILY,
  type Family,
  type FamilyMemory,
  type FamilyOutcome,
  type RefreshTiming,
} from './refreshOutcome.js';
import { createSystemResolve, type ResolveFamily, type TtlAnswer } from './systemResolve.js';

export { type Clock, systemClock } from './clock.js';
export { normalizeHost } from './hostname.js';
export { HostResolverOptionsError } from './errors.js';

/** stale = last refresh failed but within grace, old addresses kept; failed = no addresses (grace over or never resolved). */
export type HostState = 'pending' | 'fresh' | 'stale' | 'failed';

export interface ResolvedHost {
  readonly host: string;
  /** IPv4 then IPv6, canonical text, each numerically sorted, no duplicates. */
  readonly addresses: readonly string[];
  readonly state: HostState;
  /** Clock ms of the last successful refresh. */
  readonly resolvedAt: number | null;
  readonly nextRefreshAt: number | null;
  /** e.g. 'ENOTFOUND api.stripe.com', 'ETIMEOUT api.stripe.com'. Set on a partial success too. */
  readonly lastError: string | null;
  readonly consecutiveFailures: number;
}

type LogFn = (fields: object, message: string) => void;

/** The part of a pino.Logger this module uses. */
export interface LoggerLike {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  debug: LogFn;
  child(bindings: Record<string, unknown>): LoggerLike;
}

export interface HostResolverOptions {
  /** DNS servers for the built-in resolver, e.g. ['127.0.0.1:5353']. Default: the system's. */
  servers?: string[];
  floorMs?: number;
  ceilingMs?: number;
  graceMs?: number;
  /** Retry interval after a failure, clamped to [floorMs, ceilingMs]. */
  retryMs?: number;
  /** Per query, for the built-in resolver. */
  timeoutMs?: number;
  /** Attempts per server, for the built-in resolver. */
  tries?: number;
  clock?: Clock;
  logger?: LoggerLike;
  /** Replaces the built-in resolver (tests). Must reject with a `code` ('ENODATA', 'ENOTFOUND', ...) on failure. */
  resolve?: ResolveFamily;
}

export const DEFAULTS = Object.freeze({
  floorMs: 5_000,
  ceilingMs: 300_000,
  graceMs: 600_000,
  retryMs: 5_000,
  timeoutMs: 2_000,
  tries: 2,
});
const MAX_TIMER_MS = 2 ** 31 - 1;

const noop = (): void => undefined;
const silentLogger: LoggerLike = { info: noop, warn: noop, error: noop, debug: noop, child: () => silentLogger };

function checkedNumber(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isFinite(chosen) || chosen < min || chosen > max) {
    throw new HostResolverOptionsError(name, `${String(chosen)} is not within [${min}, ${max}]`);
  }
  return chosen;
}

interface HostEntry {
  readonly host: string;
  families: Readonly<Record<Family, FamilyMemory>>;
  view: ResolvedHost;
  timer: unknown;
}

function freezeView(view: ResolvedHost): ResolvedHost {
  return Object.freeze({ ...view, addresses: Object.freeze([...view.addresses]) });
}

function sameAddresses(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((address, i) => address === b[i]);
}

function errorText(err: unknown, host: string): { code: string | null; text: string } {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return { code, text: `${code} ${host}` };
  return { code: null, text: err instanceof Error ? err.message : String(err) };
}

export class HostResolver {
  private readonly timing: RefreshTiming;
  private readonly clock: Clock;
  private readonly log: LoggerLike;
  private readonly resolveFamily: ResolveFamily;
  private readonly cancelQueries: () => void;
  private readonly entries = new Map<string, HostEntry>();
  private readonly listeners = new Set<(changedHosts: readonly string[]) => void>();
  private settledWaiters: (() => void)[] = [];
  private closed = false;

  constructor(opts: HostResolverOptions = {}) {
    const floorMs = checkedNumber('floorMs', opts.floorMs, DEFAULTS.floorMs, 1, MAX_TIMER_MS);
    const ceilingMs = checkedNumber(
      'ceilingMs',
      opts.ceilingMs,
      Math.max(DEFAULTS.ceilingMs, floorMs),
      floorMs,
      MAX_TIMER_MS,
    );
    const graceMs = checkedNumber('graceMs', opts.graceMs, DEFAULTS.graceMs, 0, Number.MAX_SAFE_INTEGER);
    const retryMs = checkedNumber('retryMs', opts.retryMs, DEFAULTS.retryMs, 1, MAX_TIMER_MS);
    this.timing = Object.freeze({
      floorMs,
      ceilingMs,
      graceMs,
      retryMs: Math.min(ceilingMs, Math.max(floorMs, retryMs)),
    });
    this.clock = opts.clock ?? systemClock;
    this.log = (opts.logger ?? silentLogger).child({ module: 'dns' });

    if (opts.resolve !== undefined) {
      if (opts.servers !== undefined) {
        throw new HostResolverOptionsError(
          'servers',
          'only applies to the built-in resolver, not to an injected resolve',
        );
      }
      this.resolveFamily = opts.resolve;
      this.cancelQueries = noop;
    } else {
      const timeoutMs = checkedNumber('timeoutMs', opts.timeoutMs, DEFAULTS.timeoutMs, 1, MAX_TIMER_MS);
      const tries = checkedNumber('tries', opts.tries, DEFAULTS.tries, 1, 16);
      if (!Number.isInteger(tries)) throw new HostResolverOptionsError('tries', `${tries} is not an integer`);
      const system = createSystemResolve({ servers: opts.servers, timeoutMs, tries });
      this.resolveFamily = system.resolve;
      this.cancelQueries = system.cancel;
    }
  }

  /** Track exactly these hosts: new ones are resolved now, removed ones forgotten (timers cancelled). */
  setHosts(hosts: Iterable<string>): void {
    if (this.closed) return;
    const wanted = new Set<string>();
    for (const host of hosts) wanted.add(normalizeHost(host));

    for (const [host, entry] of this.entries) {
      if (wanted.has(host)) continue;
      this.cancelTimer(entry);
      this.entries.delete(host);
      this.log.debug({ host }, 'hostname no longer tracked');
    }
    for (const host of wanted) {
      if (this.entries.has(host)) continue;
      const entry: HostEntry = {
        host,
        families: { 4: EMPTY_FAMILY, 6: EMPTY_FAMILY },
        view: freezeView({
          host,
          addresses: [],
          state: 'pending',
          resolvedAt: null,
          nextRefreshAt: null,
          lastError: null,
          consecutiveFailures: 0,
        }),
        timer: null,
      };
      this.entries.set(host, entry);
      if (isQueryableHostname(host)) {
        this.refresh(entry);
      } else {
        // Never queried, never retried: the name itself is the problem, so it must be fixed in config.
        entry.view = freezeView({
          ...entry.view,
          state: 'failed',
          lastError: `EBADNAME ${host}`,
          consecutiveFailures: 1,
        });
        this.log.warn({ host }, 'hostname is not resolvable, no addresses allowed for it');
      }
    }
    this.checkSettled();
  }

  snapshot(): ReadonlyMap<string, ResolvedHost> {
    const copy = new Map<string, ResolvedHost>();
    for (const [host, entry] of this.entries) copy.set(host, entry.view);
    return copy;
  }

  /** Fired after a refresh that changed a host's address set or state (not on an identical refresh). */
  onChange(listener: (changedHosts: readonly string[]) => void): () => void {
    const wrapped = (changedHosts: readonly string[]): void => listener(changedHosts);
    this.listeners.add(wrapped);
    return () => {
      this.listeners.delete(wrapped);
    };
  }

  /** Resolves once no tracked host is 'pending' (or on close). Never rejects. */
  whenSettled(): Promise<void> {
    return new Promise((resolve) => {
      this.settledWaiters.push(resolve);
      this.checkSettled();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.entries.values()) this.cancelTimer(entry);
    this.listeners.clear();
    this.cancelQueries();
    this.checkSettled();
  }

  private refresh(entry: HostEntry): void {
    entry.timer = null;
    Promise.all([this.queryFamily(entry.host, 4), this.queryFamily(entry.host, 6)])
      .then(([v4, v6]) => this.applyRefresh(entry, v4, v6))
      .catch((err: unknown) => {
        // Only a bug in applyRefresh lands here. Keep the host on a retry rather than stuck.
        this.log.error({ host: entry.host, err }, 'hostname refresh crashed');
        if (this.isCurrent(entry)) this.schedule(entry, this.timing.retryMs);
      });
  }

  private async queryFamily(host: string, family: Family): Promise<FamilyOutcome> {
    let answers: TtlAnswer[];
    try {
      answers = await this.resolveFamily(host, family);
    } catch (err) {
      const { code, text } = errorText(err, host);
      if (code === 'ENODATA') return { kind: 'nodata' };
      if (code === 'ENOTFOUND') return { kind: 'nxdomain', error: text };
      return { kind: 'error', error: text };
    }
    const valid: TtlAnswer[] = [];
    for (const answer of answers) {
      const address = canonicalAddress(answer.address, family);
      if (address === null) {
        this.log.warn({ host, family, address: answer.address }, 'resolver returned a malformed address, ignored');
      } else {
        valid.push({ address, ttl: Number.isFinite(answer.ttl) ? answer.ttl : 0 });
      }
    }
    return valid.length > 0 ? { kind: 'data', answers: valid } : { kind: 'nodata' };
  }

  private applyRefresh(entry: HostEntry, v4: FamilyOutcome, v6: FamilyOutcome): void {
    if (!this.isCurrent(entry)) return; // closed, or the host was removed while the query ran
    const now = this.clock.now();
    const before = entry.view;
    const decision = decideRefresh(entry.families, { 4: v4, 6: v6 }, now, this.timing);
    entry.families = decision.families;
    const addresses = orderAddresses(decision.families[4].addresses, decision.families[6].addresses);
    const state: HostState = decision.success ? 'fresh' : addresses.length > 0 ? 'stale' : 'failed';
    const host = entry.host;
    const err = decision.error;

    for (const drop of decision.dropped) {
      this.log.error(
        { host, err, family: drop.family, droppedAddresses: drop.addresses },
        'hostname grace period over, addresses dropped',
      );
    }
    if (decision.keptWhileFailing.length > 0) {
      const fields = { host, err, graceLeftMs: decision.graceLeftMs };
      if (decision.success) {
        this.log.warn(
          { ...fields, families: decision.keptWhileFailing },
          'hostname refresh failed for one address family, keeping its last addresses',
        );
      } else {
        this.log.warn(fields, 'hostname refresh failed, keeping last addresses');
      }
    } else if (!decision.success && decision.dropped.length === 0) {
      // No addresses at stake: say it once, then quietly keep retrying.
      if (before.state === 'failed') this.log.debug({ host, err }, 'hostname resolution still failing');
      else this.log.warn({ host, err }, 'hostname resolution failed, no addresses allowed for it');
    } else if (decision.success && err !== null) {
      this.log.debug({ host, err }, 'hostname refresh failed for one address family');
    }

    entry.view = freezeView({
      host,
      addresses,
      state,
      resolvedAt: decision.success ? now : before.resolvedAt,
      nextRefreshAt: now + decision.delayMs,
      lastError: err,
      consecutiveFailures: decision.success ? 0 : before.consecutiveFailures + 1,
    });
    this.schedule(entry, decision.delayMs);
    this.checkSettled();

    if (state !== before.state || !sameAddresses(addresses, before.addresses)) {
      this.log.info({ host, state, addresses }, 'hostname addresses changed');
      this.emit([host]);
    }
  }

  private schedule(entry: HostEntry, delayMs: number): void {
    this.cancelTimer(entry);
    entry.timer = this.clock.setTimer(() => {
      if (this.isCurrent(entry)) this.refresh(entry);
    }, delayMs);
  }

  private cancelTimer(entry: HostEntry): void {
    if (entry.timer !== null) this.clock.clearTimer(entry.timer);
    entry.timer = null;
  }

  private isCurrent(entry: HostEntry): boolean {
    return !this.closed && this.entries.get(entry.host) === entry;
  }

  private emit(changedHosts: readonly string[]): void {
    for (const listener of [...this.listeners]) {
      if (this.closed) return;
      try {
        listener(changedHosts);
      } catch (err) {
        this.log.error({ err, hosts: changedHosts }, 'hostname change listener threw');
      }
    }
  }

  private checkSettled(): void {
    if (this.settledWaiters.length === 0) return;
    if (!this.closed && [...this.entries.values()].some((entry) => entry.view.state === 'pending')) return;
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
