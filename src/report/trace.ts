// `meshgate trace`: decision events from the ring buffer, with pod names.
//
// The programs emit events for mg_config.event_mask (denies, by default).
// Trace asks for more verdicts through mg_trace, with a deadline it refreshes
// while it runs: if trace dies the request lapses by itself within
// TRACE_LEASE_NS. Rate-limited and ring-full drops are read from
// mg_event_stats and reported as they happen.
import {
  EVENT_STAT,
  HOOK,
  RULE_NAMES,
  VERDICT_NAMES,
  decodeTrace,
  encodeTrace,
  encodeU32,
  formatAddress,
  protoName,
  type KernelEvent,
  type VerdictName,
} from '../datapath/codec.js';
import { EventReader } from '../datapath/events.js';
import { entryLabelText } from '../datapath/labels.js';
import type { Pins } from '../datapath/pinned.js';

export const TRACE_LEASE_NS = 10_000_000_000n;
const REFRESH_MS = 3000;
const HOOK_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(HOOK).map(([k, v]) => [v, k.replace('MG_HOOK_', '').toLowerCase()]),
);

export interface TraceEvent {
  readonly type: 'event';
  readonly time: string;
  readonly verdict: VerdictName | string;
  readonly rule: string;
  readonly pod: string | null;
  readonly cgroupId: string;
  readonly podCgroupId: string;
  readonly destination: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: string;
  readonly hook: string;
  readonly entry: string | null;
  readonly pid: number;
  readonly uid: number;
}

export interface TraceDrops {
  readonly type: 'dropped';
  readonly time: string;
  readonly rateLimited: number;
  readonly ringFull: number;
}

export interface TraceOptions {
  readonly verdicts: readonly VerdictName[];
  /** "namespace/name": only this pod's events */
  readonly pod?: string;
  /** also show events that were queued before trace started */
  readonly backlog?: boolean;
  readonly onEvent: (e: TraceEvent) => void;
  readonly onDrops: (d: TraceDrops) => void;
  readonly pollMs?: number;
  /** Tests: monotonic clock in ns, as bpf_ktime_get_ns. */
  readonly now?: () => bigint;
}

export const verdictMask = (verdicts: readonly VerdictName[]): number =>
  verdicts.reduce((m, v) => m | (1 << VERDICT_NAMES.indexOf(v)), 0);

export class TraceStream {
  private readonly pins: Pins;
  private readonly opts: TraceOptions;
  private readonly now: () => bigint;
  private readonly startNs: bigint;
  private readonly wallAtStart: number;
  private reader: EventReader | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastWritten: Buffer | null = null;
  private drops: { rateLimited: bigint; ringFull: bigint };
  private podOf = new Map<bigint, string | null>();

  constructor(pins: Pins, opts: TraceOptions) {
    this.pins = pins;
    this.opts = opts;
    this.now = opts.now ?? (() => process.hrtime.bigint());
    this.startNs = this.now();
    this.wallAtStart = Date.now();
    this.drops = this.readDrops();
  }

  private readDrops() {
    const stats = this.pins.maps.mg_event_stats;
    return {
      rateLimited: stats.sumPerCpuU64(encodeU32(EVENT_STAT.MG_EVENT_STAT_RATE_LIMITED)),
      ringFull: stats.sumPerCpuU64(encodeU32(EVENT_STAT.MG_EVENT_STAT_RINGBUF_FULL)),
    };
  }

  /** Asks the programs for our verdicts until now + lease; keeps what another trace asked for while it lasts. */
  private requestEvents(): void {
    const map = this.pins.maps.mg_trace;
    const now = this.now();
    let mask = verdictMask(this.opts.verdicts);
    const current = map.lookup(encodeU32(0));
    const other = current && this.lastWritten && !current.equals(this.lastWritten) ? decodeTrace(current) : null;
    if (other && other.untilNs > now) mask |= other.eventMask;
    const value = encodeTrace(mask, now + TRACE_LEASE_NS);
    map.update(encodeU32(0), value);
    this.lastWritten = value;
  }

  start(): void {
    this.requestEvents();
    this.reader = new EventReader(this.pins.maps.mg_events, (e) => this.deliver(e), this.opts.pollMs ?? 100);
    this.timer = setInterval(
      () => {
        this.requestEvents();
        this.reportDrops();
      },
      Math.min(REFRESH_MS, this.opts.pollMs ? this.opts.pollMs * 10 : REFRESH_MS),
    );
  }

  private reportDrops(): void {
    const d = this.readDrops();
    const rateLimited = d.rateLimited - this.drops.rateLimited;
    const ringFull = d.ringFull - this.drops.ringFull;
    this.drops = d;
    if (rateLimited > 0n || ringFull > 0n) {
      this.opts.onDrops({
        type: 'dropped',
        time: new Date().toISOString(),
        rateLimited: Number(rateLimited),
        ringFull: Number(ringFull),
      });
    }
  }

  private podName(podCgroupId: bigint): string | null {
    if (podCgroupId === 0n) return null;
    if (!this.podOf.has(podCgroupId)) {
      const c = this.pins.cgroup(podCgroupId);
      this.podOf.set(podCgroupId, c ? this.pins.describeCgroup(podCgroupId, c).label : null);
    }
    return this.podOf.get(podCgroupId)!;
  }

  private deliver(e: KernelEvent): void {
    if (!this.opts.backlog && e.tsNs < this.startNs) return;
    const verdict = VERDICT_NAMES[e.verdict] ?? `verdict-${e.verdict}`;
    if (!(this.opts.verdicts as readonly string[]).includes(verdict)) return;
    const pod = this.podName(e.podCgroupId);
    if (this.opts.pod && (pod === null || pod.split(' ')[0] !== this.opts.pod)) return;
    const address = formatAddress(e.address);
    const entry = entryLabelText(e.labelId ? this.pins.label(e.labelId) : null);
    const wall = this.wallAtStart + Number((e.tsNs - this.startNs) / 1_000_000n);
    this.opts.onEvent({
      type: 'event',
      time: new Date(wall).toISOString(),
      verdict,
      rule: RULE_NAMES[e.rule] ?? `rule-${e.rule}`,
      pod,
      cgroupId: e.cgroupId.toString(),
      podCgroupId: e.podCgroupId.toString(),
      destination: `${address.includes(':') ? `[${address}]` : address}:${e.port}`,
      address,
      port: e.port,
      protocol: protoName(e.proto),
      hook: HOOK_NAMES.get(e.hook) ?? `hook-${e.hook}`,
      entry,
      pid: e.pid,
      uid: e.uid,
    });
  }

  /** Delivers what is queued now (tests; the reader also polls on its own timer). */
  poll(): void {
    this.reader?.poll();
    this.reportDrops();
  }

  /** Stops reading; withdraws the mg_trace request unless another trace has replaced it since. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.reader?.poll();
    this.reader?.close();
    this.reader = null;
    const map = this.pins.maps.mg_trace;
    const current = map.lookup(encodeU32(0));
    if (current && this.lastWritten && current.equals(this.lastWritten)) map.update(encodeU32(0), encodeTrace(0, 0n));
  }
}

/** One line, about 80 columns: time, verdict, pod, destination/protocol, rule (and entry). */
export function formatTraceEvent(e: TraceEvent): string {
  const time = e.time.slice(11, 23);
  const pod = (e.pod ?? `cgroup:${e.cgroupId}`).padEnd(20);
  const dest = `${e.destination}/${e.protocol}`.padEnd(24);
  const rule = e.verdict === 'audit' ? `${e.rule} (would deny)` : e.rule;
  return `${time} ${e.verdict.padEnd(8)} ${pod} ${dest} ${rule}${e.entry ? ` ${e.entry}` : ''}`;
}

export function formatTraceDrops(d: TraceDrops): string {
  const parts = [
    d.rateLimited ? `${d.rateLimited} by the rate limit` : '',
    d.ringFull ? `${d.ringFull} because the ring buffer was full` : '',
  ].filter(Boolean);
  return `${d.time.slice(11, 23)} -- events dropped: ${parts.join(', ')}`;
}
