// Every code a config issue can carry. docs/errors.md documents each one with an example,
// and a unit test fails when a code is missing there.

interface CodeInfo {
  readonly severity: 'error' | 'warning';
  readonly description: string;
}

const CODE_TABLE = {
  MG_CONFIG_BAD_YAML: { severity: 'error', description: 'The file or data value is not valid YAML.' },
  MG_CONFIG_BAD_MANIFEST: {
    severity: 'error',
    description: 'A YAML document is a Kubernetes object that is not a usable v1 ConfigMap.',
  },
  MG_CONFIG_NOT_A_MAP: { severity: 'error', description: 'The configuration data is not a key/value map.' },
  MG_CONFIG_NOT_A_LIST: {
    severity: 'error',
    description: 'A value that must be a list (of entries, hosts, addresses or ports) is something else.',
  },
  MG_CONFIG_BAD_BOOLEAN: { severity: 'error', description: 'A boolean key is not "true" or "false".' },
  MG_CONFIG_BAD_CIDR: { severity: 'error', description: 'A CIDR or IP address cannot be parsed.' },
  MG_CONFIG_PREFIX_OUT_OF_RANGE: {
    severity: 'error',
    description: 'A CIDR prefix length is outside 0..32 (IPv4) or 0..128 (IPv6).',
  },
  MG_CONFIG_MESH_CIDRS_REQUIRED: { severity: 'error', description: 'egress is "true" but mesh_cidr_ranges is empty.' },
  MG_CONFIG_BAD_PORT: { severity: 'error', description: 'A port is not an integer in 1..65535.' },
  MG_CONFIG_BAD_UID: { severity: 'error', description: 'proxy_uid is not an integer in 0..4294967294.' },
  MG_CONFIG_BAD_ACTION: { severity: 'error', description: 'blocked_egress_action is not deny, redirect or audit.' },
  MG_ALLOWLIST_ACTION_CONFLICT: {
    severity: 'error',
    description:
      'Two allowlist objects of one namespace set different blocked_egress_action values; both are rejected.',
  },
  MG_CONFIG_BAD_UNKNOWN_POD_POLICY: {
    severity: 'error',
    description: 'unknown_pod_policy is not pass or deny-external.',
  },
  MG_CONFIG_TOO_MANY_ENTRIES: {
    severity: 'error',
    description: 'One object holds more policy entries or excluded ports than the configured limits.',
  },
  MG_CONFIG_INTERNAL: {
    severity: 'error',
    description: 'The validator itself failed (a meshgate bug); the object is rejected.',
  },
  // Raised by the standalone file reader (src/agent/fileSources.ts): src/config does no I/O.
  MG_CONFIG_FILE_UNREADABLE: { severity: 'error', description: 'A configuration file cannot be read.' },
  MG_CONFIG_TOO_LARGE: {
    severity: 'error',
    description: 'The object is larger than 1 MiB (MAX_OBJECT_BYTES); it is refused before parsing.',
  },
  MG_CONFIG_NO_MESHGATE_KEY: {
    severity: 'error',
    description:
      "The object holds none of meshgate's keys (an empty or unrelated object); it is refused, not taken as all defaults.",
  },
  MG_CONFIG_MORE_ERRORS: {
    severity: 'error',
    description: 'The object has more errors than are reported (the first 100); this one counts the rest.',
  },
  MG_CONFIG_FILE_SHAPE: {
    severity: 'error',
    description: 'A --config-file (or the files given to preview) does not hold exactly one global config.',
  },
  MG_ALLOWLIST_BAD_ENTRY: { severity: 'error', description: 'An allowlist entry or one of its ports is not a map.' },
  MG_ALLOWLIST_NAME_MISSING: {
    severity: 'error',
    description: 'An allowlist entry has no name, or its name is not a non-empty string.',
  },
  MG_ALLOWLIST_BAD_NAME: {
    severity: 'error',
    description: 'An allowlist entry name is too long or holds whitespace at its ends or control characters.',
  },
  MG_ALLOWLIST_DUPLICATE_NAME: {
    severity: 'error',
    description: 'Two allowlist entries of one object or namespace share a name.',
  },
  MG_ALLOWLIST_NO_DESTINATION: {
    severity: 'error',
    description: 'An allowlist entry has neither hosts nor addresses.',
  },
  MG_ALLOWLIST_PORTS_MISSING: { severity: 'error', description: 'An allowlist entry has no ports.' },
  MG_ALLOWLIST_BAD_PROTOCOL: {
    severity: 'error',
    description: 'A port protocol is missing or not one of HTTP HTTPS GRPC HTTP2 MONGO TCP TLS UDP.',
  },
  MG_ALLOWLIST_WILDCARD_HOST: {
    severity: 'error',
    description:
      'A wildcard host is not "*." followed by a domain below a public suffix (bare "*", "*.com", "*.co.uk", "a.*.b", "*foo.com").',
  },
  MG_ALLOWLIST_BAD_HOST: {
    severity: 'error',
    description: 'A host is not a valid DNS name (or is an IP address that belongs in addresses).',
  },
  MG_CONFIG_UNKNOWN_KEY: { severity: 'warning', description: 'A data key that meshgate does not read; it is ignored.' },
  MG_ALLOWLIST_UNKNOWN_FIELD: {
    severity: 'warning',
    description: 'An allowlist entry or port field that meshgate does not read; it is ignored.',
  },
  MG_WARN_HOST_BITS: {
    severity: 'warning',
    description: 'A CIDR had host bits set and was normalised to its network address.',
  },
  MG_WARN_DUPLICATE: {
    severity: 'warning',
    description: 'A list item duplicates an earlier one after normalisation; the two are merged.',
  },
  MG_WARN_MORE_WARNINGS: {
    severity: 'warning',
    description: 'The object has more warnings than are reported (the first 100); this one counts the rest.',
  },
  MG_WARN_ALLOW_IN_MESH: {
    severity: 'warning',
    description: 'An allowlisted address overlaps a mesh CIDR; the mesh rule decides there.',
  },
} as const satisfies Record<string, CodeInfo>;

export type ConfigIssueCode = keyof typeof CODE_TABLE;

function describeCodes(): Readonly<Record<ConfigIssueCode, string>> {
  const descriptions: Partial<Record<ConfigIssueCode, string>> = {};
  for (const code of Object.keys(CODE_TABLE) as ConfigIssueCode[]) descriptions[code] = CODE_TABLE[code].description;
  return Object.freeze(descriptions as Record<ConfigIssueCode, string>);
}

/** Code -> one-line description, for every error and warning code. */
export const CONFIG_ERROR_CODES: Readonly<Record<ConfigIssueCode, string>> = describeCodes();

export function severityOf(code: ConfigIssueCode): 'error' | 'warning' {
  return CODE_TABLE[code].severity;
}

export function isConfigIssueCode(code: string): code is ConfigIssueCode {
  return Object.hasOwn(CODE_TABLE, code);
}
