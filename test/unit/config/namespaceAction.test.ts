// blocked_egress_action in allowlists (SPEC §1.2): read per object, checked across a namespace's objects.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { readAllowlistFile, readFileObjects } from '../../../src/agent/fileSources.js';
import {
  type ObjectRef,
  allowlistAction,
  checkNamespaceObjects,
  parseAllowlist,
  parseGlobalConfig,
} from '../../../src/config/index.js';
import { GLOBAL_REF, allIssues, assertOk, codesOf } from './issueAssertions.js';

const ref = (name: string): ObjectRef => ({ kind: 'ConfigMap', namespace: 'shop', name });
const dir = mkdtempSync(path.join(tmpdir(), 'mgtest-nsaction-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the global blocked_egress_action takes audit, in any case', () => {
  assert.equal(
    assertOk(parseGlobalConfig({ blocked_egress_action: 'Audit' }, GLOBAL_REF)).blockedEgressAction,
    'audit',
  );
});

test('an allowlist may set blocked_egress_action for its namespace, alone or with entries; it is no unknown key', () => {
  const data = { blocked_egress_action: 'audit' };
  const result = parseAllowlist(data, ref('a'));
  assert.deepEqual(assertOk(result), []);
  assert.deepEqual(codesOf(allIssues(result)), []);
  assert.equal(allowlistAction(data), 'audit');
  assert.equal(allowlistAction({ egress: '[]' }), null);
  assert.equal(allowlistAction({ blocked_egress_action: ' ' }), null, 'blank means unset');
});

test('a bad action rejects the allowlist object whole, naming key and value', () => {
  const result = parseAllowlist(
    {
      egress: '- name: x\n  addresses: [1.2.3.4]\n  ports: [{number: 443, protocol: TCP}]',
      blocked_egress_action: 'drop',
    },
    ref('a'),
  );
  assert.equal(result.ok, false);
  const issue = allIssues(result).find((i) => i.code === 'MG_CONFIG_BAD_ACTION')!;
  assert.equal(issue.key, 'blocked_egress_action');
  assert.equal(issue.value, 'drop');
  assert.match(
    issue.message,
    /ConfigMap shop\/a key blocked_egress_action: "drop" is not one of deny, redirect, audit/,
  );
});

test('objects of a namespace that agree, or leave the key unset, give the namespace that action', () => {
  const check = checkNamespaceObjects([
    { ref: ref('a'), entries: [], action: 'audit' },
    { ref: ref('b'), entries: [], action: null },
    { ref: ref('c'), entries: [], action: 'audit' },
  ]);
  assert.equal(check.action, 'audit');
  assert.equal(check.issuesByObject.size, 0);
  assert.equal(checkNamespaceObjects([{ ref: ref('a'), entries: [], action: null }]).action, null);
});

test('two objects that disagree: an error on each one that sets the key, naming the other; no action for the namespace', () => {
  const check = checkNamespaceObjects([
    { ref: ref('b'), entries: [], action: 'deny' },
    { ref: ref('a'), entries: [], action: 'audit' },
    { ref: ref('c'), entries: [], action: null },
  ]);
  assert.equal(check.action, null);
  assert.deepEqual([...check.issuesByObject.keys()], ['ConfigMap shop/a', 'ConfigMap shop/b']);
  const [a] = check.issuesByObject.get('ConfigMap shop/a')!;
  const [b] = check.issuesByObject.get('ConfigMap shop/b')!;
  assert.equal(a!.code, 'MG_ALLOWLIST_ACTION_CONFLICT');
  assert.equal(a!.severity, 'error');
  assert.match(
    a!.message,
    /ConfigMap shop\/a key blocked_egress_action: "audit" disagrees .*ConfigMap shop\/b sets "deny"/,
  );
  assert.match(
    b!.message,
    /ConfigMap shop\/b key blocked_egress_action: "deny" disagrees .*ConfigMap shop\/a sets "audit"/,
  );
});

test('an allowlist file carries its action; documents of one file that disagree reject the file', () => {
  const good = path.join(dir, 'good.yaml');
  writeFileSync(
    good,
    'blocked_egress_action: audit\negress:\n- name: x\n  addresses: [192.0.2.1]\n  ports: [{number: 443, protocol: TCP}]\n',
  );
  const read = readAllowlistFile(good).result;
  assert.ok(read.ok);
  assert.equal(read.value.action, 'audit');
  assert.equal(read.value.entries.length, 1);

  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'blocked_egress_action: audit\negress: []\n---\nblocked_egress_action: redirect\negress: []\n');
  const rejected = readAllowlistFile(bad).result;
  assert.equal(rejected.ok, false);
  assert.ok(!rejected.ok && rejected.errors.some((e) => e.code === 'MG_ALLOWLIST_ACTION_CONFLICT'));

  const manifest = path.join(dir, 'cm.yaml');
  writeFileSync(
    manifest,
    [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: shop-egress',
      '  namespace: shop',
      '  labels: {meshgate.io/egress-allowlist: "true"}',
      'data:',
      '  blocked_egress_action: audit',
      '',
    ].join('\n'),
  );
  const [object] = readFileObjects(manifest).objects;
  assert.equal(object!.kind, 'allowlist');
  assert.equal(object!.action, 'audit');
  assert.equal(object!.ref.namespace, 'shop');
});
