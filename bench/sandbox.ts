// The benchmark's own sandbox: network namespaces, cgroups (under the cgroup2
// mount, never its root nor our own), bpffs pin dirs and a temp dir, all named
// BENCH_PREFIX-<pid>-<label>. cleanup() removes everything and runs on success,
// on failure and on SIGINT/SIGTERM (run.ts wires the signals). sweepLeftovers()
// removes what a bench killed with SIGKILL left (its pid no longer runs).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupPins } from '../src/datapath/loader.js';
import { cgroupOfProcess, findCgroup2Mount } from '../src/node/cgroup.js';
import { removeCgroup } from '../test/helpers/sandbox.js';

export const BENCH_PREFIX = 'mgbench';
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CONNECTLOOP = path.join(REPO_ROOT, 'build/connectloop');

/** Addresses on each netns's loopback: the destinations the benchmarks connect to. */
export const TARGETS = Object.freeze({
  /** inside the mesh CIDRs: redirected to 127.0.0.1:PROXY_PORT */
  redirect: { addr: '10.1.2.3', port: 80 },
  /** allowlisted (tcp/80): passes, the sink on port 80 answers */
  pass: { addr: '203.0.113.10', port: 80 },
  /** neither: denied (EPERM) under meshgate */
  deny: { addr: '192.0.2.1', port: 80 },
});
export const PROXY_PORT = 15001;

export interface BenchNetns {
  readonly name: string;
  readonly path: string;
  exec(cmd: string, args: readonly string[], input?: string): string;
}

export class BenchSandbox {
  readonly prefix = `${BENCH_PREFIX}-${process.pid}`;
  readonly cgroupMount = findCgroup2Mount();
  private readonly netnses: string[] = [];
  private readonly cgroups: string[] = [];
  private readonly pinDirs: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly closers: Array<() => void> = [];
  private tmp: string | null = null;
  private cleaned = false;

  /** A netns with loopback up and the TARGETS addresses on it. */
  netns(label: string): BenchNetns {
    const name = `${this.prefix}-${label}`;
    execFileSync('ip', ['netns', 'add', name]);
    this.netnses.push(name);
    const ns: BenchNetns = {
      name,
      path: `/run/netns/${name}`,
      exec: (cmd, args, input) =>
        execFileSync('ip', ['netns', 'exec', name, cmd, ...args], {
          encoding: 'utf8',
          input,
          maxBuffer: 256 << 20,
          stdio: ['pipe', 'pipe', 'pipe'],
        }),
    };
    ns.exec('ip', ['link', 'set', 'lo', 'up']);
    for (const t of Object.values(TARGETS)) ns.exec('ip', ['addr', 'add', `${t.addr}/32`, 'dev', 'lo']);
    return ns;
  }

  /** A cgroup directly under the cgroup2 mount, refusing the root and our own. */
  cgroup(label: string): string {
    const dir = path.join(this.cgroupMount, `${this.prefix}-${label}`);
    const own = cgroupOfProcess('self', this.cgroupMount);
    if (path.resolve(dir) === path.resolve(own) || path.resolve(dir) === path.resolve(this.cgroupMount)) {
      throw new Error(`refusing to use ${dir}: it is the cgroup2 root or the bench's own cgroup`);
    }
    mkdirSync(dir);
    this.cgroups.push(dir);
    return dir;
  }

  /** A child cgroup (e.g. the "app" container of a pod cgroup). */
  childCgroup(parent: string, name: string): string {
    const dir = path.join(parent, name);
    mkdirSync(dir);
    this.cgroups.push(dir);
    return dir;
  }

  pinDir(label: string): string {
    const dir = path.join('/sys/fs/bpf', `${this.prefix}-${label}`);
    this.pinDirs.push(dir);
    return dir;
  }

  tmpDir(): string {
    this.tmp ??= mkdtempSync(path.join(tmpdir(), `${this.prefix}-`));
    return this.tmp;
  }

  /** Runs `close` (e.g. a Datapath's) before pins and cgroups go. */
  onCleanup(close: () => void): void {
    this.closers.push(close);
  }

  /** A long-running process, killed by PID in cleanup. */
  spawn(cmd: string, args: readonly string[]): ChildProcess {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Starts `connectloop sink` in the netns and resolves once it listens. */
  async sink(ns: BenchNetns, ports: readonly number[], cpu: number | null): Promise<ChildProcess> {
    const args = [
      '--netns',
      ns.path,
      ...(cpu === null ? [] : ['--cpu', String(cpu)]),
      'sink',
      ...ports.flatMap((p) => ['--port', String(p)]),
    ];
    const child = this.spawn(CONNECTLOOP, args);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sink in ${ns.name} did not start: ${stderr}`)), 5000);
      child.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`sink in ${ns.name} exited ${code}: ${stderr}`));
      });
    });
    return child;
  }

  /** Removes everything; throws at the end if something could not be removed. */
  cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    const errors: string[] = [];
    for (const close of this.closers.reverse()) {
      try {
        close();
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    for (const child of this.children)
      if (child.exitCode === null && child.signalCode === null && child.pid) child.kill('SIGKILL');
    for (const dir of this.pinDirs) {
      try {
        cleanupPins(dir);
      } catch (err) {
        errors.push(`pins ${dir}: ${(err as Error).message}`);
      }
    }
    for (const dir of [...this.cgroups].reverse())
      if (existsSync(dir) && !removeCgroup(dir, 100)) errors.push(`cgroup ${dir} still holds processes`);
    for (const ns of this.netnses) spawnSync('ip', ['netns', 'del', ns]);
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
    if (errors.length) throw new Error(`bench cleanup incomplete: ${errors.join('; ')}`);
  }
}

const pidRunning = (pid: number): boolean => existsSync(`/proc/${pid}`);
/** The bench pid in a name BENCH_PREFIX-<pid>-<label>, or null for any other name. */
const ownerPid = (name: string): number | null => {
  const m = new RegExp(`^${BENCH_PREFIX}-(\\d+)-`).exec(name);
  return m ? Number(m[1]) : null;
};

/** Removes mgbench-* netns, cgroups, pins and temp dirs whose bench process is gone. Returns what it removed. */
export function sweepLeftovers(): string[] {
  const removed: string[] = [];
  const stale = (name: string) => {
    const pid = ownerPid(name);
    return pid !== null && pid !== process.pid && !pidRunning(pid);
  };
  for (const name of readdirSync('/sys/fs/bpf').filter(stale)) {
    cleanupPins(path.join('/sys/fs/bpf', name));
    removed.push(`/sys/fs/bpf/${name}`);
  }
  const mount = findCgroup2Mount();
  for (const name of readdirSync(mount).filter(stale)) {
    const dir = path.join(mount, name);
    // Only what a bench starts: connectloop (it also dies with its parent) and the agent.
    for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (/connectloop|bin\/meshgate\.js/.test(cmdline)) process.kill(Number(pid), 'SIGKILL');
    }
    removeCgroup(dir, 100);
    removed.push(dir);
  }
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(stale);
  for (const name of netns) {
    spawnSync('ip', ['netns', 'del', name]);
    removed.push(`netns ${name}`);
  }
  for (const name of readdirSync(tmpdir()).filter(stale)) {
    rmSync(path.join(tmpdir(), name), { recursive: true, force: true });
    removed.push(path.join(tmpdir(), name));
  }
  return removed;
}
