// Deterministic address lists: canonical text, no duplicates, IPv4 before IPv6, numeric order.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/** Canonical text of an IP address of the given family, or null when it is not one (or is scoped). */
export function canonicalAddress(address: string, family: 4 | 6): string | null {
  if (family === 4) return isIPv4(address) ? address : null;
  if (!isIPv6(address) || address.includes('%')) return null;
  return new SocketAddress({ address, family: 'ipv6' }).address;
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

/** Merge canonical IPv4 and IPv6 lists into one sorted, de-duplicated list, IPv4 first. */
export function orderAddresses(ipv4: readonly string[], ipv6: readonly string[]): string[] {
  const v4 = [...new Set(ipv4)].sort((a, b) => compareKeys(ipv4Key(a), ipv4Key(b)));
  const v6 = [...new Set(ipv6)].sort((a, b) => compareKeys(ipv6Key(a), ipv6Key(b)));
  return [...v4, ...v6];
}
