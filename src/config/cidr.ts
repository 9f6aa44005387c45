// CIDR parsing and normalisation. The common forms are read numerically (cidrNumeric.ts);
// everything else goes through ipaddr.js, with the strictness a policy needs (no
// octal/hex/short IPv4 forms, no zone ids).
import ipaddr from 'ipaddr.js';
import { FALLBACK, formatCidr, newCidrBytes, parseCidrBytes, parseIPv4Cidr, type CidrBytes } from './cidrNumeric.js';

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
  | {
      readonly ok: false;
      readonly code: 'MG_CONFIG_BAD_CIDR' | 'MG_CONFIG_PREFIX_OUT_OF_RANGE';
      readonly reason: string;
    };

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
    if (/^::[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(text))
      return `${NOT_AN_ADDRESS} (the deprecated IPv4-compatible form ::a.b.c.d is ambiguous: write a.b.c.d or ::ffff:a.b.c.d)`;
    return parseOrUndefined(() => ipaddr.IPv6.parse(text)) ?? NOT_AN_ADDRESS;
  }
  // One parse per item (no isValid-then-parse): configs may hold 100,000 of these.
  const address = FOUR_DECIMAL_OCTETS.test(text) ? parseOrUndefined(() => ipaddr.IPv4.parse(text)) : undefined;
  if (address !== undefined) return address;
  // Only to explain the refusal; the character check keeps ipaddr's costly throwing path away
  // from text that cannot be any IPv4 form.
  if (/^[0-9a-fx.]+$/i.test(text) && ipaddr.IPv4.isValid(text))
    return `${NOT_AN_ADDRESS} (IPv4 must be four decimal octets without leading zeros)`;
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
  Array.from({ length: 33 }, (_, prefix) =>
    Object.freeze(ipaddr.IPv4.subnetMaskFromPrefixLength(prefix).toByteArray()),
  ),
);
const IPV6_MASKS: readonly (readonly number[])[] = Object.freeze(
  Array.from({ length: 129 }, (_, prefix) =>
    Object.freeze(ipaddr.IPv6.subnetMaskFromPrefixLength(prefix).toByteArray()),
  ),
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
  const fast = newCidrBytes();
  if (parseCidrBytes(input, fast) !== FALLBACK) {
    const bytes = Array.from(fast.family === 4 ? fast.bytes.subarray(12) : fast.bytes);
    const text = fast.canonical ? input : formatCidr(fast);
    return { ok: true, cidr: { family: fast.family, bytes, prefix: fast.prefix, text }, hadHostBits: fast.hadHostBits };
  }
  return parseCidrSlowly(input);
}

/** The ipaddr.js path: every form, and the precise reason for a refusal. */
export function parseCidrSlowly(input: string): CidrParse {
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
  if (unmapped !== undefined)
    return {
      ok: true,
      cidr: makeCidr(ipaddr.fromByteArray(unmapped.bytes), unmapped.bytes, unmapped.prefix),
      hadHostBits,
    };
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
      onIssue({
        code: 'MG_WARN_DUPLICATE',
        index,
        value: item,
        reason: `duplicates item [${first}] (both are ${text}); merged`,
      });
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

/**
 * Below this many items a comparison sort is cheaper than radix passes, each of which walks 65,536
 * counters: a short list then costs almost nothing, and does not make the radix pass hot enough for
 * V8 to optimise it (which brings 3.7 MB of optimising compiler into the idle agent, tiering.ts).
 */
const RADIX_MIN_ITEMS = 1024;

/** The radix passes' order, as a comparison: words firstWord..7, then the prefix length, then list order. */
function compareNumeric(words: Uint16Array, prefixes: Uint8Array, firstWord: number, a: number, b: number): number {
  for (let w = firstWord; w < 8; w++) {
    const d = words[a * 8 + w]! - words[b * 8 + w]!;
    if (d !== 0) return d;
  }
  return prefixes[a]! - prefixes[b]! || a - b;
}

/**
 * One stable LSD radix pass over order[start, end): by words[i * stride + word]
 * (16 bits), or by prefixes[i] when word is -1.
 */
function radixPass(
  order: Uint32Array,
  start: number,
  end: number,
  scratch: Uint32Array,
  counts: Uint32Array,
  words: Uint16Array,
  prefixes: Uint8Array,
  word: number,
): void {
  counts.fill(0);
  if (word < 0) {
    for (let k = start; k < end; k++) counts[prefixes[order[k]!]! + 1]!++;
  } else {
    for (let k = start; k < end; k++) counts[words[order[k]! * 8 + word]! + 1]!++;
  }
  for (let d = 1; d < counts.length; d++) counts[d]! += counts[d - 1]!;
  if (word < 0) {
    for (let k = start; k < end; k++) {
      const i = order[k]!;
      scratch[counts[prefixes[i]!]!++] = i;
    }
  } else {
    for (let k = start; k < end; k++) {
      const i = order[k]!;
      scratch[counts[words[i * 8 + word]!]!++] = i;
    }
  }
  order.set(scratch.subarray(0, end - start), start);
}

/**
 * normaliseCidrList for long lists, with no object per item: the same issues in
 * the same order, and the canonical texts sorted as compareCidrs sorts them
 * (IPv4 before IPv6, then address, then prefix length). Items are read
 * numerically (cidrNumeric.ts), sorted with a stable radix sort, and merged
 * when equal; an item already in canonical form is returned as the very string
 * given.
 */
export function normaliseCidrTexts(items: readonly unknown[], onIssue: (issue: CidrListIssue) => void): string[] {
  const n = items.length;
  const words = new Uint16Array(n * 8); // the address as 8 big-endian 16-bit words
  const prefixes = new Uint8Array(n);
  const family = new Uint8Array(n); // 0: refused, 4 or 6
  const texts = new Map<number, string>(); // canonical text by index, when not the item itself
  const issues: Array<{ index: number; issue: CidrListIssue }> = [];
  const r: CidrBytes = newCidrBytes();
  let v4 = 0;
  for (let i = 0; i < n; i++) {
    const item = items[i];
    if (typeof item !== 'string') {
      issues.push({
        index: i,
        issue: { code: 'MG_CONFIG_BAD_CIDR', index: i, value: item, reason: 'is not a CIDR string' },
      });
      continue;
    }
    if (parseIPv4Cidr(item, r)) {
      if (!r.canonical)
        texts.set(i, `${r.v4 >>> 24}.${(r.v4 >>> 16) & 255}.${(r.v4 >>> 8) & 255}.${r.v4 & 255}/${r.prefix}`);
      if (r.hadHostBits)
        issues.push({
          index: i,
          issue: {
            code: 'MG_WARN_HOST_BITS',
            index: i,
            value: item,
            reason: `has host bits set; normalised to ${texts.get(i)}`,
          },
        });
      family[i] = 4;
      prefixes[i] = r.prefix;
      v4++;
      words[i * 8 + 5] = 0xffff; // ::ffff:a.b.c.d, as the mapped form below
      words[i * 8 + 6] = r.v4 >>> 16;
      words[i * 8 + 7] = r.v4 & 0xffff;
      continue;
    }
    if (parseCidrBytes(item, r) === FALLBACK) {
      const parsed = parseCidrSlowly(item);
      if (!parsed.ok) {
        issues.push({ index: i, issue: { code: parsed.code, index: i, value: item, reason: parsed.reason } });
        continue;
      }
      const c = parsed.cidr;
      r.bytes.fill(0);
      if (c.family === 4) r.bytes.set([0xff, 0xff, ...c.bytes], 10);
      else r.bytes.set(c.bytes);
      r.family = c.family;
      r.prefix = c.prefix;
      r.hadHostBits = parsed.hadHostBits;
      texts.set(i, c.text);
    } else if (!r.canonical) {
      texts.set(i, formatCidr(r));
    }
    if (r.hadHostBits)
      issues.push({
        index: i,
        issue: {
          code: 'MG_WARN_HOST_BITS',
          index: i,
          value: item,
          reason: `has host bits set; normalised to ${texts.get(i)}`,
        },
      });
    family[i] = r.family;
    prefixes[i] = r.prefix;
    if (r.family === 4) v4++;
    const b = r.bytes;
    for (let w = 0; w < 8; w++) words[i * 8 + w] = (b[w * 2]! << 8) | b[w * 2 + 1]!;
  }
  // IPv4 first, then IPv6, each in list order before the stable passes.
  const order = new Uint32Array(n);
  let accepted = 0;
  for (let i = 0; i < n; i++) if (family[i] === 4) order[accepted++] = i;
  const v6Start = accepted;
  for (let i = 0; i < n; i++) if (family[i] === 6) order[accepted++] = i;
  const scratch = new Uint32Array(n);
  const counts = new Uint32Array(65537);
  const sortRange = (start: number, end: number, firstWord: number): void => {
    if (end - start < 2) return;
    if (end - start < RADIX_MIN_ITEMS) {
      order.subarray(start, end).sort((a, b) => compareNumeric(words, prefixes, firstWord, a, b));
      return;
    }
    radixPass(order, start, end, scratch, counts, words, prefixes, -1);
    for (let w = 7; w >= firstWord; w--) radixPass(order, start, end, scratch, counts, words, prefixes, w);
  };
  sortRange(0, v4, 6); // IPv4's words 0..5 are the same ::ffff prefix for all
  sortRange(v6Start, accepted, 0);

  const out: string[] = [];
  let previous = -1;
  for (let k = 0; k < accepted; k++) {
    const i = order[k]!;
    if (
      previous >= 0 &&
      prefixes[i] === prefixes[previous] &&
      words[i * 8 + 7] === words[previous * 8 + 7] &&
      family[i] === family[previous] &&
      sameWords(words, i, previous)
    ) {
      // Stable order: `previous` is the first item with this value.
      const text = texts.get(i) ?? (items[i] as string);
      issues.push({
        index: i,
        issue: {
          code: 'MG_WARN_DUPLICATE',
          index: i,
          value: items[i],
          reason: `duplicates item [${previous}] (both are ${text}); merged`,
        },
      });
      continue;
    }
    previous = i;
    out.push(texts.get(i) ?? (items[i] as string));
  }
  // Reported in list order, as normaliseCidrList does (an item's own issue before its duplicate warning).
  issues.sort((a, b) => a.index - b.index);
  for (const { issue } of issues) onIssue(issue);
  return out;
}

function sameWords(words: Uint16Array, a: number, b: number): boolean {
  for (let w = 0; w < 8; w++) if (words[a * 8 + w] !== words[b * 8 + w]) return false;
  return true;
}
