// Encoders and decoders for every map key and value. Offsets and sizes are read
// from abi.generated.ts (the object's BTF), never written here as literals.
import type { DatapathVariant } from './variant.js';
import { FALLBACK, newCidrBytes, parseCidrBytes, parseIPv4Cidr, type CidrBytes } from '../config/cidrNumeric.js';
import ipaddr from 'ipaddr.js';
import { ENUMS, STRUCTS, type StructName } from './abi.generated.js';
import { MeshgateError } from '../errors.js';
import { fieldOffset } from './abiFields.js';

type Fields<S extends StructName> = keyof (typeof STRUCTS)[S]['fields'];

function offsetOf<S extends StructName>(struct: S, field: Fields<S>): number {
  const fields = STRUCTS[struct].fields as Record<string, { offset: number; size: number }>;
  const f = fields[field as string];
  if (!f) throw new MeshgateError('MG_ABI_MISMATCH', `ABI has no field ${struct}.${String(field)}`);
  return f.offset;
}

export const sizeOf = (struct: StructName): number => STRUCTS[struct].size;

export const VERDICT = ENUMS.mg_verdict;
export const RULE = ENUMS.mg_rule;
export const TABLE = ENUMS.mg_table;
export const CGROUP_KIND = ENUMS.mg_cgroup_kind;
export const CONFIG_FLAG = ENUMS.mg_config_flags;
export const CGROUP_FLAG = ENUMS.mg_cgroup_flags;
export const HOOK = ENUMS.mg_hook;
export const EVENT_STAT = ENUMS.mg_event_stat;
export const LABEL_TEXT_SIZE = ENUMS.mg_label_limits.MG_LABEL_TEXT_SIZE;
/** Key bits before the address in mg_lpm_key (slot, table, proto, port, namespace id). */
export const LPM_HEADER_BITS = (sizeOf('mg_lpm_key') - offsetOf('mg_lpm_key', 'slot') - 16) * 8;

export type VerdictName = 'pass' | 'redirect' | 'deny' | 'audit';
/** Verdict names in enum order, from the ABI: MG_VERDICT_AUDIT -> 'audit'. */
export const VERDICT_NAMES: readonly VerdictName[] = Object.entries(VERDICT)
  .filter(([name]) => name !== 'MG_VERDICT_COUNT')
  .sort((a, b) => a[1] - b[1])
  .map(([name]) => name.replace(/^MG_VERDICT_/, '').toLowerCase() as VerdictName);

export type BlockedActionName = 'deny' | 'redirect' | 'audit';
export const BLOCKED_ACTION = ENUMS.mg_blocked_action;
/** blocked_egress_action as the kernel stores it (enum mg_blocked_action). */
export const BLOCKED_ACTION_IDS: Readonly<Record<BlockedActionName, number>> = Object.freeze({
  deny: BLOCKED_ACTION.MG_ACTION_DENY,
  redirect: BLOCKED_ACTION.MG_ACTION_REDIRECT,
  audit: BLOCKED_ACTION.MG_ACTION_AUDIT,
});
export function blockedActionName(id: number): BlockedActionName | `action-${number}` {
  const found = (Object.entries(BLOCKED_ACTION_IDS) as Array<[BlockedActionName, number]>).find(([, v]) => v === id);
  return found ? found[0] : `action-${id}`;
}

/** Rule names in enum order, from the ABI: MG_RULE_EXCLUDED_CIDR -> 'excluded-cidr'. */
export const RULE_NAMES: readonly string[] = Object.entries(RULE)
  .filter(([name]) => name !== 'MG_RULE_COUNT')
  .sort((a, b) => a[1] - b[1])
  .map(([name]) =>
    name
      .replace(/^MG_RULE_/, '')
      .toLowerCase()
      .replace(/_/g, '-'),
  );

export type TableName = 'mesh' | 'exclude' | 'allow';
const TABLE_IDS: Record<TableName, number> = {
  mesh: TABLE.MG_TABLE_MESH,
  exclude: TABLE.MG_TABLE_EXCLUDE,
  allow: TABLE.MG_TABLE_ALLOW,
};
const TABLE_NAMES = new Map(Object.entries(TABLE_IDS).map(([n, id]) => [id, n as TableName]));

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export type Proto = 'tcp' | 'udp';
export const protoNumber = (p: Proto): number => (p === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP);
export const protoName = (n: number): string => (n === IPPROTO_TCP ? 'tcp' : n === IPPROTO_UDP ? 'udp' : `proto-${n}`);

/** A destination prefix as the kernel stores it: 16 bytes (IPv4 as ::ffff:a.b.c.d) and a length over them. */
export interface Prefix16 {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address into the 16-byte form. Throws on bad input. */
export function parsePrefix(cidr: string): Prefix16 {
  const fast = newCidrBytes();
  const bits = parseCidrBytes(cidr, fast);
  // The numeric reader clears host bits as maskBytes does; anything it does not read goes through ipaddr.js.
  if (bits !== FALLBACK) return { bytes: fast.bytes, bits };
  const slash = cidr.indexOf('/');
  const addrText = slash < 0 ? cidr : cidr.slice(0, slash);
  const addr = ipaddr.parse(addrText);
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  const len = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max || (slash >= 0 && !/^\d+$/.test(cidr.slice(slash + 1)))) {
    throw new MeshgateError('MG_VALUE_OUT_OF_RANGE', `prefix length of ${cidr} is out of range 0..${max}`);
  }
  if (addr.kind() === 'ipv4') {
    const bytes = new Uint8Array(16);
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    bytes.set((addr as ipaddr.IPv4).toByteArray(), 12);
    return { bytes: maskBytes(bytes, 96 + len), bits: 96 + len };
  }
  return { bytes: maskBytes(Uint8Array.from((addr as ipaddr.IPv6).toByteArray()), len), bits: len };
}

function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return bytes;
}

/** Formats 16 address bytes and a length over them back to "10.0.0.0/8" or "2001:db8::/32". */
export function formatPrefix(bytes: Uint8Array, bits: number): string {
  const isV4 = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isV4 && bits >= 96) return `${Array.from(bytes.subarray(12, 16)).join('.')}/${bits - 96}`;
  return `${ipaddr.fromByteArray(Array.from(bytes)).toString()}/${bits}`;
}

export function formatAddress(bytes: Uint8Array): string {
  const text = formatPrefix(bytes, 128);
  return text.slice(0, text.lastIndexOf('/'));
}

export interface TrieKey {
  readonly slot: number;
  readonly table: TableName;
  readonly proto: number;
  readonly port: number;
  readonly namespaceId: number;
  readonly prefix: Prefix16;
}

const TRIE_KEY = {
  prefixlen: fieldOffset('mg_lpm_key', 'prefixlen', 4),
  slot: fieldOffset('mg_lpm_key', 'slot', 1),
  table: fieldOffset('mg_lpm_key', 'table', 1),
  proto: fieldOffset('mg_lpm_key', 'proto', 1),
  port: fieldOffset('mg_lpm_key', 'port', 2),
  namespaceId: fieldOffset('mg_lpm_key', 'namespace_id', 4),
  addr: fieldOffset('mg_lpm_key', 'addr', 16),
};
export const TRIE_KEY_SIZE = sizeOf('mg_lpm_key');
/** Where the slot byte and the namespace id sit in an encoded trie key (the datapath patches and reads them in place). */
export const TRIE_KEY_SLOT_OFFSET = TRIE_KEY.slot;
export const TRIE_KEY_NAMESPACE_OFFSET = TRIE_KEY.namespaceId;
export const TRIE_VALUE_SIZE = sizeOf('mg_lpm_value');

export function encodeTrieKey(k: TrieKey, out: Buffer = Buffer.alloc(TRIE_KEY_SIZE), at = 0): Buffer {
  out.fill(0, at, at + TRIE_KEY_SIZE);
  out.writeUInt32LE(LPM_HEADER_BITS + k.prefix.bits, at + TRIE_KEY.prefixlen);
  out.writeUInt8(k.slot, at + TRIE_KEY.slot);
  out.writeUInt8(TABLE_IDS[k.table], at + TRIE_KEY.table);
  out.writeUInt8(k.proto, at + TRIE_KEY.proto);
  out.writeUInt16LE(k.port, at + TRIE_KEY.port);
  out.writeUInt32LE(k.namespaceId, at + TRIE_KEY.namespaceId);
  out.set(k.prefix.bytes, at + TRIE_KEY.addr);
  return out;
}

/**
 * encodeTrieKey with slot 0 from the entry's own fields, without an object per
 * key: the CIDR is read into `scratch` (newCidrBytes(), held by the caller for
 * a whole loop). Writes every field and leaves the padding as it is (zero in a
 * zeroed buffer). Throws on a bad CIDR as parsePrefix does.
 */
export function encodeTrieKeyText(
  out: Buffer,
  at: number,
  table: TableName,
  proto: number,
  port: number,
  namespaceId: number,
  cidr: string,
  scratch: CidrBytes,
): void {
  // Most keys are IPv4: read them straight to a number (parseCidrBytes would scan the text twice first).
  const v4 = parseIPv4Cidr(cidr, scratch);
  let bits = v4 ? 96 + scratch.prefix : parseCidrBytes(cidr, scratch);
  let bytes = scratch.bytes;
  if (bits === FALLBACK) ({ bytes, bits } = parsePrefix(cidr));
  const prefixlen = LPM_HEADER_BITS + bits;
  let o = at + TRIE_KEY.prefixlen;
  out[o] = prefixlen;
  out[o + 1] = prefixlen >>> 8;
  out[o + 2] = prefixlen >>> 16;
  out[o + 3] = prefixlen >>> 24;
  out[at + TRIE_KEY.slot] = 0;
  out[at + TRIE_KEY.table] = TABLE_IDS[table];
  out[at + TRIE_KEY.proto] = proto;
  o = at + TRIE_KEY.port;
  out[o] = port;
  out[o + 1] = port >>> 8;
  o = at + TRIE_KEY.namespaceId;
  out[o] = namespaceId;
  out[o + 1] = namespaceId >>> 8;
  out[o + 2] = namespaceId >>> 16;
  out[o + 3] = namespaceId >>> 24;
  o = at + TRIE_KEY.addr;
  if (v4) {
    for (let i = 0; i < 10; i++) out[o + i] = 0;
    out[o + 10] = 0xff;
    out[o + 11] = 0xff;
    const address = scratch.v4;
    out[o + 12] = address >>> 24;
    out[o + 13] = address >>> 16;
    out[o + 14] = address >>> 8;
    out[o + 15] = address;
  } else {
    for (let i = 0; i < 16; i++) out[o + i] = bytes[i]!;
  }
}

export function decodeTrieKey(buf: Buffer, at = 0): TrieKey {
  const table = TABLE_NAMES.get(buf.readUInt8(at + TRIE_KEY.table));
  if (!table)
    throw new MeshgateError(
      'MG_MAP_ENTRY_UNDECODABLE',
      `mg_policy_trie key has unknown table ${buf.readUInt8(at + TRIE_KEY.table)}`,
    );
  return {
    slot: buf.readUInt8(at + TRIE_KEY.slot),
    table,
    proto: buf.readUInt8(at + TRIE_KEY.proto),
    port: buf.readUInt16LE(at + TRIE_KEY.port),
    namespaceId: buf.readUInt32LE(at + TRIE_KEY.namespaceId),
    prefix: {
      bytes: Uint8Array.from(buf.subarray(at + TRIE_KEY.addr, at + TRIE_KEY.addr + 16)),
      bits: buf.readUInt32LE(at + TRIE_KEY.prefixlen) - LPM_HEADER_BITS,
    },
  };
}

/** A lookup key for the full destination address (as the kernel builds it). */
export function trieLookupKey(k: Omit<TrieKey, 'prefix'>, address: Uint8Array): Buffer {
  return encodeTrieKey({ ...k, prefix: { bytes: address, bits: 128 } });
}

const TRIE_VALUE = { labelId: fieldOffset('mg_lpm_value', 'label_id', 4) };
export function encodeTrieValue(labelId: number, out: Buffer = Buffer.alloc(TRIE_VALUE_SIZE), at = 0): Buffer {
  out.fill(0, at, at + TRIE_VALUE_SIZE);
  out.writeUInt32LE(labelId, at + TRIE_VALUE.labelId);
  return out;
}
export const decodeTrieValue = (buf: Buffer, at = 0): { labelId: number } => ({
  labelId: buf.readUInt32LE(at + TRIE_VALUE.labelId),
});

const PORT_KEY = { port: fieldOffset('mg_port_key', 'port', 2), slot: fieldOffset('mg_port_key', 'slot', 1) };
export const PORT_KEY_SIZE = sizeOf('mg_port_key');
export function encodePortKey(slot: number, port: number): Buffer {
  const b = Buffer.alloc(PORT_KEY_SIZE);
  b.writeUInt16LE(port, PORT_KEY.port);
  b.writeUInt8(slot, PORT_KEY.slot);
  return b;
}
export const decodePortKey = (b: Buffer): { slot: number; port: number } => ({
  slot: b.readUInt8(PORT_KEY.slot),
  port: b.readUInt16LE(PORT_KEY.port),
});

export interface KernelConfig {
  readonly flags: number;
  readonly proxyPort: number;
  readonly blockedAction: number;
  readonly unknownPodPolicy: number;
  readonly proxyUid: number;
  readonly eventMask: number;
  readonly generation: bigint;
}
const CONFIG = {
  flags: fieldOffset('mg_config', 'flags', 4),
  proxyPort: fieldOffset('mg_config', 'proxy_port', 2),
  blockedAction: fieldOffset('mg_config', 'blocked_action', 1),
  unknownPodPolicy: fieldOffset('mg_config', 'unknown_pod_policy', 1),
  proxyUid: fieldOffset('mg_config', 'proxy_uid', 4),
  eventMask: fieldOffset('mg_config', 'event_mask', 4),
  generation: fieldOffset('mg_config', 'generation', 8),
};
export function encodeConfig(c: KernelConfig): Buffer {
  const b = Buffer.alloc(sizeOf('mg_config'));
  b.writeUInt32LE(c.flags, CONFIG.flags);
  b.writeUInt16LE(c.proxyPort, CONFIG.proxyPort);
  b.writeUInt8(c.blockedAction, CONFIG.blockedAction);
  b.writeUInt8(c.unknownPodPolicy, CONFIG.unknownPodPolicy);
  b.writeUInt32LE(c.proxyUid, CONFIG.proxyUid);
  b.writeUInt32LE(c.eventMask, CONFIG.eventMask);
  b.writeBigUInt64LE(c.generation, CONFIG.generation);
  return b;
}
export function decodeConfig(b: Buffer): KernelConfig {
  return {
    flags: b.readUInt32LE(CONFIG.flags),
    proxyPort: b.readUInt16LE(CONFIG.proxyPort),
    blockedAction: b.readUInt8(CONFIG.blockedAction),
    unknownPodPolicy: b.readUInt8(CONFIG.unknownPodPolicy),
    proxyUid: b.readUInt32LE(CONFIG.proxyUid),
    eventMask: b.readUInt32LE(CONFIG.eventMask),
    generation: b.readBigUInt64LE(CONFIG.generation),
  };
}

export const STATE_FLAG = ENUMS.mg_state_flags;

export interface KernelState {
  readonly activeSlot: number;
  readonly cgroupWalkStart: number;
  readonly eventsPerSec: number;
  readonly eventsBurst: number;
  /** Decisions of enforced pods are filed in mg_flows (absent: true). */
  readonly recordFlows?: boolean;
  /** The agent's (the node's) netns cookie: its sockets are never enforced as unknown pods; 0n: none. */
  readonly hostNetnsCookie?: bigint;
}
const STATE = {
  activeSlot: fieldOffset('mg_state', 'active_slot', 4),
  cgroupWalkStart: fieldOffset('mg_state', 'cgroup_walk_start', 4),
  eventsPerSec: fieldOffset('mg_state', 'events_per_sec', 4),
  eventsBurst: fieldOffset('mg_state', 'events_burst', 4),
  flags: fieldOffset('mg_state', 'flags', 4),
  hostNetnsCookie: fieldOffset('mg_state', 'host_netns_cookie', 8),
};
export function encodeState(s: KernelState): Buffer {
  const b = Buffer.alloc(sizeOf('mg_state'));
  b.writeUInt32LE(s.activeSlot, STATE.activeSlot);
  b.writeUInt32LE(s.cgroupWalkStart, STATE.cgroupWalkStart);
  b.writeUInt32LE(s.eventsPerSec, STATE.eventsPerSec);
  b.writeUInt32LE(s.eventsBurst, STATE.eventsBurst);
  b.writeUInt32LE(s.recordFlows === false ? 0 : STATE_FLAG.MG_STATE_RECORD_FLOWS, STATE.flags);
  b.writeBigUInt64LE(s.hostNetnsCookie ?? 0n, STATE.hostNetnsCookie);
  return b;
}
export function decodeState(b: Buffer): KernelState {
  return {
    activeSlot: b.readUInt32LE(STATE.activeSlot),
    cgroupWalkStart: b.readUInt32LE(STATE.cgroupWalkStart),
    eventsPerSec: b.readUInt32LE(STATE.eventsPerSec),
    eventsBurst: b.readUInt32LE(STATE.eventsBurst),
    recordFlows: Boolean(b.readUInt32LE(STATE.flags) & STATE_FLAG.MG_STATE_RECORD_FLOWS),
    hostNetnsCookie: b.readBigUInt64LE(STATE.hostNetnsCookie),
  };
}

/** mg_agent_status: the agent's last reconcile, kept with the pins for `meshgate status`. */
export interface AgentStatus {
  readonly lastApplyUnixMs: number;
  readonly lastReconcileUnixMs: number;
  readonly generation: bigint;
  readonly agentPid: number;
  readonly mode: 'standalone' | 'cluster' | 'none';
  readonly objectsTotal: number;
  readonly objectsInvalid: number;
  /** The build of the programs the agent loaded (null: not recorded, an older agent). */
  readonly datapathVariant?: DatapathVariant | null;
}
const AGENT_STATUS = {
  lastApply: fieldOffset('mg_agent_status', 'last_apply_unix_ms', 8),
  lastReconcile: fieldOffset('mg_agent_status', 'last_reconcile_unix_ms', 8),
  generation: fieldOffset('mg_agent_status', 'generation', 8),
  pid: fieldOffset('mg_agent_status', 'agent_pid', 4),
  mode: fieldOffset('mg_agent_status', 'mode', 4),
  total: fieldOffset('mg_agent_status', 'objects_total', 4),
  invalid: fieldOffset('mg_agent_status', 'objects_invalid', 4),
  variant: fieldOffset('mg_agent_status', 'datapath_variant', 4),
};
const VARIANT = ENUMS.mg_datapath_variant;
const AGENT_MODE = ENUMS.mg_agent_mode;
export function encodeAgentStatus(s: AgentStatus): Buffer {
  const b = Buffer.alloc(sizeOf('mg_agent_status'));
  b.writeBigUInt64LE(BigInt(Math.round(s.lastApplyUnixMs)), AGENT_STATUS.lastApply);
  b.writeBigUInt64LE(BigInt(Math.round(s.lastReconcileUnixMs)), AGENT_STATUS.lastReconcile);
  b.writeBigUInt64LE(s.generation, AGENT_STATUS.generation);
  b.writeUInt32LE(s.agentPid, AGENT_STATUS.pid);
  b.writeUInt32LE(
    s.mode === 'standalone' ? AGENT_MODE.MG_AGENT_STANDALONE : s.mode === 'cluster' ? AGENT_MODE.MG_AGENT_CLUSTER : 0,
    AGENT_STATUS.mode,
  );
  b.writeUInt32LE(s.objectsTotal, AGENT_STATUS.total);
  b.writeUInt32LE(s.objectsInvalid, AGENT_STATUS.invalid);
  b.writeUInt32LE(
    s.datapathVariant === 'kern-ctx'
      ? VARIANT.MG_VARIANT_KERN_CTX
      : s.datapathVariant === 'compat'
        ? VARIANT.MG_VARIANT_COMPAT
        : 0,
    AGENT_STATUS.variant,
  );
  return b;
}
export function decodeAgentStatus(b: Buffer): AgentStatus {
  const mode = b.readUInt32LE(AGENT_STATUS.mode);
  return {
    lastApplyUnixMs: Number(b.readBigUInt64LE(AGENT_STATUS.lastApply)),
    lastReconcileUnixMs: Number(b.readBigUInt64LE(AGENT_STATUS.lastReconcile)),
    generation: b.readBigUInt64LE(AGENT_STATUS.generation),
    agentPid: b.readUInt32LE(AGENT_STATUS.pid),
    mode:
      mode === AGENT_MODE.MG_AGENT_STANDALONE
        ? 'standalone'
        : mode === AGENT_MODE.MG_AGENT_CLUSTER
          ? 'cluster'
          : 'none',
    objectsTotal: b.readUInt32LE(AGENT_STATUS.total),
    objectsInvalid: b.readUInt32LE(AGENT_STATUS.invalid),
    datapathVariant: variantOf(b.readUInt32LE(AGENT_STATUS.variant)),
  };
}

function variantOf(n: number): DatapathVariant | null {
  if (n === VARIANT.MG_VARIANT_KERN_CTX) return 'kern-ctx';
  return n === VARIANT.MG_VARIANT_COMPAT ? 'compat' : null;
}

const NAMESPACE_KEY = {
  namespaceId: fieldOffset('mg_namespace_key', 'namespace_id', 4),
  slot: fieldOffset('mg_namespace_key', 'slot', 1),
};
const NAMESPACE_VALUE = { blockedAction: fieldOffset('mg_namespace', 'blocked_action', 1) };
export function encodeNamespaceKey(slot: number, namespaceId: number): Buffer {
  const b = Buffer.alloc(sizeOf('mg_namespace_key'));
  b.writeUInt32LE(namespaceId, NAMESPACE_KEY.namespaceId);
  b.writeUInt8(slot, NAMESPACE_KEY.slot);
  return b;
}
export const decodeNamespaceKey = (b: Buffer): { slot: number; namespaceId: number } => ({
  slot: b.readUInt8(NAMESPACE_KEY.slot),
  namespaceId: b.readUInt32LE(NAMESPACE_KEY.namespaceId),
});
export function encodeNamespace(blockedAction: number): Buffer {
  const b = Buffer.alloc(sizeOf('mg_namespace'));
  b.writeUInt8(blockedAction, NAMESPACE_VALUE.blockedAction);
  return b;
}
export const decodeNamespace = (b: Buffer): { blockedAction: number } => ({
  blockedAction: b.readUInt8(NAMESPACE_VALUE.blockedAction),
});

/** One mg_flows entry: a recent flow of an enforced pod and the kernel's last verdict for it. */
export interface KernelFlow {
  readonly podCgroupId: bigint;
  readonly address: Uint8Array;
  readonly port: number;
  readonly proto: number;
  readonly lastSeenNs: bigint;
  readonly count: bigint;
  readonly generation: bigint;
  readonly labelId: number;
  readonly uid: number;
  readonly verdict: number;
  readonly rule: number;
  readonly hook: number;
}
const FLOW_KEY = {
  podCgroupId: fieldOffset('mg_flow_key', 'pod_cgroup_id', 8),
  addr: fieldOffset('mg_flow_key', 'addr', 16),
  port: fieldOffset('mg_flow_key', 'port', 2),
  proto: fieldOffset('mg_flow_key', 'proto', 1),
};
const FLOW_VALUE = {
  lastSeenNs: fieldOffset('mg_flow', 'last_seen_ns', 8),
  count: fieldOffset('mg_flow', 'count', 8),
  generation: fieldOffset('mg_flow', 'generation', 8),
  labelId: fieldOffset('mg_flow', 'label_id', 4),
  uid: fieldOffset('mg_flow', 'uid', 4),
  verdict: fieldOffset('mg_flow', 'verdict', 1),
  rule: fieldOffset('mg_flow', 'rule', 1),
  hook: fieldOffset('mg_flow', 'hook', 1),
};
export function decodeFlow(key: Buffer, value: Buffer): KernelFlow {
  return {
    podCgroupId: key.readBigUInt64LE(FLOW_KEY.podCgroupId),
    address: Uint8Array.from(key.subarray(FLOW_KEY.addr, FLOW_KEY.addr + 16)),
    port: key.readUInt16LE(FLOW_KEY.port),
    proto: key.readUInt8(FLOW_KEY.proto),
    lastSeenNs: value.readBigUInt64LE(FLOW_VALUE.lastSeenNs),
    count: value.readBigUInt64LE(FLOW_VALUE.count),
    generation: value.readBigUInt64LE(FLOW_VALUE.generation),
    labelId: value.readUInt32LE(FLOW_VALUE.labelId),
    uid: value.readUInt32LE(FLOW_VALUE.uid),
    verdict: value.readUInt8(FLOW_VALUE.verdict),
    rule: value.readUInt8(FLOW_VALUE.rule),
    hook: value.readUInt8(FLOW_VALUE.hook),
  };
}

const TRACE = { eventMask: fieldOffset('mg_trace', 'event_mask', 4), untilNs: fieldOffset('mg_trace', 'until_ns', 8) };
export function encodeTrace(eventMask: number, untilNs: bigint): Buffer {
  const b = Buffer.alloc(sizeOf('mg_trace'));
  b.writeUInt32LE(eventMask, TRACE.eventMask);
  b.writeBigUInt64LE(untilNs, TRACE.untilNs);
  return b;
}
export const decodeTrace = (b: Buffer): { eventMask: number; untilNs: bigint } => ({
  eventMask: b.readUInt32LE(TRACE.eventMask),
  untilNs: b.readBigUInt64LE(TRACE.untilNs),
});

export interface KernelCgroup {
  readonly kind: number;
  readonly namespaceId: number;
  readonly flags: number;
  readonly labelId: number;
}
const CGROUP = {
  kind: fieldOffset('mg_cgroup', 'kind', 4),
  namespaceId: fieldOffset('mg_cgroup', 'namespace_id', 4),
  flags: fieldOffset('mg_cgroup', 'flags', 4),
  labelId: fieldOffset('mg_cgroup', 'label_id', 4),
};
export function encodeCgroupKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(id);
  return b;
}
export function encodeCgroup(c: KernelCgroup): Buffer {
  const b = Buffer.alloc(sizeOf('mg_cgroup'));
  b.writeUInt32LE(c.kind, CGROUP.kind);
  b.writeUInt32LE(c.namespaceId, CGROUP.namespaceId);
  b.writeUInt32LE(c.flags, CGROUP.flags);
  b.writeUInt32LE(c.labelId, CGROUP.labelId);
  return b;
}
export function decodeCgroup(b: Buffer): KernelCgroup {
  return {
    kind: b.readUInt32LE(CGROUP.kind),
    namespaceId: b.readUInt32LE(CGROUP.namespaceId),
    flags: b.readUInt32LE(CGROUP.flags),
    labelId: b.readUInt32LE(CGROUP.labelId),
  };
}

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function encodeLabel(text: string): Buffer {
  const b = Buffer.alloc(LABEL_TEXT_SIZE);
  const n = Buffer.byteLength(text, 'utf8');
  if (n >= LABEL_TEXT_SIZE)
    throw new MeshgateError(
      'MG_VALUE_OUT_OF_RANGE',
      `label is ${n} bytes, the map holds ${LABEL_TEXT_SIZE - 1}: ${text.slice(0, 60)}…`,
    );
  b.write(text, 'utf8');
  return b;
}
export function decodeLabel(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

export interface KernelEvent {
  readonly tsNs: bigint;
  readonly cgroupId: bigint;
  readonly podCgroupId: bigint;
  readonly address: Uint8Array;
  readonly port: number;
  readonly proto: number;
  readonly verdict: number;
  readonly rule: number;
  readonly hook: number;
  readonly labelId: number;
  readonly pid: number;
  readonly uid: number;
}
const EVENT = {
  ts_ns: fieldOffset('mg_event', 'ts_ns', 8),
  cgroup_id: fieldOffset('mg_event', 'cgroup_id', 8),
  pod_cgroup_id: fieldOffset('mg_event', 'pod_cgroup_id', 8),
  addr: fieldOffset('mg_event', 'addr', 16),
  port: fieldOffset('mg_event', 'port', 2),
  proto: fieldOffset('mg_event', 'proto', 1),
  verdict: fieldOffset('mg_event', 'verdict', 1),
  rule: fieldOffset('mg_event', 'rule', 1),
  hook: fieldOffset('mg_event', 'hook', 1),
  pad0: fieldOffset('mg_event', 'pad0', 2),
  label_id: fieldOffset('mg_event', 'label_id', 4),
  pid: fieldOffset('mg_event', 'pid', 4),
  uid: fieldOffset('mg_event', 'uid', 4),
  pad1: fieldOffset('mg_event', 'pad1', 4),
};
export const EVENT_SIZE = sizeOf('mg_event');
export function decodeEvent(b: Buffer): KernelEvent {
  return {
    tsNs: b.readBigUInt64LE(EVENT.ts_ns),
    cgroupId: b.readBigUInt64LE(EVENT.cgroup_id),
    podCgroupId: b.readBigUInt64LE(EVENT.pod_cgroup_id),
    address: Uint8Array.from(b.subarray(EVENT.addr, EVENT.addr + 16)),
    port: b.readUInt16LE(EVENT.port),
    proto: b.readUInt8(EVENT.proto),
    verdict: b.readUInt8(EVENT.verdict),
    rule: b.readUInt8(EVENT.rule),
    hook: b.readUInt8(EVENT.hook),
    labelId: b.readUInt32LE(EVENT.label_id),
    pid: b.readUInt32LE(EVENT.pid),
    uid: b.readUInt32LE(EVENT.uid),
  };
}
