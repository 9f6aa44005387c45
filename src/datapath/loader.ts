// Load, pin, attach and adopt.
//
// Pin layout under the pin directory (default /sys/fs/bpf/meshgate):
//   maps/<abi>/<map>   every map, in a directory named after the ABI's hash, so a
//                      changed layout gets fresh maps beside the old ones
//   links/<program>    one bpf_link per hook, attached to the cgroup
//   state/mg_last_good the agent's persisted per-object last good config
//                      (lastGoodPins.ts), outside the ABI hash: it survives upgrades
// A restarted agent opens the object with the pinned maps (libbpf reuses them),
// and moves each pinned link to its freshly loaded program with BPF_LINK_UPDATE:
// enforcement never has a gap, and nothing is attached twice.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, statfsSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { libbpf, type BpfObjectPtr, type BpfProgramPtr } from '../../native/libbpf.js';
import { KERNEL_ENUMS, MAPS, STRUCTS, type MapName } from './abi.generated.js';
import { MeshgateError } from '../errors.js';
import { MapHandle } from './maps.js';
import { inspectPin, namedAs } from './pinnedObject.js';
import { cgroupId, cgroupLevel } from '../node/cgroup.js';
import { fieldOffset } from './abiFields.js';
import { KERN_CTX_ONLY_PROGRAMS, selectVariant, variantObjectPath, type DatapathVariant } from './variant.js';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/meshgate';
const BPF_FS_MAGIC = 0xcafe4a11;

export interface HookProgram {
  readonly program: string;
  readonly hook: string;
  readonly attachType: number; // enum bpf_attach_type
}

const ATTACH = KERNEL_ENUMS.bpf_attach_type;
export const HOOK_PROGRAMS: readonly HookProgram[] = Object.freeze([
  { program: 'mg_connect4', hook: 'cgroup/connect4', attachType: ATTACH.BPF_CGROUP_INET4_CONNECT },
  { program: 'mg_connect6', hook: 'cgroup/connect6', attachType: ATTACH.BPF_CGROUP_INET6_CONNECT },
  { program: 'mg_sendmsg4', hook: 'cgroup/sendmsg4', attachType: ATTACH.BPF_CGROUP_UDP4_SENDMSG },
  { program: 'mg_sendmsg6', hook: 'cgroup/sendmsg6', attachType: ATTACH.BPF_CGROUP_UDP6_SENDMSG },
  { program: 'mg_getsockopt', hook: 'cgroup/getsockopt', attachType: ATTACH.BPF_CGROUP_GETSOCKOPT },
  { program: 'mg_setsockopt', hook: 'cgroup/setsockopt', attachType: ATTACH.BPF_CGROUP_SETSOCKOPT },
  { program: 'mg_egress', hook: 'cgroup_skb/egress', attachType: ATTACH.BPF_CGROUP_INET_EGRESS },
  { program: 'mg_dns_ingress', hook: 'cgroup_skb/ingress', attachType: ATTACH.BPF_CGROUP_INET_INGRESS },
]);

/**
 * Links an older meshgate pinned for programs it no longer has. attach()
 * detaches them once every current hook is attached or updated, so an
 * upgrade never leaves a gap: mg_sockops recorded the original destination
 * before the backstop took that over, and mg_dns_egress recorded DNS queries
 * before mg_egress did (one egress program instead of two).
 */
export const RETIRED_PROGRAMS: readonly string[] = Object.freeze(['mg_sockops', 'mg_dns_egress']);

/** Maps sized at load by --dns-learned-max (the ring has one place per learned address). */
const LEARNED_MAPS: readonly MapName[] = ['mg_learned', 'mg_learned_ring'];
export const DEFAULT_LEARNED_MAX = MAPS.mg_learned.maxEntries;
export const LEARNED_MAX_RANGE = Object.freeze({ min: 16, max: 1 << 22 });

/** A short hash of every map and struct layout: equal hashes mean pinned maps can be reused. */
export const ABI_HASH = createHash('sha256').update(JSON.stringify({ MAPS, STRUCTS })).digest('hex').slice(0, 12);

export interface PinLayout {
  readonly pinDir: string;
  readonly mapsRoot: string;
  readonly mapsDir: string;
  readonly linksDir: string;
}

export function pinLayout(pinDir: string): PinLayout {
  const mapsRoot = path.join(pinDir, 'maps');
  return { pinDir, mapsRoot, mapsDir: path.join(mapsRoot, ABI_HASH), linksDir: path.join(pinDir, 'links') };
}

/** The kern-ctx object (tests that load an object of their own pass its path and variant). */
export function defaultObjectPath(): string {
  return variantObjectPath('kern-ctx');
}

/** The hooks a variant's object has. */
export function hookPrograms(variant: DatapathVariant): readonly HookProgram[] {
  return variant === 'compat'
    ? HOOK_PROGRAMS.filter((h) => !KERN_CTX_ONLY_PROGRAMS.includes(h.program))
    : HOOK_PROGRAMS;
}

function requireBpffs(dir: string): void {
  let probe = dir;
  while (!existsSync(probe)) probe = path.dirname(probe);
  if (Number(statfsSync(probe).type) !== BPF_FS_MAGIC) {
    throw new MeshgateError(
      'MG_PIN_DIR_NOT_BPFFS',
      `pin directory ${dir} is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)`,
    );
  }
}

export type Maps = { readonly [K in MapName]: MapHandle };

export interface AttachReport {
  readonly attached: readonly string[];
  readonly updated: readonly string[];
}

/** mg_flows' default size (bpf/maps.bpf.h MG_FLOWS_MAX); `--flows-max` changes it. */
export const FLOWS_MAX_DEFAULT = MAPS.mg_flows.maxEntries;
export const FLOWS_MAX_LIMIT = 1 << 20;
/** With recording off (--flows-max 0) the map still exists (the programs name it), tiny. */
const FLOWS_OFF_SIZE = 64;

/** The size mg_flows is created with for a --flows-max value (0: recording off). */
export function flowsMapSize(flowsMax: number | undefined): number {
  if (flowsMax === undefined) return FLOWS_MAX_DEFAULT;
  if (!Number.isInteger(flowsMax) || flowsMax < 0 || flowsMax > FLOWS_MAX_LIMIT) {
    throw new MeshgateError('MG_FLOWS_MAX_INVALID', `flows max ${flowsMax} is not an integer in 0..${FLOWS_MAX_LIMIT}`);
  }
  return flowsMax === 0 ? FLOWS_OFF_SIZE : flowsMax;
}

/** struct bpf_map_info from the BTF (bpf/abi.bpf.c): what the kernel says of a pinned map. */
export const MAP_INFO = {
  keySize: fieldOffset('bpf_map_info', 'key_size', 4),
  valueSize: fieldOffset('bpf_map_info', 'value_size', 4),
  maxEntries: fieldOffset('bpf_map_info', 'max_entries', 4),
};

/** max_entries of a pinned map, or null when nothing is pinned there. */
export function pinnedMaxEntries(pin: string): number | null {
  if (!existsSync(pin)) return null;
  const fd = libbpf.objGet(pin);
  try {
    const info = Buffer.alloc(STRUCTS.bpf_map_info.size);
    libbpf.objGetInfo(fd, info, pin);
    return info.readUInt32LE(MAP_INFO.maxEntries);
  } finally {
    libbpf.close(fd);
  }
}

/** The loaded object with its (pinned or adopted) maps; programs attach on `attach`. */
export class LoadedObject {
  readonly layout: PinLayout;
  readonly maps: Maps;
  /** True when the maps were already pinned (a restart or a second process). */
  readonly adoptedMaps: boolean;
  /** Capacity of mg_learned and its eviction ring. */
  readonly learnedMax: number;
  /** Which build of the programs this is, and why it was chosen. */
  readonly variant: DatapathVariant;
  readonly variantReason: string;
  private obj: BpfObjectPtr | null;

  private constructor(
    obj: BpfObjectPtr,
    layout: PinLayout,
    maps: Maps,
    adoptedMaps: boolean,
    learnedMax: number,
    variant: { variant: DatapathVariant; reason: string },
  ) {
    this.learnedMax = learnedMax;
    this.variant = variant.variant;
    this.variantReason = variant.reason;
    this.obj = obj;
    this.layout = layout;
    this.maps = maps;
    this.adoptedMaps = adoptedMaps;
  }

  /**
   * Opens and loads the object, reusing the maps pinned under the pin dir. mg_flows is
   * created with `flowsMax`'s size: a pinned mg_flows of another size is unpinned first (its
   * recent flows are lost; the programs still attached keep using it until attach() moves
   * their links here). Every other map is reused as it is. Without an objectPath the variant's
   * object is loaded, chosen by selectVariant() (a probe, or MESHGATE_DATAPATH_VARIANT).
   */
  static open(opts: {
    pinDir: string;
    objectPath?: string;
    variant?: DatapathVariant;
    flowsMax?: number;
    learnedMax?: number;
  }): LoadedObject {
    const layout = pinLayout(opts.pinDir);
    requireBpffs(layout.pinDir);
    mkdirSync(layout.mapsDir, { recursive: true });
    const choice = opts.variant
      ? { variant: opts.variant, reason: 'asked for by the caller' }
      : opts.objectPath
        ? { variant: 'kern-ctx' as const, reason: `object ${opts.objectPath}` }
        : selectVariant();
    const objectPath = opts.objectPath ?? variantObjectPath(choice.variant);
    const adoptedMaps = existsSync(path.join(layout.mapsDir, 'mg_state'));
    const flowsSize = flowsMapSize(opts.flowsMax);
    const flowsPin = path.join(layout.mapsDir, 'mg_flows');
    const pinnedFlows = pinnedMaxEntries(flowsPin);
    if (pinnedFlows !== null && pinnedFlows !== flowsSize) unlinkSync(flowsPin);
    const learnedMax = opts.learnedMax ?? DEFAULT_LEARNED_MAX;
    if (!Number.isInteger(learnedMax) || learnedMax < LEARNED_MAX_RANGE.min || learnedMax > LEARNED_MAX_RANGE.max) {
      throw new MeshgateError(
        'MG_LEARNED_MAX_INVALID',
        `learned address capacity ${learnedMax} is not an integer in ${LEARNED_MAX_RANGE.min}..${LEARNED_MAX_RANGE.max}`,
      );
    }
    // A new capacity needs new maps: what was learned is learned again from the next answers.
    for (const name of LEARNED_MAPS) {
      const pin = path.join(layout.mapsDir, name);
      const pinned = pinnedMaxEntries(pin);
      if (pinned !== null && pinned !== learnedMax) unlinkSync(pin);
    }
    const obj = libbpf.openObject(objectPath);
    try {
      const names = Object.keys(MAPS) as MapName[];
      for (const name of LEARNED_MAPS) libbpf.setMapMaxEntries(libbpf.findMap(obj, name), learnedMax, name);
      for (const name of names) libbpf.setMapPinPath(libbpf.findMap(obj, name), path.join(layout.mapsDir, name));
      libbpf.setMapMaxEntries(libbpf.findMap(obj, 'mg_flows'), flowsSize, 'mg_flows');
      libbpf.loadObject(obj, objectPath);
      const maps = Object.fromEntries(
        names.map((name) => {
          const map = libbpf.findMap(obj, name);
          const size = { keySize: libbpf.mapKeySize(map), valueSize: libbpf.mapValueSize(map) };
          return [name, new MapHandle(name, libbpf.mapFd(map), size)];
        }),
      ) as unknown as Maps;
      return new LoadedObject(obj, layout, maps, adoptedMaps, learnedMax, choice);
    } catch (err) {
      libbpf.closeObject(obj);
      throw err;
    }
  }

  private program(name: string): BpfProgramPtr {
    if (!this.obj) throw new MeshgateError('MG_OBJECT_CLOSED', 'BPF object is closed');
    return libbpf.findProgram(this.obj, name);
  }

  /**
   * Attaches every hook to the cgroup, or moves already pinned links to this
   * object's programs (BPF_LINK_UPDATE: no gap). Refuses the cgroup2 root and
   * a pin directory whose links are attached to another cgroup.
   */
  attach(cgroupPath: string): AttachReport {
    if (cgroupLevel(cgroupPath) === 0) {
      throw new MeshgateError(
        'MG_ATTACH_ROOT_CGROUP',
        `refusing to attach to the root cgroup ${cgroupPath}: the node's own daemons would be enforced`,
      );
    }
    mkdirSync(this.layout.linksDir, { recursive: true });
    const wantedId = cgroupId(cgroupPath);
    const attached: string[] = [];
    const updated: string[] = [];
    const cgroupFd = libbpf.openDirectory(cgroupPath);
    try {
      for (const hp of hookPrograms(this.variant)) {
        const pin = path.join(this.layout.linksDir, hp.program);
        const prog = this.program(hp.program);
        if (existsSync(pin)) {
          const link = libbpf.openLink(pin);
          try {
            const info = linkInfo(libbpf.linkFd(link), pin);
            if (info.cgroupId !== wantedId) {
              throw new MeshgateError(
                'MG_ATTACH_CGROUP_MISMATCH',
                `pinned link ${pin} is attached to cgroup id ${info.cgroupId}, not ${cgroupPath} (id ${wantedId}): run \`meshgate cleanup --pin-dir ${this.layout.pinDir}\` first`,
              );
            }
            libbpf.updateLinkProgram(link, prog, `${hp.hook} on ${cgroupPath}`);
            updated.push(hp.hook);
          } finally {
            libbpf.releaseLink(link);
          }
        } else {
          const link = libbpf.attachCgroup(prog, cgroupFd, `${hp.hook} to ${cgroupPath}`);
          try {
            libbpf.pinLink(link, pin);
          } catch (err) {
            libbpf.detachLink(link, hp.hook);
            throw err;
          } finally {
            libbpf.releaseLink(link);
          }
          attached.push(hp.hook);
        }
      }
      this.detachRetired(wantedId, cgroupPath);
    } finally {
      libbpf.close(cgroupFd);
    }
    this.removeStaleMapDirs();
    return { attached, updated };
  }

  /**
   * After every current hook is in place: detach and unpin links of programs meshgate no longer
   * has, and of those this variant lacks (a node that went from kern-ctx to compat).
   */
  private detachRetired(wantedId: bigint, cgroupPath: string): void {
    const mine = new Set(hookPrograms(this.variant).map((h) => h.program));
    const absent = HOOK_PROGRAMS.map((h) => h.program).filter((p) => !mine.has(p));
    for (const program of [...RETIRED_PROGRAMS, ...absent]) {
      const pin = path.join(this.layout.linksDir, program);
      if (!existsSync(pin)) continue;
      const link = libbpf.openLink(pin);
      try {
        const info = linkInfo(libbpf.linkFd(link), pin);
        if (info.cgroupId === wantedId) libbpf.detachLink(link, `retired ${program} on ${cgroupPath}`);
      } finally {
        libbpf.releaseLink(link);
      }
      unlinkSync(pin);
    }
  }

  /** After a layout migration the links use this ABI's maps; the old ones can go. */
  private removeStaleMapDirs(): void {
    for (const dir of readdirSync(this.layout.mapsRoot)) {
      if (dir !== ABI_HASH) rmSync(path.join(this.layout.mapsRoot, dir), { recursive: true, force: true });
    }
  }

  /** Closes this process's handles. Pinned maps and links, and so enforcement, stay. */
  close(): void {
    if (this.obj) libbpf.closeObject(this.obj);
    this.obj = null;
  }
}

export interface LinkInfo {
  readonly id: number;
  readonly progId: number;
  readonly cgroupId: bigint;
  readonly attachType: number;
}

// struct bpf_link_info from the BTF (bpf/abi.bpf.c): id, prog_id, and the cgroup variant of its union.
const LINK_INFO = {
  id: fieldOffset('bpf_link_info', 'id', 4),
  progId: fieldOffset('bpf_link_info', 'prog_id', 4),
  cgroupId: fieldOffset('bpf_link_info', 'cgroup.cgroup_id', 8),
  attachType: fieldOffset('bpf_link_info', 'cgroup.attach_type', 4),
};
export function linkInfo(fd: number, what: string): LinkInfo {
  const info = Buffer.alloc(STRUCTS.bpf_link_info.size);
  libbpf.objGetInfo(fd, info, what);
  return {
    id: info.readUInt32LE(LINK_INFO.id),
    progId: info.readUInt32LE(LINK_INFO.progId),
    cgroupId: info.readBigUInt64LE(LINK_INFO.cgroupId),
    attachType: info.readUInt32LE(LINK_INFO.attachType),
  };
}

export interface PinnedLink {
  readonly program: string;
  readonly hook: string;
  readonly pin: string;
  readonly info: LinkInfo | null;
  readonly error: string | null;
}

/** What is pinned under the links directory, with kernel info for each link. */
export function listPinnedLinks(pinDir: string): PinnedLink[] {
  const { linksDir } = pinLayout(pinDir);
  if (!existsSync(linksDir)) return [];
  return readdirSync(linksDir)
    .sort()
    .map((program) => {
      const pin = path.join(linksDir, program);
      const hook = HOOK_PROGRAMS.find((h) => h.program === program)?.hook ?? 'unknown';
      try {
        const fd = libbpf.objGet(pin);
        try {
          return { program, hook, pin, info: linkInfo(fd, pin), error: null };
        } finally {
          libbpf.close(fd);
        }
      } catch (err) {
        return { program, hook, pin, info: null, error: (err as Error).message };
      }
    });
}

export interface CleanupReport {
  /** link pins detached from their cgroup */
  readonly detached: string[];
  /** pins removed (links and maps) */
  readonly unpinned: string[];
  /** entries under the pin dir that are not meshgate's, left in place */
  readonly left: string[];
  readonly errors: string[];
}

const OWNED_NAME = /^mg_[a-z0-9_]+$/;
const ABI_DIR = /^[0-9a-f]{12}$/;

function removeDirIfEmpty(dir: string): void {
  try {
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    /* busy (a mount point) or changed meanwhile: it stays */
  }
}

/**
 * Detaches and unpins exactly what meshgate pinned under pinDir: links/mg_*
 * (BPF_LINK_DETACH, so the program leaves the cgroup even if another process
 * holds the link), maps/<abi hash>/mg_* and state/mg_*. A pin is removed only
 * when the kernel says it is an object of the expected type (a link, a map)
 * whose name is the pin's; anything else there is left in place and listed.
 * A pin dir that is not on bpffs is refused whole: its files are not pins.
 */
export function cleanupPins(pinDir: string): CleanupReport {
  const r: CleanupReport = { detached: [], unpinned: [], left: [], errors: [] };
  if (!existsSync(pinDir)) return r;
  if (Number(statfsSync(pinDir).type) !== BPF_FS_MAGIC) {
    throw new MeshgateError(
      'MG_PIN_DIR_NOT_BPFFS',
      `pin directory ${pinDir} is not on a bpffs mount: refusing to remove anything there (its files are not meshgate's pins)`,
    );
  }
  const { linksDir, mapsRoot } = pinLayout(pinDir);
  const stateDir = path.join(pinDir, 'state');
  for (const name of readdirSync(pinDir)) {
    const p = path.join(pinDir, name);
    if (p !== linksDir && p !== mapsRoot && p !== stateDir) r.left.push(p);
  }
  /** The pin when its name, and the kernel object's type and name, are meshgate's; else it is listed as left. */
  const owned = (dir: string, name: string, type: 'map' | 'link'): string | null => {
    const pin = path.join(dir, name);
    if (!OWNED_NAME.test(name)) {
      r.left.push(pin);
      return null;
    }
    const obj = inspectPin(pin);
    if (!obj || obj.type !== type || !namedAs(obj, name)) {
      r.left.push(pin);
      r.errors.push(
        `${pin} is ${obj ? `a BPF ${obj.type}${obj.name ? ` named ${obj.name}` : ''}` : 'not a BPF object'}, not meshgate's ${type} ${name}: left in place`,
      );
      return null;
    }
    return pin;
  };
  if (existsSync(linksDir)) {
    for (const name of readdirSync(linksDir)) {
      const pin = owned(linksDir, name, 'link');
      if (!pin) continue;
      const link = libbpf.openLink(pin);
      try {
        libbpf.detachLink(link, pin);
        r.detached.push(name);
      } catch {
        /* already detached (its cgroup is gone): unpinning is still right */
      } finally {
        libbpf.releaseLink(link);
      }
      unlinkSync(pin);
      r.unpinned.push(pin);
    }
    removeDirIfEmpty(linksDir);
  }
  // maps/<abi hash>/ holds the datapath's maps; state/ the agent's persisted last good configuration.
  const mapDirs: string[] = [];
  if (existsSync(mapsRoot)) {
    for (const abi of readdirSync(mapsRoot)) {
      if (ABI_DIR.test(abi)) mapDirs.push(path.join(mapsRoot, abi));
      else r.left.push(path.join(mapsRoot, abi));
    }
  }
  if (existsSync(stateDir)) mapDirs.push(stateDir);
  for (const dir of mapDirs) {
    for (const name of readdirSync(dir)) {
      const pin = owned(dir, name, 'map');
      if (!pin) continue;
      unlinkSync(pin);
      r.unpinned.push(pin);
    }
    removeDirIfEmpty(dir);
  }
  removeDirIfEmpty(mapsRoot);
  removeDirIfEmpty(pinDir);
  return r;
}
