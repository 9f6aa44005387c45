// Desired trie groups -> the compact keys a slot holds (ShadowGroup), in one
// pass over the entries: each entry is checked, its CIDR parsed once, its key
// written in place and claimed for its group, with no object or string per
// entry. A cold apply of 100,000 entries spends its user-space time here.
import { newCidrBytes } from '../config/cidrNumeric.js';
import { TRIE_KEY_SIZE, encodeTrieKeyText, protoNumber } from './codec.js';
import { checkCidrGroupTable, checkEntryFields, groupSize, invalidEntryCidr, type DesiredGroup } from './desired.js';
import { MeshgateError } from '../errors.js';
import type { KeyOwners, ShadowGroup } from './slotPlan.js';

const EMPTY = -1;

const WORDS = TRIE_KEY_SIZE / 4;

/** A 32-bit hash of the key at word `at` (murmur3's mixing). */
function hashKey(w: Uint32Array, at: number): number {
  let h = 0x9747b28c;
  for (let i = at; i < at + WORDS; i++) {
    let k = Math.imul(w[i]!, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function sameKey(a: Uint32Array, at: number, b: Uint32Array, bt: number): boolean {
  // From the end: the address words differ first.
  for (let i = WORDS - 1; i >= 0; i--) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

/** The key buffer as words: keys are compared and hashed a word at a time. */
function wordsOf(keys: Buffer): Uint32Array {
  if (keys.byteOffset % 4 !== 0)
    throw new MeshgateError(
      'MG_VALUE_OUT_OF_RANGE',
      `trie key buffer at byte offset ${keys.byteOffset} is not 4-byte aligned`,
    );
  return new Uint32Array(keys.buffer, keys.byteOffset, keys.length / 4);
}

/**
 * Which group of one plan holds each trie key: an open-addressing hash index
 * over the keys where the groups' buffers hold them (group index and word
 * offset per slot), so claiming 100,000 keys makes no string and no Map entry.
 */
export class TrieKeyOwners implements KeyOwners {
  private readonly ids: string[] = [];
  private readonly buffers: Uint32Array[] = [];
  private groupAt: Int32Array;
  private offsetAt: Int32Array;
  private mask: number;
  private size = 0;
  private readonly probe = Buffer.alloc(TRIE_KEY_SIZE);
  /** Ids of the groups that hold a key another group of this plan holds too (both sides). */
  readonly sharing = new Set<string>();
  private readonly probeWords = wordsOf(this.probe);

  /** `expected`: about how many keys will be claimed (the index grows past it). */
  constructor(expected = 0) {
    let capacity = 64;
    while (capacity < expected * 2) capacity *= 2;
    this.groupAt = new Int32Array(capacity).fill(EMPTY);
    this.offsetAt = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  /** Starts a group whose keys will be claimed where `keys` (4-byte aligned) holds them; returns its index for claim(). */
  addGroup(id: string, keys: Buffer): number {
    this.ids.push(id);
    this.buffers.push(wordsOf(keys));
    return this.ids.length - 1;
  }

  /** The id of the group at `index`. */
  idOf(index: number): string {
    return this.ids[index]!;
  }

  /**
   * Claims the key at byte `at` of group `group`'s buffer. Returns -1 when no
   * group held it (now `group` does), else the index of the group that holds
   * it. The bytes of a claimed key must not change afterwards.
   */
  claim(group: number, at: number): number {
    const word = at >>> 2;
    const found = this.find(this.buffers[group]!, word);
    if (found >= 0) return this.groupAt[found]!;
    const slot = ~found;
    this.groupAt[slot] = group;
    this.offsetAt[slot] = word;
    if (++this.size * 2 > this.groupAt.length) this.grow();
    return -1;
  }

  /** The id of the group holding `key` (latin1, as the plan's diffs spell keys). */
  get(key: string): string | undefined {
    this.probe.write(key, 0, 'latin1');
    const found = this.find(this.probeWords, 0);
    return found >= 0 ? this.ids[this.groupAt[found]!] : undefined;
  }

  /** The slot holding the key at word `at` of `keys` (>= 0), or ~(the empty slot where it belongs). */
  private find(keys: Uint32Array, at: number): number {
    let slot = hashKey(keys, at) & this.mask;
    for (;;) {
      const g = this.groupAt[slot]!;
      if (g === EMPTY) return ~slot;
      if (sameKey(this.buffers[g]!, this.offsetAt[slot]!, keys, at)) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const groups = this.groupAt;
    const offsets = this.offsetAt;
    this.groupAt = new Int32Array(groups.length * 2).fill(EMPTY);
    this.offsetAt = new Int32Array(groups.length * 2);
    this.mask = this.groupAt.length - 1;
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (g === EMPTY) continue;
      const slot = ~this.find(this.buffers[g]!, offsets[i]!);
      this.groupAt[slot] = g;
      this.offsetAt[slot] = offsets[i]!;
    }
  }
}

/** Label ids of texts (0 for none), given out by the datapath. */
export interface LabelIds {
  label(text: string | undefined): number;
  namespace(namespace: string): number;
}

/**
 * The group's trie keys (slot byte 0) and label ids, each entry checked as
 * validateDesired checks it. A key given twice is kept once (the first). A key
 * that an earlier group of this plan holds stays that group's: the key is the
 * whole verdict (table, protocol, port, namespace, prefix), so the two agree on
 * it and only the label shown differs; both groups are recorded in
 * `owners.sharing`, so the datapath re-encodes them together while they share
 * it (docs/decisions.md, "One trie key in two groups"). Throws
 * MG_DESIRED_STATE_INVALID, before any kernel write, for an invalid entry.
 */
export function encodeTrieGroup(group: DesiredGroup, ids: LabelIds, owners: TrieKeyOwners): ShadowGroup {
  const size = groupSize(group);
  // Zeroed (the encoder leaves padding as it is), and one ArrayBuffer per group, kept as the slot's shadow.
  let keys = Buffer.alloc(size * TRIE_KEY_SIZE);
  let labels = new Uint32Array(size);
  const index = owners.addGroup(group.id, keys);
  const scratch = newCidrBytes();
  const used = new Set<number>();
  let count = 0;
  const claim = (at: number): boolean => {
    const other = owners.claim(index, at);
    if (other === index) return false;
    if (other >= 0) {
      owners.sharing.add(owners.idOf(other)).add(group.id);
      return false;
    }
    return true;
  };
  if (group.cidrs) {
    checkCidrGroupTable(group);
    const table = group.table!;
    const cidrs = group.cidrs;
    for (let i = 0; i < cidrs.length; i++) {
      const at = count * TRIE_KEY_SIZE;
      try {
        encodeTrieKeyText(keys, at, table, 0, 0, 0, cidrs[i]!, scratch);
      } catch (err) {
        invalidEntryCidr(group, i, err);
      }
      if (claim(at)) labels[count++] = 0;
    }
    if (count) used.add(0);
  } else {
    // Entries come in runs of one namespace and one label: look each up once per run.
    let lastNamespace: string | undefined;
    let namespaceId = 0;
    let lastLabel: string | undefined;
    let labelId = 0;
    let lastUsedNamespace = -1;
    const entries = group.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      checkEntryFields(group, e, i);
      const allow = e.table === 'allow';
      const namespace = allow ? e.namespace : undefined;
      if (namespace !== lastNamespace) {
        lastNamespace = namespace;
        namespaceId = namespace ? ids.namespace(namespace) : 0;
      }
      const at = count * TRIE_KEY_SIZE;
      try {
        const proto = allow ? protoNumber(e.proto!) : 0;
        encodeTrieKeyText(keys, at, e.table, proto, allow ? e.port! : 0, namespaceId, e.cidr, scratch);
      } catch (err) {
        invalidEntryCidr(group, i, err);
      }
      if (!claim(at)) continue;
      if (e.label !== lastLabel) {
        lastLabel = e.label;
        labelId = ids.label(e.label);
      }
      if (count === 0 || labelId !== labels[count - 1]) used.add(labelId);
      if (namespaceId !== lastUsedNamespace) {
        lastUsedNamespace = namespaceId;
        used.add(namespaceId);
      }
      labels[count++] = labelId;
    }
  }
  if (count < size) {
    keys = keys.subarray(0, count * TRIE_KEY_SIZE);
    labels = labels.slice(0, count);
  }
  return { source: group, keys, labels, labelIds: [...used] };
}
