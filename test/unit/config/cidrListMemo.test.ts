// Incremental CIDR list normalisation: after any sequence of random edits, the memo's
// result and issues equal a fresh full parse (host bits, duplicates and bad items included),
// a clean one-entry edit really takes the incremental path, and the compiler's buckets
// built from its delta equal a fresh build.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type CidrListIssue, normaliseCidrTexts } from '../../../src/config/cidr.js';
import { CidrListMemo, cidrListDelta } from '../../../src/config/cidrListMemo.js';
import { parseGlobalConfig } from '../../../src/config/global.js';
import { DEFAULT_LIMITS } from '../../../src/config/types.js';
import { CidrLists } from '../../../src/policy/cidrBuckets.js';

// A small address space, so that duplicates (same text, or same CIDR written two ways) are common.
const v4 = fc
  .tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }))
  .map(([a, b]) => `10.${a}.${b}.0/24`);
const v6 = fc.integer({ min: 0, max: 31 }).map((g) => `fd00:${g.toString(16)}::/32`);
const clean = fc.oneof({ weight: 3, arbitrary: v4 }, { weight: 1, arbitrary: v6 });
const odd = fc.oneof(
  fc.integer({ min: 0, max: 15 }).map((a) => `10.${a}.0.1/24`), // host bits
  fc.integer({ min: 0, max: 31 }).map((g) => `FD00:${g.toString(16)}::/32`), // not canonical, same CIDR as a clean item
  fc.integer({ min: 0, max: 15 }).map((a) => `10.${a}.0.7`), // a host, no prefix
  fc.constantFrom('x', '10.0.0.0/33', '', '::ffff:10.1.1.0/120'),
  fc.constant(42),
);
const item = fc.oneof({ weight: 12, arbitrary: clean }, { weight: 1, arbitrary: odd });
type Edit = { kind: 'replace' | 'insert' | 'delete'; at: number; item: unknown };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom('replace', 'insert', 'delete'),
  at: fc.nat(),
  item,
});
/** A run of edits applied together (one file write), most often one. */
const write = fc.array(edit, { minLength: 0, maxLength: 3 });

function applyEdits(items: readonly unknown[], edits: readonly Edit[]): unknown[] {
  const out = [...items];
  for (const e of edits) {
    const at = out.length ? e.at % out.length : 0;
    if (e.kind === 'insert' || out.length === 0) out.splice(at, 0, e.item);
    else if (e.kind === 'replace') out[at] = e.item;
    else out.splice(at, 1);
  }
  return out;
}

function fresh(items: readonly unknown[]): { cidrs: string[]; issues: CidrListIssue[] } {
  const issues: CidrListIssue[] = [];
  return { cidrs: normaliseCidrTexts(items, (i) => issues.push(i)), issues };
}

test('the memo equals a full parse after any sequence of random edits (issues included)', () => {
  // Start lists mostly clean and distinct, so that the incremental path is taken often.
  const start = fc.oneof(fc.uniqueArray(clean, { maxLength: 300 }), fc.array(item, { maxLength: 300 }));
  let incremental = 0;
  fc.assert(
    fc.property(start, fc.array(write, { minLength: 1, maxLength: 8 }), (items, writes) => {
      const memo = new CidrListMemo(0);
      let list: unknown[] = items;
      for (const edits of [[], ...writes]) {
        list = applyEdits(list, edits);
        const issues: CidrListIssue[] = [];
        const cidrs = memo.normalise('list', list, (i) => issues.push(i));
        if (cidrListDelta(cidrs)) incremental++;
        assert.deepEqual({ cidrs, issues }, fresh(list));
      }
    }),
    { numRuns: 500 },
  );
  assert.ok(incremental > 300, `the incremental path was taken ${incremental} times`);
});

test('a clean one-entry edit of a long list is made from the previous result, and says what changed', () => {
  const items = Array.from({ length: 5_000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const memo = new CidrListMemo();
  const before = memo.normalise('mesh', items, () => assert.fail('no issue expected'));
  const edited = [...items];
  edited[1234] = '172.16.0.0/12';
  const after = memo.normalise('mesh', edited, () => assert.fail('no issue expected'));
  assert.deepEqual(cidrListDelta(after), { previous: before, removed: ['10.4.210.0/24'], added: ['172.16.0.0/12'] });
  assert.deepEqual(after, fresh(edited).cidrs);
  // A duplicate or a host-bit item takes the full parse, which names it.
  const dup = [...edited, '10.0.1.0/24'];
  const issues: CidrListIssue[] = [];
  const merged = memo.normalise('mesh', dup, (i) => issues.push(i));
  assert.equal(cidrListDelta(merged), undefined);
  assert.deepEqual({ cidrs: merged, issues }, fresh(dup));
  assert.equal(issues[0]?.code, 'MG_WARN_DUPLICATE');
});

test('the global object parsed with a memo equals a parse without one, for random edits of its lists', () => {
  const ref = { kind: 'File', name: 'osm-config.yaml', path: 'osm-config.yaml' } as const;
  const data = (mesh: readonly unknown[], excluded: readonly unknown[]) => ({
    egress: 'true',
    mesh_cidr_ranges: mesh.join(','),
    outbound_ip_range_exclusion_list: excluded.join(' '),
  });
  fc.assert(
    fc.property(
      fc.uniqueArray(clean, { minLength: 1, maxLength: 200 }),
      fc.array(fc.tuple(write, write), { minLength: 1, maxLength: 5 }),
      (items, writes) => {
        const memo = new CidrListMemo(0);
        let mesh: unknown[] = items;
        let excluded: unknown[] = items.slice(0, 20);
        for (const [m, x] of [[[], []] as Edit[][], ...writes]) {
          mesh = applyEdits(mesh, m!);
          excluded = applyEdits(excluded, x!);
          assert.deepEqual(
            parseGlobalConfig(data(mesh, excluded), ref, DEFAULT_LIMITS, memo),
            parseGlobalConfig(data(mesh, excluded), ref),
          );
        }
      },
    ),
    { numRuns: 150 },
  );
});

test("buckets built from the memo's delta equal a fresh build", () => {
  // Up to 3,000 distinct CIDRs, so that lists are split into several buckets.
  const base = fc
    .integer({ min: 1, max: 3_000 })
    .map((n) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`));
  fc.assert(
    fc.property(base, fc.array(write, { minLength: 1, maxLength: 6 }), (items, writes) => {
      const memo = new CidrListMemo(0);
      const lists = new CidrLists();
      let list: unknown[] = items;
      for (const edits of [[], ...writes]) {
        list = applyEdits(list, edits);
        const cidrs = Object.freeze(memo.normalise('mesh', list, () => undefined));
        const groups = lists.groups('mesh', 'mesh', cidrs);
        const rebuilt = new CidrLists().groups('mesh', 'mesh', [...cidrs]);
        assert.deepEqual(
          groups.map((g) => [g.id, g.entries]),
          rebuilt.map((g) => [g.id, g.entries]),
        );
      }
    }),
    { numRuns: 150 },
  );
});
