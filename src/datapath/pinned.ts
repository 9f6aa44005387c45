// Read-only access to what the agent pinned, for every command (dump, explain,
// trace, status, flows, preview): opening the pins with one clear error when
// they are missing, and the live reads the commands share (state, config,
// labels, pods). No object is loaded, nothing is attached.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { libbpf } from '../../native/libbpf.js';
import { MAPS, STRUCTS, type MapName } from './abi.generated.js';
import {
  CGROUP_KIND,
  CONFIG_FLAG,
  decodeCgroup,
  decodeConfig,
  decodeLabel,
  decodeState,
  encodeCgroupKey,
  encodeU32,
  type KernelCgroup,
  type KernelConfig,
  type KernelState,
} from './codec.js';
import { MeshgateError } from '../errors.js';
import { parseLabel, type ParsedLabel } from './labels.js';
import { ABI_HASH, MAP_INFO, pinLayout, pinnedMaxEntries, type Maps } from './loader.js';
import { MapHandle } from './maps.js';

/** Every map of the current ABI, opened from its pin; sizes as the kernel reports them. */
export function openPinnedMaps(pinDir: string): { maps: Maps; close(): void } {
  const { mapsDir } = pinLayout(pinDir);
  if (!existsSync(path.join(mapsDir, 'mg_state'))) {
    throw new MeshgateError(
      'MG_PINS_NOT_FOUND',
      `no meshgate maps pinned under ${mapsDir}: is the agent running? (pin dir ${pinDir})`,
    );
  }
  const fds: number[] = [];
  const maps = Object.fromEntries(
    (Object.keys(MAPS) as MapName[]).map((name) => {
      const fd = libbpf.objGet(path.join(mapsDir, name));
      fds.push(fd);
      const info = Buffer.alloc(STRUCTS.bpf_map_info.size);
      libbpf.objGetInfo(fd, info, name);
      return [
        name,
        new MapHandle(name, fd, {
          keySize: info.readUInt32LE(MAP_INFO.keySize),
          valueSize: info.readUInt32LE(MAP_INFO.valueSize),
        }),
      ];
    }),
  ) as unknown as Maps;
  return {
    maps,
    close: () => {
      for (const fd of fds) libbpf.close(fd);
    },
  };
}

/** Programs attached to a cgroup for one attach type, or null when the cgroup cannot be queried. */
export function attachedPrograms(cgroupPath: string, attachType: number): number[] | null {
  try {
    const fd = libbpf.openDirectory(cgroupPath);
    try {
      return libbpf.progQuery(fd, attachType, cgroupPath);
    } finally {
      libbpf.close(fd);
    }
  } catch {
    return null;
  }
}

/** Why nothing can be read under pinDir, in one line; null when the current ABI's maps are there. */
export function pinsProblem(pinDir: string): string | null {
  const { mapsRoot, mapsDir } = pinLayout(pinDir);
  if (!existsSync(pinDir))
    return `no meshgate pins found: is the agent running? (pin dir ${pinDir} does not exist; see --pin-dir)`;
  if (existsSync(`${mapsDir}/mg_state`)) return null;
  const others = existsSync(mapsRoot) ? readdirSync(mapsRoot).filter((d) => d !== ABI_HASH) : [];
  if (others.length) {
    return (
      `the maps under ${mapsRoot}/${others.join(', ')} belong to another meshgate version (this CLI reads ABI ${ABI_HASH}): ` +
      'use the CLI of the running agent, or `meshgate cleanup`'
    );
  }
  return `no meshgate maps pinned under ${mapsDir}: is the agent running? (pin dir ${pinDir})`;
}

export const CGROUP_KIND_NAMES: ReadonlyMap<number, 'pod' | 'proxy' | 'unenforced'> = new Map([
  [CGROUP_KIND.MG_CGROUP_POD, 'pod'],
  [CGROUP_KIND.MG_CGROUP_PROXY, 'proxy'],
  [CGROUP_KIND.MG_CGROUP_UNENFORCED, 'unenforced'],
]);

/** A mapped cgroup with its display label: "shop/web" for a pod, "shop/web sidecar" for its proxy. */
export interface MappedCgroup extends KernelCgroup {
  readonly cgroupId: bigint;
  readonly kindName: string;
  /** "namespace/name" of the pod (for a proxy: of the pod it belongs to) */
  readonly pod: string;
  readonly namespace: string;
  readonly label: string;
}

export class Pins {
  readonly pinDir: string;
  readonly maps: Maps;
  private readonly closeMaps: () => void;
  private labelCache: Map<number, string> | null = null;

  private constructor(pinDir: string, maps: Maps, close: () => void) {
    this.pinDir = pinDir;
    this.maps = maps;
    this.closeMaps = close;
  }

  /** Opens the current ABI's pinned maps, read-only use; throws one clear line when they are missing. */
  static open(pinDir: string): Pins {
    const problem = pinsProblem(pinDir);
    if (problem) throw new MeshgateError('MG_PINS_NOT_FOUND', problem);
    const pinned = openPinnedMaps(pinDir);
    return new Pins(pinDir, pinned.maps, pinned.close);
  }

  state(): KernelState | null {
    const raw = this.maps.mg_state.lookup(encodeU32(0));
    return raw ? decodeState(raw) : null;
  }

  /** The config of a slot (the active one by default), or null when that slot holds no complete policy. */
  config(slot: number): KernelConfig | null {
    const raw = this.maps.mg_config.lookup(encodeU32(slot));
    if (!raw) return null;
    const cfg = decodeConfig(raw);
    return cfg.flags & CONFIG_FLAG.MG_CFG_LOADED ? cfg : null;
  }

  /** mg_flows' size as the agent created it (--flows-max). */
  flowsCapacity(): number {
    return pinnedMaxEntries(path.join(pinLayout(this.pinDir).mapsDir, 'mg_flows')) ?? 0;
  }

  labels(refresh = false): Map<number, string> {
    if (!this.labelCache || refresh) {
      this.labelCache = new Map(this.maps.mg_labels.entries().map(([k, v]) => [k.readUInt32LE(0), decodeLabel(v)]));
    }
    return this.labelCache;
  }

  label(id: number): ParsedLabel | null {
    if (!id) return null;
    let text = this.labels().get(id);
    if (text === undefined) text = this.labels(true).get(id);
    return text === undefined ? null : parseLabel(text);
  }

  namespaceName(id: number): string {
    const l = this.label(id);
    return l?.namespace ?? (id ? `#${id}` : '(global)');
  }

  cgroup(id: bigint): KernelCgroup | null {
    const raw = this.maps.mg_cgroups.lookup(encodeCgroupKey(id));
    return raw ? decodeCgroup(raw) : null;
  }

  describeCgroup(cgroupId: bigint, c: KernelCgroup): MappedCgroup {
    const l = this.label(c.labelId);
    const kindName = CGROUP_KIND_NAMES.get(c.kind) ?? `kind-${c.kind}`;
    const namespace = l?.namespace ?? this.namespaceName(c.namespaceId);
    const label = l?.pod ?? l?.text ?? `cgroup ${cgroupId}`;
    const pod = l?.namespace && l.name ? `${l.namespace}/${l.name}` : label.split(' ')[0]!;
    return { ...c, cgroupId, kindName, pod, namespace, label };
  }

  /** Every mapped cgroup, sorted by pod then kind. */
  cgroups(): MappedCgroup[] {
    return this.maps.mg_cgroups
      .entries()
      .map(([k, v]) => this.describeCgroup(k.readBigUInt64LE(0), decodeCgroup(v)))
      .sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : a.kind - b.kind));
  }

  /** The pod cgroup (meshed or not) named "namespace/name"; throws "no such pod" listing what is known. */
  findPod(ref: string): MappedCgroup {
    const all = this.cgroups();
    const pods = all.filter((c) => c.kind !== CGROUP_KIND.MG_CGROUP_PROXY);
    // "NAMESPACE/NAME", or a bare NAME when one namespace on the node has a pod of that name.
    const bare = !ref.includes('/');
    const match = pods.filter((c) => (bare ? c.pod.slice(c.pod.indexOf('/') + 1) : c.pod) === ref);
    const named = [...new Set(match.map((c) => c.pod))].sort();
    if (bare && named.length > 1)
      throw new MeshgateError(
        'MG_POD_AMBIGUOUS',
        `pod name ${ref} is mapped in ${named.length} namespaces (${named.slice(0, 5).join(', ')}${named.length > 5 ? ', …' : ''}): give NAMESPACE/NAME`,
      );
    if (match.length === 1) return match[0]!;
    if (match.length > 1)
      throw new MeshgateError(
        'MG_POD_AMBIGUOUS',
        `pod ${named[0]} is mapped ${match.length} times (cgroups ${match.map((m) => m.cgroupId).join(', ')}): use --cgroup ID`,
      );
    const known = pods
      .slice(0, 5)
      .map((p) => p.pod)
      .join(', ');
    throw new MeshgateError(
      'MG_POD_NOT_FOUND',
      `no such pod: ${ref} is not in mg_cgroups under ${this.pinDir}` +
        (pods.length
          ? ` (known: ${known}${pods.length > 5 ? `, … ${pods.length} in all` : ''})`
          : ' (no pods are mapped)'),
    );
  }

  close(): void {
    this.closeMaps();
  }
}
