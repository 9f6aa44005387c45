// The OCI runtime spec (runc's config.json) for the agent container, built as the kubelet and
// containerd's CRI plugin build it: containerd's defaults for this host (mounts, devices, masked
// and read-only /proc paths, and its RuntimeDefault seccomp profile for exactly these
// capabilities), then the image's config, then the container from deploy/daemonset.yaml.
// Pure: the host-specific parts (where a volume lives on this host, the netns, the cgroup) come
// in as arguments.
import { capName, type AgentContainer, type AgentMount } from './manifest.js';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** What containerd adds to every container on this host (captured by runtime.ts). */
export interface RuntimeDefaults {
  readonly mounts: readonly OciMount[];
  readonly rlimits: readonly unknown[];
  readonly devices: readonly unknown[];
  readonly maskedPaths: readonly string[];
  readonly readonlyPaths: readonly string[];
  /** linux.seccomp for the container's capabilities, or null when Unconfined. */
  readonly seccomp: unknown;
}

/** The parts of the image's config a container runtime uses. */
export interface ImageConfig {
  readonly env: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly workingDir: string;
}

export interface HostSide {
  readonly rootfs: string;
  readonly netnsPath: string;
  readonly cgroupsPath: string;
  readonly hostname: string;
  /** The downward API: the values of fieldRef env (spec.nodeName, ...). */
  readonly fields: Readonly<Record<string, string>>;
  /** Where a volume's data lives on this host (the bind source). */
  volumePath(mount: AgentMount): string;
  /** Arguments the test adds after the manifest's (e.g. --kubeconfig); listed in the report. */
  readonly extraArgs: readonly string[];
  /** Files the test adds (a kubeconfig, as a Secret volume would be), read-only. */
  readonly extraMounts: readonly { source: string; destination: string }[];
}

export interface SpecOptions {
  /** Capabilities to leave out of the manifest's add list (the preflight checks). */
  readonly withoutCapabilities?: readonly string[];
  /** Runs this instead of the manifest's command (the kernel's own capability checks). */
  readonly argv?: readonly string[];
}

const PROPAGATION = { None: 'rprivate', HostToContainer: 'rslave', Bidirectional: 'rshared' } as const;

/** The capability set the container's root process gets (bounding = effective = permitted). */
export function containerCapabilities(
  c: AgentContainer,
  defaults: readonly string[],
  opts: SpecOptions = {},
): string[] {
  const without = new Set((opts.withoutCapabilities ?? []).map(capName));
  const base = c.capabilitiesDropAll ? [] : defaults.filter((d) => !c.capabilitiesDrop.map(capName).includes(d));
  return [...new Set([...base, ...c.capabilitiesAdd.map(capName)])].filter((cap) => !without.has(cap));
}

/** argv as Kubernetes computes it: command replaces the ENTRYPOINT, args replace the CMD. */
export function containerArgv(c: AgentContainer, image: ImageConfig, extraArgs: readonly string[] = []): string[] {
  const command = c.command.length ? c.command : image.entrypoint;
  const args = c.command.length || c.args.length ? c.args : image.cmd;
  return [...command, ...args, ...extraArgs];
}

export function containerEnv(
  c: AgentContainer,
  image: ImageConfig,
  fields: Readonly<Record<string, string>>,
  hostname: string,
): string[] {
  const env = new Map<string, string>();
  for (const kv of image.env) {
    const i = kv.indexOf('=');
    env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  env.set('HOSTNAME', hostname);
  for (const [name, v] of Object.entries(c.env)) {
    if ('value' in v) env.set(name, v.value);
    else {
      const value = fields[v.fieldPath];
      if (value === undefined) throw new Error(`env ${name}: the test supplies no value for fieldRef ${v.fieldPath}`);
      env.set(name, value);
    }
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

export function volumeMounts(c: AgentContainer, host: Pick<HostSide, 'volumePath'>): OciMount[] {
  return c.mounts.map((m) => ({
    destination: m.mountPath,
    type: 'bind',
    source: host.volumePath(m),
    options: ['rbind', PROPAGATION[m.propagation], m.readOnly ? 'ro' : 'rw'],
  }));
}

export function ociSpec(
  c: AgentContainer,
  image: ImageConfig,
  defaults: RuntimeDefaults,
  host: HostSide,
  opts: SpecOptions = {},
): Record<string, unknown> {
  if (c.hostNetwork || c.hostPID) throw new Error('hostNetwork/hostPID containers are not reproduced');
  const caps = containerCapabilities(c, [], opts);
  const volumes = volumeMounts(c, host);
  const overridden = new Set(volumes.map((m) => m.destination));
  // Parents before children, as the CRI plugin orders them.
  const mounts = [
    ...defaults.mounts.filter((m) => !overridden.has(m.destination)),
    ...volumes,
    ...host.extraMounts.map((m) => ({
      destination: m.destination,
      type: 'bind',
      source: m.source,
      options: ['rbind', 'rprivate', 'ro'],
    })),
  ].sort((a, b) => a.destination.split('/').length - b.destination.split('/').length);
  const slave = c.mounts.some((m) => m.propagation === 'HostToContainer');
  const shared = c.mounts.some((m) => m.propagation === 'Bidirectional');
  if (c.privileged) throw new Error('privileged containers are not reproduced (and meshgate must not need one)');
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: c.runAsUser, gid: c.runAsGroup },
      args: opts.argv ? [...opts.argv] : containerArgv(c, image, host.extraArgs),
      env: containerEnv(c, image, host.fields, host.hostname),
      cwd: image.workingDir || '/',
      // containerd (>= 1.6.18) gives a root container no inheritable and no ambient capabilities.
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: defaults.rlimits,
      noNewPrivileges: !c.allowPrivilegeEscalation,
    },
    root: { path: host.rootfs, readonly: c.readOnlyRootFilesystem },
    hostname: host.hostname,
    mounts,
    linux: {
      resources: { devices: defaults.devices },
      cgroupsPath: host.cgroupsPath,
      namespaces: [
        { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
        { type: 'network', path: host.netnsPath },
      ],
      ...(shared ? { rootfsPropagation: 'rshared' } : slave ? { rootfsPropagation: 'rslave' } : {}),
      maskedPaths: defaults.maskedPaths,
      readonlyPaths: defaults.readonlyPaths,
      ...(c.seccompProfile === 'RuntimeDefault' ? { seccomp: defaults.seccomp } : {}),
    },
  };
}
