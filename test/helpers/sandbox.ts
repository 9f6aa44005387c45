// A kernel-test sandbox: its own cgroup (under the cgroup2 mount, never the
// root nor the test runner's own), its own netns with loopback up, its own
// pin directory on bpffs. cleanup() removes all of it, and is registered so it
// runs when the test fails too. Names start with SANDBOX_PREFIX so that
// scripts/check-leftovers.sh can find anything a crashed run left.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupPins } from '../../src/datapath/loader.js';
import { cgroupOfProcess, findCgroup2Mount } from '../../src/node/cgroup.js';

export const SANDBOX_PREFIX = 'mgtest';
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SOCKPROBE = path.join(REPO_ROOT, 'build/sockprobe');

let counter = 0;

export interface Sandbox {
  readonly name: string;
  /** The pod-level cgroup the hooks attach to. */
  readonly cgroup: string;
  readonly netns: string;
  readonly netnsPath: string;
  readonly pinDir: string;
  /** Creates (once) and returns a child cgroup, e.g. "app" or "proxy". */
  child(name: string): string;
  /** Runs a command inside the netns (ip, sysctl). */
  inNetns(cmd: string, args: string[]): string;
  /** Starts a long-running process that is stopped, by PID, in cleanup. */
  start(args: string[], opts?: { cgroup?: string; uid?: number }): ChildProcess;
  cleanup(): void;
}

/**
 * The reason kernel tests cannot run here, or null. In CI (CI=true) a missing
 * requirement is a failure, never a skip: a skip there would hide a bug.
 */
export function requireRoot(): string | null {
  let reason: string | null = null;
  if (process.getuid?.() !== 0) reason = 'kernel tests need root (they create cgroups, netns and BPF pins)';
  else if (!existsSync(SOCKPROBE)) reason = `${SOCKPROBE} is missing: run make`;
  if (reason && process.env.CI === 'true') throw new Error(`kernel tests must run in CI, but: ${reason}`);
  return reason;
}

export function ensureBpffs(): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (!mounts.split('\n').some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf')) {
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  }
}

export function createSandbox(label = 'sb'): Sandbox {
  ensureBpffs();
  const mount = findCgroup2Mount();
  const name = `${SANDBOX_PREFIX}-${label}-${process.pid}-${++counter}`;
  const cgroup = path.join(mount, name);
  const own = cgroupOfProcess('self', mount);
  if (path.resolve(cgroup) === path.resolve(own) || path.resolve(cgroup) === path.resolve(mount)) {
    throw new Error(`refusing to use ${cgroup} as a test cgroup: it is the root or the runner's own cgroup`);
  }
  const netns = name;
  const pinDir = path.join('/sys/fs/bpf', name);
  const children: string[] = [];
  const started: ChildProcess[] = [];
  mkdirSync(cgroup);
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);

  const sandbox: Sandbox = {
    name,
    cgroup,
    netns,
    netnsPath: `/run/netns/${netns}`,
    pinDir,
    child(childName: string): string {
      const dir = path.join(cgroup, childName);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        children.push(dir);
      }
      return dir;
    },
    inNetns(cmd: string, args: string[]): string {
      return execFileSync('ip', ['netns', 'exec', netns, cmd, ...args], { encoding: 'utf8' });
    },
    start(args: string[], opts = {}): ChildProcess {
      const flags = ['--netns', `/run/netns/${netns}`, '--cgroup', opts.cgroup ?? cgroup];
      if (opts.uid !== undefined) flags.push('--uid', String(opts.uid));
      const child = spawn(SOCKPROBE, [...flags, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
      started.push(child);
      return child;
    },
    cleanup(): void {
      for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      const errors: string[] = [];
      try {
        cleanupPins(pinDir);
      } catch (err) {
        errors.push(`pins ${pinDir}: ${(err as Error).message}`);
      }
      for (const dir of [...children].reverse().concat(cgroup)) {
        if (!existsSync(dir)) continue;
        if (!removeCgroup(dir)) errors.push(`cgroup ${dir} still holds processes`);
      }
      spawnSync('ip', ['netns', 'del', netns]);
      if (errors.length) throw new Error(`sandbox ${name} cleanup incomplete: ${errors.join('; ')}`);
    },
  };
  return sandbox;
}

/** rmdir a cgroup (and its children) once the processes started in it have exited (bounded wait). */
export function removeCgroup(dir: string, attempts = 50): boolean {
  for (let attempt = 0; attempt < attempts; attempt++) {
    for (const sub of readdirSync(dir, { withFileTypes: true })) {
      if (sub.isDirectory()) removeCgroup(path.join(dir, sub.name), attempts);
    }
    const procs = readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim();
    if (procs === '') {
      try {
        rmdirSync(dir);
        return true;
      } catch {
        /* a process is still exiting */
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return false;
}

export interface ProbeResult {
  ok: boolean;
  errno: number;
  error: string | null;
  stage?: string;
  local?: string | null;
  peer?: string | null;
  reply?: string | null;
}

/** Runs one sockprobe client inside the sandbox and returns its JSON report. */
export function probe(sb: Sandbox, args: string[], opts: { cgroup?: string; uid?: number } = {}): ProbeResult {
  const flags = ['--netns', sb.netnsPath, '--cgroup', opts.cgroup ?? sb.cgroup];
  if (opts.uid !== undefined) flags.push('--uid', String(opts.uid));
  const r = spawnSync(SOCKPROBE, [...flags, ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`sockprobe ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ProbeResult;
}

/** Starts a sockprobe listener in the sandbox and resolves once it listens. */
export async function listen(sb: Sandbox, args: string[], opts: { cgroup?: string } = {}): Promise<ChildProcess> {
  const child = sb.start(['listen', ...args], opts);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`listener ${args.join(' ')} did not start`)), 5000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`listener ${args.join(' ')} exited ${code}`)));
  });
  return child;
}

export function writeCgroupProcs(dir: string, pid: number): void {
  writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
}

/** Polls `check` every 25 ms until it holds; fails after `ms`, adding `detail()` (e.g. a log tail). */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
  detail?: () => string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${detail ? `; ${detail()}` : ''}`);
}
