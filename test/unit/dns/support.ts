// Test doubles for the dns module: a fake clock, a scripted resolve, a recording logger.
import type { Clock, LoggerLike, HostResolver, ResolvedHost } from '../../../src/dns/hostResolver.js';

/** Let every settled promise chain run (the scripted resolve answers in microtasks). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 3; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private time = 1_000_000;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  pendingTimers(): number {
    return this.timers.size;
  }

  /** Move time forward, firing due timers in order and letting their promise chains settle. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (let fired = 0; fired < 10_000; fired += 1) {
      let dueId: number | null = null;
      let dueAt = Infinity;
      for (const [id, timer] of this.timers) {
        if (timer.at <= target && timer.at < dueAt) {
          dueId = id;
          dueAt = timer.at;
        }
      }
      if (dueId === null) break;
      const timer = this.timers.get(dueId);
      this.timers.delete(dueId);
      this.time = dueAt;
      timer?.fn();
      await flush();
    }
    this.time = target;
    await flush();
  }
}

export interface ScriptedAnswer {
  address: string;
  ttl: number;
}
/** Answers, or an error code such as 'ENODATA', 'ENOTFOUND', 'ESERVFAIL', 'ETIMEOUT'. */
export type FamilyScript = readonly ScriptedAnswer[] | string;

export class ScriptedDns {
  readonly calls: { host: string; family: 4 | 6 }[] = [];
  private readonly script = new Map<string, { 4: FamilyScript; 6: FamilyScript }>();

  set(host: string, v4: FamilyScript, v6: FamilyScript = 'ENODATA'): void {
    this.script.set(host, { 4: v4, 6: v6 });
  }

  callsFor(host: string): number {
    return this.calls.filter((call) => call.host === host).length;
  }

  readonly resolve = async (host: string, family: 4 | 6): Promise<{ address: string; ttl: number }[]> => {
    this.calls.push({ host, family });
    const entry = this.script.get(host)?.[family] ?? 'ENOTFOUND';
    if (typeof entry === 'string') {
      throw Object.assign(new Error(`query ${entry} ${host}`), { code: entry });
    }
    return entry.map((answer) => ({ ...answer }));
  };
}

export interface LogLine {
  level: 'info' | 'warn' | 'error' | 'debug';
  fields: Record<string, unknown>;
  msg: string;
}

export interface RecordingLogger extends LoggerLike {
  readonly lines: LogLine[];
}

export function recordingLogger(bindings: Record<string, unknown> = {}, lines: LogLine[] = []): RecordingLogger {
  const at =
    (level: LogLine['level']) =>
    (fields: object, msg: string): void => {
      lines.push({ level, fields: { ...bindings, ...fields }, msg });
    };
  return {
    lines,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    child: (more) => recordingLogger({ ...bindings, ...more }, lines),
  };
}

/** Wait, at most timeoutMs of real time, until the host's snapshot satisfies the predicate. */
export function waitForHost(
  resolver: HostResolver,
  host: string,
  predicate: (view: ResolvedHost) => boolean,
  timeoutMs = 3_000,
): Promise<ResolvedHost> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const view = resolver.snapshot().get(host);
      if (view === undefined || !predicate(view)) return false;
      clearTimeout(deadline);
      unsubscribe();
      resolve(view);
      return true;
    };
    const deadline = setTimeout(() => {
      unsubscribe();
      reject(
        new Error(
          `timed out after ${timeoutMs} ms waiting for ${host}: ${JSON.stringify(resolver.snapshot().get(host))}`,
        ),
      );
    }, timeoutMs);
    const unsubscribe = resolver.onChange(() => {
      check();
    });
    check();
  });
}
