// Deterministic address lists: canonical text, no duplicates, IPv4 before IPv6, numeric order.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) in canonical text: its IPv4 tail. */
const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/;

/**
 * Canonical text of an IP address of the given family, or null when it is not
 * one (or is scoped). An IPv4-mapped AAAA answer (::ffff:a.b.c.d) is the IPv4
 * address: the datapath decides and stores it as IPv4, so it gets IPv4's text.
 */
export function canonicalAddress(address: string, family: 4 | 6): string | null {
  if (family === 4) return isIPv4(address) ? address : null;
  if (!isIPv6(address) || address.includes('%')) return null;
  const canonical = new SocketAddress({ address, family: 'ipv6' }).address;
  return MAPPED_IPV4.exec(canonical)?.[1] ?? canonical;
}

function ipv4Key(address: string): number[] {
  return address.split('.').map(Number);
}

function ipv6Key(address: string): number[] {
  let text = address;
  const tailStart = text.lastIndexOf(':') + 1;
  const tail = text.slice(tailStart);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Key(tail);
    text = `${text.slice(0, tailStart)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  if (rest === undefined) return left;
  const right = parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return a.length - b.length;
}

/**
 * Merge the canonical addresses of the A and AAAA answers into one sorted,
 * de-duplicated list, IPv4 first. Each address goes by its own family, not by
 * its answer's: a mapped AAAA answer canonicalised to IPv4 merges with the A
 * answer that names it.
 */
export function orderAddresses(ipv4: readonly string[], ipv6: readonly string[]): string[] {
  const all = new Set([...ipv4, ...ipv6]);
  const v4 = [...all].filter((a) => !a.includes(':')).sort((a, b) => compareKeys(ipv4Key(a), ipv4Key(b)));
  const v6 = [...all].filter((a) => a.includes(':')).sort((a, b) => compareKeys(ipv6Key(a), ipv6Key(b)));
  return [...v4, ...v6];
}
