// Encoders and decoders of the DNS reader's maps (bpf/dns.bpf.h), and the two
// name hashes it uses. Offsets and sizes come from abi.generated.ts.
import { ENUMS, STRUCTS, type StructName } from './abi.generated.js';
import { parsePrefix } from './codec.js';
import { MeshgateError } from '../errors.js';

const field = (struct: StructName, name: string): number => {
  const f = (STRUCTS[struct].fields as Record<string, { offset: number }>)[name];
  if (!f) throw new MeshgateError('MG_ABI_MISMATCH', `ABI has no field ${struct}.${name}`);
  return f.offset;
};
const size = (struct: StructName): number => STRUCTS[struct].size;

export const DNS_LIMITS = ENUMS.mg_dns_limits;
export const DNS_HOST_KIND = ENUMS.mg_dns_host_kind;
export const DNS_STAT = ENUMS.mg_dns_stat;

/** Stat names in enum order: MG_DNS_STAT_ANSWERS_LEARNED -> 'answers_learned'. */
export const DNS_STAT_NAMES: readonly string[] = Object.entries(DNS_STAT)
  .filter(([name]) => name !== 'MG_DNS_STAT_COUNT')
  .sort((a, b) => a[1] - b[1])
  .map(([name]) => name.replace(/^MG_DNS_STAT_/, '').toLowerCase());

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/** "api.example.com" -> "\x03api\x07example\x03com" (lower-case, no root label). */
export function wireName(name: string): Buffer {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length === 0 || bytes.length > 63) throw new MeshgateError('MG_VALUE_OUT_OF_RANGE', `label "${label}" of ${name} is not 1..63 bytes`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  const wire = Buffer.concat(parts);
  if (wire.length > DNS_LIMITS.MG_DNS_NAME_MAX) throw new MeshgateError('MG_VALUE_OUT_OF_RANGE', `${name} is longer than ${DNS_LIMITS.MG_DNS_NAME_MAX} bytes in wire format`);
  return wire;
}

/** Wire format back to "api.example.com". */
export function nameFromWire(wire: Uint8Array): string {
  const labels: string[] = [];
  let i = 0;
  while (i < wire.length) {
    const n = wire[i]!;
    labels.push(Buffer.from(wire.subarray(i + 1, i + 1 + n)).toString('latin1'));
    i += 1 + n;
  }
  return labels.join('.');
}

function fnv(bytes: Uint8Array, reverse: boolean): bigint {
  let h = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) {
    h ^= BigInt(bytes[reverse ? bytes.length - 1 - i : i]!);
    h = (h * FNV_PRIME) & MASK64;
  }
  return h;
}

/** MG_DNS_HASH_FORWARD: FNV-1a 64 over the wire bytes in order (mg_dns_names keys). */
export const forwardHash = (wire: Uint8Array): bigint => fnv(wire, false);
/** MG_DNS_HASH_SUFFIX: FNV-1a 64 over the wire bytes in reverse order (mg_dns_hosts keys). */
export const suffixHash = (wire: Uint8Array): bigint => fnv(wire, true);

const HK = { hash: field('mg_dns_host_key', 'name_hash'), ns: field('mg_dns_host_key', 'namespace_id'), slot: field('mg_dns_host_key', 'slot'), kind: field('mg_dns_host_key', 'kind') };
const HV = { id: field('mg_dns_host', 'host_id'), len: field('mg_dns_host', 'name_len'), name: field('mg_dns_host', 'name') };

/** An allowlisted host as mg_dns_hosts stores it: "*.example.com" is a wildcard over example.com. */
export function encodeDnsHost(host: string, namespaceId: number, slot: number, hostId: number): { key: Buffer; value: Buffer } {
  const wildcard = host.startsWith('*.');
  const wire = wireName(wildcard ? host.slice(2) : host);
  const key = Buffer.alloc(size('mg_dns_host_key'));
  key.writeBigUInt64LE(suffixHash(wire), HK.hash);
  key.writeUInt32LE(namespaceId, HK.ns);
  key.writeUInt8(slot, HK.slot);
  key.writeUInt8(wildcard ? DNS_HOST_KIND.MG_DNS_HOST_WILDCARD : DNS_HOST_KIND.MG_DNS_HOST_EXACT, HK.kind);
  const value = Buffer.alloc(size('mg_dns_host'));
  value.writeUInt32LE(hostId, HV.id);
  value.writeUInt16LE(wire.length, HV.len);
  wire.copy(value, HV.name);
  return { key, value };
}

export const dnsHostKeySlot = (key: Buffer): number => key.readUInt8(HK.slot);
export const decodeDnsHostId = (value: Buffer): number => value.readUInt32LE(HV.id);

const PK = { id: field('mg_dns_port_key', 'host_id'), port: field('mg_dns_port_key', 'port'), proto: field('mg_dns_port_key', 'proto'), slot: field('mg_dns_port_key', 'slot') };

export function encodeDnsPortKey(hostId: number, port: number, proto: number, slot: number): Buffer {
  const key = Buffer.alloc(size('mg_dns_port_key'));
  key.writeUInt32LE(hostId, PK.id);
  key.writeUInt16LE(port, PK.port);
  key.writeUInt8(proto, PK.proto);
  key.writeUInt8(slot, PK.slot);
  return key;
}

export const decodeDnsPortKey = (key: Buffer) => ({
  hostId: key.readUInt32LE(PK.id), port: key.readUInt16LE(PK.port), proto: key.readUInt8(PK.proto), slot: key.readUInt8(PK.slot),
});

const RK = { addr: field('mg_dns_resolver_key', 'addr'), port: field('mg_dns_resolver_key', 'port') };

export function encodeResolverKey(address: string, port: number): Buffer {
  const key = Buffer.alloc(size('mg_dns_resolver_key'));
  Buffer.from(parsePrefix(address).bytes).copy(key, RK.addr);
  key.writeUInt16LE(port, RK.port);
  return key;
}

export const decodeResolverPort = (key: Buffer): number => key.readUInt16LE(RK.port);

/** "10.96.0.10", "10.96.0.10:53", "[fd00::a]:53", "fd00::a" -> address and port (default 53). */
export function parseResolver(text: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? (text.split(':').length === 2 ? /^([^:]+):(\d+)$/.exec(text) : null);
  const address = m ? m[1]! : text;
  const port = m?.[2] !== undefined ? Number(m[2]) : 53;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new MeshgateError('MG_DNS_RESOLVER_OPTIONS', `DNS server ${text}: port is not in 1..65535`);
  parsePrefix(address); // throws on a bad address
  if (address.includes('/')) throw new MeshgateError('MG_DNS_RESOLVER_OPTIONS', `DNS server ${text}: an address, not a CIDR`);
  return { address, port };
}

export interface DnsKernelConfig {
  readonly ttlFloorNs: bigint;
  readonly ttlCeilingNs: bigint;
  readonly graceNs: bigint;
  readonly learnedMax: number;
}

const C = { floor: field('mg_dns_config', 'ttl_floor_ns'), ceiling: field('mg_dns_config', 'ttl_ceiling_ns'), grace: field('mg_dns_config', 'grace_ns'), max: field('mg_dns_config', 'learned_max') };

export function encodeDnsConfig(c: DnsKernelConfig): Buffer {
  const b = Buffer.alloc(size('mg_dns_config'));
  b.writeBigUInt64LE(c.ttlFloorNs, C.floor);
  b.writeBigUInt64LE(c.ttlCeilingNs, C.ceiling);
  b.writeBigUInt64LE(c.graceNs, C.grace);
  b.writeUInt32LE(c.learnedMax, C.max);
  return b;
}

export function decodeDnsConfig(b: Buffer): DnsKernelConfig {
  return { ttlFloorNs: b.readBigUInt64LE(C.floor), ttlCeilingNs: b.readBigUInt64LE(C.ceiling), graceNs: b.readBigUInt64LE(C.grace), learnedMax: b.readUInt32LE(C.max) };
}

export interface LearnedHost {
  readonly hostId: number;
  readonly ttlS: number;
  readonly learnedNs: bigint;
  readonly expiresNs: bigint;
  readonly nameHash: bigint;
}

export interface LearnedAddress {
  readonly namespaceId: number;
  readonly address: Uint8Array;
  readonly hosts: readonly LearnedHost[];
}

const LK = { ns: field('mg_learned_key', 'namespace_id'), addr: field('mg_learned_key', 'addr') };
const LV = { hosts: field('mg_learned', 'hosts') };
const LH = { id: field('mg_learned_host', 'host_id'), ttl: field('mg_learned_host', 'ttl_s'), learned: field('mg_learned_host', 'learned_ns'), expires: field('mg_learned_host', 'expires_ns'), hash: field('mg_learned_host', 'name_hash') };
const LEARNED_HOST_SIZE = size('mg_learned_host');

export function encodeLearnedKey(namespaceId: number, address: string): Buffer {
  const key = Buffer.alloc(size('mg_learned_key'));
  key.writeUInt32LE(namespaceId, LK.ns);
  Buffer.from(parsePrefix(address).bytes).copy(key, LK.addr);
  return key;
}

export function decodeLearned(key: Buffer, value: Buffer): LearnedAddress {
  const hosts: LearnedHost[] = [];
  for (let i = 0; i < DNS_LIMITS.MG_DNS_LEARNED_HOSTS; i++) {
    const at = LV.hosts + i * LEARNED_HOST_SIZE;
    const hostId = value.readUInt32LE(at + LH.id);
    if (!hostId) continue;
    hosts.push({
      hostId,
      ttlS: value.readUInt32LE(at + LH.ttl),
      learnedNs: value.readBigUInt64LE(at + LH.learned),
      expiresNs: value.readBigUInt64LE(at + LH.expires),
      nameHash: value.readBigUInt64LE(at + LH.hash),
    });
  }
  return { namespaceId: key.readUInt32LE(LK.ns), address: Uint8Array.from(key.subarray(LK.addr, LK.addr + 16)), hosts };
}

const NV = { len: field('mg_dns_name', 'len'), name: field('mg_dns_name', 'name') };

export function encodeNameKey(hash: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(hash);
  return b;
}

export function decodeDnsName(value: Buffer): string {
  const len = Math.min(value.readUInt32LE(NV.len), DNS_LIMITS.MG_DNS_NAME_MAX);
  return nameFromWire(value.subarray(NV.name, NV.name + len));
}

/** Display text of an allowlisted host, stored in mg_labels; its id is the host id. */
export function hostLabel(namespace: string, host: string): string {
  return JSON.stringify({ kind: 'host', namespace, host });
}
