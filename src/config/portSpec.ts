// The ports of an allowlist entry, in the Istio ServiceEntry shape ({ number, protocol }).
// Application protocols all ride on TCP; the datapath only sees L4.
import { type IssueCollector, type IssueSite, isPlainMap } from './issues.js';
import { readInteger } from './scalars.js';
import type { PortSpec, Protocol } from './types.js';

const PROTOCOL_BY_NAME: ReadonlyMap<string, Protocol> = new Map<string, Protocol>([
  ['HTTP', 'TCP'],
  ['HTTPS', 'TCP'],
  ['GRPC', 'TCP'],
  ['HTTP2', 'TCP'],
  ['MONGO', 'TCP'],
  ['TCP', 'TCP'],
  ['TLS', 'TCP'],
  ['UDP', 'UDP'],
]);

// In SPEC order, which users know from the Istio chart.
export const KNOWN_PROTOCOLS = [...PROTOCOL_BY_NAME.keys()].join(', ');

// `name` is part of the ServiceEntry port shape; accepted so copied entries do not warn.
const PORT_FIELDS: ReadonlySet<string> = new Set(['number', 'protocol', 'name']);

function readPortSpec(raw: unknown, index: number, site: IssueSite, issues: IssueCollector): PortSpec | undefined {
  const subject = `ports[${index}]`;
  if (!isPlainMap(raw)) {
    issues.add('MG_ALLOWLIST_BAD_ENTRY', site, {
      subject,
      value: raw,
      reason: 'is not a map with number and protocol',
    });
    return undefined;
  }
  for (const field of Object.keys(raw)
    .filter((name) => !PORT_FIELDS.has(name))
    .sort()) {
    issues.add('MG_ALLOWLIST_UNKNOWN_FIELD', site, {
      subject: `${subject}.${field}`,
      reason: 'is not a port field meshgate reads (number, protocol); ignored',
    });
  }
  const number = readInteger(raw['number'], 1, 65535);
  if (!number.ok || number.value === undefined) {
    const reason = number.ok ? 'is missing' : number.reason;
    issues.add('MG_CONFIG_BAD_PORT', site, { subject: `${subject}.number`, value: raw['number'] ?? undefined, reason });
  }
  const written = raw['protocol'];
  const declared = typeof written === 'string' ? written.trim().toUpperCase() : undefined;
  const protocol = declared === undefined ? undefined : PROTOCOL_BY_NAME.get(declared);
  if (protocol === undefined || declared === undefined) {
    const missing = written === undefined || written === null || declared === '';
    const reason = missing
      ? `is missing: write one of ${KNOWN_PROTOCOLS}`
      : `is not a known protocol (${KNOWN_PROTOCOLS})`;
    issues.add('MG_ALLOWLIST_BAD_PROTOCOL', site, {
      subject: `${subject}.protocol`,
      value: missing ? undefined : written,
      reason,
    });
    return undefined;
  }
  return number.ok && number.value !== undefined
    ? { number: number.value, protocol, declaredProtocol: declared }
    : undefined;
}

function comparePorts(a: PortSpec, b: PortSpec): number {
  return a.number - b.number || (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0);
}

/** The entry's ports, deduplicated by (number, protocol) and sorted; undefined when any is invalid. */
export function readPorts(raw: unknown, site: IssueSite, issues: IssueCollector): PortSpec[] | undefined {
  if (raw === undefined || raw === null) {
    issues.add('MG_ALLOWLIST_PORTS_MISSING', site, {
      subject: 'ports',
      reason: 'is missing: an entry needs at least one port',
    });
    return undefined;
  }
  if (!Array.isArray(raw)) {
    issues.add('MG_CONFIG_NOT_A_LIST', site, {
      subject: 'ports',
      value: raw,
      reason: 'is not a list of { number, protocol } maps',
    });
    return undefined;
  }
  if (raw.length === 0) {
    issues.add('MG_ALLOWLIST_PORTS_MISSING', site, {
      subject: 'ports',
      reason: 'is empty: an entry needs at least one port (an empty list allows nothing, never everything)',
    });
    return undefined;
  }
  const errorsBefore = issues.errorCount;
  const firstIndexByKey = new Map<string, number>();
  const ports: PortSpec[] = [];
  raw.forEach((item: unknown, index) => {
    const port = readPortSpec(item, index, site, issues);
    if (port === undefined) return;
    const key = `${port.number}/${port.protocol}`;
    const first = firstIndexByKey.get(key);
    if (first !== undefined) {
      issues.add('MG_WARN_DUPLICATE', site, {
        subject: `ports[${index}]`,
        value: `${port.number}/${port.declaredProtocol}`,
        reason: `duplicates ports[${first}] (both are ${key}); merged`,
      });
      return;
    }
    firstIndexByKey.set(key, index);
    ports.push(Object.freeze(port));
  });
  return issues.errorCount === errorsBefore ? ports.sort(comparePorts) : undefined;
}
