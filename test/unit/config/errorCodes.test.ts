// One case per code: each code is reachable, and each issue names object, key, entry and value.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CONFIG_ERROR_CODES,
  checkNamespaceObjects,
  type ConfigIssue,
  type ConfigLimits,
  overlapWarnings,
  parseAllowlist,
  parseGlobalConfig,
  readConfigDocuments,
} from '../../../src/config/index.js';
import {
  ALLOWLIST_OBJECT,
  ALLOWLIST_REF,
  type ExpectedIssue,
  GLOBAL_OBJECT,
  GLOBAL_REF,
  allIssues,
  assertIssue,
  assertOk,
} from './issueAssertions.js';

interface CodeCase {
  readonly behaviour: string;
  readonly issues: () => { readonly issues: readonly ConfigIssue[]; readonly ok: boolean };
  readonly expected: ExpectedIssue;
}

const STRIPE_PORT = '  ports: [{ number: 443, protocol: HTTPS }]';

function global(data: Record<string, unknown>, limits?: ConfigLimits) {
  return () => {
    const result = parseGlobalConfig(data, GLOBAL_REF, limits);
    return { issues: allIssues(result), ok: result.ok };
  };
}

function allowlist(egress: unknown, limits?: ConfigLimits, extra: Record<string, unknown> = {}) {
  return () => {
    const result = parseAllowlist({ egress, ...extra }, ALLOWLIST_REF, limits);
    return { issues: allIssues(result), ok: result.ok };
  };
}

function file(text: string) {
  return () => {
    const read = readConfigDocuments(text, './cm.yaml');
    return { issues: read.errors, ok: read.errors.length === 0 };
  };
}

const G = (key: string, rest: Partial<ExpectedIssue> & { code: string }): ExpectedIssue => ({
  object: GLOBAL_OBJECT,
  key,
  ...rest,
});
const A = (rest: Partial<ExpectedIssue> & { code: string }): ExpectedIssue => ({
  object: ALLOWLIST_OBJECT,
  key: 'egress',
  ...rest,
});

const CASES: readonly CodeCase[] = [
  {
    behaviour: 'egress "yes" is not a boolean',
    issues: global({ egress: 'yes' }),
    expected: G('egress', { code: 'MG_CONFIG_BAD_BOOLEAN', value: 'yes' }),
  },
  {
    behaviour: 'an unparseable mesh CIDR is named with its position',
    issues: global({ mesh_cidr_ranges: '10.0.0.0/8, 10.0.0.999/16' }),
    expected: G('mesh_cidr_ranges', {
      code: 'MG_CONFIG_BAD_CIDR',
      entryIndex: 1,
      path: 'mesh_cidr_ranges[1]',
      value: '10.0.0.999/16',
    }),
  },
  {
    behaviour: 'a /33 IPv4 prefix is out of range',
    issues: global({ outbound_ip_range_exclusion_list: '10.0.0.0/33' }),
    expected: G('outbound_ip_range_exclusion_list', {
      code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE',
      entryIndex: 0,
      value: '10.0.0.0/33',
    }),
  },
  {
    behaviour: 'egress "true" without mesh CIDRs is refused',
    issues: global({ egress: 'true', mesh_cidr_ranges: '' }),
    expected: G('mesh_cidr_ranges', { code: 'MG_CONFIG_MESH_CIDRS_REQUIRED' }),
  },
  {
    behaviour: 'an excluded port above 65535 is refused',
    issues: global({ outbound_port_exclusion_list: '80, 70000' }),
    expected: G('outbound_port_exclusion_list', { code: 'MG_CONFIG_BAD_PORT', entryIndex: 1, value: '70000' }),
  },
  {
    behaviour: 'proxy_uid 4294967295 ((uid_t)-1) is refused',
    issues: global({ proxy_uid: '4294967295' }),
    expected: G('proxy_uid', { code: 'MG_CONFIG_BAD_UID', value: '4294967295' }),
  },
  {
    behaviour: 'blocked_egress_action must be deny or redirect',
    issues: global({ blocked_egress_action: 'drop' }),
    expected: G('blocked_egress_action', { code: 'MG_CONFIG_BAD_ACTION', value: 'drop' }),
  },
  {
    behaviour: "an allowlist's own blocked_egress_action must be deny, redirect or audit",
    issues: allowlist([], undefined, { blocked_egress_action: 'log' }),
    expected: { object: ALLOWLIST_OBJECT, key: 'blocked_egress_action', code: 'MG_CONFIG_BAD_ACTION', value: 'log' },
  },
  {
    behaviour: 'two allowlists of one namespace that set different blocked_egress_action values are both refused',
    issues: () => {
      const check = checkNamespaceObjects([
        { ref: ALLOWLIST_REF, entries: [], action: 'audit' },
        { ref: { ...ALLOWLIST_REF, name: 'zz-other' }, entries: [], action: 'deny' },
      ]);
      return { issues: [...check.issuesByObject.values()].flat(), ok: check.issuesByObject.size === 0 };
    },
    expected: {
      object: ALLOWLIST_OBJECT,
      key: 'blocked_egress_action',
      code: 'MG_ALLOWLIST_ACTION_CONFLICT',
      value: 'audit',
    },
  },
  {
    behaviour: 'unknown_pod_policy must be pass or deny-external',
    issues: global({ unknown_pod_policy: 'deny' }),
    expected: G('unknown_pod_policy', { code: 'MG_CONFIG_BAD_UNKNOWN_POD_POLICY', value: 'deny' }),
  },
  {
    behaviour: 'more CIDRs than the policy entry limit are refused',
    issues: global(
      { mesh_cidr_ranges: '10.0.0.0/8 10.1.0.0/16', outbound_ip_range_exclusion_list: '192.168.0.0/16' },
      { maxPolicyEntries: 2, maxExcludedPorts: 10 },
    ),
    expected: G('mesh_cidr_ranges', { code: 'MG_CONFIG_TOO_MANY_ENTRIES' }),
  },
  {
    behaviour: 'data that is not a map is refused',
    issues: global('egress: true' as unknown as Record<string, unknown>),
    expected: G('', { code: 'MG_CONFIG_NOT_A_MAP', value: 'egress: true' }),
  },
  {
    behaviour: 'an allowlist that is a single map instead of a list is refused',
    issues: allowlist('name: stripe\nhosts: [api.stripe.com]'),
    expected: A({ code: 'MG_CONFIG_NOT_A_LIST' }),
  },
  {
    behaviour: 'allowlist YAML with a syntax error is refused with its line',
    issues: allowlist('- name: stripe\n  hosts: [api.stripe.com\n'),
    expected: A({ code: 'MG_CONFIG_BAD_YAML' }),
  },
  {
    behaviour: 'a manifest of another kind is refused',
    issues: file('apiVersion: v1\nkind: Secret\nmetadata: { name: s }\n'),
    expected: { code: 'MG_CONFIG_BAD_MANIFEST', object: 'file ./cm.yaml', key: '', value: 'v1/Secret' },
  },
  {
    behaviour: 'a validator failure becomes an issue, not an exception',
    issues: global(
      Object.defineProperty({}, 'egress', {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      }),
    ),
    expected: G('', { code: 'MG_CONFIG_INTERNAL' }),
  },
  {
    behaviour: 'an entry that is not a map is refused',
    issues: allowlist(['api.stripe.com']),
    expected: A({ code: 'MG_ALLOWLIST_BAD_ENTRY', entryIndex: 0, value: 'api.stripe.com' }),
  },
  {
    behaviour: 'an entry without a name is refused',
    issues: allowlist(`- hosts: [api.stripe.com]\n${STRIPE_PORT}`),
    expected: A({ code: 'MG_ALLOWLIST_NAME_MISSING', entryIndex: 0, path: 'egress[0].name' }),
  },
  {
    behaviour: 'an entry name with surrounding whitespace is refused',
    issues: allowlist([{ name: ' stripe', hosts: ['api.stripe.com'], ports: [{ number: 443, protocol: 'TCP' }] }]),
    expected: A({ code: 'MG_ALLOWLIST_BAD_NAME', entryIndex: 0, entryName: ' stripe', value: ' stripe' }),
  },
  {
    behaviour: 'two entries with one name are refused',
    issues: allowlist(
      `- name: stripe\n  hosts: [api.stripe.com]\n${STRIPE_PORT}\n- name: stripe\n  hosts: [files.stripe.com]\n${STRIPE_PORT}`,
    ),
    expected: A({ code: 'MG_ALLOWLIST_DUPLICATE_NAME', entryIndex: 1, entryName: 'stripe', value: 'stripe' }),
  },
  {
    behaviour: 'an entry without hosts or addresses is refused',
    issues: allowlist(`- name: stripe\n  hosts: []\n${STRIPE_PORT}`),
    expected: A({ code: 'MG_ALLOWLIST_NO_DESTINATION', entryIndex: 0, entryName: 'stripe' }),
  },
  {
    behaviour: 'an entry without ports is refused',
    issues: allowlist('- name: stripe\n  hosts: [api.stripe.com]'),
    expected: A({ code: 'MG_ALLOWLIST_PORTS_MISSING', entryIndex: 0, entryName: 'stripe', path: 'egress[0].ports' }),
  },
  {
    behaviour: 'an unknown protocol is refused',
    issues: allowlist('- name: stripe\n  hosts: [api.stripe.com]\n  ports: [{ number: 443, protocol: SCTPX }]'),
    expected: A({
      code: 'MG_ALLOWLIST_BAD_PROTOCOL',
      entryIndex: 0,
      entryName: 'stripe',
      path: 'egress[0].ports[0].protocol',
      value: 'SCTPX',
    }),
  },
  {
    behaviour: 'a wildcard host with "*" other than as the whole first label is refused, never widened',
    issues: allowlist(`- name: stripe\n  hosts: ["api.*.stripe.com"]\n${STRIPE_PORT}`),
    expected: A({
      code: 'MG_ALLOWLIST_WILDCARD_HOST',
      entryIndex: 0,
      entryName: 'stripe',
      path: 'egress[0].hosts[0]',
      value: 'api.*.stripe.com',
    }),
  },
  {
    behaviour: 'an invalid hostname is refused',
    issues: allowlist(`- name: stripe\n  hosts: [api_stripe.com]\n${STRIPE_PORT}`),
    expected: A({
      code: 'MG_ALLOWLIST_BAD_HOST',
      entryIndex: 0,
      entryName: 'stripe',
      path: 'egress[0].hosts[0]',
      value: 'api_stripe.com',
    }),
  },
  {
    behaviour: "an object with none of meshgate's keys is refused, its keys not quoted",
    issues: global({ 'root:$6$hash:19000': null }),
    expected: G('', { code: 'MG_CONFIG_NO_MESHGATE_KEY' }),
  },
  {
    behaviour: 'an object over 1 MiB is refused before its values are parsed',
    issues: global({ egress: 'false', mesh_cidr_ranges: '10.0.0.0/8 '.repeat(100_000) }),
    expected: G('', { code: 'MG_CONFIG_TOO_LARGE' }),
  },
  {
    behaviour: 'past 100 errors an object reports how many more, not each',
    issues: global({
      egress: 'false',
      mesh_cidr_ranges: Array.from({ length: 250 }, (_, i) => `10.0.${i}.999`).join(','),
    }),
    expected: G('', { code: 'MG_CONFIG_MORE_ERRORS' }),
  },
  {
    behaviour: 'past 100 warnings an object reports how many more, not each',
    issues: global({
      egress: 'false',
      ...Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`unknown_${i}`, 'x'])),
    }),
    expected: G('', { code: 'MG_WARN_MORE_WARNINGS' }),
  },
  {
    behaviour: 'an unknown key is only a warning',
    issues: global({ egress: 'false', envoy_log_level: 'debug' }),
    expected: G('envoy_log_level', { code: 'MG_CONFIG_UNKNOWN_KEY' }),
  },
  {
    behaviour: 'an unknown entry field is only a warning',
    issues: allowlist(`- name: stripe\n  hosts: [api.stripe.com]\n  resolution: DNS\n${STRIPE_PORT}`),
    expected: A({
      code: 'MG_ALLOWLIST_UNKNOWN_FIELD',
      entryIndex: 0,
      entryName: 'stripe',
      path: 'egress[0].resolution',
    }),
  },
  {
    behaviour: 'host bits are cleared with a warning',
    issues: global({ mesh_cidr_ranges: '10.0.0.1/8' }),
    expected: G('mesh_cidr_ranges', { code: 'MG_WARN_HOST_BITS', entryIndex: 0, value: '10.0.0.1/8' }),
  },
  {
    behaviour: 'duplicates are merged with a warning',
    issues: global({ mesh_cidr_ranges: '10.0.0.0/8,10.0.0.0/8' }),
    expected: G('mesh_cidr_ranges', { code: 'MG_WARN_DUPLICATE', entryIndex: 1, value: '10.0.0.0/8' }),
  },
  {
    behaviour: 'an allowlisted address inside a mesh CIDR is warned about',
    issues: () => {
      const config = assertOk(parseGlobalConfig({ mesh_cidr_ranges: '10.0.0.0/8' }, GLOBAL_REF));
      const entries = assertOk(
        parseAllowlist({ egress: `- name: db\n  addresses: [10.1.0.0/16]\n${STRIPE_PORT}` }, ALLOWLIST_REF),
      );
      const warnings = overlapWarnings(config, new Map([['shop', { ref: ALLOWLIST_REF, entries }]]));
      return { issues: warnings, ok: true };
    },
    expected: A({ code: 'MG_WARN_ALLOW_IN_MESH', entryIndex: 0, entryName: 'db', value: '10.1.0.0/16' }),
  },
];

for (const { behaviour, issues, expected } of CASES) {
  test(`${expected.code}: ${behaviour}`, () => {
    const outcome = issues();
    const issue = assertIssue(outcome.issues, expected);
    const isWarning = issue.severity === 'warning';
    assert.equal(issue.code.startsWith('MG_WARN_') ? 'warning' : issue.severity, issue.severity);
    assert.equal(outcome.ok, isWarning, isWarning ? 'a warning alone never rejects' : 'an error rejects the object');
  });
}

// File I/O happens outside src/config; these codes are registered here so every config issue
// has one documented code, and are tested where they are raised.
const RAISED_OUTSIDE_SRC_CONFIG = ['MG_CONFIG_FILE_UNREADABLE', 'MG_CONFIG_FILE_SHAPE'];

test('every code in CONFIG_ERROR_CODES has a case above', () => {
  const covered = new Set([...CASES.map((testCase) => testCase.expected.code), ...RAISED_OUTSIDE_SRC_CONFIG]);
  assert.deepEqual(
    Object.keys(CONFIG_ERROR_CODES).filter((code) => !covered.has(code)),
    [],
  );
});

test('CONFIG_ERROR_CODES is frozen and every description is one line', () => {
  assert.ok(Object.isFrozen(CONFIG_ERROR_CODES));
  for (const [code, description] of Object.entries(CONFIG_ERROR_CODES)) {
    assert.match(code, /^MG_[A-Z0-9_]+$/);
    assert.ok(description.length > 0 && !description.includes('\n'), code);
  }
});
