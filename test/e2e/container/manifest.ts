// Reads the agent container out of deploy/daemonset.yaml: what the kubelet and the container
// runtime would turn into a container (command, args, env, ports, probes, security context,
// mounts with their volumes). Pure: text in, a frozen description out. The e2e builds its OCI
// runtime spec from this, so the test follows the manifest instead of retyping it. Anything the
// test could not reproduce faithfully (a volume type, a projected env source) is an error that
// names it, never silently dropped.
import { parseAllDocuments } from 'yaml';

export type Propagation = 'None' | 'HostToContainer' | 'Bidirectional';

export type VolumeSource =
  | { readonly kind: 'hostPath'; readonly path: string; readonly type: string }
  | { readonly kind: 'emptyDir'; readonly medium: 'Memory' | ''; readonly sizeLimit: string | null };

export interface AgentMount {
  readonly name: string;
  readonly mountPath: string;
  readonly readOnly: boolean;
  readonly propagation: Propagation;
  readonly source: VolumeSource;
}

export type EnvValue = { readonly value: string } | { readonly fieldPath: string };

export interface HttpProbe {
  readonly path: string;
  readonly port: number;
}

export interface AgentContainer {
  readonly image: string;
  readonly command: readonly string[];
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, EnvValue>>;
  readonly ports: readonly number[];
  readonly readinessProbe: HttpProbe | null;
  readonly livenessProbe: HttpProbe | null;
  readonly hostNetwork: boolean;
  readonly hostPID: boolean;
  readonly privileged: boolean;
  readonly allowPrivilegeEscalation: boolean;
  readonly readOnlyRootFilesystem: boolean;
  readonly runAsUser: number;
  readonly runAsGroup: number;
  /** Capability names as Kubernetes writes them ("BPF"), after drop: ["ALL"]. */
  readonly capabilitiesAdd: readonly string[];
  readonly capabilitiesDropAll: boolean;
  readonly capabilitiesDrop: readonly string[];
  readonly seccompProfile: string;
  readonly mounts: readonly AgentMount[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

function at(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const key of path.split('.')) {
    if (!isObj(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}
const list = (v: unknown, what: string): unknown[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ManifestError(`${what} is not a list`);
  return v;
};
const strings = (v: unknown, what: string): string[] =>
  list(v, what).map((s, i) => {
    if (typeof s !== 'string') throw new ManifestError(`${what}[${i}] is not a string`);
    return s;
  });

function httpProbe(v: unknown, ports: Map<string, number>, what: string): HttpProbe | null {
  if (v === undefined) return null;
  const get = at(v, 'httpGet');
  if (!isObj(get)) throw new ManifestError(`${what} is not an httpGet probe: the e2e only reproduces httpGet`);
  const port = typeof get.port === 'number' ? get.port : ports.get(String(get.port));
  if (port === undefined) throw new ManifestError(`${what}.httpGet.port ${String(get.port)} names no container port`);
  return Object.freeze({ path: String(get.path ?? '/'), port });
}

function volumeSource(volume: Obj, name: string): VolumeSource {
  if (isObj(volume.hostPath)) {
    return Object.freeze({
      kind: 'hostPath',
      path: String(volume.hostPath.path),
      type: String(volume.hostPath.type ?? ''),
    });
  }
  if ('emptyDir' in volume) {
    const e = isObj(volume.emptyDir) ? volume.emptyDir : {};
    const medium = e.medium === 'Memory' ? 'Memory' : '';
    return Object.freeze({
      kind: 'emptyDir',
      medium,
      sizeLimit: e.sizeLimit === undefined ? null : String(e.sizeLimit),
    });
  }
  const kinds = Object.keys(volume).filter((k) => k !== 'name');
  throw new ManifestError(
    `volume ${name} is a ${kinds.join(',') || 'volume without a source'}: the e2e reproduces hostPath and emptyDir only`,
  );
}

/** The agent container of the DaemonSet in `text` (the first container unless `containerName`). */
export function readAgentContainer(text: string, containerName?: string): AgentContainer {
  const daemonSet = parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .find((d) => isObj(d) && d.kind === 'DaemonSet');
  if (!daemonSet) throw new ManifestError('no DaemonSet in the manifest');
  const pod = at(daemonSet, 'spec.template.spec');
  if (!isObj(pod)) throw new ManifestError('the DaemonSet has no spec.template.spec');
  const containers = list(pod.containers, 'spec.template.spec.containers').filter(isObj);
  const c = containerName ? containers.find((x) => x.name === containerName) : containers[0];
  if (!c) throw new ManifestError(`no container ${containerName ?? ''} in the DaemonSet`);
  const where = `container ${String(c.name)}`;
  if (list(pod.initContainers, 'initContainers').length)
    throw new ManifestError('the DaemonSet has init containers: the e2e does not run them');

  const ports = new Map<string, number>();
  for (const p of list(c.ports, `${where}.ports`).filter(isObj))
    ports.set(String(p.name ?? p.containerPort), Number(p.containerPort));

  const env: Record<string, EnvValue> = {};
  for (const e of list(c.env, `${where}.env`).filter(isObj)) {
    const name = String(e.name);
    if (typeof e.value === 'string') env[name] = Object.freeze({ value: e.value });
    else if (typeof at(e, 'valueFrom.fieldRef.fieldPath') === 'string')
      env[name] = Object.freeze({ fieldPath: String(at(e, 'valueFrom.fieldRef.fieldPath')) });
    else throw new ManifestError(`${where}.env ${name}: only value and valueFrom.fieldRef are reproduced`);
  }
  if (list(c.envFrom, `${where}.envFrom`).length) throw new ManifestError(`${where}.envFrom is not reproduced`);

  const sc = isObj(c.securityContext) ? c.securityContext : {};
  const podSc = isObj(pod.securityContext) ? pod.securityContext : {};
  const pick = (key: string): unknown => (sc[key] !== undefined ? sc[key] : podSc[key]);
  const drop = strings(at(sc, 'capabilities.drop'), `${where}.securityContext.capabilities.drop`);
  const seccomp = at(sc, 'seccompProfile.type') ?? at(podSc, 'seccompProfile.type') ?? 'Unconfined';
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Unconfined')
    throw new ManifestError(`${where}: seccompProfile ${String(seccomp)} is not reproduced`);

  const volumes = new Map<string, Obj>();
  for (const v of list(pod.volumes, 'spec.template.spec.volumes').filter(isObj)) volumes.set(String(v.name), v);
  const mounts = list(c.volumeMounts, `${where}.volumeMounts`)
    .filter(isObj)
    .map((m): AgentMount => {
      const name = String(m.name);
      const volume = volumes.get(name);
      if (!volume) throw new ManifestError(`${where}.volumeMounts ${name} names no volume`);
      if (m.subPath !== undefined) throw new ManifestError(`${where}.volumeMounts ${name}: subPath is not reproduced`);
      const propagation = (m.mountPropagation ?? 'None') as Propagation;
      if (!['None', 'HostToContainer', 'Bidirectional'].includes(propagation))
        throw new ManifestError(`${where}.volumeMounts ${name}: unknown mountPropagation ${String(propagation)}`);
      return Object.freeze({
        name,
        mountPath: String(m.mountPath),
        readOnly: m.readOnly === true,
        propagation,
        source: volumeSource(volume, name),
      });
    });

  const uid = pick('runAsUser');
  const gid = pick('runAsGroup');
  return Object.freeze({
    image: String(c.image),
    command: Object.freeze(strings(c.command, `${where}.command`)),
    args: Object.freeze(strings(c.args, `${where}.args`)),
    env: Object.freeze(env),
    ports: Object.freeze([...new Set(ports.values())]),
    readinessProbe: httpProbe(c.readinessProbe, ports, `${where}.readinessProbe`),
    livenessProbe: httpProbe(c.livenessProbe, ports, `${where}.livenessProbe`),
    hostNetwork: pod.hostNetwork === true,
    hostPID: pod.hostPID === true,
    privileged: sc.privileged === true,
    // Kubernetes' default is true: only an explicit false sets no_new_privs.
    allowPrivilegeEscalation: sc.allowPrivilegeEscalation !== false,
    readOnlyRootFilesystem: sc.readOnlyRootFilesystem === true,
    // The image's USER when unset; the e2e's image says 0:0 (checked by the caller).
    runAsUser: typeof uid === 'number' ? uid : 0,
    runAsGroup: typeof gid === 'number' ? gid : 0,
    capabilitiesAdd: Object.freeze(strings(at(sc, 'capabilities.add'), `${where}.securityContext.capabilities.add`)),
    capabilitiesDropAll: drop.includes('ALL'),
    capabilitiesDrop: Object.freeze(drop.filter((d) => d !== 'ALL')),
    seccompProfile: String(seccomp),
    mounts: Object.freeze(mounts),
  });
}

/** "BPF" -> "CAP_BPF", as the container runtime names it. */
export const capName = (kubeName: string): string =>
  (kubeName.startsWith('CAP_') ? kubeName : `CAP_${kubeName}`).toUpperCase();
