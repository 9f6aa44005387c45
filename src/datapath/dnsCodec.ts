// Encoders and decoders of the DNS reader's maps (bpf/dns.bpf.h), and the two
// name hashes it uses. Offsets and sizes come from abi.generated.ts.
import { ENUMS, STRUCTS, type StructName } from './abi.generated.js';
import { fieldOffset } from './abiFields.js';
import { parsePrefix } from './codec.js';
import { MeshgateError } from '../errors.js';

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
    if (bytes.length === 0 || bytes.length > 63)
      throw new MeshgateError('MG_VALUE_OUT_OF_RANGE', `label "${label}" of ${name} is not 1..63 bytes`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  const wire = Buffer.concat(parts);
  if (wire.length > DNS_LIMITS.MG_DNS_NAME_MAX)
    throw new MeshgateError(
      'MG_VALUE_OUT_OF_RANGE',
      `${name} is longer than ${DNS_LIMITS.MG_DNS_NAME_MAX} bytes in wire format`,
    );
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

const HOST_KEY = {
  hash: fieldOffset('mg_dns_host_key', 'name_hash', 8),
  ns: fieldOffset('mg_dns_host_key', 'namespace_id', 4),
  slot: fieldOffset('mg_dns_host_key', 'slot', 1),
  kind: fieldOffset('mg_dns_host_key', 'kind', 1),
};
const HOST_VALUE = {
  id: fieldOffset('mg_dns_host', 'host_id', 4),
  len: fieldOffset('mg_dns_host', 'name_len', 2),
  name: fieldOffset('mg_dns_host', 'name', 256),
};

/** An allowlisted host as mg_dns_hosts stores it: "*.example.com" is a wildcard over example.com. */
export function encodeDnsHost(
  host: string,
  namespaceId: number,
  slot: number,
  hostId: number,
): { key: Buffer; value: Buffer } {
  const wildcard = host.startsWith('*.');
  const wire = wireName(wildcard ? host.slice(2) : host);
  const key = Buffer.alloc(size('mg_dns_host_key'));
  key.writeBigUInt64LE(suffixHash(wire), HOST_KEY.hash);
  key.writeUInt32LE(namespaceId, HOST_KEY.ns);
  key.writeUInt8(slot, HOST_KEY.slot);
  key.writeUInt8(wildcard ? DNS_HOST_KIND.MG_DNS_HOST_WILDCARD : DNS_HOST_KIND.MG_DNS_HOST_EXACT, HOST_KEY.kind);
  const value = Buffer.alloc(size('mg_dns_host'));
  value.writeUInt32LE(hostId, HOST_VALUE.id);
  value.writeUInt16LE(wire.length, HOST_VALUE.len);
  wire.copy(value, HOST_VALUE.name);
  return { key, value };
}

export const dnsHostKeySlot = (key: Buffer): number => key.readUInt8(HOST_KEY.slot);
export const decodeDnsHostId = (value: Buffer): number => value.readUInt32LE(HOST_VALUE.id);

const PORT_KEY = {
  id: fieldOffset('mg_dns_port_key', 'host_id', 4),
  port: fieldOffset('mg_dns_port_key', 'port', 2),
  proto: fieldOffset('mg_dns_port_key', 'proto', 1),
  slot: fieldOffset('mg_dns_port_key', 'slot', 1),
};

export function encodeDnsPortKey(hostId: number, port: number, proto: number, slot: number): Buffer {
  const key = Buffer.alloc(size('mg_dns_port_key'));
  key.writeUInt32LE(hostId, PORT_KEY.id);
  key.writeUInt16LE(port, PORT_KEY.port);
  key.writeUInt8(proto, PORT_KEY.proto);
  key.writeUInt8(slot, PORT_KEY.slot);
  return key;
}

export const decodeDnsPortKey = (key: Buffer) => ({
  hostId: key.readUInt32LE(PORT_KEY.id),
  port: key.readUInt16LE(PORT_KEY.port),
  proto: key.readUInt8(PORT_KEY.proto),
  slot: key.readUInt8(PORT_KEY.slot),
});

const RESOLVER_KEY = {
  addr: fieldOffset('mg_dns_resolver_key', 'addr', 16),
  port: fieldOffset('mg_dns_resolver_key', 'port', 2),
};

export function encodeResolverKey(address: string, port: number): Buffer {
  const key = Buffer.alloc(size('mg_dns_resolver_key'));
  Buffer.from(parsePrefix(address).bytes).copy(key, RESOLVER_KEY.addr);
  key.writeUInt16LE(port, RESOLVER_KEY.port);
  return key;
}

export const decodeResolverPort = (key: Buffer): number => key.readUInt16LE(RESOLVER_KEY.port);

/** "10.96.0.10", "10.96.0.10:53", "[fd00::a]:53", "fd00::a" -> address and port (default 53). */
export function parseResolver(text: string): { address: string; port: number } {
  const m =
    /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? (text.split(':').length === 2 ? /^([^:]+):(\d+)$/.exec(text) : null);
  const address = m ? m[1]! : text;
  const port = m?.[2] !== undefined ? Number(m[2]) : 53;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new MeshgateError('MG_DNS_RESOLVER_OPTIONS', `DNS server ${text}: port is not in 1..65535`);
  parsePrefix(address); // throws on a bad address
  if (address.includes('/'))
    throw new MeshgateError('MG_DNS_RESOLVER_OPTIONS', `DNS server ${text}: an address, not a CIDR`);
  return { address, port };
}

export interface DnsKernelConfig {
  readonly ttlFloorNs: bigint;
  readonly ttlCeilingNs: bigint;
  readonly graceNs: bigint;
  readonly learnedMax: number;
}

const DNS_CONFIG = {
  floor: fieldOffset('mg_dns_config', 'ttl_floor_ns', 8),
  ceiling: fieldOffset('mg_dns_config', 'ttl_ceiling_ns', 8),
  grace: fieldOffset('mg_dns_config', 'grace_ns', 8),
  max: fieldOffset('mg_dns_config', 'learned_max', 4),
};

export function encodeDnsConfig(c: DnsKernelConfig): Buffer {
  const b = Buffer.alloc(size('mg_dns_config'));
  b.writeBigUInt64LE(c.ttlFloorNs, DNS_CONFIG.floor);
  b.writeBigUInt64LE(c.ttlCeilingNs, DNS_CONFIG.ceiling);
  b.writeBigUInt64LE(c.graceNs, DNS_CONFIG.grace);
  b.writeUInt32LE(c.learnedMax, DNS_CONFIG.max);
  return b;
}

export function decodeDnsConfig(b: Buffer): DnsKernelConfig {
  return {
    ttlFloorNs: b.readBigUInt64LE(DNS_CONFIG.floor),
    ttlCeilingNs: b.readBigUInt64LE(DNS_CONFIG.ceiling),
    graceNs: b.readBigUInt64LE(DNS_CONFIG.grace),
    learnedMax: b.readUInt32LE(DNS_CONFIG.max),
  };
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

const LEARNED_KEY = {
  ns: fieldOffset('mg_learned_key', 'namespace_id', 4),
  addr: fieldOffset('mg_learned_key', 'addr', 16),
};
const LEARNED_VALUE = { hosts: fieldOffset('mg_learned', 'hosts', 128) };
const LEARNED_HOST = {
  id: fieldOffset('mg_learned_host', 'host_id', 4),
  ttl: fieldOffset('mg_learned_host', 'ttl_s', 4),
  learned: fieldOffset('mg_learned_host', 'learned_ns', 8),
  expires: fieldOffset('mg_learned_host', 'expires_ns', 8),
  hash: fieldOffset('mg_learned_host', 'name_hash', 8),
};
const LEARNED_HOST_SIZE = size('mg_learned_host');

export function encodeLearnedKey(namespaceId: number, address: string): Buffer {
  const key = Buffer.alloc(size('mg_learned_key'));
  key.writeUInt32LE(namespaceId, LEARNED_KEY.ns);
  Buffer.from(parsePrefix(address).bytes).copy(key, LEARNED_KEY.addr);
  return key;
}

export function decodeLearned(key: Buffer, value: Buffer): LearnedAddress {
  const hosts: LearnedHost[] = [];
  for (let i = 0; i < DNS_LIMITS.MG_DNS_LEARNED_HOSTS; i++) {
    const at = LEARNED_VALUE.hosts + i * LEARNED_HOST_SIZE;
    const hostId = value.readUInt32LE(at + LEARNED_HOST.id);
    if (!hostId) continue;
    hosts.push({
      hostId,
      ttlS: value.readUInt32LE(at + LEARNED_HOST.ttl),
      learnedNs: value.readBigUInt64LE(at + LEARNED_HOST.learned),
      expiresNs: value.readBigUInt64LE(at + LEARNED_HOST.expires),
      nameHash: value.readBigUInt64LE(at + LEARNED_HOST.hash),
    });
  }
  return {
    namespaceId: key.readUInt32LE(LEARNED_KEY.ns),
    address: Uint8Array.from(key.subarray(LEARNED_KEY.addr, LEARNED_KEY.addr + 16)),
    hosts,
  };
}

const NAME_VALUE = { len: fieldOffset('mg_dns_name', 'len', 4), name: fieldOffset('mg_dns_name', 'name', 256) };

export function encodeNameKey(hash: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(hash);
  return b;
}

export function decodeDnsName(value: Buffer): string {
  const len = Math.min(value.readUInt32LE(NAME_VALUE.len), DNS_LIMITS.MG_DNS_NAME_MAX);
  return nameFromWire(value.subarray(NAME_VALUE.name, NAME_VALUE.name + len));
}

/** Display text of an allowlisted host, stored in mg_labels; its id is the host id. */
export function hostLabel(namespace: string, host: string): string {
  return JSON.stringify({ kind: 'host', namespace, host });
}
