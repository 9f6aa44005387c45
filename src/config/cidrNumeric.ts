// Numeric CIDR parsing for long lists: the common textual forms (dotted-quad
// IPv4, hex-group IPv6 with at most one "::") read with char codes into a
// 16-byte buffer, with no object per item. Anything else (odd forms, errors)
// returns FALLBACK and goes through cidr.ts's ipaddr.js path, which gives the
// precise error; a property test checks both paths agree on every input.

/** parseCidrBytes could not read the text; use the ipaddr.js path. */
export const FALLBACK = -1;

/** Scratch result of parseCidrBytes; reused between calls. */
export interface CidrBytes {
  /** 16 bytes, network order; IPv4 as ::ffff:a.b.c.d. Host bits cleared. */
  readonly bytes: Uint8Array;
  /** 4 or 6 (IPv4-mapped IPv6 with a prefix of /96 or longer is IPv4). */
  family: 4 | 6;
  /** Prefix length in the family's own space (0..32 or 0..128). */
  prefix: number;
  hadHostBits: boolean;
  /** The text as written is already the canonical form (so it can be reused as is). */
  canonical: boolean;
  /** IPv4 only (parseIPv4Cidr): the network address as an unsigned 32-bit number. */
  v4: number;
}

export function newCidrBytes(): CidrBytes {
  return { bytes: new Uint8Array(16), family: 4, prefix: 0, hadHostBits: false, canonical: false, v4: 0 };
}

const DOT = 46;
const SLASH = 47;
const COLON = 58;
const ZERO = 48;
const NINE = 57;

/** Decimal prefix after the slash at `at`: 1..3 digits, no sign. -1 when absent or not plain digits. */
function readPrefix(text: string, at: number, max: number): number {
  const end = text.length;
  if (end - at < 1 || end - at > 3) return -1;
  let n = 0;
  for (let i = at; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return -1;
    n = n * 10 + (c - ZERO);
  }
  // A leading zero ("/08") is accepted by the slow path too; it is just not canonical.
  return n <= max ? n : -1;
}

/** Clears host bits beyond `bits` (0..128) of `out`; true when any was set. */
function maskHostBits(out: Uint8Array, bits: number): boolean {
  let had = false;
  for (let i = 0; i < 16; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    const mask = keep <= 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    if ((out[i]! & ~mask) !== 0) had = true;
    out[i] = out[i]! & mask;
  }
  return had;
}

/**
 * "a.b.c.d" or "a.b.c.d/p" in one pass, without touching r.bytes: sets r.v4,
 * r.prefix, r.hadHostBits and r.canonical (family 4). False when the text is
 * anything else (the caller falls back).
 */
export function parseIPv4Cidr(text: string, r: CidrBytes): boolean {
  const length = text.length;
  let address = 0;
  let octet = 0;
  let digits = 0;
  let octets = 0;
  let canonical = true;
  let i = 0;
  for (; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      if (digits === 1 && octet === 0) return false; // "010": octal to ipaddr.js, refused by the slow path
      octet = octet * 10 + (c - ZERO);
      if (++digits > 3 || octet > 255) return false;
    } else if (c === DOT || c === SLASH) {
      if (digits === 0 || octets === 4) return false;
      address = address * 256 + octet;
      octets++;
      octet = 0;
      digits = 0;
      if (c === SLASH) break;
      if (octets === 4) return false;
    } else {
      return false;
    }
  }
  let prefix = 32;
  if (i === length) {
    if (digits === 0 || octets !== 3) return false;
    address = address * 256 + octet;
    canonical = false; // "/32" is added
  } else {
    if (octets !== 4) return false;
    const start = i + 1;
    if (length - start < 1 || length - start > 3) return false;
    prefix = 0;
    for (let k = start; k < length; k++) {
      const c = text.charCodeAt(k);
      if (c < ZERO || c > NINE) return false;
      prefix = prefix * 10 + (c - ZERO);
    }
    if (prefix > 32) return false;
    if (length - start > 1 && text.charCodeAt(start) === ZERO) canonical = false;
  }
  const network = prefix === 0 ? 0 : (address & (0xffffffff << (32 - prefix))) >>> 0;
  r.hadHostBits = network !== address;
  r.canonical = canonical && !r.hadHostBits;
  r.v4 = network;
  r.family = 4;
  r.prefix = prefix;
  return true;
}

const hexValue = (c: number): number =>
  c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;

/** Hex groups with at most one "::"; no embedded dotted IPv4 (those take the slow path). */
function parseIPv6(text: string, end: number, r: CidrBytes): boolean {
  const groups: number[] = [];
  let gap = -1; // group index where "::" stands
  let i = 0;
  if (end >= 2 && text.charCodeAt(0) === COLON && text.charCodeAt(1) === COLON) {
    gap = 0;
    i = 2;
    if (i === end) return fillIPv6(groups, gap, r);
  } else if (text.charCodeAt(0) === COLON) {
    return false;
  }
  while (i < end) {
    let value = 0;
    let digits = 0;
    while (i < end && text.charCodeAt(i) !== COLON) {
      const c = text.charCodeAt(i);
      const v = hexValue(c);
      if (v < 0) return false;
      value = value * 16 + v;
      if (++digits > 4) return false;
      i++;
    }
    if (digits === 0) return false;
    groups.push(value);
    if (i === end) break;
    i++; // the colon
    if (i < end && text.charCodeAt(i) === COLON) {
      if (gap >= 0) return false;
      gap = groups.length;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // a single trailing colon
    }
  }
  return fillIPv6(groups, gap, r);
}

function fillIPv6(groups: number[], gap: number, r: CidrBytes): boolean {
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return false;
  const out = r.bytes;
  out.fill(0);
  const tail = gap < 0 ? 0 : groups.length - gap;
  for (let g = 0; g < groups.length; g++) {
    const slot = gap >= 0 && g >= gap ? 8 - tail + (g - gap) : g;
    out[slot * 2] = groups[g]! >> 8;
    out[slot * 2 + 1] = groups[g]! & 0xff;
  }
  return true;
}

/**
 * Reads `text` ("10.0.0.0/8", "10.1.2.3", "2001:db8::/32") into `r`. Returns
 * the prefix length in the 128-bit space, or FALLBACK when the text is not
 * one of the forms read here (the caller then uses the ipaddr.js path).
 */
export function parseCidrBytes(text: string, r: CidrBytes): number {
  const slash = text.indexOf('/');
  const end = slash < 0 ? text.length : slash;
  if (end === 0 || end > 39) return FALLBACK;
  if (text.indexOf(':') >= 0) {
    if (!parseIPv6(text, end, r)) return FALLBACK;
    const prefix = slash < 0 ? 128 : readPrefix(text, slash + 1, 128);
    if (prefix < 0) return FALLBACK;
    r.hadHostBits = maskHostBits(r.bytes, prefix);
    if (prefix >= 96 && isMapped(r.bytes)) {
      r.family = 4;
      r.prefix = prefix - 96;
      r.canonical = false;
      r.v4 = ((r.bytes[12]! << 24) | (r.bytes[13]! << 16) | (r.bytes[14]! << 8) | r.bytes[15]!) >>> 0;
    } else {
      r.family = 6;
      r.prefix = prefix;
      r.canonical =
        slash >= 0 &&
        !r.hadHostBits &&
        (text.length === slash + 2 || text.charCodeAt(slash + 1) !== ZERO) &&
        formatIPv6(r.bytes) === text.slice(0, slash);
    }
    return prefix;
  }
  if (!parseIPv4Cidr(text, r)) return FALLBACK;
  setV4Bytes(r);
  return 96 + r.prefix;
}

/** r.bytes = ::ffff:r.v4 */
export function setV4Bytes(r: CidrBytes): void {
  const b = r.bytes;
  b.fill(0, 0, 10);
  b[10] = 0xff;
  b[11] = 0xff;
  b[12] = r.v4 >>> 24;
  b[13] = (r.v4 >>> 16) & 0xff;
  b[14] = (r.v4 >>> 8) & 0xff;
  b[15] = r.v4 & 0xff;
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** RFC 5952 text of 16 bytes (as ipaddr.js's toString): lower-case, the longest run of 2+ zero groups as "::". */
export function formatIPv6(b: Uint8Array): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let g = 0; g < 8; ) {
    if (b[g * 2] === 0 && b[g * 2 + 1] === 0) {
      let e = g;
      while (e < 8 && b[e * 2] === 0 && b[e * 2 + 1] === 0) e++;
      if (e - g > bestLength) {
        bestStart = g;
        bestLength = e - g;
      }
      g = e;
    } else {
      g++;
    }
  }
  if (bestLength < 2) bestStart = -1;
  let out = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      out += g === 0 ? '::' : ':';
      g += bestLength - 1;
      continue;
    }
    out += ((b[g * 2]! << 8) | b[g * 2 + 1]!).toString(16);
    if (g < 7) out += ':';
  }
  return out;
}

/** Canonical text of a parsed CIDR: dotted quad or RFC 5952, then "/prefix". */
export function formatCidr(r: CidrBytes): string {
  const b = r.bytes;
  return r.family === 4 ? `${b[12]}.${b[13]}.${b[14]}.${b[15]}/${r.prefix}` : `${formatIPv6(b)}/${r.prefix}`;
}

/**
 * compareCidrs's order (IPv4 before IPv6, then address, then prefix length)
 * on canonical texts, read numerically. Texts the numeric reader does not
 * take are compared as strings, after all the others.
 */
export function compareCidrTexts(a: string, b: string): number {
  const x = newCidrBytes();
  const y = newCidrBytes();
  const okX = parseCidrBytes(a, x) !== FALLBACK;
  const okY = parseCidrBytes(b, y) !== FALLBACK;
  if (!okX || !okY) return okX === okY ? (a < b ? -1 : a > b ? 1 : 0) : okX ? -1 : 1;
  if (x.family !== y.family) return x.family - y.family;
  for (let i = 0; i < 16; i++) if (x.bytes[i] !== y.bytes[i]) return x.bytes[i]! - y.bytes[i]!;
  return x.prefix - y.prefix;
}
