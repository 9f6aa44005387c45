// The datapath's one-pass trie encoder, without a kernel: the keys it writes
// are encodeTrieKey's, it refuses what validateDesired refuses with the same
// message, it keeps the first of a repeated key, leaves a key two groups
// hold with the first and records both, and its key index finds every key it was given.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TRIE_KEY_SIZE, encodeTrieKey, parsePrefix, protoNumber } from '../../../src/datapath/codec.js';
import {
  validateDesired,
  type DesiredGroup,
  type DesiredState,
  type DesiredTrieEntry,
} from '../../../src/datapath/desired.js';
import { groupLabelIds, keyAt, shadowFrom } from '../../../src/datapath/slotPlan.js';
import { TrieKeyOwners, encodeTrieGroup, type LabelIds } from '../../../src/datapath/trieEncode.js';
import { basePolicy } from '../../helpers/kernelFixture.js';

/** Label ids handed out in order of first use, as the datapath does. */
function labelIds(): LabelIds & { readonly texts: Map<string, number> } {
  const texts = new Map<string, number>();
  const id = (text: string): number => texts.get(text) ?? texts.set(text, texts.size + 1).get(text)!;
  return { texts, label: (text) => (text ? id(text) : 0), namespace: (ns) => id(`ns:${ns}`) };
}

const state = (groups: DesiredGroup[]): DesiredState => ({
  policy: basePolicy({ eventVerdicts: [], groups }),
  cgroups: [],
});

/** The refusal validateDesired gives for `group`, or null. */
function validateMessage(group: DesiredGroup): string | null {
  try {
    validateDesired(state([group]), [group], 0);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function encodeMessage(group: DesiredGroup): string | null {
  try {
    encodeTrieGroup(group, labelIds(), new TrieKeyOwners());
    return null;
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'MG_DESIRED_STATE_INVALID');
    return (err as Error).message;
  }
}

const v4 = fc
  .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255), fc.integer({ min: 0, max: 32 }))
  .map(([a, b, c, d, len]) => `${a}.${b}.${c}.${d}/${len}`);
const v6 = fc
  .tuple(fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 128 }))
  .map(([groups, len]) => `${groups.map((g) => g.toString(16)).join(':')}/${len}`);
const oddForms = fc.constantFrom(
  '::ffff:10.1.2.3/120',
  '10.1.2.3',
  '2001:db8::1',
  '::/0',
  '0.0.0.0/0',
  '::ffff:0:0/96',
);
const cidr = fc.oneof(v4, v6, oddForms);

const allowEntry = fc.record({
  cidr,
  proto: fc.constantFrom('tcp' as const, 'udp' as const),
  port: fc.integer({ min: 1, max: 65535 }),
  namespace: fc.constantFrom('', 'shop', 'search'),
  label: fc.constantFrom(undefined, 'entry a', 'entry b'),
});

describe('encodeTrieGroup', () => {
  it('writes the keys encodeTrieKey writes, keeps the first of a repeated key, and collects the labels it uses', () => {
    fc.assert(
      fc.property(fc.array(allowEntry, { maxLength: 40 }), fc.array(cidr, { maxLength: 40 }), (allows, meshes) => {
        const ids = labelIds();
        const owners = new TrieKeyOwners();
        const allowGroup: DesiredGroup = { id: 'allow:x', entries: allows.map((e) => ({ table: 'allow', ...e })) };
        const meshGroup: DesiredGroup = { id: 'mesh', table: 'mesh', cidrs: meshes, entries: [] };
        for (const group of [allowGroup, meshGroup]) {
          const encoded = encodeTrieGroup(group, ids, owners);
          const expected = new Map<string, number>();
          const entries: readonly DesiredTrieEntry[] = group.cidrs
            ? group.cidrs.map((c) => ({ table: 'mesh', cidr: c }))
            : group.entries;
          for (const e of entries) {
            const namespaceId = e.table === 'allow' && e.namespace ? ids.namespace(e.namespace) : 0;
            const key = encodeTrieKey({
              slot: 0,
              table: e.table,
              proto: e.proto ? protoNumber(e.proto) : 0,
              port: e.port ?? 0,
              namespaceId,
              prefix: parsePrefix(e.cidr),
            }).toString('latin1');
            if (!expected.has(key)) expected.set(key, ids.label(e.label));
          }
          const got = new Map(Array.from(encoded.labels, (label, i) => [keyAt(encoded, i), label]));
          assert.deepEqual(got, expected);
          assert.equal(encoded.keys.length, expected.size * TRIE_KEY_SIZE);
          // The label ids it collected are the ones groupLabelIds reads from the keys.
          const read = groupLabelIds(shadowFrom(null, expected));
          assert.deepEqual(new Set(encoded.labelIds), new Set(read));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses what validateDesired refuses, with the same message', () => {
    const bad = fc.oneof(
      cidr.map((c) => ({ table: 'allow' as const, cidr: c, proto: 'sctp' as 'tcp', port: 80, namespace: '' })),
      cidr.map((c) => ({ table: 'allow' as const, cidr: c, proto: 'tcp' as const, port: 70_000, namespace: '' })),
      cidr.map((c) => ({ table: 'allow' as const, cidr: c, proto: 'tcp' as const, port: 0, namespace: '' })),
      cidr.map((c) => ({ table: 'mesh' as const, cidr: c, port: 80 })),
      cidr.map((c) => ({ table: 'exclude' as const, cidr: c, namespace: 'shop' })),
      cidr.map((c) => ({ table: 'bogus' as 'mesh', cidr: c })),
      fc
        .constantFrom('10.0.0.0/33', 'fd00::/129', 'nonsense', '10.0.0.0/-1', '', '10.0.0.0/8/8')
        .map((c) => ({ table: 'mesh' as const, cidr: c })),
    );
    fc.assert(
      fc.property(fc.array(allowEntry, { maxLength: 5 }), bad, fc.nat(5), (good, defect, at) => {
        const entries = good.map((e) => ({ table: 'allow' as const, ...e }));
        entries.splice(Math.min(at, entries.length), 0, defect as (typeof entries)[number]);
        const group: DesiredGroup = { id: 'g', entries };
        const expected = validateMessage(group);
        assert.ok(expected, 'the generated defect is one validateDesired refuses');
        assert.equal(encodeMessage(group), expected);
      }),
      { numRuns: 300 },
    );
    const cidrGroup: DesiredGroup = { id: 'm', table: 'mesh', cidrs: ['10.0.0.0/8', '10.0.0.0/33'], entries: [] };
    assert.equal(encodeMessage(cidrGroup), validateMessage(cidrGroup));
    const wrongTable = { id: 'm', table: 'allow', cidrs: ['10.0.0.0/8'], entries: [] } as unknown as DesiredGroup;
    assert.equal(encodeMessage(wrongTable), validateMessage(wrongTable));
  });

  it('leaves a key that an earlier group of the plan holds with that group, and records both groups', () => {
    const owners = new TrieKeyOwners();
    const first = encodeTrieGroup(
      { id: 'mesh#0/2', table: 'mesh', cidrs: ['10.0.0.0/8'], entries: [] },
      labelIds(),
      owners,
    );
    const second = encodeTrieGroup(
      { id: 'mesh#1/2', table: 'mesh', cidrs: ['192.0.2.0/24', '10.0.0.0/8'], entries: [] },
      labelIds(),
      owners,
    );
    assert.equal(first.labels.length, 1);
    assert.equal(second.labels.length, 1, 'the shared key is written once, by its first holder');
    assert.equal(owners.get(keyAt(first, 0)), 'mesh#0/2');
    assert.deepEqual([...owners.sharing].sort(), ['mesh#0/2', 'mesh#1/2']);
  });
});

describe('TrieKeyOwners', () => {
  it('finds the owner of every claimed key after growing far past its first size, and no owner for others', () => {
    const owners = new TrieKeyOwners();
    const groups = ['a', 'b', 'c'].map((id, g) => {
      const cidrs = Array.from({ length: 3000 }, (_, i) => `10.${g}.${i >> 8}.${i & 255}/32`);
      return encodeTrieGroup({ id, table: 'mesh', cidrs, entries: [] }, labelIds(), owners);
    });
    groups.forEach((encoded, g) => {
      for (let i = 0; i < encoded.labels.length; i += 7) assert.equal(owners.get(keyAt(encoded, i)), 'abc'[g]);
    });
    const absent = encodeTrieKey({
      slot: 0,
      table: 'mesh',
      proto: 0,
      port: 0,
      namespaceId: 0,
      prefix: parsePrefix('10.3.0.0/32'),
    }).toString('latin1');
    assert.equal(owners.get(absent), undefined);
    // The same address under another table is another key.
    const otherTable = encodeTrieKey({
      slot: 0,
      table: 'exclude',
      proto: 0,
      port: 0,
      namespaceId: 0,
      prefix: parsePrefix('10.0.0.0/32'),
    }).toString('latin1');
    assert.equal(owners.get(otherTable), undefined);
  });
});
