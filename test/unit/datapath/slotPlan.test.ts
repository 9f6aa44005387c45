// The datapath's planning, without a kernel: which trie keys a slot gains,
// changes and loses for a desired state, and which labels are no longer used.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeTrieKey, parsePrefix } from '../../../src/datapath/codec.js';
import type { DesiredGroup, DesiredState } from '../../../src/datapath/desired.js';
import {
  ADOPTED_GROUP,
  desiredNamespaces,
  keyAt,
  labelsInUse,
  planTrie,
  shadowFrom,
  staleLabels,
  type ShadowGroup,
  type TriePlan,
} from '../../../src/datapath/slotPlan.js';

/** The trie key of an allowlist CIDR (slot byte 0), as the datapath keeps it. */
const key = (cidr: string): string =>
  encodeTrieKey({ slot: 0, table: 'allow', proto: 0, port: 0, namespaceId: 0, prefix: parsePrefix(cidr) }).toString(
    'latin1',
  );

/** A group whose entries' labels are label ids written as text ("7"). */
const group = (id: string, entries: Record<string, number>): DesiredGroup => ({
  id,
  entries: Object.entries(entries).map(([cidr, label]) => ({
    table: 'allow' as const,
    cidr,
    namespace: '',
    label: String(label),
  })),
});

/** The datapath's encoding, reduced to what planning needs: keys, labels, and one owner per key. */
function encode(g: DesiredGroup, owner: Map<string, string>): ShadowGroup {
  const keys = new Map<string, number>();
  for (const e of g.entries) {
    const k = key(e.cidr);
    if (owner.has(k)) continue;
    owner.set(k, g.id);
    keys.set(k, Number(e.label));
  }
  return shadowFrom(g, keys);
}

/** planTrie with a fresh owner map, as the datapath calls it with a fresh TrieKeyOwners. */
function planOf(
  slot: ReadonlyMap<string, ShadowGroup>,
  desired: readonly DesiredGroup[],
  changed: readonly DesiredGroup[],
): TriePlan {
  const owner = new Map<string, string>();
  return planTrie(slot, desired, changed, owner, (g) => encode(g, owner));
}

/** A slot as the first plan for these groups leaves it. */
function slotWith(groups: readonly DesiredGroup[]): Map<string, ShadowGroup> {
  return planOf(new Map(), groups, groups).groups;
}

/** Every upsert of a plan, as cidr-free keys -> label. */
function upserts(plan: TriePlan): Map<string, number> {
  const out = new Map<string, number>();
  for (const chunk of plan.upserts.chunks) {
    for (let i = 0; i < chunk.labels.length; i++) out.set(keyAt({ source: null, ...chunk }, i), chunk.labels[i]!);
  }
  assert.equal(plan.upserts.count, out.size, 'count matches the chunks');
  return out;
}

describe('planTrie', () => {
  it('writes a new group whole into an empty slot, and deletes nothing', () => {
    const a = group('a', { '10.0.0.0/8': 1, '192.0.2.0/24': 2 });
    const plan = planOf(new Map(), [a], [a]);
    assert.deepEqual(
      upserts(plan),
      new Map([
        [key('10.0.0.0/8'), 1],
        [key('192.0.2.0/24'), 2],
      ]),
    );
    assert.deepEqual(plan.deletes, []);
    assert.equal(plan.groups.get('a')!.source, a);
  });

  it('keeps an unchanged group as it is and writes nothing for it', () => {
    const a = group('a', { '10.0.0.0/8': 1 });
    const slot = slotWith([a]);
    const plan = planOf(slot, [a], []);
    assert.equal(plan.groups.get('a'), slot.get('a'));
    assert.equal(plan.upserts.count, 0);
    assert.deepEqual(plan.deletes, []);
  });

  it('diffs a changed group: new and relabelled keys are written, dropped keys deleted, the rest untouched', () => {
    const before = group('a', { '10.0.0.0/8': 1, '192.0.2.0/24': 2, '198.51.100.0/24': 3 });
    const after = group('a', { '10.0.0.0/8': 1, '192.0.2.0/24': 9, '203.0.113.0/24': 4 });
    const plan = planOf(slotWith([before]), [after], [after]);
    assert.deepEqual(
      upserts(plan),
      new Map([
        [key('192.0.2.0/24'), 9],
        [key('203.0.113.0/24'), 4],
      ]),
    );
    assert.deepEqual(plan.deletes, [key('198.51.100.0/24')]);
  });

  it('deletes every key of a group the desired state no longer has', () => {
    const a = group('a', { '10.0.0.0/8': 1 });
    const b = group('b', { '192.0.2.0/24': 2, '198.51.100.0/24': 3 });
    const plan = planOf(slotWith([a, b]), [a], []);
    assert.deepEqual(plan.deletes.sort(), [key('192.0.2.0/24'), key('198.51.100.0/24')].sort());
    assert.deepEqual([...plan.groups.keys()], ['a']);
  });

  it('treats a key that moved to another group as an update, never a delete', () => {
    const a = group('a', { '10.0.0.0/8': 1, '192.0.2.0/24': 2 });
    const aAfter = group('a', { '10.0.0.0/8': 1 });
    const b = group('b', { '192.0.2.0/24': 5 });
    const plan = planOf(slotWith([a]), [aAfter, b], [aAfter, b]);
    assert.deepEqual(plan.deletes, []);
    assert.deepEqual(upserts(plan), new Map([[key('192.0.2.0/24'), 5]]));
  });

  it('keeps adopted keys that the plan holds with the same label, rewrites relabelled ones and deletes the rest', () => {
    const adopted = shadowFrom(
      null,
      new Map([
        [key('10.0.0.0/8'), 1],
        [key('192.0.2.0/24'), 2],
        [key('198.51.100.0/24'), 3],
      ]),
    );
    const a = group('a', { '10.0.0.0/8': 1, '192.0.2.0/24': 7 });
    const plan = planOf(new Map([[ADOPTED_GROUP, adopted]]), [a], [a]);
    assert.deepEqual(upserts(plan), new Map([[key('192.0.2.0/24'), 7]]));
    assert.deepEqual(plan.deletes, [key('198.51.100.0/24')]);
    assert.equal(plan.groups.has(ADOPTED_GROUP), false);
  });
});

describe('labels in use', () => {
  it('counts the labels and namespaces of trie keys, namespaces, cgroups and the desired namespaces', () => {
    const keys = new Map([
      [
        encodeTrieKey({
          slot: 0,
          table: 'allow',
          proto: 6,
          port: 443,
          namespaceId: 11,
          prefix: parsePrefix('192.0.2.0/24'),
        }).toString('latin1'),
        12,
      ],
    ]);
    const used = labelsInUse({
      groups: [shadowFrom(null, keys)],
      namespaceIds: [21],
      dnsSlots: [new Map()],
      cgroups: [{ kind: 1, namespaceId: 31, flags: 0, labelId: 32 }],
      desiredNamespaceIds: [41],
    });
    assert.deepEqual(
      [...used].sort((x, y) => x - y),
      [11, 12, 21, 31, 32, 41],
    );
  });

  it('lists as stale exactly the labels no reference uses', () => {
    const labelIds = new Map([
      ['{"kind":"namespace","namespace":"shop"}', 1],
      ['shop/web', 2],
      ['gone', 3],
    ]);
    assert.deepEqual(staleLabels(labelIds, new Set([1, 2])), [['gone', 3]]);
    assert.deepEqual(staleLabels(labelIds, new Set([0, 1, 2, 3])), []);
  });

  it('takes the desired namespaces from allowlist entries and namespace actions', () => {
    const desired = {
      policy: {
        groups: [
          group('x', {}),
          { id: 'y', entries: [{ table: 'allow' as const, cidr: '192.0.2.0/24', namespace: 'shop', label: 'l' }] },
        ],
        namespaceActions: [{ namespace: 'audit-ns', action: 'audit' as const }],
      },
    } as unknown as DesiredState;
    assert.deepEqual([...desiredNamespaces(desired)].sort(), ['audit-ns', 'shop']);
    assert.deepEqual([...desiredNamespaces(null)], []);
  });
});
