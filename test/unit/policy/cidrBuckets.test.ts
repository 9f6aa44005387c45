// Bucketed CIDR lists: an incremental update gives exactly what a fresh build gives, touches
// only the buckets of the changed CIDRs, and keeps no entry objects.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { normaliseCidrTexts } from '../../../src/config/cidr.js';
import { CidrGroup, CidrLists, diffSortedLists } from '../../../src/policy/cidrBuckets.js';

const normalised = (items: readonly string[]): string[] => normaliseCidrTexts(items, () => undefined);
const v4 = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 16, max: 32 }))
  .map(([a, b, p]) => `10.${a}.${b}.0/${p}`);
const v6 = fc
  .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 32, max: 128 }))
  .map(([g, p]) => `fd00:${g.toString(16)}::/${p}`);
const cidr = fc.oneof({ weight: 4, arbitrary: v4 }, { weight: 1, arbitrary: v6 });
const shape = (groups: readonly { id: string; cidrs?: readonly string[] }[]) =>
  groups.map((g) => [g.id, [...(g.cidrs ?? [])]]);

test('diffSortedLists gives a valid edit: removed + kept = before, added + kept = after', () => {
  fc.assert(
    fc.property(fc.array(cidr, { maxLength: 40 }), fc.array(cidr, { maxLength: 40 }), (a, b) => {
      const before = normalised(a);
      const after = normalised(b);
      const diff = diffSortedLists(before, after, Infinity)!;
      const count = (xs: readonly string[]) =>
        xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
      const kept = new Map(count(before));
      for (const r of diff.removed) kept.set(r, kept.get(r)! - 1);
      const rebuilt = new Map(kept);
      for (const x of diff.added) rebuilt.set(x, (rebuilt.get(x) ?? 0) + 1);
      assert.deepEqual([...rebuilt].filter(([, n]) => n > 0).sort(), [...count(after)].sort());
    }),
  );
});

test('an incremental update equals a fresh build, for any edit, small or large lists', () => {
  fc.assert(
    fc.property(
      fc.array(cidr, { minLength: 1, maxLength: 3000 }),
      fc.array(fc.tuple(fc.nat(), cidr), { maxLength: 6 }),
      fc.boolean(),
      (items, edits, removeSome) => {
        const before = normalised(items);
        const next = [...items];
        for (const [at, replacement] of edits) next[at % next.length] = replacement;
        if (removeSome) next.splice(0, 1);
        const after = normalised(next);
        const incremental = new CidrLists();
        incremental.groups('mesh', 'mesh', before);
        const updated = incremental.groups('mesh', 'mesh', after);
        const fresh = new CidrLists().groups('mesh', 'mesh', after);
        assert.deepEqual(shape(updated), shape(fresh));
        for (const g of updated) assert.ok(g instanceof CidrGroup && Object.isFrozen(g) && Object.isFrozen(g.cidrs));
      },
    ),
    { numRuns: 150 },
  );
});

test('a one-entry change to a 100,000-entry list makes new groups only for the buckets it touches', () => {
  const items: string[] = [];
  for (let i = 0; i < 100_000; i++) items.push(`10.${(i >> 8) & 255}.${i & 255}.${(i >> 16) * 16}/28`);
  const before = normalised(items);
  const lists = new CidrLists();
  const first = lists.groups('mesh', 'mesh', before);
  assert.equal(first.length, 128);
  const changed = [...items];
  changed[5] = '192.0.2.0/24';
  const second = lists.groups('mesh', 'mesh', normalised(changed));
  const rebuilt = second.filter((g, i) => g !== first[i]);
  assert.ok(rebuilt.length >= 1 && rebuilt.length <= 2, `${rebuilt.length} groups rebuilt`);
  assert.equal(
    second.reduce((n, g) => n + (g.cidrs?.length ?? 0), 0),
    100_000,
  );
  assert.equal(
    lists.groups('mesh', 'mesh', normalised(changed)).filter((g, i) => g !== second[i]).length,
    0,
    'equal lists give the very same groups',
  );
});
