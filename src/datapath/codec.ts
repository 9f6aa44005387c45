// Encoders and decoders for every map key and value. Offsets and sizes are read
// from abi.generated.ts (the object's BTF), never written here as literals.
import { FALLBACK, newCidrBytes, parseCidrBytes } from '../config/cidr-numeric.js';
import ipaddr from 'ipaddr.js';
import { ENUMS, STRUCTS, type StructName } from './abi.generated.js';
import { MeshgateError } from '../errors.js';

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
  .map(([name]) => name.replace(/^MG_RULE_/, '').toLowerCase().replace(/_/g, '-'));

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

const K = {
  prefixlen: offsetOf('mg_lpm_key', 'prefixlen'),
  slot: offsetOf('mg_lpm_key', 'slot'),
  table: offsetOf('mg_lpm_key', 'table'),
  proto: offsetOf('mg_lpm_key', 'proto'),
  port: offsetOf('mg_lpm_key', 'port'),
  namespaceId: offsetOf('mg_lpm_key', 'namespace_id'),
  addr: offsetOf('mg_lpm_key', 'addr'),
};
export const TRIE_KEY_SIZE = sizeOf('mg_lpm_key');
export const TRIE_VALUE_SIZE = sizeOf('mg_lpm_value');

export function encodeTrieKey(k: TrieKey, out: Buffer = Buffer.alloc(TRIE_KEY_SIZE), at = 0): Buffer {
  out.fill(0, at, at + TRIE_KEY_SIZE);
  out.writeUInt32LE(LPM_HEADER_BITS + k.prefix.bits, at + K.prefixlen);
  out.writeUInt8(k.slot, at + K.slot);
  out.writeUInt8(TABLE_IDS[k.table], at + K.table);
  out.writeUInt8(k.proto, at + K.proto);
  out.writeUInt16LE(k.port, at + K.port);
  out.writeUInt32LE(k.namespaceId, at + K.namespaceId);
  out.set(k.prefix.bytes, at + K.addr);
  return out;
}

export function decodeTrieKey(buf: Buffer, at = 0): TrieKey {
  const table = TABLE_NAMES.get(buf.readUInt8(at + K.table));
  if (!table) throw new MeshgateError('MG_MAP_ENTRY_UNDECODABLE', `mg_policy_trie key has unknown table ${buf.readUInt8(at + K.table)}`);
  return {
    slot: buf.readUInt8(at + K.slot),
    table,
    proto: buf.readUInt8(at + K.proto),
    port: buf.readUInt16LE(at + K.port),
    namespaceId: buf.readUInt32LE(at + K.namespaceId),
    prefix: {
      bytes: Uint8Array.from(buf.subarray(at + K.addr, at + K.addr + 16)),
      bits: buf.readUInt32LE(at + K.prefixlen) - LPM_HEADER_BITS,
    },
  };
}

/** A lookup key for the full destination address (as the kernel builds it). */
export function trieLookupKey(k: Omit<TrieKey, 'prefix'>, address: Uint8Array): Buffer {
  return encodeTrieKey({ ...k, prefix: { bytes: address, bits: 128 } });
}

const V = { labelId: offsetOf('mg_lpm_value', 'label_id') };
export function encodeTrieValue(labelId: number, out: Buffer = Buffer.alloc(TRIE_VALUE_SIZE), at = 0): Buffer {
  out.fill(0, at, at + TRIE_VALUE_SIZE);
  out.writeUInt32LE(labelId, at + V.labelId);
  return out;
}
export const decodeTrieValue = (buf: Buffer, at = 0): { labelId: number } => ({ labelId: buf.readUInt32LE(at + V.labelId) });

const P = { port: offsetOf('mg_port_key', 'port'), slot: offsetOf('mg_port_key', 'slot') };
export const PORT_KEY_SIZE = sizeOf('mg_port_key');
export function encodePortKey(slot: number, port: number): Buffer {
  const b = Buffer.alloc(PORT_KEY_SIZE);
  b.writeUInt16LE(port, P.port);
  b.writeUInt8(slot, P.slot);
  return b;
}
export const decodePortKey = (b: Buffer): { slot: number; port: number } => ({ slot: b.readUInt8(P.slot), port: b.readUInt16LE(P.port) });

export interface KernelConfig {
  readonly flags: number;
  readonly proxyPort: number;
  readonly blockedAction: number;
  readonly unknownPodPolicy: number;
  readonly proxyUid: number;
  readonly eventMask: number;
  readonly generation: bigint;
}
const C = {
  flags: offsetOf('mg_config', 'flags'),
  proxyPort: offsetOf('mg_config', 'proxy_port'),
  blockedAction: offsetOf('mg_config', 'blocked_action'),
  unknownPodPolicy: offsetOf('mg_config', 'unknown_pod_policy'),
  proxyUid: offsetOf('mg_config', 'proxy_uid'),
  eventMask: offsetOf('mg_config', 'event_mask'),
  generation: offsetOf('mg_config', 'generation'),
};
export function encodeConfig(c: KernelConfig): Buffer {
  const b = Buffer.alloc(sizeOf('mg_config'));
  b.writeUInt32LE(c.flags, C.flags);
  b.writeUInt16LE(c.proxyPort, C.proxyPort);
  b.writeUInt8(c.blockedAction, C.blockedAction);
  b.writeUInt8(c.unknownPodPolicy, C.unknownPodPolicy);
  b.writeUInt32LE(c.proxyUid, C.proxyUid);
  b.writeUInt32LE(c.eventMask, C.eventMask);
  b.writeBigUInt64LE(c.generation, C.generation);
  return b;
}
export function decodeConfig(b: Buffer): KernelConfig {
  return {
    flags: b.readUInt32LE(C.flags),
    proxyPort: b.readUInt16LE(C.proxyPort),
    blockedAction: b.readUInt8(C.blockedAction),
    unknownPodPolicy: b.readUInt8(C.unknownPodPolicy),
    proxyUid: b.readUInt32LE(C.proxyUid),
    eventMask: b.readUInt32LE(C.eventMask),
    generation: b.readBigUInt64LE(C.generation),
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
}
const S = {
  activeSlot: offsetOf('mg_state', 'active_slot'),
  cgroupWalkStart: offsetOf('mg_state', 'cgroup_walk_start'),
  eventsPerSec: offsetOf('mg_state', 'events_per_sec'),
  eventsBurst: offsetOf('mg_state', 'events_burst'),
  flags: offsetOf('mg_state', 'flags'),
};
export function encodeState(s: KernelState): Buffer {
  const b = Buffer.alloc(sizeOf('mg_state'));
  b.writeUInt32LE(s.activeSlot, S.activeSlot);
  b.writeUInt32LE(s.cgroupWalkStart, S.cgroupWalkStart);
  b.writeUInt32LE(s.eventsPerSec, S.eventsPerSec);
  b.writeUInt32LE(s.eventsBurst, S.eventsBurst);
  b.writeUInt32LE(s.recordFlows === false ? 0 : STATE_FLAG.MG_STATE_RECORD_FLOWS, S.flags);
  return b;
}
export function decodeState(b: Buffer): KernelState {
  return {
    activeSlot: b.readUInt32LE(S.activeSlot),
    cgroupWalkStart: b.readUInt32LE(S.cgroupWalkStart),
    eventsPerSec: b.readUInt32LE(S.eventsPerSec),
    eventsBurst: b.readUInt32LE(S.eventsBurst),
    recordFlows: Boolean(b.readUInt32LE(S.flags) & STATE_FLAG.MG_STATE_RECORD_FLOWS),
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
}
const AS = {
  lastApply: offsetOf('mg_agent_status', 'last_apply_unix_ms'),
  lastReconcile: offsetOf('mg_agent_status', 'last_reconcile_unix_ms'),
  generation: offsetOf('mg_agent_status', 'generation'),
  pid: offsetOf('mg_agent_status', 'agent_pid'),
  mode: offsetOf('mg_agent_status', 'mode'),
  total: offsetOf('mg_agent_status', 'objects_total'),
  invalid: offsetOf('mg_agent_status', 'objects_invalid'),
};
const AGENT_MODE = ENUMS.mg_agent_mode;
export function encodeAgentStatus(s: AgentStatus): Buffer {
  const b = Buffer.alloc(sizeOf('mg_agent_status'));
  b.writeBigUInt64LE(BigInt(Math.round(s.lastApplyUnixMs)), AS.lastApply);
  b.writeBigUInt64LE(BigInt(Math.round(s.lastReconcileUnixMs)), AS.lastReconcile);
  b.writeBigUInt64LE(s.generation, AS.generation);
  b.writeUInt32LE(s.agentPid, AS.pid);
  b.writeUInt32LE(s.mode === 'standalone' ? AGENT_MODE.MG_AGENT_STANDALONE : s.mode === 'cluster' ? AGENT_MODE.MG_AGENT_CLUSTER : 0, AS.mode);
  b.writeUInt32LE(s.objectsTotal, AS.total);
  b.writeUInt32LE(s.objectsInvalid, AS.invalid);
  return b;
}
export function decodeAgentStatus(b: Buffer): AgentStatus {
  const mode = b.readUInt32LE(AS.mode);
  return {
    lastApplyUnixMs: Number(b.readBigUInt64LE(AS.lastApply)),
    lastReconcileUnixMs: Number(b.readBigUInt64LE(AS.lastReconcile)),
    generation: b.readBigUInt64LE(AS.generation),
    agentPid: b.readUInt32LE(AS.pid),
    mode: mode === AGENT_MODE.MG_AGENT_STANDALONE ? 'standalone' : mode === AGENT_MODE.MG_AGENT_CLUSTER ? 'cluster' : 'none',
    objectsTotal: b.readUInt32LE(AS.total),
    objectsInvalid: b.readUInt32LE(AS.invalid),
  };
}

const NK = { namespaceId: offsetOf('mg_namespace_key', 'namespace_id'), slot: offsetOf('mg_namespace_key', 'slot') };
const NV = { blockedAction: offsetOf('mg_namespace', 'blocked_action') };
export function encodeNamespaceKey(slot: number, namespaceId: number): Buffer {
  const b = Buffer.alloc(sizeOf('mg_namespace_key'));
  b.writeUInt32LE(namespaceId, NK.namespaceId);
  b.writeUInt8(slot, NK.slot);
  return b;
}
export const decodeNamespaceKey = (b: Buffer): { slot: number; namespaceId: number } =>
  ({ slot: b.readUInt8(NK.slot), namespaceId: b.readUInt32LE(NK.namespaceId) });
export function encodeNamespace(blockedAction: number): Buffer {
  const b = Buffer.alloc(sizeOf('mg_namespace'));
  b.writeUInt8(blockedAction, NV.blockedAction);
  return b;
}
export const decodeNamespace = (b: Buffer): { blockedAction: number } => ({ blockedAction: b.readUInt8(NV.blockedAction) });

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
const FK = {
  podCgroupId: offsetOf('mg_flow_key', 'pod_cgroup_id'),
  addr: offsetOf('mg_flow_key', 'addr'),
  port: offsetOf('mg_flow_key', 'port'),
  proto: offsetOf('mg_flow_key', 'proto'),
};
const FV = {
  lastSeenNs: offsetOf('mg_flow', 'last_seen_ns'),
  count: offsetOf('mg_flow', 'count'),
  generation: offsetOf('mg_flow', 'generation'),
  labelId: offsetOf('mg_flow', 'label_id'),
  uid: offsetOf('mg_flow', 'uid'),
  verdict: offsetOf('mg_flow', 'verdict'),
  rule: offsetOf('mg_flow', 'rule'),
  hook: offsetOf('mg_flow', 'hook'),
};
export function decodeFlow(key: Buffer, value: Buffer): KernelFlow {
  return {
    podCgroupId: key.readBigUInt64LE(FK.podCgroupId),
    address: Uint8Array.from(key.subarray(FK.addr, FK.addr + 16)),
    port: key.readUInt16LE(FK.port),
    proto: key.readUInt8(FK.proto),
    lastSeenNs: value.readBigUInt64LE(FV.lastSeenNs),
    count: value.readBigUInt64LE(FV.count),
    generation: value.readBigUInt64LE(FV.generation),
    labelId: value.readUInt32LE(FV.labelId),
    uid: value.readUInt32LE(FV.uid),
    verdict: value.readUInt8(FV.verdict),
    rule: value.readUInt8(FV.rule),
    hook: value.readUInt8(FV.hook),
  };
}

const T = { eventMask: offsetOf('mg_trace', 'event_mask'), untilNs: offsetOf('mg_trace', 'until_ns') };
export function encodeTrace(eventMask: number, untilNs: bigint): Buffer {
  const b = Buffer.alloc(sizeOf('mg_trace'));
  b.writeUInt32LE(eventMask, T.eventMask);
  b.writeBigUInt64LE(untilNs, T.untilNs);
  return b;
}

export interface KernelCgroup {
  readonly kind: number;
  readonly namespaceId: number;
  readonly flags: number;
  readonly labelId: number;
}
const G = {
  kind: offsetOf('mg_cgroup', 'kind'),
  namespaceId: offsetOf('mg_cgroup', 'namespace_id'),
  flags: offsetOf('mg_cgroup', 'flags'),
  labelId: offsetOf('mg_cgroup', 'label_id'),
};
export function encodeCgroupKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(id);
  return b;
}
export function encodeCgroup(c: KernelCgroup): Buffer {
  const b = Buffer.alloc(sizeOf('mg_cgroup'));
  b.writeUInt32LE(c.kind, G.kind);
  b.writeUInt32LE(c.namespaceId, G.namespaceId);
  b.writeUInt32LE(c.flags, G.flags);
  b.writeUInt32LE(c.labelId, G.labelId);
  return b;
}
export function decodeCgroup(b: Buffer): KernelCgroup {
  return {
    kind: b.readUInt32LE(G.kind),
    namespaceId: b.readUInt32LE(G.namespaceId),
    flags: b.readUInt32LE(G.flags),
    labelId: b.readUInt32LE(G.labelId),
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
  if (n >= LABEL_TEXT_SIZE) throw new MeshgateError('MG_VALUE_OUT_OF_RANGE', `label is ${n} bytes, the map holds ${LABEL_TEXT_SIZE - 1}: ${text.slice(0, 60)}…`);
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
const E = Object.fromEntries(
  Object.entries(STRUCTS.mg_event.fields).map(([name, f]) => [name, f.offset]),
) as Record<keyof typeof STRUCTS.mg_event.fields, number>;
export const EVENT_SIZE = sizeOf('mg_event');
export function decodeEvent(b: Buffer): KernelEvent {
  return {
    tsNs: b.readBigUInt64LE(E.ts_ns),
    cgroupId: b.readBigUInt64LE(E.cgroup_id),
    podCgroupId: b.readBigUInt64LE(E.pod_cgroup_id),
    address: Uint8Array.from(b.subarray(E.addr, E.addr + 16)),
    port: b.readUInt16LE(E.port),
    proto: b.readUInt8(E.proto),
    verdict: b.readUInt8(E.verdict),
    rule: b.readUInt8(E.rule),
    hook: b.readUInt8(E.hook),
    labelId: b.readUInt32LE(E.label_id),
    pid: b.readUInt32LE(E.pid),
    uid: b.readUInt32LE(E.uid),
  };
}
