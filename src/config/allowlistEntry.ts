// One allowlist entry (SPEC §1.2): { name, hosts, addresses, ports }.
import { normaliseCidrList } from './cidr.js';
import { checkHostname } from './hostname.js';
import { type IssueCollector, type IssueSite, isPlainMap } from './issues.js';
import { readPorts } from './portSpec.js';
import type { AllowlistEntry, ObjectRef } from './types.js';

const ENTRY_FIELDS: ReadonlySet<string> = new Set(['name', 'hosts', 'addresses', 'ports']);
// Names label map entries in `meshgate dump` and trace events, so they stay printable and short.
const MAX_NAME_LENGTH = 253;

export interface EntryRead {
  /** The entry, when it is valid. */
  readonly entry?: AllowlistEntry;
  /** The entry's name when one was written, valid or not, for duplicate detection. */
  readonly name?: string;
}

function readName(raw: Readonly<Record<string, unknown>>, site: IssueSite, issues: IssueCollector): string | undefined {
  const name = raw['name'];
  if (typeof name !== 'string' || name.trim() === '') {
    const missing = name === undefined || name === null;
    const reason = missing ? 'is missing' : typeof name === 'string' ? 'is empty' : 'is not a string';
    issues.add('MG_ALLOWLIST_NAME_MISSING', site, {
      subject: 'name',
      value: missing ? undefined : name,
      reason: `${reason}: every entry needs a name, unique within its namespace`,
    });
    return undefined;
  }
  let problem: string | undefined;
  if (name.length > MAX_NAME_LENGTH) problem = `is longer than ${MAX_NAME_LENGTH} characters`;
  else if (name.trim() !== name) problem = 'has leading or trailing whitespace';
  else if (/[\p{Cc}\p{Cf}]/u.test(name)) problem = 'contains control or format characters';
  if (problem !== undefined)
    issues.add(
      'MG_ALLOWLIST_BAD_NAME',
      { ...site, entryName: name },
      { subject: 'name', value: name, reason: problem },
    );
  return name;
}

/** A list field: absent or null means none; anything but a list is refused. */
function readList(
  raw: Readonly<Record<string, unknown>>,
  field: string,
  site: IssueSite,
  issues: IssueCollector,
): readonly unknown[] | undefined {
  const value = raw[field];
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value;
  issues.add('MG_CONFIG_NOT_A_LIST', site, {
    subject: field,
    value,
    reason: `is not a list (write ${field}: [ ... ])`,
  });
  return undefined;
}

function readHosts(items: readonly unknown[], site: IssueSite, issues: IssueCollector): string[] {
  const firstIndexByHost = new Map<string, number>();
  items.forEach((item, index) => {
    const subject = `hosts[${index}]`;
    const checked = checkHostname(item);
    if (!checked.ok) {
      issues.add(checked.code, site, { subject, value: item, reason: checked.reason });
      return;
    }
    const first = firstIndexByHost.get(checked.host);
    if (first !== undefined) {
      issues.add('MG_WARN_DUPLICATE', site, {
        subject,
        value: item,
        reason: `duplicates hosts[${first}] (both are ${checked.host}); merged`,
      });
      return;
    }
    firstIndexByHost.set(checked.host, index);
  });
  return [...firstIndexByHost.keys()].sort();
}

function readAddresses(items: readonly unknown[], site: IssueSite, issues: IssueCollector): string[] {
  const cidrs = normaliseCidrList(items, (issue) => {
    issues.add(issue.code, site, { subject: `addresses[${issue.index}]`, value: issue.value, reason: issue.reason });
  });
  return cidrs.map((cidr) => cidr.text);
}

export function readAllowlistEntry(
  raw: unknown,
  index: number,
  ref: ObjectRef,
  key: string,
  issues: IssueCollector,
): EntryRead {
  const entrySite: IssueSite = { ref, key, entryIndex: index };
  if (!isPlainMap(raw)) {
    issues.add('MG_ALLOWLIST_BAD_ENTRY', entrySite, {
      value: raw,
      reason: 'is not a map with name, hosts and/or addresses, and ports',
    });
    return {};
  }
  const errorsBefore = issues.errorCount;
  const name = readName(raw, entrySite, issues);
  const site: IssueSite = name === undefined ? entrySite : { ...entrySite, entryName: name };
  for (const field of Object.keys(raw)
    .filter((field) => !ENTRY_FIELDS.has(field))
    .sort()) {
    issues.add('MG_ALLOWLIST_UNKNOWN_FIELD', site, {
      subject: field,
      reason: 'is not an entry field meshgate reads (name, hosts, addresses, ports); ignored',
    });
  }
  const hostItems = readList(raw, 'hosts', site, issues);
  const addressItems = readList(raw, 'addresses', site, issues);
  const hosts = readHosts(hostItems ?? [], site, issues);
  const addresses = readAddresses(addressItems ?? [], site, issues);
  if (hostItems?.length === 0 && addressItems?.length === 0) {
    issues.add('MG_ALLOWLIST_NO_DESTINATION', site, {
      reason:
        'has neither hosts nor addresses: an entry needs at least one destination (an empty entry allows nothing, never everything)',
    });
  }
  const ports = readPorts(raw['ports'], site, issues);
  if (issues.errorCount !== errorsBefore || name === undefined || ports === undefined)
    return name === undefined ? {} : { name };
  return { name, entry: { name, hosts, addresses, ports } };
}
