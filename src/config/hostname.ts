// Allowlist hosts: DNS names, or wildcards `*.example.com` (Istio ServiceEntry semantics: any
// name one or more labels below example.com, not example.com itself). The kernel learns a host's
// addresses from the pods' own DNS answers; the agent also resolves exact names itself.
import ipaddr from 'ipaddr.js';

export type HostCheck =
  | { readonly ok: true; readonly host: string }
  | {
      readonly ok: false;
      readonly code: 'MG_ALLOWLIST_WILDCARD_HOST' | 'MG_ALLOWLIST_BAD_HOST';
      readonly reason: string;
    };

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
  if (isIPv6 || (MAYBE_IPV4.test(bare) && ipaddr.IPv4.isValidFourPartDecimal(bare)))
    return `is an IP address, not a hostname: ${PUT_IN_ADDRESSES}`;
  if (bare.includes('/') && ipaddr.isValidCIDR(bare)) return `is a CIDR, not a hostname: ${PUT_IN_ADDRESSES}`;
  return undefined;
}

function badWildcard(reason: string): HostCheck {
  return { ok: false, code: 'MG_ALLOWLIST_WILDCARD_HOST', reason };
}

// Second-level labels under which country code TLDs register names (co.uk, com.au, ne.jp...):
// `*.co.uk` would allow a whole registry. A cheap check, not the Public Suffix List.
const REGISTRY_SECOND_LEVELS: ReadonlySet<string> = new Set([
  'ac',
  'co',
  'com',
  'edu',
  'gov',
  'go',
  'ltd',
  'ne',
  'net',
  'or',
  'org',
  'plc',
  'sch',
]);

/** `*.example.com`: `*` only as the whole first label, over a name below a public suffix. */
function checkWildcard(text: string): HostCheck {
  if (text === '*' || text === '*.')
    return badWildcard(
      'is a bare "*": it would allow every name; write *.example.com for the subdomains of one domain',
    );
  if (!text.startsWith('*.'))
    return badWildcard(
      'has "*" that is not the whole first label: write *.example.com (any subdomain of example.com), as in Istio ServiceEntry hosts',
    );
  const rest = text.slice(2);
  if (rest.includes('*'))
    return badWildcard('has "*" beyond the first label: only the whole first label may be "*" (*.example.com)');
  const base = checkHostname(rest);
  if (!base.ok) return badWildcard(`is a wildcard whose domain "${rest.slice(0, 70)}" ${base.reason}`);
  const labels = base.host.split('.');
  const last = labels[labels.length - 1]!;
  if (labels.length === 1)
    return badWildcard(
      `covers the whole top-level domain "${last}": a wildcard needs a domain below a public suffix (*.example.${last})`,
    );
  if (labels.length === 2 && last.length === 2 && REGISTRY_SECOND_LEVELS.has(labels[0]!)) {
    return badWildcard(
      `covers the public suffix "${base.host}": a wildcard needs a domain registered under it (*.example.${base.host})`,
    );
  }
  if (base.host.length + 2 > MAX_NAME_LENGTH) return badWildcard(`is longer than ${MAX_NAME_LENGTH} characters`);
  return { ok: true, host: `*.${base.host}` };
}

/** True for `*.example.com` (as checkHostname returns it). */
export const isWildcardHost = (host: string): boolean => host.startsWith('*.');

/** Returns the name lower-cased and without its trailing dot, or why it is refused. */
export function checkHostname(value: unknown): HostCheck {
  if (typeof value !== 'string') return bad('is not a hostname string');
  const text = value.trim();
  if (text === '') return bad('is empty');
  if (text.includes('*')) return checkWildcard(text);
  if (text.length > MAX_NAME_LENGTH + 1) return bad(`is longer than ${MAX_NAME_LENGTH} characters`);
  const address = looksLikeAddress(text);
  if (address !== undefined) return bad(address);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the class is "anything outside ASCII"
  if (/[^\x00-\x7f]/.test(text))
    return bad('contains non-ASCII characters: write internationalised names in their punycode (xn--) form');
  const name = (text.endsWith('.') ? text.slice(0, -1) : text).toLowerCase();
  if (name.length > MAX_NAME_LENGTH) return bad(`is longer than ${MAX_NAME_LENGTH} characters`);
  const labels = name.split('.');
  const badLabel = labels.find((label) => !LABEL.test(label));
  if (badLabel !== undefined) {
    const which = badLabel === '' ? 'an empty label' : `the label "${badLabel.slice(0, 70)}"`;
    return bad(
      `is not a valid DNS name: ${which} breaks RFC 1123 (letters, digits and inner hyphens, 1 to 63 characters)`,
    );
  }
  // No top-level domain is all digits, so "10.0.0.300" is a mistyped address, not a name.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return bad(`is not a valid DNS name: its last label is all digits (if it is an IP address, ${PUT_IN_ADDRESSES})`);
  }
  return { ok: true, host: name };
}
