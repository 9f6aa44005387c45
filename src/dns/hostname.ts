// Host names as allowlist keys: one spelling per name, and a check that a name can be queried at all.

/** Lower-case, trimmed, without the root dot. This is the key of `HostResolver.snapshot()`. */
export function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A normalised name that can be sent as an A/AAAA query: LDH labels (plus `_`), at most 253
 * characters, and not an address literal. Wildcards are refused: querying `*.example.com` would
 * return the wildcard record's addresses, which is not what the entry means (SPEC 1.2).
 */
export function isQueryableHostname(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const labels = host.split('.');
  if (!labels.every((label) => LABEL.test(label))) return false;
  // An all-numeric last label is an IPv4 literal (or a typo of one), never a DNS name.
  return !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}
