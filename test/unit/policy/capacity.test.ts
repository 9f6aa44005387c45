// The whole policy against the kernel's capacity: allowlists that do not fit are held back
// (largest change first, unchanged ones keep their place, a held-back one keeps what it was
// given or gets nothing), everything else is enforced, and what is enforced always fits.
// Small capacities are injected: no test builds 262,144 entries.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parseAllowlist, parseGlobalConfig, type AllowlistEntry } from '../../../src/config/index.js';
import { validateDesired, type DesiredGroup, type DesiredState } from '../../../src/datapath/desired.js';
import { fitCapacity, type CompiledAllowlist } from '../../../src/policy/capacity.js';
import { PolicyCompiler } from '../../../src/policy/compile.js';
import { heldBackIssues } from '../../../src/agent/core.js';
import type { ObjectState } from '../../../src/agent/lastGood.js';

const global = (() => {
  const r = parseGlobalConfig({ mesh_cidr_ranges: '10.0.0.0/8' }, { kind: 'ConfigMap', namespace: 'x', name: 'g' });
  assert.ok(r.ok);
  return r.value;
})();

/** An allowlist of `n` addresses (one entry each, so one label each) in 100.64.0.0/10, from `offset`. */
function allowlist(namespace: string, n: number, offset = 0): readonly AllowlistEntry[] {
  const list = Array.from({ length: n }, (_, i) => {
    const v = offset + i;
    return {
      name: `e${v}`,
      addresses: [`100.${64 + ((v >> 16) & 63)}.${(v >> 8) & 255}.${v & 255}`],
      ports: [{ number: 443, protocol: 'TCP' }],
    };
  });
  const r = parseAllowlist({ egress: list }, { kind: 'ConfigMap', namespace, name: 'egress' });
  assert.ok(r.ok, r.ok ? '' : r.errors[0]!.message);
  return r.value;
}

const entriesOf = (s: DesiredState, namespace: string): number =>
  s.policy.groups
    .filter((g) => g.id === `allow:${namespace}` || g.id.startsWith(`allow:${namespace}#`))
    .reduce((n, g) => n + g.entries.length, 0);
const total = (s: DesiredState): number =>
  s.policy.groups.reduce((n, g) => n + (g.cidrs ? g.cidrs.length : g.entries.length), 0);

const list = (id: string, size: number): CompiledAllowlist => ({
  id: `allow:${id}`,
  namespace: id,
  groups: [
    { id: `allow:${id}`, entries: Array.from({ length: size }, (_, i) => ({ table: 'allow', cidr: `${id}${i}` })) },
  ],
});

describe('fitCapacity', () => {
  test('everything that fits is given as it is, with nothing counted', () => {
    const lists = [list('a', 30), list('b', 50)];
    const fit = fitCapacity(10, 0, lists, new Map(), { entries: 90, labels: 1000 });
    assert.deepEqual(fit.heldBack, []);
    assert.deepEqual(fit.groups, [...lists[0]!.groups, ...lists[1]!.groups]);
  });

  test('changed allowlists go smallest first; the one that does not fit is held back with nothing', () => {
    const lists = [list('a', 30), list('b', 50), list('c', 40)];
    const fit = fitCapacity(10, 0, lists, new Map(), { entries: 90, labels: 1000 });
    assert.deepEqual(fit.heldBack, [
      { namespace: 'b', entries: 50, labels: 1, room: { entries: 10, labels: 998 }, kept: 'none' },
    ]);
    assert.deepEqual(
      fit.groups.map((g) => g.id),
      ['allow:a', 'allow:c'],
    );
  });

  test('an unchanged allowlist keeps its place; a changed one that no longer fits keeps what it was given', () => {
    const a = list('a', 30);
    const b = list('b', 50);
    const previous = new Map<string, readonly DesiredGroup[]>([
      [a.id, a.groups],
      [b.id, b.groups],
    ]);
    const bigger = list('a', 45);
    const fit = fitCapacity(10, 0, [bigger, b], previous, { entries: 90, labels: 1000 });
    assert.equal(fit.heldBack.length, 1);
    assert.equal(fit.heldBack[0]!.namespace, 'a');
    assert.equal(fit.heldBack[0]!.kept, 'previous');
    assert.deepEqual(fit.groups, [...a.groups, ...b.groups], 'b unchanged first, a as it was');
  });

  test('labels count as well as entries', () => {
    const labelled = (id: string, n: number): CompiledAllowlist => ({
      id: `allow:${id}`,
      namespace: id,
      groups: [
        {
          id: `allow:${id}`,
          entries: Array.from({ length: n }, (_, i) => ({ table: 'allow', cidr: `${id}${i}`, label: `${id}/${i}` })),
        },
      ],
    });
    const fit = fitCapacity(0, 5, [labelled('a', 10), labelled('b', 20)], new Map(), { entries: 100, labels: 30 });
    assert.deepEqual(
      fit.heldBack.map((h) => [h.namespace, h.labels]),
      [['b', 21]],
    );
  });
});

describe('PolicyCompiler under a capacity', () => {
  test('several large allowlists together: the largest change is held back, the rest is enforced and fits', () => {
    const capacity = { entries: 3000, labels: 100_000 };
    const compiler = new PolicyCompiler(capacity);
    const compile = (allowlists: Map<string, readonly AllowlistEntry[]>): DesiredState =>
      compiler.compile({ global, allowlists, resolved: new Map(), pods: [] });
    const shop = allowlist('shop', 1500);
    const search = allowlist('search', 1200, 10_000);
    const big = allowlist('big', 2000, 20_000);

    let s = compile(
      new Map([
        ['shop', shop],
        ['search', search],
        ['big', big],
      ]),
    );
    assert.deepEqual(
      compiler.heldBack.map((h) => [h.namespace, h.entries, h.kept]),
      [['big', 2000, 'none']],
    );
    assert.equal(entriesOf(s, 'big'), 0, "big's pods get the blocked action: nothing of big is allowed");
    assert.equal(entriesOf(s, 'shop'), 1500);
    assert.equal(entriesOf(s, 'search'), 1200);
    assert.ok(total(s) <= capacity.entries);

    // shop grows and still fits.
    s = compile(
      new Map([
        ['shop', allowlist('shop', 1600)],
        ['search', search],
        ['big', big],
      ]),
    );
    assert.equal(entriesOf(s, 'shop'), 1600);
    const given = s.policy.groups.filter((g) => g.id.startsWith('allow:shop'));

    // shop grows past what is left: it keeps what it was given (the very same groups), search is untouched.
    s = compile(
      new Map([
        ['shop', allowlist('shop', 1900)],
        ['search', search],
        ['big', big],
      ]),
    );
    assert.deepEqual(
      compiler.heldBack.map((h) => [h.namespace, h.kept]),
      [
        ['big', 'none'],
        ['shop', 'previous'],
      ],
    );
    assert.deepEqual(
      s.policy.groups.filter((g) => g.id.startsWith('allow:shop')),
      given,
    );
    assert.equal(entriesOf(s, 'search'), 1200);
    validateDesired(s, [], total(s)); // with the real limits too
    assert.ok(total(s) <= capacity.entries);

    // search goes away: shop's 1,900 fit now; big still does not.
    s = compile(
      new Map([
        ['shop', allowlist('shop', 1900)],
        ['big', big],
      ]),
    );
    assert.deepEqual(
      compiler.heldBack.map((h) => [h.namespace, h.kept]),
      [['big', 'none']],
    );
    assert.equal(entriesOf(s, 'shop'), 1900);
  });
});

describe('heldBackIssues', () => {
  test('names each object of a held-back namespace (the global object for the global allowlist) with the code and sizes', () => {
    const state = (key: string, kind: 'global' | 'allowlist', namespace?: string): ObjectState => ({
      id: { key, kind, namespace, ref: { kind: 'ConfigMap', namespace: namespace ?? 'osm-system', name: key } },
      valid: true,
      absent: false,
      errors: [],
      warnings: [],
      inForce: 'current',
    });
    const objects = [
      state('osm-config', 'global'),
      state('a', 'allowlist', 'big'),
      state('b', 'allowlist', 'big'),
      state('c', 'allowlist', 'shop'),
    ];
    const held = [
      { namespace: 'big', entries: 2000, labels: 5, room: { entries: 10, labels: 90 }, kept: 'none' as const },
      { namespace: '', entries: 7, labels: 1, room: { entries: 3, labels: 90 }, kept: 'previous' as const },
    ];
    const issues = heldBackIssues(held, objects);
    assert.deepEqual(
      issues.map(({ state: s, issue }) => [s.id.key, issue.code, issue.key]),
      [
        ['a', 'MG_POLICY_CAPACITY_EXCEEDED', 'egress'],
        ['b', 'MG_POLICY_CAPACITY_EXCEEDED', 'egress'],
        ['osm-config', 'MG_POLICY_CAPACITY_EXCEEDED', 'egress_allowlist'],
      ],
    );
    assert.equal(
      issues[0]!.issue.message,
      "ConfigMap big/a key egress: the allowlists of namespace big (2000 trie entries, 5 labels) do not fit the policy maps: 10 entries and 90 labels were left after the mesh CIDRs, the exclusions and the allowlists that fit; nothing of it is enforced: its pods' external traffic gets blocked_egress_action",
    );
  });
});
