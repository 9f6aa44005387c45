// cgroup v2 discovery: where the hierarchy is mounted, a directory's level and id.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { MeshgateError } from '../errors.js';

/** Parses /proc/self/mountinfo text and returns the cgroup2 mount point, or null. */
export function findCgroup2MountIn(mountinfo: string): string | null {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (fsType === 'cgroup2') return unescapeMountPath(line.slice(0, sep).split(' ')[4] ?? '');
  }
  return null;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function findCgroup2Mount(): string {
  const mount = findCgroup2MountIn(readFileSync('/proc/self/mountinfo', 'utf8'));
  if (!mount)
    throw new MeshgateError(
      'MG_NO_CGROUP2',
      'no cgroup2 filesystem is mounted (see /proc/self/mountinfo): meshgate needs cgroup v2',
    );
  return mount;
}

/** The kernel's cgroup id of a cgroup v2 directory: its inode number. */
export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

/** The cgroup's level below the root (the root is 0), as bpf_get_current_ancestor_cgroup_id counts. */
export function cgroupLevel(dir: string, mount = findCgroup2Mount()): number {
  const rel = path.relative(path.resolve(mount), path.resolve(dir));
  if (rel.startsWith('..') || path.isAbsolute(rel))
    throw new MeshgateError('MG_CGROUP_OUTSIDE_MOUNT', `${dir} is not under the cgroup2 mount ${mount}`);
  return rel === '' ? 0 : rel.split(path.sep).length;
}

/** The cgroup v2 directory the given process runs in ("0::/path" in /proc/PID/cgroup). */
export function cgroupOfProcess(pid: number | 'self', mount = findCgroup2Mount()): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new MeshgateError('MG_PROCESS_NO_CGROUP', `process ${pid} has no cgroup v2 entry`);
  return path.join(mount, line.slice(3));
}
