// Property tests: whatever the input, the parsers return coded issues (never throw), are
// deterministic, and accept every valid configuration.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';
import { stringify } from 'yaml';

import {
  CONFIG_ERROR_CODES,
  type ConfigIssue,
  type GLOBAL_KEYS,
  type ParseResult,
  parseAllowlist,
  parseGlobalConfig,
  readConfigDocuments,
} from '../../../src/config/index.js';
import { ALLOWLIST_REF, GLOBAL_REF } from './issueAssertions.js';

const byte = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(byte, byte, byte, byte).map((octets) => octets.join('.'));
const ipv6 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((groups) => groups.map((g) => g.toString(16)).join(':'));
const cidrish = fc.oneof(
  ipv4,
  ipv6,
  fc.tuple(ipv4, fc.integer({ min: -2, max: 40 })).map(([ip, prefix]) => `${ip}/${prefix}`),
  fc.tuple(ipv6, fc.integer({ min: -2, max: 140 })).map(([ip, prefix]) => `${ip}/${prefix}`),
  fc.constantFrom('::ffff:10.0.0.0/104', '10.0.0.1/8', '::/0', '0x0a.0.0.1', 'fe80::1%eth0', '10.1', '*', ''),
  fc.string(),
);
const cidrList = fc
  .array(cidrish, { maxLength: 6 })
  .chain((items) => fc.constantFrom(items.join(','), items.join(' \n'), items as unknown as string));

const port = fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.constantFrom('443', 'https', '', '8000-8100', 1.5));
const portSpec = fc.record(
  { number: port, protocol: fc.oneof(fc.constantFrom('TCP', 'udp', 'HTTPS', 'SCTP', ''), fc.anything()) },
  { requiredKeys: [] },
);
const host = fc.oneof(
  fc.domain(),
  fc.constantFrom('*.a.io', '*.io', 'a.*.io', '10.0.0.1', 'UPPER.io.', 'bad_host', ''),
  fc.string(),
);
const entry = fc.record(
  {
    name: fc.oneof(fc.constantFrom('a', 'b', 'stripe'), fc.string(), fc.anything()),
    hosts: fc.oneof(fc.array(host, { maxLength: 4 }), fc.anything()),
    addresses: fc.oneof(fc.array(cidrish, { maxLength: 4 }), fc.anything()),
    ports: fc.oneof(fc.array(portSpec, { maxLength: 3 }), fc.anything()),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);
const entryList = fc.array(fc.oneof(entry, fc.anything()), { maxLength: 5 });
const allowlistValue = fc.oneof(
  entryList,
  entryList.map((list) => stringify(list)),
  fc.string(),
  fc.anything(),
);

const valueFor: Record<(typeof GLOBAL_KEYS)[number], fc.Arbitrary<unknown>> = {
  egress: fc.oneof(fc.boolean(), fc.constantFrom('true', 'FALSE', 'yes', ''), fc.anything()),
  mesh_cidr_ranges: fc.oneof(cidrList, fc.anything()),
  outbound_ip_range_exclusion_list: fc.oneof(cidrList, fc.anything()),
  outbound_port_exclusion_list: fc.oneof(
    fc.array(port, { maxLength: 5 }).map((ports) => ports.join(',')),
    fc.array(port),
    fc.anything(),
  ),
  proxy_outbound_port: fc.oneof(port, fc.anything()),
  proxy_uid: fc.oneof(fc.integer({ min: -1, max: 2 ** 32 }), fc.string(), fc.anything()),
  blocked_egress_action: fc.oneof(fc.constantFrom('deny', 'Redirect', 'drop'), fc.anything()),
  unknown_pod_policy: fc.oneof(fc.constantFrom('pass', 'deny-external', 'deny'), fc.anything()),
  egress_allowlist: allowlistValue,
};
const globalData = fc
  .record(valueFor, { requiredKeys: [] })
  .chain((known) =>
    fc.dictionary(fc.string(), fc.anything(), { maxKeys: 3 }).map((unknown) => ({ ...unknown, ...known })),
  );

function assertWellFormed(issues: readonly ConfigIssue[], severity: 'error' | 'warning'): void {
  for (const issue of issues) {
    assert.ok(Object.hasOwn(CONFIG_ERROR_CODES, issue.code), `unknown code ${issue.code}`);
    assert.notEqual(issue.code, 'MG_CONFIG_INTERNAL', issue.message);
    assert.equal(issue.severity, severity);
    assert.ok(issue.message.startsWith(issue.object), issue.message);
    assert.ok(!issue.message.includes('\n'), issue.message);
  }
}

function assertResult(result: ParseResult<unknown>): void {
  assertWellFormed(result.warnings, 'warning');
  if (result.ok) assert.ok(Object.isFrozen(result.value));
  else {
    assert.ok(result.errors.length > 0);
    assertWellFormed(result.errors, 'error');
  }
}

test('parseGlobalConfig never throws and reports only documented codes, for any data', () => {
  fc.assert(
    fc.property(fc.oneof(globalData, fc.anything()), (data) =>
      assertResult(parseGlobalConfig(data as Record<string, unknown>, GLOBAL_REF)),
    ),
    { numRuns: 500 },
  );
});

test('parseAllowlist never throws and reports only documented codes, for any data', () => {
  const data = fc.oneof(fc.record({ egress: allowlistValue }, { requiredKeys: [] }), fc.anything());
  fc.assert(
    fc.property(data, (value) => assertResult(parseAllowlist(value as Record<string, unknown>, ALLOWLIST_REF))),
    { numRuns: 500 },
  );
});

test('parsing the same input twice gives deep-equal output', () => {
  fc.assert(
    fc.property(globalData, (data) => {
      assert.deepEqual(parseGlobalConfig(data, GLOBAL_REF), parseGlobalConfig(data, GLOBAL_REF));
      assert.deepEqual(
        parseAllowlist({ egress: data.egress_allowlist }, ALLOWLIST_REF),
        parseAllowlist({ egress: data.egress_allowlist }, ALLOWLIST_REF),
      );
    }),
    { numRuns: 200 },
  );
});

test('readConfigDocuments never throws, on random text or random YAML', () => {
  const text = fc.oneof(
    fc.string(),
    fc.anything().map((value) => stringify(value)),
    globalData.map((value) => stringify(value)),
  );
  fc.assert(
    fc.property(text, (input) => {
      const { documents, errors } = readConfigDocuments(input, 'random.yaml');
      assertWellFormed(errors, 'error');
      for (const doc of documents) assert.ok(doc.kind === 'global' || doc.kind === 'allowlist');
    }),
    { numRuns: 300 },
  );
});

/** Network address bits, independent of ipaddr.js: the key that makes two CIDRs the same. */
function networkKey(bytes: readonly number[], prefix: number): string {
  const masked = bytes.map((value, i) => {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    return value & ((0xff << (8 - bits)) & 0xff);
  });
  return `${bytes.length}:${masked.join('.')}/${prefix}`;
}

const validV4 = fc
  .tuple(fc.array(byte, { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }))
  .map(([bytes, prefix]) => ({
    text: `${bytes.join('.')}/${prefix}`,
    key: networkKey(bytes, prefix),
  }));
// The first group is 2000-3fff (global unicast), so no generated CIDR is IPv4-mapped.
const validV6 = fc
  .tuple(
    fc.integer({ min: 0x2000, max: 0x3fff }),
    fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 7, maxLength: 7 }),
    fc.integer({ min: 0, max: 128 }),
  )
  .map(([first, rest, prefix]) => {
    const groups = [first, ...rest];
    const bytes = groups.flatMap((group) => [group >> 8, group & 0xff]);
    return { text: `${groups.map((group) => group.toString(16)).join(':')}/${prefix}`, key: networkKey(bytes, prefix) };
  });

test('a generated valid config always parses, with one CIDR per distinct network, and round-trips', () => {
  const config = fc.record({
    mesh: fc.array(fc.oneof(validV4, validV6), { minLength: 1, maxLength: 20 }),
    excluded: fc.array(fc.oneof(validV4, validV6), { maxLength: 10 }),
    ports: fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 10 }),
    egress: fc.boolean(),
    separator: fc.constantFrom(',', ' ', '\n', ', '),
  });
  fc.assert(
    fc.property(config, ({ mesh, excluded, ports, egress, separator }) => {
      const data = {
        egress: String(egress),
        mesh_cidr_ranges: mesh.map((cidr) => cidr.text).join(separator),
        outbound_ip_range_exclusion_list: excluded.map((cidr) => cidr.text).join(separator),
        outbound_port_exclusion_list: ports.join(separator),
      };
      const result = parseGlobalConfig(data, GLOBAL_REF);
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.value.meshCidrs.length, new Set(mesh.map((cidr) => cidr.key)).size);
      assert.equal(result.value.excludedCidrs.length, new Set(excluded.map((cidr) => cidr.key)).size);
      assert.equal(result.value.excludedPorts.length, new Set(ports).size);
      assert.equal(result.value.egress, egress);

      const again = parseGlobalConfig(
        {
          ...data,
          mesh_cidr_ranges: result.value.meshCidrs.join(','),
          outbound_ip_range_exclusion_list: result.value.excludedCidrs.join(' '),
        },
        GLOBAL_REF,
      );
      assert.ok(again.ok);
      assert.deepEqual(again.value, result.value);
      assert.deepEqual(
        again.warnings.filter((issue) => issue.key !== 'outbound_port_exclusion_list'),
        [],
      );
    }),
    { numRuns: 300 },
  );
});
