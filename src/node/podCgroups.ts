// Where the kubelet puts a pod's cgroup, and a container's, on cgroup v2.
//
//   systemd driver:  <root>/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice
//                    <pod>/cri-containerd-<id>.scope | crio-<id>.scope | docker-<id>.scope
//   cgroupfs driver: <root>/burstable/pod<uid>
//                    <pod>/<id> | crio-<id>
//
// Guaranteed pods sit directly under the root; burstable and besteffort ones
// under their QoS cgroup. With systemd, a nested kubelet cgroup root (kind's
// kubelet.slice/kubelet-kubepods.slice) prefixes every slice name, so the
// prefix is taken from the root's own name.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export type CgroupDriver = 'systemd' | 'cgroupfs';
export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

export interface KubepodsLayout {
  /** The kubepods cgroup: where the hooks attach. */
  readonly root: string;
  readonly driver: CgroupDriver;
}

const QOS_CLASSES: readonly QosClass[] = ['Guaranteed', 'Burstable', 'BestEffort'];
const isSystemdKubepods = (name: string): boolean => name === 'kubepods.slice' || name.endsWith('-kubepods.slice');

/** The driver a kubepods directory's name implies. */
export function driverOf(root: string): CgroupDriver {
  return path.basename(root).endsWith('.slice') ? 'systemd' : 'cgroupfs';
}

/**
 * Finds the kubelet's kubepods cgroup below the cgroup2 mount (breadth first,
 * a few levels deep), or null. `driver` narrows the search.
 */
export function findKubepods(
  mount: string,
  driver: CgroupDriver | 'auto' = 'auto',
  maxDepth = 3,
): KubepodsLayout | null {
  let level = [mount];
  for (let depth = 0; depth < maxDepth && level.length; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      let names: string[];
      try {
        names = readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name)
          .sort();
      } catch {
        continue;
      }
      for (const name of names) {
        if ((driver !== 'cgroupfs' && isSystemdKubepods(name)) || (driver !== 'systemd' && name === 'kubepods')) {
          return { root: path.join(dir, name), driver: name === 'kubepods' ? 'cgroupfs' : 'systemd' };
        }
        next.push(path.join(dir, name));
      }
    }
    level = next;
  }
  return null;
}

function systemdPrefix(root: string): string {
  return path.basename(root).replace(/\.slice$/, '');
}

/** The directory a pod of that QoS class gets. */
export function podCgroupPath(layout: KubepodsLayout, uid: string, qos: QosClass): string {
  const { root, driver } = layout;
  if (driver === 'systemd') {
    const prefix = systemdPrefix(root);
    const id = uid.replace(/-/g, '_');
    if (qos === 'Guaranteed') return path.join(root, `${prefix}-pod${id}.slice`);
    const q = qos.toLowerCase();
    return path.join(root, `${prefix}-${q}.slice`, `${prefix}-${q}-pod${id}.slice`);
  }
  if (qos === 'Guaranteed') return path.join(root, `pod${uid}`);
  return path.join(root, qos.toLowerCase(), `pod${uid}`);
}

/** Where to look for a pod's cgroup: its own QoS class first, then the others. */
export function podCgroupCandidates(layout: KubepodsLayout, uid: string, qos?: string): string[] {
  const first = QOS_CLASSES.find((q) => q === qos);
  const order = first ? [first, ...QOS_CLASSES.filter((q) => q !== first)] : QOS_CLASSES;
  return order.map((q) => podCgroupPath(layout, uid, q));
}

/** The pod's cgroup directory, if the kubelet has made it. */
export function findPodCgroup(layout: KubepodsLayout, uid: string, qos?: string): string | null {
  return podCgroupCandidates(layout, uid, qos).find((dir) => existsSync(dir)) ?? null;
}

/** The directories whose new children can be pod cgroups: the root and its QoS cgroups. */
export function podParentDirs(layout: KubepodsLayout): string[] {
  const { root, driver } = layout;
  if (driver === 'systemd') {
    const prefix = systemdPrefix(root);
    return [root, path.join(root, `${prefix}-burstable.slice`), path.join(root, `${prefix}-besteffort.slice`)];
  }
  return [root, path.join(root, 'burstable'), path.join(root, 'besteffort')];
}

/** The pod UID a pod cgroup's directory name carries, or null when it is not a pod cgroup. */
export function podUidOfCgroupName(name: string): string | null {
  const systemd = /-pod([0-9a-f_]{36})\.slice$/.exec(name);
  if (systemd) return systemd[1]!.replace(/_/g, '-');
  const cgroupfs = /^pod([0-9a-f-]{36})$/.exec(name);
  return cgroupfs ? cgroupfs[1]! : null;
}

/**
 * Directory names a container's cgroup can have inside its pod's, for the
 * container ID the kubelet reports ("containerd://<id>", "cri-o://<id>").
 */
export function containerCgroupNames(driver: CgroupDriver, containerId: string): string[] {
  const sep = containerId.indexOf('://');
  const runtime = sep > 0 ? containerId.slice(0, sep) : '';
  const id = sep > 0 ? containerId.slice(sep + 3) : containerId;
  if (!/^[0-9a-zA-Z_.-]+$/.test(id)) return [];
  const systemd: Record<string, string[]> = {
    containerd: [`cri-containerd-${id}.scope`],
    'cri-o': [`crio-${id}.scope`],
    docker: [`docker-${id}.scope`],
  };
  const cgroupfs: Record<string, string[]> = {
    containerd: [id],
    'cri-o': [`crio-${id}`],
    docker: [id],
  };
  const table = driver === 'systemd' ? systemd : cgroupfs;
  return table[runtime] ?? [...new Set(Object.values(table).flat())];
}

/** The container's own cgroup inside its pod's, if it exists. */
export function findContainerCgroup(podDir: string, driver: CgroupDriver, containerId: string): string | null {
  for (const name of containerCgroupNames(driver, containerId)) {
    const dir = path.join(podDir, name);
    if (existsSync(dir)) return dir;
  }
  return null;
}

/** When the directory was made, as well as cgroupfs can say (its ctime). */
export function cgroupCreatedMs(dir: string): number | null {
  try {
    return statSync(dir).ctimeMs;
  } catch {
    return null;
  }
}
