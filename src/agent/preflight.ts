// `meshgate agent` checks what it needs before touching anything, and fails
// fast with one precise line per missing requirement.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import path from 'node:path';
import { missingKernelFeatures } from '../datapath/kernelFeatures.js';
import { findCgroup2MountIn } from '../node/cgroup.js';

export interface PreflightProblem {
  readonly check: string;
  readonly message: string;
}

// Linux capability numbers (include/uapi/linux/capability.h).
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;
/** bpf_link for cgroups and BPF_LINK_UPDATE (5.7), ring buffers (5.8), bpf_loop (5.17), bpf_cast_to_kern_ctx (6.2). */
export const MIN_KERNEL: readonly [number, number] = [6, 2];

export function parseKernelRelease(text: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** Effective capabilities from /proc/self/status text. */
export function effectiveCaps(status: string): bigint {
  const line = status.split('\n').find((l) => l.startsWith('CapEff:'));
  return line ? BigInt(`0x${line.slice(7).trim()}`) : 0n;
}

const has = (caps: bigint, cap: number): boolean => (caps & (1n << BigInt(cap))) !== 0n;

export function capabilityProblems(caps: bigint): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  // CAP_SYS_ADMIN covers BPF and PERFMON on every kernel; before 5.8 it was the only way.
  const admin = has(caps, CAP.SYS_ADMIN);
  if (!has(caps, CAP.BPF) && !admin) problems.push({ check: 'capabilities', message: 'capability CAP_BPF is missing: it is needed to load programs and create maps' });
  if (!has(caps, CAP.PERFMON) && !admin) problems.push({ check: 'capabilities', message: 'capability CAP_PERFMON is missing: with CAP_BPF alone the verifier refuses some of the pointer handling the programs do' });
  if (!has(caps, CAP.NET_ADMIN)) problems.push({ check: 'capabilities', message: 'capability CAP_NET_ADMIN is missing: it is needed to attach cgroup socket programs' });
  return problems;
}

function isBpffs(dir: string, mounts: string): boolean {
  return mounts.split('\n').some((l) => {
    const f = l.split(' ');
    return f[2] === 'bpf' && (dir === f[1] || dir.startsWith(`${f[1]}/`));
  });
}

/** Runs every check; mounts bpffs at /sys/fs/bpf when the pin dir is meant to live there and it is not mounted. */
export function preflight(pinDir: string): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const kernel = parseKernelRelease(release());
  if (!kernel || kernel[0] < MIN_KERNEL[0] || (kernel[0] === MIN_KERNEL[0] && kernel[1] < MIN_KERNEL[1])) {
    problems.push({ check: 'kernel', message: `kernel ${release()} is too old: meshgate needs ${MIN_KERNEL.join('.')} or later (cgroup bpf_link, BPF_LINK_UPDATE, ring buffers, bpf_loop, bpf_cast_to_kern_ctx)` });
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    problems.push({ check: 'btf', message: 'the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): build it with CONFIG_DEBUG_INFO_BTF=y' });
  }
  if (!findCgroup2MountIn(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    problems.push({ check: 'cgroup2', message: 'no cgroup v2 filesystem is mounted (see /proc/self/mountinfo): meshgate needs the unified hierarchy' });
  }
  const caps = effectiveCaps(readFileSync('/proc/self/status', 'utf8'));
  problems.push(...capabilityProblems(caps));

  const absPin = path.resolve(pinDir);
  if (!isBpffs(absPin, readFileSync('/proc/self/mounts', 'utf8'))) {
    if (absPin.startsWith('/sys/fs/bpf')) {
      try {
        mkdirSync('/sys/fs/bpf', { recursive: true });
        execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'pipe' });
      } catch (err) {
        problems.push({ check: 'bpffs', message: `bpffs is not mounted at /sys/fs/bpf and mounting it failed (${(err as Error).message.split('\n')[0]}): mount it on the node, or mount the host's /sys/fs/bpf into the container` });
      }
    } else {
      problems.push({ check: 'bpffs', message: `pin dir ${pinDir} is not on a bpf filesystem: mount bpffs there (mount -t bpf bpf DIR) or use a dir under /sys/fs/bpf` });
    }
  }
  if (problems.some((p) => p.check === 'capabilities')) return problems; // the probes below would fail for the same reason
  for (const message of missingKernelFeatures()) problems.push({ check: 'kernel features', message });
  return problems;
}
