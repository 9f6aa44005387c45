// Allowlists (SPEC §1.2): the `egress` key of a labelled ConfigMap, and the global
// `egress_allowlist` key, both YAML lists of entries.
import { readAllowlistEntry } from './allowlistEntry.js';
import { IssueCollector, isPlainMap, parseSafely } from './issues.js';
import { suggestKey } from './keySuggestion.js';
import { checkHasMeshgateKey, checkObjectSize } from './objectBounds.js';
import { isUnset, readChoice } from './scalars.js';
import {
  type AllowlistEntry,
  BLOCKED_EGRESS_ACTIONS,
  type BlockedEgressAction,
  type ConfigLimits,
  DEFAULT_LIMITS,
  type ObjectRef,
  type ParseResult,
} from './types.js';
import { parseYamlValue } from './yamlText.js';

export const ALLOWLIST_KEY = 'egress';
/** The namespace's own blocked_egress_action (SPEC §1.2): overrides the global one for its pods. */
export const ALLOWLIST_ACTION_KEY = 'blocked_egress_action';
const ALLOWLIST_KEYS: readonly string[] = [ALLOWLIST_KEY, ALLOWLIST_ACTION_KEY];

/**
 * The blocked_egress_action an allowlist object sets for its namespace, or null when it sets
 * none. For data parseAllowlist accepted (an invalid value is its error, not read here).
 */
export function allowlistAction(data: Readonly<Record<string, unknown>>): BlockedEgressAction | null {
  const read = isPlainMap(data) ? readChoice(data[ALLOWLIST_ACTION_KEY], BLOCKED_EGRESS_ACTIONS) : null;
  return read?.ok && read.value !== undefined ? read.value : null;
}

/** Policy entries an allowlist costs: one per (host or address) x port pair. */
export function countAllowlistPairs(entries: readonly AllowlistEntry[]): number {
  return entries.reduce((sum, entry) => sum + (entry.hosts.length + entry.addresses.length) * entry.ports.length, 0);
}

/** Reads a list given as YAML text (ConfigMap data) or already parsed (YAML files). Unset means none. */
export function readYamlList(
  value: unknown,
  ref: ObjectRef,
  key: string,
  issues: IssueCollector,
): readonly unknown[] | undefined {
  if (isUnset(value)) return [];
  let list = value;
  if (typeof value === 'string') {
    const parsed = parseYamlValue(value);
    if (!parsed.ok) {
      issues.add(
        'MG_CONFIG_BAD_YAML',
        { ref, key },
        { reason: `line ${parsed.line}, column ${parsed.column} of the value: invalid YAML: ${parsed.reason}` },
      );
      return undefined;
    }
    if (parsed.empty) return [];
    list = parsed.value;
  }
  if (Array.isArray(list)) return list;
  issues.add(
    'MG_CONFIG_NOT_A_LIST',
    { ref, key },
    { value: list, reason: 'is not a YAML list of allowlist entries (each entry starts with "- name: ...")' },
  );
  return undefined;
}

/** Reads entries into `issues`; the caller applies the entry-count limit for the whole object. */
export function collectAllowlistEntries(
  list: readonly unknown[],
  ref: ObjectRef,
  key: string,
  issues: IssueCollector,
  limits: ConfigLimits,
): AllowlistEntry[] {
  // Every valid entry costs at least one policy entry, so a longer list is over the limit
  // whatever it holds; stopping here keeps hostile input from costing time.
  if (list.length > limits.maxPolicyEntries) {
    issues.add(
      'MG_CONFIG_TOO_MANY_ENTRIES',
      { ref, key },
      {
        reason: `holds ${list.length} entries, more than the limit of ${limits.maxPolicyEntries} policy entries per object`,
      },
    );
    return [];
  }
  const firstIndexByName = new Map<string, number>();
  const entries: AllowlistEntry[] = [];
  list.forEach((raw, index) => {
    const { entry, name } = readAllowlistEntry(raw, index, ref, key, issues);
    if (name !== undefined) {
      const first = firstIndexByName.get(name);
      if (first !== undefined) {
        issues.add(
          'MG_ALLOWLIST_DUPLICATE_NAME',
          { ref, key, entryIndex: index, entryName: name },
          {
            subject: 'name',
            value: name,
            reason: `is already the name of entry [${first}]; names must be unique within the namespace`,
          },
        );
        return;
      }
      firstIndexByName.set(name, index);
    }
    if (entry !== undefined) entries.push(entry);
  });
  return entries;
}

export function checkAllowlistSize(
  entries: readonly AllowlistEntry[],
  ref: ObjectRef,
  key: string,
  issues: IssueCollector,
  limits: ConfigLimits,
): void {
  const pairs = countAllowlistPairs(entries);
  if (pairs > limits.maxPolicyEntries) {
    issues.add(
      'MG_CONFIG_TOO_MANY_ENTRIES',
      { ref, key },
      {
        reason: `holds ${pairs} policy entries (host or address x port pairs), more than the limit of ${limits.maxPolicyEntries} per object`,
      },
    );
  }
}

/** Entries from an already-parsed list (or YAML text). Used for ConfigMap `egress` and global `egress_allowlist`. */
export function parseAllowlistEntries(
  list: unknown,
  ref: ObjectRef,
  key: string,
  limits: ConfigLimits = DEFAULT_LIMITS,
): ParseResult<readonly AllowlistEntry[]> {
  return parseSafely(ref, key, () => {
    const issues = new IssueCollector();
    const items = readYamlList(list, ref, key, issues);
    const entries = items === undefined ? [] : collectAllowlistEntries(items, ref, key, issues, limits);
    checkAllowlistSize(entries, ref, key, issues, limits);
    return issues.result<readonly AllowlistEntry[]>(entries);
  });
}

/** A labelled allowlist ConfigMap's data (or an allowlist file): its `egress` key. */
export function parseAllowlist(
  data: Readonly<Record<string, unknown>>,
  ref: ObjectRef,
  limits: ConfigLimits = DEFAULT_LIMITS,
): ParseResult<readonly AllowlistEntry[]> {
  return parseSafely(ref, ALLOWLIST_KEY, () => {
    const issues = new IssueCollector();
    if (!isPlainMap(data)) {
      issues.add(
        'MG_CONFIG_NOT_A_MAP',
        { ref, key: '' },
        { value: data, reason: 'is not a key/value map of data keys' },
      );
      return issues.rejected<readonly AllowlistEntry[]>();
    }
    if (!checkObjectSize(data, ref, issues) || !checkHasMeshgateKey(data, ALLOWLIST_KEYS, ref, issues))
      return issues.rejected<readonly AllowlistEntry[]>();
    for (const key of Object.keys(data)
      .filter((name) => !ALLOWLIST_KEYS.includes(name))
      .sort()) {
      const suggestion = suggestKey(key, ALLOWLIST_KEYS);
      const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
      issues.add(
        'MG_CONFIG_UNKNOWN_KEY',
        { ref, key },
        { reason: `is not read from an allowlist (only ${ALLOWLIST_KEYS.join(' and ')} are); ignored${hint}` },
      );
    }
    const action = readChoice(data[ALLOWLIST_ACTION_KEY], BLOCKED_EGRESS_ACTIONS);
    if (!action.ok)
      issues.add(
        'MG_CONFIG_BAD_ACTION',
        { ref, key: ALLOWLIST_ACTION_KEY },
        { value: data[ALLOWLIST_ACTION_KEY], reason: action.reason },
      );
    const items = readYamlList(data[ALLOWLIST_KEY], ref, ALLOWLIST_KEY, issues);
    const entries = items === undefined ? [] : collectAllowlistEntries(items, ref, ALLOWLIST_KEY, issues, limits);
    checkAllowlistSize(entries, ref, ALLOWLIST_KEY, issues, limits);
    return issues.result<readonly AllowlistEntry[]>(entries);
  });
}
