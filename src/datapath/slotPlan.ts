// The pure half of an apply: which trie keys a slot must gain, change and lose
// for a desired state, and which labels nothing refers to any more. No map is
// touched here (src/datapath/datapath.ts writes what these functions plan), so
// the planning is tested without root (test/unit/datapath/slotPlan.test.ts).
import { TRIE_KEY_NAMESPACE_OFFSET as NAMESPACE_OFFSET, TRIE_KEY_SIZE, type KernelCgroup } from './codec.js';
import type { DesiredGroup, DesiredState } from './desired.js';
import { dnsSlotLabels, type DnsSlotShadow } from './dnsTables.js';

/** The group id under which keys found in the kernel at adoption are kept until a plan claims them. */
export const ADOPTED_GROUP = '\0adopted';

/**
 * What one group wrote into a slot, in compact typed buffers (no object per
 * entry): `count` trie keys of TRIE_KEY_SIZE bytes each (slot byte 0), and
 * each key's label id.
 */
export interface ShadowGroup {
  readonly source: DesiredGroup | null;
  readonly keys: Buffer;
  readonly labels: Uint32Array;
  /** The label ids its entries refer to, when the encoder collected them (else groupLabelIds reads the keys). */
  readonly labelIds?: readonly number[];
}

/** Which group of a plan holds each trie key (latin1, slot byte 0); a Map<string, string> is one. */
export interface KeyOwners {
  get(key: string): string | undefined;
}

export const keyAt = (g: ShadowGroup, i: number): string =>
  g.keys.toString('latin1', i * TRIE_KEY_SIZE, (i + 1) * TRIE_KEY_SIZE);

/** A group's keys as latin1 strings -> label id: only for the groups a plan diffs. */
export function keyMap(g: ShadowGroup): Map<string, number> {
  const map = new Map<string, number>();
  for (let i = 0; i < g.labels.length; i++) map.set(keyAt(g, i), g.labels[i]!);
  return map;
}

/** Label ids a shadow group refers to (entries' labels and namespaces), computed once per (immutable) group. */
const labelIdsByGroup = new WeakMap<ShadowGroup, readonly number[]>();
export function groupLabelIds(g: ShadowGroup): readonly number[] {
  let ids = g.labelIds ?? labelIdsByGroup.get(g);
  if (ids) return ids;
  const used = new Set<number>();
  let lastLabel = -1;
  let lastNamespace = -1;
  for (let i = 0; i < g.labels.length; i++) {
    const id = g.labels[i]!;
    const namespaceId = g.keys.readUInt32LE(i * TRIE_KEY_SIZE + NAMESPACE_OFFSET);
    // Runs of one label are the common case: skip the Set for them.
    if (id !== lastLabel) {
      lastLabel = id;
      used.add(id);
    }
    if (namespaceId !== lastNamespace) {
      lastNamespace = namespaceId;
      used.add(namespaceId);
    }
  }
  ids = [...used];
  labelIdsByGroup.set(g, ids);
  return ids;
}

/** A shadow group from latin1 keys -> label ids. */
export function shadowFrom(source: DesiredGroup | null, keys: ReadonlyMap<string, number>): ShadowGroup {
  const buf = Buffer.allocUnsafe(keys.size * TRIE_KEY_SIZE);
  const labels = new Uint32Array(keys.size);
  let i = 0;
  for (const [key, label] of keys) {
    buf.write(key, i * TRIE_KEY_SIZE, 'latin1');
    labels[i++] = label;
  }
  return { source, keys: buf, labels };
}

/** Keys and values to write into one slot, pre-encoded. */
export interface TrieWrites {
  readonly chunks: Array<{ keys: Buffer; labels: Uint32Array }>;
  count: number;
}

/** What a slot must look like after the plan, and the writes that get it there. */
export interface TriePlan {
  readonly groups: Map<string, ShadowGroup>;
  readonly upserts: TrieWrites;
  readonly deletes: string[];
}

/**
 * What to write into a slot (its groups `slotGroups`) for the desired groups: unchanged groups keep their
 * shadow; a changed group is encoded and diffed against its old shadow (a
 * new group is written whole, with no per-key bookkeeping). `encode` claims
 * each key it makes in `owner` (empty at the start), for this group.
 */
export function planTrie(
  slotGroups: ReadonlyMap<string, ShadowGroup>,
  desiredGroups: readonly DesiredGroup[],
  changed: readonly DesiredGroup[],
  owner: KeyOwners,
  encode: (group: DesiredGroup) => ShadowGroup,
): TriePlan {
  const groups = new Map<string, ShadowGroup>();
  const upserts = new Map<string, number>();
  const whole: ShadowGroup[] = [];
  const deleted = new Set<string>();
  const changedIds = new Set(changed.map((g) => g.id));
  const adopted = slotGroups.get(ADOPTED_GROUP);
  const adoptedKeys = adopted?.labels.length ? keyMap(adopted) : null;
  for (const g of desiredGroups) {
    const old = slotGroups.get(g.id);
    if (!changedIds.has(g.id) && old) {
      groups.set(g.id, old);
      continue;
    }
    const enc = encode(g);
    groups.set(g.id, enc);
    if (!old && !adoptedKeys) {
      whole.push(enc);
      continue;
    }
    const oldKeys = old ? keyMap(old) : new Map<string, number>();
    for (let i = 0; i < enc.labels.length; i++) {
      const key = keyAt(enc, i);
      const label = enc.labels[i]!;
      // An adopted key with the same label is already in the kernel.
      if (oldKeys.get(key) !== label && !(old === undefined && adoptedKeys?.get(key) === label))
        upserts.set(key, label);
    }
    for (const key of oldKeys.keys()) if (owner.get(key) !== g.id) deleted.add(key);
  }
  for (const [id, old] of slotGroups) {
    if (groups.has(id) || id === ADOPTED_GROUP) continue;
    for (let i = 0; i < old.labels.length; i++) deleted.add(keyAt(old, i));
  }
  if (adoptedKeys) for (const key of adoptedKeys.keys()) if (owner.get(key) === undefined) deleted.add(key);
  // A key that moved from an old group to a new one is an update, not a delete.
  for (const key of upserts.keys()) deleted.delete(key);
  for (const key of deleted) if (owner.get(key) !== undefined) deleted.delete(key);
  const writes: TrieWrites = { chunks: [], count: 0 };
  if (upserts.size) {
    const diff = shadowFrom(null, upserts);
    writes.chunks.push(diff);
    writes.count += upserts.size;
  }
  for (const g of whole) {
    writes.chunks.push(g);
    writes.count += g.labels.length;
  }
  return { groups, upserts: writes, deletes: [...deleted] };
}

/** The namespaces a desired state names (50,000 allowlist entries name a handful of namespaces). */
export function desiredNamespaces(desired: DesiredState | null): Set<string> {
  const namespaces = new Set<string>();
  for (const g of desired?.policy.groups ?? []) {
    if (!g.cidrs) for (const e of g.entries) if (e.namespace) namespaces.add(e.namespace);
  }
  for (const a of desired?.policy.namespaceActions ?? []) namespaces.add(a.namespace);
  return namespaces;
}

/** Every label id something in the kernel (or about to be) refers to. */
export function labelsInUse(refs: {
  readonly groups: Iterable<ShadowGroup>;
  readonly namespaceIds: Iterable<number>;
  readonly dnsSlots: Iterable<DnsSlotShadow>;
  readonly cgroups: Iterable<KernelCgroup>;
  /** Label ids of the namespaces the desired state names. */
  readonly desiredNamespaceIds: Iterable<number>;
}): Set<number> {
  const used = new Set<number>();
  for (const g of refs.groups) for (const id of groupLabelIds(g)) used.add(id);
  for (const id of refs.namespaceIds) used.add(id);
  for (const dns of refs.dnsSlots) dnsSlotLabels(dns, used);
  for (const c of refs.cgroups) used.add(c.labelId).add(c.namespaceId);
  for (const id of refs.desiredNamespaceIds) used.add(id);
  return used;
}

/** The labels (text, id) that no reference uses. */
export function staleLabels(labelIds: ReadonlyMap<string, number>, used: ReadonlySet<number>): Array<[string, number]> {
  if (used.size >= labelIds.size) return [];
  return [...labelIds].filter(([, id]) => !used.has(id));
}
