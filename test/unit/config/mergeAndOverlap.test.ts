import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  type AllowlistEntry,
  type GlobalConfig,
  type ObjectRef,
  mergeNamespaceAllowlists,
  overlapWarnings,
  parseAllowlist,
  parseGlobalConfig,
} from '../../../src/config/index.js';
import { GLOBAL_REF, allIssues, assertOk, codesOf } from './issueAssertions.js';

const refA: ObjectRef = { kind: 'ConfigMap', namespace: 'shop', name: 'egress-a' };
const refB: ObjectRef = { kind: 'ConfigMap', namespace: 'shop', name: 'egress-b' };

function entriesOf(ref: ObjectRef, ...specs: Array<[name: string, addresses: string[]]>): readonly AllowlistEntry[] {
  const egress = specs.map(([name, addresses]) => ({ name, addresses, ports: [{ number: 443, protocol: 'TCP' }] }));
  return assertOk(parseAllowlist({ egress }, ref));
}

function mesh(text: string): GlobalConfig {
  return assertOk(parseGlobalConfig({ mesh_cidr_ranges: text }, GLOBAL_REF));
}

test('allowlists of several ConfigMaps in a namespace merge, ordered by object name whatever the input order', () => {
  const a = { ref: refA, entries: entriesOf(refA, ['one', ['1.1.1.1']]) };
  const b = { ref: refB, entries: entriesOf(refB, ['two', ['2.2.2.2']], ['three', ['3.3.3.3']]) };
  const forward = assertOk(mergeNamespaceAllowlists([a, b]));
  assert.deepEqual(
    forward.map((entry) => entry.name),
    ['one', 'two', 'three'],
  );
  assert.deepEqual(assertOk(mergeNamespaceAllowlists([b, a])), forward);
  assert.ok(Object.isFrozen(forward));
});

test('a name used in two ConfigMaps of one namespace is an error naming both objects', () => {
  const result = mergeNamespaceAllowlists([
    { ref: refB, entries: entriesOf(refB, ['stripe', ['2.2.2.2']]) },
    { ref: refA, entries: entriesOf(refA, ['other', ['9.9.9.9']], ['stripe', ['1.1.1.1']]) },
  ]);
  assert.equal(result.ok, false);
  const [issue] = allIssues(result);
  assert.equal(issue?.code, 'MG_ALLOWLIST_DUPLICATE_NAME');
  assert.equal(issue?.object, 'ConfigMap shop/egress-b', 'the later object by name carries the error');
  assert.equal(issue?.entryName, 'stripe');
  assert.equal(issue?.entryIndex, 0);
  assert.match(
    issue?.message ?? '',
    /^ConfigMap shop\/egress-b key egress entry \[0\] "stripe": name "stripe" is also the name of an entry in ConfigMap shop\/egress-a/,
  );
});

test('merging no ConfigMaps gives no entries', () => {
  assert.deepEqual(assertOk(mergeNamespaceAllowlists([])), []);
});

const OVERLAPS: ReadonlyArray<{
  behaviour: string;
  mesh: string;
  addresses: string[];
  warned: string[];
  reason?: RegExp;
}> = [
  {
    behaviour: 'an address inside a mesh CIDR is warned about',
    mesh: '10.0.0.0/8',
    addresses: ['10.1.2.3'],
    warned: ['10.1.2.3/32'],
    reason: /inside mesh CIDR 10\.0\.0\.0\/8: the mesh rule decides/,
  },
  {
    behaviour: 'an address range containing a mesh CIDR is warned about',
    mesh: '10.96.0.0/12',
    addresses: ['10.0.0.0/8'],
    warned: ['10.0.0.0/8'],
    reason: /contains mesh CIDR 10\.96\.0\.0\/12/,
  },
  {
    behaviour: 'an address equal to a mesh CIDR is warned about',
    mesh: 'fd00::/8',
    addresses: ['fd00::/8'],
    warned: ['fd00::/8'],
  },
  {
    behaviour: 'IPv6 addresses are compared with IPv6 mesh CIDRs',
    mesh: '10.0.0.0/8 fd00::/8',
    addresses: ['fd12::1', '2001:db8::1'],
    warned: ['fd12::1/128'],
  },
  {
    behaviour: 'disjoint addresses are not warned about',
    mesh: '10.0.0.0/8',
    addresses: ['11.0.0.0/8', '9.255.255.255'],
    warned: [],
  },
  { behaviour: 'an IPv4 address never overlaps an IPv6 mesh CIDR', mesh: '::/0', addresses: ['10.0.0.1'], warned: [] },
  { behaviour: 'no mesh CIDRs, no warnings', mesh: '', addresses: ['10.0.0.1'], warned: [] },
];

for (const { behaviour, mesh: meshText, addresses, warned, reason } of OVERLAPS) {
  test(`overlap: ${behaviour}`, () => {
    const warnings = overlapWarnings(
      mesh(meshText),
      new Map([['shop', { ref: refA, entries: entriesOf(refA, ['db', addresses]) }]]),
    );
    assert.deepEqual(
      warnings.map((issue) => issue.value),
      warned,
    );
    for (const issue of warnings) {
      assert.equal(issue.code, 'MG_WARN_ALLOW_IN_MESH');
      assert.equal(issue.severity, 'warning');
      assert.equal(issue.entryName, 'db');
      assert.equal(issue.key, 'egress');
      if (reason) assert.match(issue.message, reason);
    }
  });
}

test('the global allowlist (namespace "") is reported under egress_allowlist, namespaces in sorted order', () => {
  const global = assertOk(
    parseGlobalConfig(
      {
        mesh_cidr_ranges: '10.0.0.0/8',
        egress_allowlist: '- { name: g, addresses: [10.0.0.1], ports: [{ number: 53, protocol: UDP }] }',
      },
      GLOBAL_REF,
    ),
  );
  const allowlists = new Map([
    ['shop', { ref: refA, entries: entriesOf(refA, ['s', ['10.9.9.9']]) }],
    ['', { ref: GLOBAL_REF, entries: global.globalAllowlist }],
  ]);
  const warnings = overlapWarnings(global, allowlists);
  assert.deepEqual(
    warnings.map((issue) => [issue.object, issue.key, issue.entryName]),
    [
      ['ConfigMap osm-system/osm-config', 'egress_allowlist', 'g'],
      ['ConfigMap shop/egress-a', 'egress', 's'],
    ],
  );
  assert.deepEqual(codesOf(warnings), ['MG_WARN_ALLOW_IN_MESH', 'MG_WARN_ALLOW_IN_MESH']);
});

test('an address overlapping two mesh CIDRs gets one warning per mesh CIDR', () => {
  const warnings = overlapWarnings(
    mesh('10.0.0.0/8 10.1.0.0/16'),
    new Map([['shop', { ref: refA, entries: entriesOf(refA, ['x', ['10.1.2.0/24']]) }]]),
  );
  assert.equal(warnings.length, 2);
});
