import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type GlobalConfig, parseGlobalConfig } from '../../../src/config/index.js';
import { GLOBAL_REF, allIssues, assertOk, codesOf } from './issueAssertions.js';

const DEFAULTS: GlobalConfig = {
  egress: false,
  meshCidrs: [],
  excludedCidrs: [],
  excludedPorts: [],
  proxyOutboundPort: 15001,
  proxyUid: 1500,
  blockedEgressAction: 'deny',
  unknownPodPolicy: 'pass',
  globalAllowlist: [],
};

const VALID: ReadonlyArray<{ behaviour: string; data: Record<string, unknown>; expected: Partial<GlobalConfig> }> = [
  {
    behaviour: 'a ConfigMap with only egress: "false" gets every other default (as osm install)',
    data: { egress: 'false' },
    expected: {},
  },
  {
    behaviour: 'ConfigMap strings are read, booleans case-insensitively',
    data: {
      egress: 'TRUE',
      mesh_cidr_ranges: '10.96.0.0/12,10.244.0.0/16 fd00:10:96::/112',
      proxy_outbound_port: '15006',
      proxy_uid: '1337',
    },
    expected: {
      egress: true,
      meshCidrs: ['10.96.0.0/12', '10.244.0.0/16', 'fd00:10:96::/112'],
      proxyOutboundPort: 15006,
      proxyUid: 1337,
    },
  },
  {
    behaviour: 'YAML scalars and lists from a plain file are accepted',
    data: {
      egress: true,
      mesh_cidr_ranges: ['10.0.0.0/8', 'fd00::/8'],
      outbound_port_exclusion_list: [6379, '8080'],
      proxy_outbound_port: 15001,
      proxy_uid: 0,
    },
    expected: { egress: true, meshCidrs: ['10.0.0.0/8', 'fd00::/8'], excludedPorts: [6379, 8080], proxyUid: 0 },
  },
  {
    behaviour: 'CIDRs may be separated by commas, spaces and newlines together',
    data: { outbound_ip_range_exclusion_list: '\n 169.254.169.254/32,\n\n  100.64.0.0/10 ,, \t' },
    expected: { excludedCidrs: ['100.64.0.0/10', '169.254.169.254/32'] },
  },
  {
    behaviour: 'a single port in a file may be a bare number',
    data: { outbound_port_exclusion_list: 8080 },
    expected: { excludedPorts: [8080] },
  },
  {
    behaviour: 'excluded ports are sorted numerically',
    data: { outbound_port_exclusion_list: '9090 80, 443\n8080' },
    expected: { excludedPorts: [80, 443, 8080, 9090] },
  },
  {
    behaviour: 'CIDRs are sorted IPv4 first, then by address, then by prefix',
    data: { mesh_cidr_ranges: 'fd00::/8 10.0.0.0/16 2001:db8::/32 10.0.0.0/8 9.0.0.0/8' },
    expected: { meshCidrs: ['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', '2001:db8::/32', 'fd00::/8'] },
  },
  {
    behaviour: 'choices are case-insensitive and stored lower-case',
    data: { blocked_egress_action: 'Redirect', unknown_pod_policy: ' DENY-EXTERNAL ' },
    expected: { blockedEgressAction: 'redirect', unknownPodPolicy: 'deny-external' },
  },
  {
    behaviour: 'egress "false" without mesh CIDRs is allowed (OSM special case, decided by the datapath)',
    data: { egress: 'false', mesh_cidr_ranges: '' },
    expected: {},
  },
  {
    behaviour: 'empty strings mean unset or none, never all',
    data: {
      egress: '',
      mesh_cidr_ranges: '',
      outbound_ip_range_exclusion_list: '  ',
      outbound_port_exclusion_list: '',
      proxy_uid: '',
      egress_allowlist: '',
    },
    expected: {},
  },
  {
    behaviour: 'null values from a file mean unset',
    data: { egress: null, proxy_outbound_port: null, egress_allowlist: null },
    expected: {},
  },
  {
    behaviour: 'the largest uid that can name a process is accepted',
    data: { proxy_uid: '4294967294' },
    expected: { proxyUid: 4294967294 },
  },
  {
    behaviour: 'egress_allowlist is read from YAML text',
    data: {
      egress_allowlist: '- name: pypi\n  hosts: [pypi.org]\n  ports:\n    - number: 443\n      protocol: HTTPS\n',
    },
    expected: {
      globalAllowlist: [
        {
          name: 'pypi',
          hosts: ['pypi.org'],
          addresses: [],
          ports: [{ number: 443, protocol: 'TCP', declaredProtocol: 'HTTPS' }],
        },
      ],
    },
  },
  {
    behaviour: 'egress_allowlist is read from a real YAML list',
    data: { egress_allowlist: [{ name: 'dns', addresses: ['8.8.8.8'], ports: [{ number: 53, protocol: 'udp' }] }] },
    expected: {
      globalAllowlist: [
        {
          name: 'dns',
          hosts: [],
          addresses: ['8.8.8.8/32'],
          ports: [{ number: 53, protocol: 'UDP', declaredProtocol: 'UDP' }],
        },
      ],
    },
  },
];

for (const { behaviour, data, expected } of VALID) {
  test(`valid: ${behaviour}`, () => {
    const config = assertOk(parseGlobalConfig(data, GLOBAL_REF));
    assert.deepEqual(config, { ...DEFAULTS, ...expected });
  });
}

const INVALID: ReadonlyArray<{ key: string; values: readonly unknown[]; code: string }> = [
  { key: 'egress', values: ['yes', 'on', '1', 'truee', 1, ['true'], { enabled: true }], code: 'MG_CONFIG_BAD_BOOLEAN' },
  {
    key: 'proxy_outbound_port',
    values: ['0', '65536', 'http', '80.5', 80.5, '-1', '0x50', '+80', '1e3', Number.NaN, true],
    code: 'MG_CONFIG_BAD_PORT',
  },
  {
    key: 'outbound_port_exclusion_list',
    values: ['0', '8000-8100', '80;443', 'ssh', [80, 70000], '99999999999999999999'],
    code: 'MG_CONFIG_BAD_PORT',
  },
  { key: 'proxy_uid', values: ['-1', 'root', 1.5, '4294967295', 4294967296], code: 'MG_CONFIG_BAD_UID' },
  { key: 'blocked_egress_action', values: ['drop', 'reject', 'deny-external', 0], code: 'MG_CONFIG_BAD_ACTION' },
  {
    key: 'unknown_pod_policy',
    values: ['deny', 'redirect', 'passthrough', false],
    code: 'MG_CONFIG_BAD_UNKNOWN_POD_POLICY',
  },
  { key: 'mesh_cidr_ranges', values: [{ a: 1 }, true], code: 'MG_CONFIG_NOT_A_LIST' },
  { key: 'egress_allowlist', values: ['{}', 'just text', { name: 'x' }, 42], code: 'MG_CONFIG_NOT_A_LIST' },
  {
    key: 'egress_allowlist',
    values: ['- name: [', '- a: 1\n  a: 2\n', '- *undefined_alias'],
    code: 'MG_CONFIG_BAD_YAML',
  },
];

for (const { key, values, code } of INVALID) {
  for (const value of values) {
    test(`invalid: ${key} ${JSON.stringify(value) ?? String(value)} is refused with ${code}`, () => {
      const result = parseGlobalConfig({ [key]: value }, GLOBAL_REF);
      assert.equal(result.ok, false);
      const issue = allIssues(result).find((candidate) => candidate.code === code);
      assert.ok(issue, `expected ${code}, got ${codesOf(allIssues(result)).join(', ')}`);
      assert.equal(issue.key, key);
      assert.equal(issue.severity, 'error');
    });
  }
}

test('an invalid global ConfigMap is rejected as a whole with every error collected', () => {
  const result = parseGlobalConfig(
    {
      egress: 'yes',
      mesh_cidr_ranges: '10.0.0.0/33 bogus',
      proxy_uid: 'root',
      blocked_egress_action: 'drop',
      envoy_log_level: 'debug',
    },
    GLOBAL_REF,
  );
  assert.equal(result.ok, false);
  assert.ok(!('value' in result), 'a rejected object yields no partial config');
  if (result.ok) return;
  assert.deepEqual(codesOf(result.errors).sort(), [
    'MG_CONFIG_BAD_ACTION',
    'MG_CONFIG_BAD_BOOLEAN',
    'MG_CONFIG_BAD_CIDR',
    'MG_CONFIG_BAD_UID',
    'MG_CONFIG_PREFIX_OUT_OF_RANGE',
  ]);
  assert.deepEqual(codesOf(result.warnings), ['MG_CONFIG_UNKNOWN_KEY'], 'warnings are kept on rejection too');
});

test('egress "true" with only invalid mesh CIDRs reports the CIDRs, not an empty list', () => {
  const result = parseGlobalConfig({ egress: 'true', mesh_cidr_ranges: 'bogus' }, GLOBAL_REF);
  assert.deepEqual(codesOf(allIssues(result)), ['MG_CONFIG_BAD_CIDR']);
});

test('egress "true" with mesh CIDRs missing entirely is refused', () => {
  const result = parseGlobalConfig({ egress: true }, GLOBAL_REF);
  assert.deepEqual(codesOf(allIssues(result)), ['MG_CONFIG_MESH_CIDRS_REQUIRED']);
  assert.match(allIssues(result)[0]?.message ?? '', /egress is "true"/);
});

test('the parsed config is deep-frozen', () => {
  const config = assertOk(
    parseGlobalConfig(
      {
        mesh_cidr_ranges: '10.0.0.0/8',
        egress_allowlist: '- { name: a, hosts: [a.io], ports: [{ number: 1, protocol: TCP }] }',
      },
      GLOBAL_REF,
    ),
  );
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.meshCidrs));
  assert.ok(Object.isFrozen(config.globalAllowlist[0]?.ports[0]));
  assert.throws(() => (config.meshCidrs as string[]).push('0.0.0.0/0'));
});

test('unknown keys warn and suggest the meshgate key for typos and OSM camelCase names', () => {
  const result = parseGlobalConfig(
    {
      egress: 'false',
      outboundIPRangeExclusionList: '10.0.0.0/8',
      mesh_cidr_range: '10.0.0.0/8',
      use_https_ingress: 'false',
    },
    GLOBAL_REF,
  );
  assertOk(result);
  const byKey = new Map(result.warnings.map((issue) => [issue.key, issue.message]));
  assert.match(byKey.get('outboundIPRangeExclusionList') ?? '', /did you mean outbound_ip_range_exclusion_list\?/);
  assert.match(byKey.get('mesh_cidr_range') ?? '', /did you mean mesh_cidr_ranges\?/);
  assert.doesNotMatch(byKey.get('use_https_ingress') ?? 'missing', /did you mean/);
});

test('more excluded ports than maxExcludedPorts are refused', () => {
  const result = parseGlobalConfig({ outbound_port_exclusion_list: '1 2 3 3' }, GLOBAL_REF, {
    maxPolicyEntries: 100,
    maxExcludedPorts: 2,
  });
  const issue = allIssues(result).find((candidate) => candidate.code === 'MG_CONFIG_TOO_MANY_ENTRIES');
  assert.equal(issue?.key, 'outbound_port_exclusion_list');
  assert.match(issue?.message ?? '', /3 ports, more than the limit of 2/);
});

test('duplicate ports count once against maxExcludedPorts', () => {
  assertOk(
    parseGlobalConfig({ outbound_port_exclusion_list: '80 80 80' }, GLOBAL_REF, {
      maxPolicyEntries: 100,
      maxExcludedPorts: 1,
    }),
  );
});

test('mesh, exclusion and global allowlist entries count together against maxPolicyEntries', () => {
  const data = {
    mesh_cidr_ranges: '10.0.0.0/8',
    outbound_ip_range_exclusion_list: '192.168.0.0/16',
    egress_allowlist:
      '- { name: a, hosts: [a.io, b.io], ports: [{ number: 443, protocol: TCP }, { number: 80, protocol: TCP }] }',
  };
  assertOk(parseGlobalConfig(data, GLOBAL_REF, { maxPolicyEntries: 6, maxExcludedPorts: 10 }));
  const result = parseGlobalConfig(data, GLOBAL_REF, { maxPolicyEntries: 5, maxExcludedPorts: 10 });
  const issue = allIssues(result).find((candidate) => candidate.code === 'MG_CONFIG_TOO_MANY_ENTRIES');
  assert.equal(issue?.key, 'egress_allowlist');
  assert.match(issue?.message ?? '', /6 policy entries/);
});

test('a huge CIDR list is refused by size without validating every item', () => {
  const huge = Array.from({ length: 50 }, () => 'bogus').join(' ');
  const result = parseGlobalConfig({ mesh_cidr_ranges: huge }, GLOBAL_REF, {
    maxPolicyEntries: 10,
    maxExcludedPorts: 10,
  });
  assert.deepEqual(codesOf(allIssues(result)), ['MG_CONFIG_TOO_MANY_ENTRIES']);
});

test('a long value is truncated in the message but the message stays one line', () => {
  const value = `${'x'.repeat(5000)}\n/8`;
  const result = parseGlobalConfig({ proxy_uid: value }, GLOBAL_REF);
  const issue = allIssues(result)[0];
  assert.ok(issue !== undefined);
  assert.ok(issue.message.length < 400, 'message is short');
  assert.ok(!issue.message.includes('\n'));
  assert.ok((issue.value ?? '').length < 1100, 'value field is bounded');
});

test('a ConfigMap read from a file names both the ConfigMap and the file', () => {
  const result = parseGlobalConfig(
    { egress: 'yes' },
    { kind: 'ConfigMap', namespace: 'osm-system', name: 'osm-config', path: './osm.yaml' },
  );
  assert.match(
    allIssues(result)[0]?.message ?? '',
    /^ConfigMap osm-system\/osm-config \(file \.\/osm\.yaml\) key egress: "yes"/,
  );
});

test('a standalone file is named by its path', () => {
  const result = parseGlobalConfig({ egress: 'yes' }, { kind: 'File', name: 'meshgate.yaml', path: './meshgate.yaml' });
  assert.equal(allIssues(result)[0]?.object, 'file ./meshgate.yaml');
});
