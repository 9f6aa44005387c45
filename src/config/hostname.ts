// Allowlist hosts: DNS names the agent resolves (A and AAAA) into addresses. Only names that
// can be resolved to a finite set of addresses are accepted.
import ipaddr from 'ipaddr.js';

export type HostCheck =
  | { readonly ok: true; readonly host: string }
  | { readonly ok: false; readonly code: 'MG_ALLOWLIST_WILDCARD_HOST' | 'MG_ALLOWLIST_BAD_HOST'; readonly reason: string };

const MAX_NAME_LENGTH = 253;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PUT_IN_ADDRESSES = 'put it in addresses instead of hosts';

function bad(reason: string): HostCheck {
  return { ok: false, code: 'MG_ALLOWLIST_BAD_HOST', reason };
}

// ipaddr.js's isValid throws and catches internally on a miss, which costs tens of microseconds;
// these cheap pre-checks keep it away from ordinary hostnames.
const MAYBE_IPV4 = /^[0-9.]+$/;

function looksLikeAddress(text: string): string | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const isIPv6 = bare.includes(':') && ipaddr.IPv6.isValid(bare);
  if (isIPv6 || (MAYBE_IPV4.test(bare) && ipaddr.IPv4.isValidFourPartDecimal(bare))) return `is an IP address, not a hostname: ${PUT_IN_ADDRESSES}`;
  if (bare.includes('/') && ipaddr.isValidCIDR(bare)) return `is a CIDR, not a hostname: ${PUT_IN_ADDRESSES}`;
  return undefined;
}

/** Returns the name lower-cased and without its trailing dot, or why it is refused. */
export function checkHostname(value: unknown): HostCheck {
  if (typeof value !== 'string') return bad('is not a hostname string');
  const text = value.trim();
  if (text === '') return bad('is empty');
  if (text.includes('*')) {
    return {
      ok: false,
      code: 'MG_ALLOWLIST_WILDCARD_HOST',
      reason:
        'is a wildcard host: wildcard hosts cannot be enforced by address at connect time, so the entry is rejected rather than widened; list each hostname instead',
    };
  }
  if (text.length > MAX_NAME_LENGTH + 1) return bad(`is longer than ${MAX_NAME_LENGTH} characters`);
  const address = looksLikeAddress(text);
  if (address !== undefined) return bad(address);
  if (/[^\x00-\x7f]/.test(text)) return bad('contains non-ASCII characters: write internationalised names in their punycode (xn--) form');
  const name = (text.endsWith('.') ? text.slice(0, -1) : text).toLowerCase();
  if (name.length > MAX_NAME_LENGTH) return bad(`is longer than ${MAX_NAME_LENGTH} characters`);
  const labels = name.split('.');
  const badLabel = labels.find((label) => !LABEL.test(label));
  if (badLabel !== undefined) {
    const which = badLabel === '' ? 'an empty label' : `the label "${badLabel.slice(0, 70)}"`;
    return bad(`is not a valid DNS name: ${which} breaks RFC 1123 (letters, digits and inner hyphens, 1 to 63 characters)`);
  }
  // No top-level domain is all digits, so "10.0.0.300" is a mistyped address, not a name.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return bad(`is not a valid DNS name: its last label is all digits (if it is an IP address, ${PUT_IN_ADDRESSES})`);
  }
  return { ok: true, host: name };
}
