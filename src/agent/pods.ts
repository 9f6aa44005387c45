// Which pods are enforced (SPEC §1.3). Pure: a Pod object in, a decision out.
import type { V1Pod } from '@kubernetes/client-node';

export const ENFORCE_LABEL = 'meshgate.io/enforce';
export const ENFORCE_ANNOTATION = 'meshgate.io/enforce';

export type PodEnforcement =
  /** has a sidecar (or the enforce label): every connect is decided */
  | 'meshed'
  /** no sidecar: known, and explicitly not enforced */
  | 'unmeshed'
  /** annotation meshgate.io/enforce: "false" */
  | 'opted-out'
  /** shares the node's network: out of scope, never enforced */
  | 'host-network';

export interface PodDecision {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly qosClass: string | undefined;
  readonly enforcement: PodEnforcement;
  /** Why, in words, for the log. */
  readonly reason: string;
  /** The sidecar container's name, when the pod has one. */
  readonly proxyContainer: string | null;
  /** The sidecar container's ID ("containerd://..."), once it has started. */
  readonly proxyContainerId: string | null;
  /** The IDs of the pod's other long-running containers that have not terminated (each should have a cgroup). */
  readonly otherLiveContainerIds: readonly string[];
  /** Every container ID the kubelet reports for the pod, init containers and terminated ones included. */
  readonly containerIds: readonly string[];
}

/** Null for a pod that has no cgroup to map: not scheduled yet, or finished. */
export function decidePod(pod: V1Pod, proxyContainers: readonly string[]): PodDecision | null {
  const meta = pod.metadata ?? {};
  const uid = meta.uid;
  if (!uid || !meta.name || !meta.namespace) return null;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return null;
  const base = { namespace: meta.namespace, name: meta.name, uid, qosClass: pod.status?.qosClass };
  // Native sidecars are init containers that keep running (restartPolicy: Always).
  const containers = [
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
  ];
  const sidecar = containers.find((c) => proxyContainers.includes(c.name)) ?? null;
  const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
  const proxyContainerId = sidecar ? statuses.find((s) => s.name === sidecar.name)?.containerID || null : null;
  const longRunning = new Set(containers.map((c) => c.name));
  const otherLiveContainerIds = statuses
    .filter((s) => s.name !== sidecar?.name && longRunning.has(s.name) && s.containerID && !s.state?.terminated)
    .map((s) => s.containerID!);
  const containerIds = statuses.flatMap((s) => (s.containerID ? [s.containerID] : []));
  const proxy = { proxyContainer: sidecar?.name ?? null, proxyContainerId, otherLiveContainerIds, containerIds };

  if (pod.spec?.hostNetwork)
    return {
      ...base,
      ...proxy,
      enforcement: 'host-network',
      reason: "hostNetwork pods share the node's network namespace and are out of scope",
    };
  if (meta.annotations?.[ENFORCE_ANNOTATION] === 'false')
    return { ...base, ...proxy, enforcement: 'opted-out', reason: `annotation ${ENFORCE_ANNOTATION}: "false"` };
  if (sidecar) return { ...base, ...proxy, enforcement: 'meshed', reason: `sidecar container ${sidecar.name}` };
  if (meta.labels?.[ENFORCE_LABEL] === 'true')
    return { ...base, ...proxy, enforcement: 'meshed', reason: `label ${ENFORCE_LABEL}: "true"` };
  return {
    ...base,
    ...proxy,
    enforcement: 'unmeshed',
    reason: `no container named ${proxyContainers.join(' or ')} and no label ${ENFORCE_LABEL}: "true"`,
  };
}
