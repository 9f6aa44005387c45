// The order in which a batch of LPM trie keys is written. Any order gives the
// same trie; the kernel inserts fastest in the trie's own order (the key's
// data bytes, then its prefix length, so a prefix comes before the longer
// ones under it): each insert walks the path the previous one just walked,
// still in cache, and never has to replace an intermediate node. For 100,000
// keys that is about a fifth of the batch's kernel time (docs/decisions.md).
import { TRIE_KEY_SIZE, TRIE_KEY_SLOT_OFFSET, TRIE_VALUE_SIZE, encodeTrieValue } from './codec.js';

/** Bytes of mg_lpm_key before its data (the `prefixlen` word): the trie compares what follows. */
const PREFIXLEN_BYTES = 4;

/**
 * The positions of `count` keys of `keys` (TRIE_KEY_SIZE bytes each, from
 * byte 0 of a 4-byte aligned buffer) in trie order: an LSD radix sort over
 * the bytes that differ between keys, least significant first (the prefix
 * length, little-endian, then the data bytes from last to first). Stable:
 * equal keys keep their order.
 */
export function trieOrder(keys: Uint8Array, count: number): Uint32Array {
  let order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  if (count < 2) return order;
  // Which bytes differ from the first key's, a word at a time.
  const words = new Uint32Array(keys.buffer, keys.byteOffset, (count * TRIE_KEY_SIZE) / 4);
  const wordsPerKey = TRIE_KEY_SIZE / 4;
  const differs = new Uint32Array(wordsPerKey);
  for (let i = wordsPerKey; i < count * wordsPerKey; i += wordsPerKey)
    for (let w = 0; w < wordsPerKey; w++) differs[w]! |= words[i + w]! ^ words[w]!;
  const differsAt = (p: number): boolean => new Uint8Array(differs.buffer)[p] !== 0;
  const positions: number[] = [];
  for (let p = 0; p < PREFIXLEN_BYTES; p++) if (differsAt(p)) positions.push(p);
  for (let p = TRIE_KEY_SIZE - 1; p >= PREFIXLEN_BYTES; p--) if (differsAt(p)) positions.push(p);
  // Every position's counts in one pass, then one scatter pass per position.
  const counts = new Uint32Array(256 * positions.length);
  for (let i = 0; i < count; i++) {
    const at = i * TRIE_KEY_SIZE;
    for (let d = 0; d < positions.length; d++) counts[d * 256 + keys[at + positions[d]!]!]!++;
  }
  let spare = new Uint32Array(count);
  for (let d = 0; d < positions.length; d++) {
    const p = positions[d]!;
    let sum = 0;
    for (let b = d * 256; b < d * 256 + 256; b++) {
      const n = counts[b]!;
      counts[b] = sum;
      sum += n;
    }
    const base = d * 256;
    for (let i = 0; i < count; i++) {
      const k = order[i]!;
      spare[counts[base + keys[k * TRIE_KEY_SIZE + p]!]!++] = k;
    }
    [order, spare] = [spare, order];
  }
  return order;
}

/** One batch update's buffers: `count` keys and values back to back. */
export interface TrieBatch {
  readonly keys: Buffer;
  readonly values: Buffer;
  readonly count: number;
}

/**
 * The keys and label ids of `chunks` (keys with slot byte 0, as the shadows
 * hold them) as one batch for `slot`, in trie order.
 */
export function trieBatch(chunks: ReadonlyArray<{ keys: Buffer; labels: Uint32Array }>, slot: number): TrieBatch {
  const count = chunks.reduce((n, c) => n + c.labels.length, 0);
  // Aligned, for trieOrder's word view: allocUnsafeSlow never hands out a slice of the shared pool.
  const all = Buffer.allocUnsafeSlow(count * TRIE_KEY_SIZE);
  const labels = new Uint32Array(count);
  let n = 0;
  for (const chunk of chunks) {
    chunk.keys.copy(all, n * TRIE_KEY_SIZE, 0, chunk.labels.length * TRIE_KEY_SIZE);
    labels.set(chunk.labels, n);
    n += chunk.labels.length;
  }
  const order = trieOrder(all, count);
  const keys = Buffer.allocUnsafeSlow(count * TRIE_KEY_SIZE);
  const values = Buffer.alloc(count * TRIE_VALUE_SIZE);
  const from = new Uint32Array(all.buffer, all.byteOffset, all.length / 4);
  const to = new Uint32Array(keys.buffer, keys.byteOffset, keys.length / 4);
  const wordsPerKey = TRIE_KEY_SIZE / 4;
  for (let i = 0; i < count; i++) {
    const k = order[i]!;
    for (let w = 0; w < wordsPerKey; w++) to[i * wordsPerKey + w] = from[k * wordsPerKey + w]!;
    keys[i * TRIE_KEY_SIZE + TRIE_KEY_SLOT_OFFSET] = slot;
    encodeTrieValue(labels[k]!, values, i * TRIE_VALUE_SIZE);
  }
  return { keys, values, count };
}
