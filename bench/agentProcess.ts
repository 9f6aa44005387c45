// The real standalone agent (`node bin/meshgate.js agent --config-file ...`),
// started as tests start it, moved into its own mgbench cgroup (no hooks there)
// so that a killed bench's agent can be found and stopped by sweepLeftovers().
import type { ChildProcess } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, type BenchSandbox } from './sandbox.js';

export interface AgentHandle {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every "policy applied" log line so far, parsed. */
  readonly applies: Array<{ ms: number; trieUpserts: number; trieDeletes: number; time: number }>;
  log(): string;
  /** Resolves when `count` applies have been logged. */
  waitForApplies(count: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** The cluster agent's flags against the Kubernetes API test server, on node-a with a cgroupfs kubepods tree. */
export function clusterAgentArgs(kubeconfig: string, kubepods: string): string[] {
  return [
    '--kubeconfig',
    kubeconfig,
    '--node-name',
    'node-a',
    '--cgroup-root',
    kubepods,
    '--cgroup-driver',
    'cgroupfs',
  ];
}

/** Writes `text` to `file` as an editor does: a temp file, then an atomic rename. */
export function writeAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Standalone (configFile + cgroup) or any other agent flags (`args`, e.g. cluster mode). */
export type AgentStart = { label: string; pinDir: string } & (
  | { configFile: string; cgroup: string }
  | { args: readonly string[] }
);

export async function startAgent(sb: BenchSandbox, opts: AgentStart): Promise<AgentHandle> {
  const agentCgroup = sb.cgroup(`${opts.label}-agent`);
  const mode =
    'args' in opts
      ? [...opts.args]
      : ['--config-file', opts.configFile, '--cgroup', opts.cgroup, '--namespace', 'bench'];
  const child = sb.spawn(process.execPath, [
    path.join(REPO_ROOT, 'bin/meshgate.js'),
    'agent',
    ...mode,
    '--pin-dir',
    opts.pinDir,
    '--listen',
    '127.0.0.1:0',
  ]);
  if (!child.pid) throw new Error('the agent did not start');
  writeFileSync(path.join(agentCgroup, 'cgroup.procs'), String(child.pid));
  let log = '';
  let pending = '';
  const applies: AgentHandle['applies'] = [];
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    log += d.toString();
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('"policy applied"')) continue;
      const entry = JSON.parse(line) as { ms: number; trieUpserts: number; trieDeletes: number; time: number };
      applies.push({ ms: entry.ms, trieUpserts: entry.trieUpserts, trieDeletes: entry.trieDeletes, time: entry.time });
    }
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const handle: AgentHandle = {
    child,
    pid: child.pid,
    applies,
    log: () => log,
    waitForApplies(count, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (applies.length >= count) return done(null);
          if (child.exitCode !== null)
            return done(new Error(`the agent exited ${child.exitCode}: ${log.slice(-2000)}`));
        };
        const timer = setTimeout(
          () =>
            done(
              new Error(
                `the agent logged ${applies.length} of ${count} applies in ${timeoutMs} ms: ${log.slice(-2000)}`,
              ),
            ),
          timeoutMs,
        );
        const done = (err: Error | null) => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', check);
          if (err) reject(err);
          else resolve();
        };
        waiters.add(check);
        child.on('exit', check);
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  await handle.waitForApplies(1, 60_000);
  return handle;
}

/** VmRSS and VmHWM of a process, in MiB. */
export function memoryOf(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}
