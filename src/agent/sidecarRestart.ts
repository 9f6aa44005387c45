// A restarted sidecar gets a new container cgroup before the kubelet reports
// its new container ID; until then its connects would be decided as the app's
// (mesh traffic redirected to itself, external traffic denied). This pure
// decision recognises the replacement from the pod directory alone, and only
// when nothing else can explain it: the proxy's known cgroup is gone, every
// other live container still has its own, and exactly one container cgroup
// appeared that the pod's status does not name and that was not there while
// the proxy's cgroup was. Anything less certain (an app container restarting
// at the same time, a sidecar that stays down) guesses nothing: the kubelet's
// status update maps the sidecar, as before. A wrong guess would give an app
// container the proxy's pass, so the rule errs on that side.
import { containerCgroupNames, type CgroupDriver } from '../node/podCgroups.js';

export interface PodContainers {
  /** The sidecar's container ID as the kubelet last reported it. */
  readonly proxyContainerId: string;
  /** The pod's other long-running containers that have not terminated. */
  readonly otherLiveContainerIds: readonly string[];
  /** Every container ID the pod's status names. */
  readonly containerIds: readonly string[];
}

/**
 * The name of the restarted sidecar's new cgroup among the pod directory's
 * `children`, or null. `baseline`: the children seen while the proxy's known
 * cgroup existed (the sandbox's cgroup among them); null when never seen.
 */
export function restartedProxyCgroup(
  children: readonly string[],
  baseline: ReadonlySet<string> | null,
  driver: CgroupDriver,
  pod: PodContainers,
): string | null {
  if (!baseline) return null;
  const present = new Set(children);
  const hasCgroup = (id: string): boolean => containerCgroupNames(driver, id).some((n) => present.has(n));
  if (hasCgroup(pod.proxyContainerId)) return null;
  if (!pod.otherLiveContainerIds.every(hasCgroup)) return null;
  const named = new Set(pod.containerIds.flatMap((id) => containerCgroupNames(driver, id)));
  const fresh = children.filter((n) => !baseline.has(n) && !named.has(n));
  return fresh.length === 1 ? fresh[0]! : null;
}
