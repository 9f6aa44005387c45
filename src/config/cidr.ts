// CIDR parsing and normalisation. All address arithmetic goes through ipaddr.js; this module
// only adds the strictness a policy needs (no octal/hex/short IPv4 forms, no zone ids).
import ipaddr from 'ipaddr.js';

export interface Cidr {
  readonly family: 4 | 6;
  /** Network address bytes (host bits cleared), network order. */
  readonly bytes: readonly number[];
  readonly prefix: number;
  /** Canonical text: dotted quad or RFC 5952, then "/prefix". */
  readonly text: string;
}

export type CidrParse =
  | { readonly ok: true; readonly cidr: Cidr; readonly hadHostBits: boolean }
  | { readonly ok: false; readonly code: 'MG_CONFIG_BAD_CIDR' | 'MG_CONFIG_PREFIX_OUT_OF_RANGE'; readonly reason: string };

const NOT_AN_ADDRESS = 'is not an IPv4 or IPv6 address or CIDR';

function badCidr(reason: string): CidrParse {
  return { ok: false, code: 'MG_CONFIG_BAD_CIDR', reason };
}

// ipaddr.js also reads "10.1", "0x0a.0.0.1" and octal "010.0.0.1" (= 8.0.0.1): in a policy
// those are typos far more often than intent, so only four decimal octets pass.
const FOUR_DECIMAL_OCTETS = /^(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}$/;

function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | string {
  if (text.includes(':')) {
    // A zone (fe80::1%eth0) names a link, not a destination a policy can match.
    if (text.includes('%')) return `${NOT_AN_ADDRESS} (zone indexes such as %eth0 are not allowed)`;
    // ipaddr.js reads the deprecated IPv4-compatible ::a.b.c.d as the IPv4-mapped ::ffff:a.b.c.d,
    // a different address; refusing it avoids silently changing what the user wrote.
    if (/^::[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(text)) return `${NOT_AN_ADDRESS} (the deprecated IPv4-compatible form ::a.b.c.d is ambiguous: write a.b.c.d or ::ffff:a.b.c.d)`;
    return parseOrUndefined(() => ipaddr.IPv6.parse(text)) ?? NOT_AN_ADDRESS;
  }
  // One parse per item (no isValid-then-parse): configs may hold 100,000 of these.
  const address = FOUR_DECIMAL_OCTETS.test(text) ? parseOrUndefined(() => ipaddr.IPv4.parse(text)) : undefined;
  if (address !== undefined) return address;
  // Only to explain the refusal; the character check keeps ipaddr's costly throwing path away
  // from text that cannot be any IPv4 form.
  if (/^[0-9a-fx.]+$/i.test(text) && ipaddr.IPv4.isValid(text)) return `${NOT_AN_ADDRESS} (IPv4 must be four decimal octets without leading zeros)`;
  return NOT_AN_ADDRESS;
}

function parseOrUndefined<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch {
    return undefined;
  }
}

function parsePrefix(text: string | undefined, family: 4 | 6): number | CidrParse {
  const max = family === 4 ? 32 : 128;
  if (text === undefined) return max;
  const outOfRange: CidrParse = {
    ok: false,
    code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE',
    reason: `has prefix length /${text}, outside 0..${max} for IPv${family}`,
  };
  if (/^-[0-9]+$/.test(text)) return outOfRange;
  if (!/^[0-9]+$/.test(text)) return badCidr(`has prefix length "${text.slice(0, 20)}", which is not a number`);
  if (text.length > 3) return outOfRange;
  const prefix = Number(text);
  return prefix <= max ? prefix : outOfRange;
}

// Netmask bytes by prefix length, computed once (immutable) instead of per item.
const IPV4_MASKS: readonly (readonly number[])[] = Object.freeze(
  Array.from({ length: 33 }, (_, prefix) => Object.freeze(ipaddr.IPv4.subnetMaskFromPrefixLength(prefix).toByteArray())),
);
const IPV6_MASKS: readonly (readonly number[])[] = Object.freeze(
  Array.from({ length: 129 }, (_, prefix) => Object.freeze(ipaddr.IPv6.subnetMaskFromPrefixLength(prefix).toByteArray())),
);

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) is decided as IPv4 by the datapath, so it is stored as IPv4. */
function unmapIPv4(bytes: number[], prefix: number): { bytes: number[]; prefix: number } | undefined {
  if (prefix < 96) return undefined;
  const mapped = bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? { bytes: bytes.slice(12), prefix: prefix - 96 } : undefined;
}

// The longest valid form ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128") has 50 characters;
// refusing longer tokens early keeps regex work bounded on hostile input.
const MAX_CIDR_LENGTH = 64;

export function parseCidr(input: string): CidrParse {
  const text = input.trim();
  if (text.length > MAX_CIDR_LENGTH) return badCidr(NOT_AN_ADDRESS);
  const slash = text.indexOf('/');
  if (slash !== text.lastIndexOf('/')) return badCidr(NOT_AN_ADDRESS);
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const address = parseAddress(addressText);
  if (typeof address === 'string') return badCidr(address);
  const family = address.kind() === 'ipv4' ? 4 : 6;
  const prefix = parsePrefix(slash === -1 ? undefined : text.slice(slash + 1), family);
  if (typeof prefix !== 'number') return prefix;

  const written = address.toByteArray();
  const mask = (family === 4 ? IPV4_MASKS : IPV6_MASKS)[prefix] ?? [];
  const network = written.map((byte, i) => byte & (mask[i] ?? 0));
  const hadHostBits = network.some((byte, i) => byte !== written[i]);
  const unmapped = family === 6 ? unmapIPv4(network, prefix) : undefined;
  if (unmapped !== undefined) return { ok: true, cidr: makeCidr(ipaddr.fromByteArray(unmapped.bytes), unmapped.bytes, unmapped.prefix), hadHostBits };
  // The common case (no host bits) reuses the parsed address instead of building another.
  const networkAddress = hadHostBits ? ipaddr.fromByteArray(network) : address;
  return { ok: true, cidr: makeCidr(networkAddress, network, prefix), hadHostBits };
}

function makeCidr(address: ipaddr.IPv4 | ipaddr.IPv6, bytes: number[], prefix: number): Cidr {
  return { family: address.kind() === 'ipv4' ? 4 : 6, bytes, prefix, text: `${address.toString()}/${prefix}` };
}

/** IPv4 before IPv6, then by network address, then by prefix length: a stable, readable order. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) {
    const diff = (a.bytes[i] ?? 0) - (b.bytes[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return a.prefix - b.prefix;
}

/** Two CIDRs overlap exactly when one contains the other. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const left = ipaddr.fromByteArray([...a.bytes]);
  const right = ipaddr.fromByteArray([...b.bytes]);
  return left.match(right, Math.min(a.prefix, b.prefix));
}

export interface CidrListIssue {
  readonly code: 'MG_CONFIG_BAD_CIDR' | 'MG_CONFIG_PREFIX_OUT_OF_RANGE' | 'MG_WARN_HOST_BITS' | 'MG_WARN_DUPLICATE';
  /** Position in the list as written. */
  readonly index: number;
  readonly value: unknown;
  readonly reason: string;
}

/**
 * Parses each item, reports through onIssue (index = position in the list as written), and
 * returns the distinct CIDRs, sorted. Duplicates after normalisation are merged.
 */
export function normaliseCidrList(items: readonly unknown[], onIssue: (issue: CidrListIssue) => void): Cidr[] {
  const firstIndexByText = new Map<string, number>();
  const cidrs: Cidr[] = [];
  items.forEach((item, index) => {
    if (typeof item !== 'string') {
      onIssue({ code: 'MG_CONFIG_BAD_CIDR', index, value: item, reason: 'is not a CIDR string' });
      return;
    }
    const parsed = parseCidr(item);
    if (!parsed.ok) {
      onIssue({ code: parsed.code, index, value: item, reason: parsed.reason });
      return;
    }
    const { text } = parsed.cidr;
    if (parsed.hadHostBits) {
      onIssue({ code: 'MG_WARN_HOST_BITS', index, value: item, reason: `has host bits set; normalised to ${text}` });
    }
    const first = firstIndexByText.get(text);
    if (first !== undefined) {
      onIssue({ code: 'MG_WARN_DUPLICATE', index, value: item, reason: `duplicates item [${first}] (both are ${text}); merged` });
      return;
    }
    firstIndexByText.set(text, index);
    cidrs.push(parsed.cidr);
  });
  return cidrs.sort(compareCidrs);
}

/** Re-reads a canonical CIDR string produced by parseCidr (for checks on validated config). */
export function cidrFromText(text: string): Cidr | undefined {
  const parsed = parseCidr(text);
  return parsed.ok ? parsed.cidr : undefined;
}
