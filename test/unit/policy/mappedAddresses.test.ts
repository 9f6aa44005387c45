// One address, two spellings: an IPv4-mapped AAAA answer (::ffff:a.b.c.d) and the A answer
// a.b.c.d are one trie key. Compiled and encoded together, across the hash buckets of a long
// allowlist, they give one entry and never two groups holding one key (which once froze
// every apply: docs/decisions.md, "One trie key in two groups").
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import fc from 'fast-check';

import { parseAllowlist, parseGlobalConfig, type AllowlistEntry } from '../../../src/config/index.js';
import type { DesiredState } from '../../../src/datapath/desired.js';
import { TrieKeyOwners, encodeTrieGroup, type LabelIds } from '../../../src/datapath/trieEncode.js';
import { canonicalAddress, orderAddresses } from '../../../src/dns/addressOrder.js';
import { BUCKET_SIZE, PolicyCompiler } from '../../../src/policy/compile.js';

const ids = (): LabelIds => {
  const texts = new Map<string, number>();
  const id = (t: string): number => texts.get(t) ?? texts.set(t, texts.size + 1).get(t)!;
  return { label: (t) => (t ? id(t) : 0), namespace: (ns) => id(`ns:${ns}`) };
};

const global = (() => {
  const r = parseGlobalConfig({ mesh_cidr_ranges: '10.0.0.0/8' }, { kind: 'ConfigMap', namespace: 'x', name: 'g' });
  assert.ok(r.ok);
  return r.value;
})();

function allowlist(addresses: string[], hosts: string[]): readonly AllowlistEntry[] {
  const list = [{ name: 'bulk', addresses, ports: [{ number: 443, protocol: 'TCP' }] }];
  if (hosts.length) list.push({ name: 'api', hosts, ports: [{ number: 443, protocol: 'TCP' }] } as never);
  const r = parseAllowlist({ egress: list }, { kind: 'ConfigMap', namespace: 'shop', name: 'egress' });
  assert.ok(r.ok, r.ok ? '' : r.errors.map((e) => e.message).join('; '));
  return r.value;
}

/** Encodes every group of the state into one plan, as Datapath.apply does on a cold start. */
function encodeAll(state: DesiredState): { keys: number; sharing: ReadonlySet<string> } {
  const owners = new TrieKeyOwners();
  const labels = ids();
  let keys = 0;
  for (const g of state.policy.groups) keys += encodeTrieGroup(g, labels, owners).labels.length;
  return { keys, sharing: owners.sharing };
}

/** `n` distinct public IPv4 addresses from `seed`. */
const addresses = (n: number, seed: number): string[] =>
  Array.from({ length: n }, (_, i) => {
    const v = (seed * 7919 + i) % 0xffffff;
    return `100.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}`;
  });

describe('IPv4-mapped answers', () => {
  test('the resolver reads a mapped AAAA answer as its IPv4 address and merges it with the A answer', () => {
    assert.equal(canonicalAddress('::ffff:203.0.113.7', 6), '203.0.113.7');
    assert.equal(canonicalAddress('::FFFF:cb00:7107', 6), '203.0.113.7');
    assert.equal(canonicalAddress('::ffff:0:cb00:7107', 6), '::ffff:0:cb00:7107', 'SIIT form is not mapped');
    assert.deepEqual(orderAddresses(['203.0.113.7'], ['203.0.113.7', '2001:db8::1']), ['203.0.113.7', '2001:db8::1']);
  });

  test('5,000 addresses and a host whose A and AAAA answers name one of them compile and encode as one key', () => {
    const bulk = addresses(5000, 1);
    const shared = bulk[1234]!;
    const state = new PolicyCompiler().compile({
      global,
      allowlists: new Map([['shop', allowlist(bulk, ['api.example.com'])]]),
      // As a resolver without canonicalisation gave it (the compiler canonicalises too).
      resolved: new Map([['api.example.com', [shared, `::ffff:${shared}`, '::ffff:198.51.100.9']]]),
      pods: [],
    });
    const allowGroups = state.policy.groups.filter((g) => g.id.startsWith('allow:shop'));
    assert.ok(allowGroups.length > 1, 'the list is split into buckets');
    const texts = allowGroups.flatMap((g) => g.entries.map((e) => e.cidr));
    assert.ok(!texts.some((t) => t.startsWith('::ffff:')), 'no mapped text reaches the datapath');
    assert.equal(texts.filter((t) => t === `${shared}/32`).length, 1);
    assert.ok(texts.includes('198.51.100.9/32'));
    const { keys, sharing } = encodeAll(state);
    assert.equal(sharing.size, 0);
    assert.equal(keys, 5001 + state.policy.groups.filter((g) => g.cidrs).reduce((n, g) => n + g.cidrs!.length, 0));
  });

  test('any mix of mapped and plain spellings across bucket boundaries gives each key once', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: BUCKET_SIZE + 1, max: 3 * BUCKET_SIZE }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
        fc.boolean(),
        (seed, n, picks, mappedInConfig) => {
          const bulk = addresses(n, seed);
          const chosen = picks.map((p) => bulk[p % n]!);
          // Config text may spell some addresses mapped too: the config normaliser unmaps them.
          const configured = mappedInConfig ? bulk.map((a, i) => (i % 3 ? a : `::ffff:${a}`)) : bulk;
          const state = new PolicyCompiler().compile({
            global,
            allowlists: new Map([['shop', allowlist(configured, ['a.example', 'b.example'])]]),
            resolved: new Map([
              ['a.example', chosen.map((a) => `::ffff:${a}`)],
              ['b.example', chosen],
            ]),
            pods: [],
          });
          const { keys, sharing } = encodeAll(state);
          assert.equal(sharing.size, 0);
          assert.equal(keys, n + 1, 'every address once, and the mesh CIDR');
        },
      ),
      { numRuns: 25 },
    );
  });
});
