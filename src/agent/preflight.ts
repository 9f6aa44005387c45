// `meshgate agent` checks what it needs before touching anything, and fails
// fast with one precise line per missing requirement.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { release } from 'node:os';
import path from 'node:path';
import { missingKernelFeatures } from '../datapath/kernelFeatures.js';
import { findCgroup2MountIn } from '../node/cgroup.js';
import { VARIANT_ENV, chooseVariant } from '../datapath/variant.js';

export interface PreflightProblem {
  readonly check: string;
  readonly message: string;
}

// Linux capability numbers (include/uapi/linux/capability.h).
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;
/**
 * The compat variant's floor: bpf_link for cgroups and BPF_LINK_UPDATE (5.7), ring buffers (5.8),
 * global functions with pointer arguments (5.12), bpf_get_netns_cookie in sockopt programs (5.15).
 * Newer kernels run the kern-ctx variant when its probe loads (src/datapath/variant.ts).
 */
export const MIN_KERNEL: readonly [number, number] = [5, 15];

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
  if (!has(caps, CAP.BPF) && !admin)
    problems.push({
      check: 'capabilities',
      message: 'capability CAP_BPF is missing: it is needed to load programs and create maps',
    });
  if (!has(caps, CAP.PERFMON) && !admin)
    problems.push({
      check: 'capabilities',
      message:
        'capability CAP_PERFMON is missing: with CAP_BPF alone the verifier refuses some of the pointer handling the programs do',
    });
  if (!has(caps, CAP.NET_ADMIN))
    problems.push({
      check: 'capabilities',
      message: 'capability CAP_NET_ADMIN is missing: it is needed to attach cgroup socket programs',
    });
  return problems;
}

export const BPFFS_MOUNT = '/sys/fs/bpf';

/** What preflight may learn about the filesystem, injectable for tests. */
export interface MountProbe {
  /** True when the directory, or its nearest existing ancestor, is on bpffs. */
  onBpffs(dir: string): boolean;
  isMountPoint(dir: string): boolean;
  /** True when the directory does not exist or holds nothing. */
  isEmpty(dir: string): boolean;
}

export type BpffsPlan =
  | { readonly action: 'ok' }
  | { readonly action: 'mount' }
  | { readonly action: 'refuse'; readonly message: string };

/**
 * Whether the pin dir is usable as it is, or bpffs must be mounted at /sys/fs/bpf first. Paths are
 * compared by segment (/sys/fs/bpf-x is not under /sys/fs/bpf), and nothing is ever mounted over a
 * mount point or a directory that holds anything: that would hide every other tool's pins.
 */
export function planBpffs(pinDir: string, probe: MountProbe): BpffsPlan {
  const dir = path.resolve(pinDir);
  if (probe.onBpffs(dir)) return { action: 'ok' };
  const under = dir === BPFFS_MOUNT || dir.startsWith(`${BPFFS_MOUNT}/`);
  if (!under)
    return {
      action: 'refuse',
      message: `pin dir ${pinDir} is not on a bpf filesystem: mount bpffs there (mount -t bpf bpf DIR) or use a dir under ${BPFFS_MOUNT}`,
    };
  if (probe.isMountPoint(BPFFS_MOUNT))
    return {
      action: 'refuse',
      message: `${BPFFS_MOUNT} is a mount point of another filesystem, not bpffs: meshgate never mounts over it; mount the host's bpffs there`,
    };
  if (!probe.isEmpty(BPFFS_MOUNT))
    return {
      action: 'refuse',
      message: `${BPFFS_MOUNT} is not bpffs and not empty: meshgate never mounts over it; mount the host's bpffs there`,
    };
  return { action: 'mount' };
}

const BPF_FS_MAGIC = 0xcafe4a11;

export const systemMountProbe: MountProbe = {
  onBpffs(dir) {
    let probe = dir;
    while (!existsSync(probe)) probe = path.dirname(probe);
    return Number(statfsSync(probe).type) === BPF_FS_MAGIC;
  },
  isMountPoint(dir) {
    // /proc/self/mountinfo field 5 is the mount point, with spaces and the like octal-escaped.
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some(
        (l) => l.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === dir,
      );
  },
  isEmpty(dir) {
    try {
      return readdirSync(dir).length === 0;
    } catch {
      return !existsSync(dir);
    }
  },
};

/** Runs every check; mounts bpffs at /sys/fs/bpf when the pin dir is meant to live there and nothing is there (planBpffs). */
export function preflight(pinDir: string, mountProbe: MountProbe = systemMountProbe): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const kernel = parseKernelRelease(release());
  if (!kernel || kernel[0] < MIN_KERNEL[0] || (kernel[0] === MIN_KERNEL[0] && kernel[1] < MIN_KERNEL[1])) {
    problems.push({
      check: 'kernel',
      message: `kernel ${release()} is too old: meshgate needs ${MIN_KERNEL.join('.')} or later for its compat datapath variant (cgroup bpf_link, BPF_LINK_UPDATE, ring buffers, global BPF functions, netns cookies in sockopt programs)`,
    });
  }
  try {
    chooseVariant(process.env[VARIANT_ENV], () => null);
  } catch (err) {
    problems.push({ check: 'variant', message: (err as Error).message });
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    problems.push({
      check: 'btf',
      message: 'the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): build it with CONFIG_DEBUG_INFO_BTF=y',
    });
  }
  if (!findCgroup2MountIn(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    problems.push({
      check: 'cgroup2',
      message: 'no cgroup v2 filesystem is mounted (see /proc/self/mountinfo): meshgate needs the unified hierarchy',
    });
  }
  const caps = effectiveCaps(readFileSync('/proc/self/status', 'utf8'));
  problems.push(...capabilityProblems(caps));

  const plan = planBpffs(pinDir, mountProbe);
  if (plan.action === 'refuse') problems.push({ check: 'bpffs', message: plan.message });
  else if (plan.action === 'mount') {
    try {
      mkdirSync(BPFFS_MOUNT, { recursive: true });
      execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS_MOUNT], { stdio: 'pipe' });
    } catch (err) {
      problems.push({
        check: 'bpffs',
        message: `bpffs is not mounted at ${BPFFS_MOUNT} and mounting it failed (${(err as Error).message.split('\n')[0]}): mount it on the node, or mount the host's /sys/fs/bpf into the container`,
      });
    }
  }
  if (problems.some((p) => p.check === 'capabilities')) return problems; // the probes below would fail for the same reason
  for (const message of missingKernelFeatures()) problems.push({ check: 'kernel features', message });
  return problems;
}
