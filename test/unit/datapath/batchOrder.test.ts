// The order of a trie batch, without a kernel: trieOrder is a stable sort by
// the key's data bytes then its prefix length, and trieBatch writes every key
// once, with the slot and its own label.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { trieBatch, trieOrder } from '../../../src/datapath/batchOrder.js';
import {
  TRIE_KEY_SIZE,
  TRIE_KEY_SLOT_OFFSET,
  TRIE_VALUE_SIZE,
  decodeTrieValue,
  encodeTrieKey,
  parsePrefix,
  type TableName,
} from '../../../src/datapath/codec.js';

const entry = fc.record({
  table: fc.constantFrom<TableName>('mesh', 'exclude', 'allow'),
  proto: fc.constantFrom(0, 6, 17),
  port: fc.constantFrom(0, 80, 443, 8080),
  namespaceId: fc.constantFrom(0, 1, 300),
  cidr: fc.oneof(
    fc
      .tuple(fc.constantFrom(10, 100, 203), fc.nat(3), fc.nat(255), fc.integer({ min: 8, max: 32 }))
      .map(([a, b, c, len]) => `${a}.${b}.${c}.0/${len}`),
    fc.constantFrom('2001:db8::/32', '2001:db8:1::/48', '::/0', 'fd00::1/128', '0.0.0.0/0'),
  ),
});

function keysOf(
  entries: ReadonlyArray<{ table: TableName; proto: number; port: number; namespaceId: number; cidr: string }>,
) {
  const keys = Buffer.allocUnsafeSlow(entries.length * TRIE_KEY_SIZE);
  entries.forEach((e, i) => encodeTrieKey({ slot: 0, ...e, prefix: parsePrefix(e.cidr) }, keys, i * TRIE_KEY_SIZE));
  return keys;
}

/** The trie's order: data bytes (after the prefixlen word), then prefixlen. */
function compareKeys(keys: Buffer, a: number, b: number): number {
  const x = a * TRIE_KEY_SIZE;
  const y = b * TRIE_KEY_SIZE;
  return (
    keys.compare(keys, y + 4, y + TRIE_KEY_SIZE, x + 4, x + TRIE_KEY_SIZE) ||
    keys.readUInt32LE(x) - keys.readUInt32LE(y)
  );
}

describe('trieOrder', () => {
  it('is a stable sort of the keys by their data bytes, then their prefix length', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 200 }), (entries) => {
        const keys = keysOf(entries);
        const order = Array.from(trieOrder(keys, entries.length));
        const expected = entries.map((_, i) => i).sort((a, b) => compareKeys(keys, a, b) || a - b);
        assert.deepEqual(order, expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe('trieBatch', () => {
  it('writes each chunk key once, in trie order, with the slot byte and its own label', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(entry, { maxLength: 30 }), { maxLength: 5 }),
        fc.constantFrom(0, 1),
        (chunkEntries, slot) => {
          // Chunks as the shadows hold them: keys with slot byte 0, a label per key; a pool slice is fine here.
          const chunks = chunkEntries.map((entries) => {
            const keys = Buffer.from(keysOf(entries));
            const labels = Uint32Array.from(entries, (_, i) => 1000 * entries.length + i);
            return { keys, labels };
          });
          const batch = trieBatch(chunks, slot);
          const want = new Map<string, number>();
          for (const c of chunks)
            c.labels.forEach((label, i) => {
              const key = Buffer.from(c.keys.subarray(i * TRIE_KEY_SIZE, (i + 1) * TRIE_KEY_SIZE));
              key[TRIE_KEY_SLOT_OFFSET] = slot;
              want.set(`${key.toString('hex')}#${label}`, (want.get(`${key.toString('hex')}#${label}`) ?? 0) + 1);
            });
          assert.equal(
            batch.count,
            [...want.values()].reduce((n, x) => n + x, 0),
          );
          assert.equal(batch.keys.length, batch.count * TRIE_KEY_SIZE);
          assert.equal(batch.values.length, batch.count * TRIE_VALUE_SIZE);
          const got = new Map<string, number>();
          for (let i = 0; i < batch.count; i++) {
            const key = batch.keys.subarray(i * TRIE_KEY_SIZE, (i + 1) * TRIE_KEY_SIZE).toString('hex');
            const { labelId } = decodeTrieValue(batch.values, i * TRIE_VALUE_SIZE);
            got.set(`${key}#${labelId}`, (got.get(`${key}#${labelId}`) ?? 0) + 1);
            if (i > 0) assert.ok(compareKeys(batch.keys, i - 1, i) <= 0, `keys ${i - 1} and ${i} are out of order`);
          }
          assert.deepEqual(got, want);
        },
      ),
      { numRuns: 200 },
    );
  });
});
