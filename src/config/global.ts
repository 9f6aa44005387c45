// The global ConfigMap (SPEC §1.1), OSM-compatible keys. Rejected as a whole on any error.
import { collectAllowlistEntries, countAllowlistPairs, readYamlList } from './allowlist.js';
import { type CidrListIssue, normaliseCidrTexts } from './cidr.js';
import type { CidrListMemo } from './cidrListMemo.js';
import type { ConfigIssueCode } from './codes.js';
import { IssueCollector, isPlainMap, parseSafely } from './issues.js';
import { checkHasMeshgateKey, checkObjectSize } from './objectBounds.js';
import { suggestKey } from './keySuggestion.js';
import { type Read, readBoolean, readChoice, readInteger, readListItems } from './scalars.js';
import {
  type AllowlistEntry,
  BLOCKED_EGRESS_ACTIONS,
  type ConfigLimits,
  DEFAULT_LIMITS,
  type GlobalConfig,
  type ObjectRef,
  type ParseResult,
  type UnknownPodPolicy,
} from './types.js';

export const GLOBAL_KEYS = Object.freeze([
  'egress',
  'mesh_cidr_ranges',
  'outbound_ip_range_exclusion_list',
  'outbound_port_exclusion_list',
  'proxy_outbound_port',
  'proxy_uid',
  'blocked_egress_action',
  'unknown_pod_policy',
  'egress_allowlist',
] as const);

/** Defaults of the scalar keys; list keys default to empty (none). */
export const GLOBAL_DEFAULTS: Readonly<
  Pick<GlobalConfig, 'egress' | 'proxyOutboundPort' | 'proxyUid' | 'blockedEgressAction' | 'unknownPodPolicy'>
> = Object.freeze({
  egress: false, // as `osm install --set=osm.enableEgress=false`
  proxyOutboundPort: 15001,
  proxyUid: 1500, // OSM's sidecar uid (Istio uses 1337)
  blockedEgressAction: 'deny',
  unknownPodPolicy: 'pass',
});

const UNKNOWN_POD_POLICIES: readonly UnknownPodPolicy[] = ['pass', 'deny-external'];
// uid 4294967295 is (uid_t)-1, "no uid" to the kernel, so it cannot name the proxy.
const MAX_UID = 4294967294;

/** The per-key readers of one parse, sharing its data, object and issue collector. */
class GlobalReader {
  constructor(
    readonly data: Readonly<Record<string, unknown>>,
    readonly ref: ObjectRef,
    readonly limits: ConfigLimits,
    readonly issues: IssueCollector,
    readonly memo: CidrListMemo | undefined,
  ) {}

  scalar<T>(key: string, code: ConfigIssueCode, read: (value: unknown) => Read<T>, fallback: T): T {
    const value = this.data[key];
    const result = read(value);
    if (result.ok) return result.value ?? fallback;
    this.issues.add(code, { ref: this.ref, key }, { value, reason: result.reason });
    return fallback;
  }

  /** The items as written (for "is it empty") and the normalised CIDRs. */
  cidrs(key: string): { written: number; cidrs: string[] } {
    const id = `${this.ref.kind}/${this.ref.namespace ?? ''}/${this.ref.name} ${key}`;
    const items = this.memo?.items(id, this.data[key]) ?? this.items(key);
    if (items === undefined) return { written: 0, cidrs: [] };
    if (items.length > this.limits.maxPolicyEntries) {
      this.tooMany(
        key,
        `holds ${items.length} CIDRs, more than the limit of ${this.limits.maxPolicyEntries} policy entries per object`,
      );
      return { written: items.length, cidrs: [] };
    }
    const onIssue = (issue: CidrListIssue): void => {
      this.issues.add(
        issue.code,
        { ref: this.ref, key, entryIndex: issue.index, noun: 'item' },
        { value: issue.value, reason: issue.reason },
      );
    };
    const cidrs = this.memo ? this.memo.normalise(id, items, onIssue) : normaliseCidrTexts(items, onIssue);
    return { written: items.length, cidrs };
  }

  ports(key: string): number[] {
    const items = this.items(key) ?? [];
    const firstIndexByPort = new Map<number, number>();
    items.forEach((item, index) => {
      const site = { ref: this.ref, key, entryIndex: index, noun: 'item' } as const;
      const port = readInteger(item, 1, 65535);
      if (!port.ok || port.value === undefined) {
        this.issues.add('MG_CONFIG_BAD_PORT', site, { value: item, reason: port.ok ? 'is empty' : port.reason });
        return;
      }
      const first = firstIndexByPort.get(port.value);
      if (first === undefined) firstIndexByPort.set(port.value, index);
      else this.issues.add('MG_WARN_DUPLICATE', site, { value: item, reason: `duplicates item [${first}]; merged` });
    });
    const ports = [...firstIndexByPort.keys()].sort((a, b) => a - b);
    if (ports.length > this.limits.maxExcludedPorts) {
      this.tooMany(key, `holds ${ports.length} ports, more than the limit of ${this.limits.maxExcludedPorts}`);
    }
    return ports;
  }

  allowlist(key: string): AllowlistEntry[] {
    const items = readYamlList(this.data[key], this.ref, key, this.issues);
    return items === undefined ? [] : collectAllowlistEntries(items, this.ref, key, this.issues, this.limits);
  }

  tooMany(key: string, reason: string): void {
    this.issues.add('MG_CONFIG_TOO_MANY_ENTRIES', { ref: this.ref, key }, { reason });
  }

  private items(key: string): readonly unknown[] | undefined {
    const value = this.data[key];
    const read = readListItems(value);
    if (read.ok) return read.value ?? [];
    this.issues.add('MG_CONFIG_NOT_A_LIST', { ref: this.ref, key }, { value, reason: read.reason });
    return undefined;
  }
}

function warnUnknownKeys(reader: GlobalReader): void {
  const known: readonly string[] = GLOBAL_KEYS;
  for (const key of Object.keys(reader.data)
    .filter((name) => !known.includes(name))
    .sort()) {
    const suggestion = suggestKey(key, known);
    const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
    reader.issues.add(
      'MG_CONFIG_UNKNOWN_KEY',
      { ref: reader.ref, key },
      { reason: `is not a meshgate key; ignored${hint}` },
    );
  }
}

function checkTotalSize(
  reader: GlobalReader,
  mesh: number,
  excluded: number,
  allowlist: readonly AllowlistEntry[],
): void {
  const pairs = countAllowlistPairs(allowlist);
  const total = mesh + excluded + pairs;
  if (total <= reader.limits.maxPolicyEntries) return;
  // Name the key that contributes most, so the fix is obvious.
  const largest =
    pairs >= mesh && pairs >= excluded
      ? 'egress_allowlist'
      : mesh >= excluded
        ? 'mesh_cidr_ranges'
        : 'outbound_ip_range_exclusion_list';
  reader.tooMany(
    largest,
    `the object holds ${total} policy entries (mesh_cidr_ranges ${mesh}, outbound_ip_range_exclusion_list ${excluded}, egress_allowlist ${pairs} host or address x port pairs), more than the limit of ${reader.limits.maxPolicyEntries}`,
  );
}

function readGlobalConfig(reader: GlobalReader): GlobalConfig {
  warnUnknownKeys(reader);
  const egress = reader.scalar('egress', 'MG_CONFIG_BAD_BOOLEAN', readBoolean, GLOBAL_DEFAULTS.egress);
  const mesh = reader.cidrs('mesh_cidr_ranges');
  const excluded = reader.cidrs('outbound_ip_range_exclusion_list');
  const excludedPorts = reader.ports('outbound_port_exclusion_list');
  const proxyOutboundPort = reader.scalar(
    'proxy_outbound_port',
    'MG_CONFIG_BAD_PORT',
    (v) => readInteger(v, 1, 65535),
    GLOBAL_DEFAULTS.proxyOutboundPort,
  );
  const proxyUid = reader.scalar(
    'proxy_uid',
    'MG_CONFIG_BAD_UID',
    (v) => readInteger(v, 0, MAX_UID),
    GLOBAL_DEFAULTS.proxyUid,
  );
  const blockedEgressAction = reader.scalar(
    'blocked_egress_action',
    'MG_CONFIG_BAD_ACTION',
    (v) => readChoice(v, BLOCKED_EGRESS_ACTIONS),
    GLOBAL_DEFAULTS.blockedEgressAction,
  );
  const unknownPodPolicy = reader.scalar(
    'unknown_pod_policy',
    'MG_CONFIG_BAD_UNKNOWN_POD_POLICY',
    (v) => readChoice(v, UNKNOWN_POD_POLICIES),
    GLOBAL_DEFAULTS.unknownPodPolicy,
  );
  const globalAllowlist = reader.allowlist('egress_allowlist');

  if (egress && mesh.written === 0) {
    reader.issues.add(
      'MG_CONFIG_MESH_CIDRS_REQUIRED',
      { ref: reader.ref, key: 'mesh_cidr_ranges' },
      {
        reason:
          'is empty while egress is "true": without the pod and service CIDRs in-mesh traffic cannot be told from external traffic (OSM refuses this too)',
      },
    );
  }
  checkTotalSize(reader, mesh.cidrs.length, excluded.cidrs.length, globalAllowlist);
  return {
    egress,
    meshCidrs: mesh.cidrs,
    excludedCidrs: excluded.cidrs,
    excludedPorts,
    proxyOutboundPort,
    proxyUid,
    blockedEgressAction,
    unknownPodPolicy,
    globalAllowlist,
  };
}

/**
 * The global config from ConfigMap data (strings) or a plain YAML file (scalars and lists
 * accepted too). Every error is collected; any error rejects the whole object. With a memo
 * (one per agent), long CIDR lists are normalised from their previous parse when only a few
 * items changed; the result is the same.
 */
export function parseGlobalConfig(
  data: Readonly<Record<string, unknown>>,
  ref: ObjectRef,
  limits: ConfigLimits = DEFAULT_LIMITS,
  memo?: CidrListMemo,
): ParseResult<GlobalConfig> {
  return parseSafely(ref, '', () => {
    const issues = new IssueCollector();
    if (!isPlainMap(data)) {
      issues.add(
        'MG_CONFIG_NOT_A_MAP',
        { ref, key: '' },
        { value: data, reason: 'is not a key/value map of data keys' },
      );
      return issues.rejected<GlobalConfig>();
    }
    if (!checkObjectSize(data, ref, issues) || !checkHasMeshgateKey(data, GLOBAL_KEYS, ref, issues))
      return issues.rejected<GlobalConfig>();
    return issues.result(readGlobalConfig(new GlobalReader(data, ref, limits, issues, memo)));
  });
}
