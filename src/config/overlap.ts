// SPEC §1.4: an allowlisted address inside a mesh CIDR is warned about, because rule 4 (mesh)
// is checked before rule 6 (allowlist): the mesh wins there.
import { ALLOWLIST_KEY } from './allowlist.js';
import { type Cidr, cidrFromText } from './cidr.js';
import { FALLBACK, newCidrBytes, parseCidrBytes, parseIPv4Cidr } from './cidrNumeric.js';
import { makeIssue } from './issues.js';
import type { AllowlistEntry, ConfigIssue, GlobalConfig, ObjectRef } from './types.js';

export const GLOBAL_ALLOWLIST_NAMESPACE = '';

interface NamespaceAllowlist {
  readonly ref: ObjectRef;
  readonly entries: readonly AllowlistEntry[];
}

const MESH_DECIDES = 'the mesh rule decides there (TCP is redirected to the proxy, UDP passes), not the allowlist';

function overlapReason(address: Cidr, mesh: Cidr): string {
  return address.prefix >= mesh.prefix
    ? `is inside mesh CIDR ${mesh.text}: ${MESH_DECIDES}`
    : `contains mesh CIDR ${mesh.text}: inside it ${MESH_DECIDES}`;
}

/** A CIDR as 32 hex digits of its 16-byte (IPv4-mapped) network address and its prefix length in that space. */
interface HexCidr {
  readonly hex: string;
  readonly bits: number;
  /** IPv4 and IPv6 CIDRs never overlap (as cidrsOverlap says), even ::/0 and 10.0.0.0/8. */
  readonly family: 4 | 6;
}

function hexCidr(text: string): HexCidr | undefined {
  const r = newCidrBytes();
  const bits = parseCidrBytes(text, r);
  if (bits === FALLBACK) {
    const slow = cidrFromText(text);
    if (!slow) return undefined;
    const bytes = slow.family === 4 ? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...slow.bytes] : [...slow.bytes];
    return {
      hex: Buffer.from(bytes).toString('hex'),
      bits: slow.family === 4 ? 96 + slow.prefix : slow.prefix,
      family: slow.family,
    };
  }
  return { hex: Buffer.from(r.bytes).toString('hex'), bits, family: r.family };
}

/** The first `bits` bits of a 32-digit hex address, the rest zero. */
function maskHex(hex: string, bits: number): string {
  const buf = Buffer.from(hex, 'hex');
  for (let i = 0; i < 16; i++) {
    const keep = bits - i * 8;
    if (keep < 8) buf[i] = keep <= 0 ? 0 : buf[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return buf.toString('hex');
}

/**
 * The mesh CIDRs indexed for overlap queries: by (network, prefix) for the ones
 * that contain an address, and sorted by network for the ones inside it. A
 * query costs a lookup per distinct mesh prefix length plus a binary search,
 * not a scan of the mesh list (which can hold 100,000 CIDRs).
 */
class MeshIndex {
  private readonly byKey = new Map<string, number>();
  private readonly sorted: Array<HexCidr & { index: number }> = [];
  private readonly lengths: number[];
  /** IPv4, numerically: (network * 64 + prefix) -> index, and networks sorted with their prefix and index. */
  private readonly v4ByKey = new Map<number, number>();
  private readonly v4Lengths: number[];
  private readonly v4Networks: Float64Array;
  private readonly v4Prefixes: Uint8Array;
  private readonly v4Indices: Uint32Array;

  constructor(readonly texts: readonly string[]) {
    const lengths = new Set<number>();
    const v4Lengths = new Set<number>();
    const v4: Array<[number, number, number]> = [];
    const r = newCidrBytes();
    texts.forEach((text, index) => {
      if (parseIPv4Cidr(text, r)) {
        this.v4ByKey.set(r.v4 * 64 + r.prefix, index);
        v4Lengths.add(r.prefix);
        v4.push([r.v4, r.prefix, index]);
        return;
      }
      const c = hexCidr(text);
      if (!c) return;
      if (c.family === 4) {
        const network = parseInt(c.hex.slice(24), 16);
        this.v4ByKey.set(network * 64 + (c.bits - 96), index);
        v4Lengths.add(c.bits - 96);
        v4.push([network, c.bits - 96, index]);
        return;
      }
      this.byKey.set(`${c.hex}/${c.bits}`, index);
      this.sorted.push({ ...c, index });
      lengths.add(c.bits);
    });
    this.sorted.sort((a, b) => (a.hex < b.hex ? -1 : a.hex > b.hex ? 1 : a.bits - b.bits));
    this.lengths = [...lengths].sort((a, b) => a - b);
    this.v4Lengths = [...v4Lengths].sort((a, b) => a - b);
    v4.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.v4Networks = Float64Array.from(v4, (x) => x[0]);
    this.v4Prefixes = Uint8Array.from(v4, (x) => x[1]);
    this.v4Indices = Uint32Array.from(v4, (x) => x[2]);
  }

  /** Indices (into texts) of the IPv4 mesh CIDRs that contain network/prefix or lie inside it, in texts order. */
  private overlappingV4(network: number, prefix: number): number[] {
    const found: number[] = [];
    for (const p of this.v4Lengths) {
      if (p > prefix) break;
      const masked = p === 0 ? 0 : (network & (0xffffffff << (32 - p))) >>> 0;
      const index = this.v4ByKey.get(masked * 64 + p);
      if (index !== undefined) found.push(index);
    }
    const last = network + 2 ** (32 - prefix) - 1;
    let lo = 0;
    let hi = this.v4Networks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.v4Networks[mid]! < network) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < this.v4Networks.length && this.v4Networks[k]! <= last; k++) {
      if (this.v4Prefixes[k]! > prefix) found.push(this.v4Indices[k]!);
    }
    return found.sort((x, y) => x - y);
  }

  /** Indices (into texts) of the mesh CIDRs that contain `text` or lie inside it, in texts order. */
  overlapping(text: string): number[] {
    const r = newCidrBytes();
    if (parseIPv4Cidr(text, r)) return this.overlappingV4(r.v4, r.prefix);
    const a = hexCidr(text);
    if (!a) return [];
    if (a.family === 4) return this.overlappingV4(parseInt(a.hex.slice(24), 16), a.bits - 96);
    const found: number[] = [];
    for (const bits of this.lengths) {
      if (bits > a.bits) break;
      const index = this.byKey.get(`${maskHex(a.hex, bits)}/${bits}`);
      if (index !== undefined) found.push(index);
    }
    // Inside `a`: networks from a.hex up to its last address, with a longer prefix.
    const last = Buffer.from(a.hex, 'hex');
    for (let i = 0; i < 16; i++) {
      const keep = a.bits - i * 8;
      if (keep < 8) last[i] = last[i]! | (keep <= 0 ? 0xff : 0xff >> keep);
    }
    const end = last.toString('hex');
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]!.hex < a.hex) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < this.sorted.length && this.sorted[k]!.hex <= end; k++) {
      if (this.sorted[k]!.bits > a.bits) found.push(this.sorted[k]!.index);
    }
    return found.sort((x, y) => x - y);
  }
}

/**
 * One MG_WARN_ALLOW_IN_MESH per (allowlist address, overlapping mesh CIDR). Keys of
 * `allowlists` are namespaces, '' for the global egress_allowlist. entryIndex is the entry's
 * position in the list given. Mesh CIDRs are indexed (MeshIndex), so 50,000 addresses
 * against 50,000 mesh CIDRs cost milliseconds, not a product of the two.
 */
export function overlapWarnings(
  global: GlobalConfig,
  allowlists: ReadonlyMap<string, NamespaceAllowlist>,
): ConfigIssue[] {
  const warnings: ConfigIssue[] = [];
  if (global.meshCidrs.length === 0) return warnings;
  const mesh = new MeshIndex(global.meshCidrs);
  const namespaces = [...allowlists.keys()].sort();
  for (const namespace of namespaces) {
    const allowlist = allowlists.get(namespace);
    if (allowlist === undefined) continue;
    const key = namespace === GLOBAL_ALLOWLIST_NAMESPACE ? 'egress_allowlist' : ALLOWLIST_KEY;
    allowlist.entries.forEach((entry, entryIndex) => {
      for (const text of entry.addresses) {
        const overlapping = mesh.overlapping(text);
        if (overlapping.length === 0) continue;
        const address = cidrFromText(text)!;
        for (const index of overlapping) {
          const meshCidr = cidrFromText(global.meshCidrs[index]!)!;
          const site = { ref: allowlist.ref, key, entryIndex, entryName: entry.name };
          warnings.push(
            makeIssue('MG_WARN_ALLOW_IN_MESH', site, {
              subject: 'addresses',
              value: text,
              reason: overlapReason(address, meshCidr),
            }),
          );
        }
      }
    });
  }
  return warnings;
}
