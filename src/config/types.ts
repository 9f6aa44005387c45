// The validated, frozen shapes that the rest of meshgate codes against (SPEC §1).
// Everything here is produced by src/config and never mutated afterwards.

export type Protocol = 'TCP' | 'UDP';

export interface PortSpec {
  readonly number: number;
  readonly protocol: Protocol;
  /** The protocol as written, upper-cased (HTTPS stays HTTPS here while `protocol` is TCP). */
  readonly declaredProtocol: string;
}

export interface AllowlistEntry {
  readonly name: string;
  /** Lower-cased, validated DNS names without a trailing dot; deduplicated and sorted. No wildcards. */
  readonly hosts: readonly string[];
  /** Normalised CIDRs ("203.0.113.0/24", "2001:db8::/48"); IPv4 first, then IPv6, by address then prefix. */
  readonly addresses: readonly string[];
  /** Deduplicated by (number, protocol), sorted by number then protocol. */
  readonly ports: readonly PortSpec[];
}

/** Rule 7 (SPEC §2): deny (EPERM), redirect (TCP to the proxy, UDP denied) or audit (let through, recorded as "would deny"). */
export type BlockedEgressAction = 'deny' | 'redirect' | 'audit';
export const BLOCKED_EGRESS_ACTIONS: readonly BlockedEgressAction[] = Object.freeze(['deny', 'redirect', 'audit']);
export type UnknownPodPolicy = 'pass' | 'deny-external';

export interface GlobalConfig {
  readonly egress: boolean;
  readonly meshCidrs: readonly string[];
  readonly excludedCidrs: readonly string[];
  readonly excludedPorts: readonly number[];
  readonly proxyOutboundPort: number;
  readonly proxyUid: number;
  readonly blockedEgressAction: BlockedEgressAction;
  readonly unknownPodPolicy: UnknownPodPolicy;
  readonly globalAllowlist: readonly AllowlistEntry[];
}

/** Where a piece of configuration came from; every issue names it. */
export interface ObjectRef {
  readonly kind: 'ConfigMap' | 'File';
  readonly namespace?: string;
  readonly name: string;
  /** The file it was read from (standalone mode, `meshgate validate`). */
  readonly path?: string;
}

export interface ConfigIssue {
  /** A key of CONFIG_ERROR_CODES, e.g. 'MG_CONFIG_BAD_CIDR'. */
  readonly code: string;
  readonly severity: 'error' | 'warning';
  /** 'ConfigMap osm-system/osm-config' or 'file ./egress.yaml'. */
  readonly object: string;
  /** The data key, e.g. 'mesh_cidr_ranges' or 'egress'; '' for problems with the file itself. */
  readonly key: string;
  /** Index in a list: the allowlist entry, or the item's position in a CIDR or port list. */
  readonly entryIndex?: number;
  readonly entryName?: string;
  /** e.g. 'egress[2].ports[0].protocol'. */
  readonly path?: string;
  /** The offending value as written (long values are truncated). */
  readonly value?: string;
  /** One complete sentence naming object, key, entry and value, and why. */
  readonly message: string;
}

export type ParseResult<T> =
  | { readonly ok: true; readonly value: T; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

export interface ConfigLimits {
  /** (address or host) x port pairs plus mesh and exclusion CIDRs, per object. */
  readonly maxPolicyEntries: number;
  readonly maxExcludedPorts: number;
}

/**
 * The largest config object meshgate reads, checked before parsing: a ConfigMap's data
 * cannot exceed 1 MiB in the API server, and a file is held to the same bound.
 */
export const MAX_OBJECT_BYTES = 1024 * 1024;

export const DEFAULT_LIMITS: ConfigLimits = Object.freeze({ maxPolicyEntries: 262144, maxExcludedPorts: 1024 });
