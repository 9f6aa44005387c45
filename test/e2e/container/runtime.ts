// The container runtime side of the e2e: containerd's defaults for this host, captured with
// `ctr`, and runc, the runtime containerd itself drives, for create / exec / kill / delete.
// (Docker 20.10, Debian bookworm's, does not know CAP_BPF or CAP_PERFMON by name; runc and
// containerd 1.6 do.)
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { OciMount, RuntimeDefaults } from './ociSpec.js';

const CONTAINERD_SOCKETS = ['/run/containerd/containerd.sock', '/run/docker/containerd/containerd.sock'];

export function containerdAddress(): string {
  const found = CONTAINERD_SOCKETS.find((s) => existsSync(s));
  if (!found) throw new Error(`no containerd socket (${CONTAINERD_SOCKETS.join(', ')}): start dockerd or containerd`);
  return found;
}

/**
 * containerd's own spec for a container with these capabilities on this host: its default
 * mounts, devices, masked and read-only paths, and its RuntimeDefault seccomp profile, which it
 * computes from the capabilities (bpf() is allowed with CAP_BPF, perf_event_open with CAP_PERFMON).
 * Created with `ctr containers create --seccomp`, read back, deleted: nothing runs.
 */
export function captureRuntimeDefaults(
  rootfs: string,
  caps: readonly string[],
  id: string,
  namespace: string,
): RuntimeDefaults & { defaultCapabilities: string[] } {
  const address = containerdAddress();
  const ctr = (...args: string[]) =>
    execFileSync('ctr', ['--address', address, '--namespace', namespace, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  ctr(
    'containers',
    'create',
    '--rootfs',
    '--seccomp',
    ...caps.flatMap((c) => ['--cap-add', c]),
    rootfs,
    id,
    '/usr/local/bin/node',
  );
  try {
    const info = JSON.parse(ctr('containers', 'info', id)) as {
      Spec: {
        process: { capabilities: { bounding: string[] }; rlimits: unknown[] };
        mounts: OciMount[];
        linux: Record<string, unknown>;
      };
    };
    const spec = info.Spec;
    const linux = spec.linux as {
      resources?: { devices?: unknown[] };
      maskedPaths?: string[];
      readonlyPaths?: string[];
      seccomp?: unknown;
    };
    return {
      // Only the runtime's own filesystems: /etc/hosts and /etc/resolv.conf are the host's here.
      mounts: spec.mounts.filter((m) => m.type !== 'bind'),
      rlimits: spec.process.rlimits ?? [],
      devices: linux.resources?.devices ?? [],
      maskedPaths: linux.maskedPaths ?? [],
      readonlyPaths: linux.readonlyPaths ?? [],
      seccomp: linux.seccomp ?? null,
      defaultCapabilities: spec.process.capabilities.bounding.filter((c) => !caps.includes(c)),
    };
  } finally {
    ctr('containers', 'delete', id);
  }
}

export function removeCtrNamespace(namespace: string): void {
  spawnSync('ctr', ['--address', containerdAddress(), 'namespaces', 'remove', namespace], { stdio: 'ignore' });
}

export interface ExecResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** runc with its own state directory, so nothing else's containers are ever touched. */
export class Runc {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    mkdirSync(root, { recursive: true });
  }

  private args(...rest: string[]): string[] {
    return ['--root', this.root, ...rest];
  }

  /** Writes the bundle's config.json and starts the container detached; its output goes to `logFile`. Returns its pid. */
  run(id: string, bundle: string, spec: unknown, logFile: string): number {
    mkdirSync(bundle, { recursive: true });
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    const pidFile = path.join(bundle, 'pid');
    // The container inherits runc's stdout and stderr: both go to the log file (a pipe here would
    // keep spawnSync waiting for as long as the container runs).
    const log = openSync(logFile, 'a');
    try {
      const r = spawnSync('runc', this.args('run', '--detach', '--bundle', bundle, '--pid-file', pidFile, id), {
        stdio: ['ignore', log, log],
        timeout: 30_000,
      });
      if (r.status !== 0)
        throw new Error(
          `runc run ${id} exited ${r.status}: ${readFileSync(logFile, 'utf8').split('\n').slice(-5).join(' | ')}`,
        );
    } finally {
      closeSync(log);
    }
    return Number(readFileSync(pidFile, 'utf8').trim());
  }

  /** `kubectl exec`: a new process in all of the container's namespaces, with its capabilities, seccomp and no_new_privs. */
  exec(id: string, argv: readonly string[], timeoutMs = 20_000): ExecResult {
    const r = spawnSync('runc', this.args('exec', id, ...argv), { encoding: 'utf8', timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** A long-running exec (trace); stop it with kill('SIGINT'). */
  execStream(id: string, argv: readonly string[]): ChildProcess {
    return spawn('runc', this.args('exec', id, ...argv), { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  status(id: string): string | null {
    const r = spawnSync('runc', this.args('state', id), { encoding: 'utf8' });
    if (r.status !== 0) return null;
    return (JSON.parse(r.stdout) as { status: string }).status;
  }

  kill(id: string, signal = 'SIGTERM'): void {
    spawnSync('runc', this.args('kill', id, signal), { stdio: 'ignore' });
  }

  delete(id: string): void {
    spawnSync('runc', this.args('delete', '--force', id), { stdio: 'ignore' });
  }

  list(): string[] {
    const r = spawnSync('runc', this.args('list', '--quiet'), { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : [];
  }
}
