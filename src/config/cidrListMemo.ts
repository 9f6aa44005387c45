// Long CIDR lists normalised incrementally: a one-entry edit of a 50,000-item
// list re-reads the items that changed, not the list. Each list's previous
// items and result are kept per object and key; a new list is compared with
// them item by item (common head and tail), and when the middle that changed
// is small, the previous result had no issues and the changed items are clean
// (valid, canonical or not, no host bits, no duplicate of a kept item), the
// result is the previous one with the removed CIDRs taken out and the added
// ones inserted in order. Anything else takes the full normaliser, so the
// result and its issues always equal a fresh parse (a property test checks
// it). The change is remembered with the result (cidrListDelta), so the
// compiler's buckets need not diff the two lists again.
import { compareCidrTexts } from './cidrNumeric.js';
import { type CidrListIssue, normaliseCidrTexts } from './cidr.js';

/** Lists shorter than this are normalised in full, and not remembered. */
const MIN_REMEMBERED = 1024;
/** More changed items than this take the full normaliser. */
const MAX_CHANGED_ITEMS = 256;
/** Lists remembered at most (an agent has a few long lists: mesh and exclusion CIDRs of one global object). */
const MAX_LISTS = 8;

export interface CidrListDelta {
  /** the result this list was made from */
  readonly previous: readonly string[];
  /** removed ∪ kept = previous, added ∪ kept = this list */
  readonly removed: readonly string[];
  readonly added: readonly string[];
}

const deltas = new WeakMap<readonly string[], CidrListDelta>();

/** How `cidrs` (a result of CidrListMemo.normalise) was made from the previous result, when it was made incrementally. */
export function cidrListDelta(cidrs: readonly string[]): CidrListDelta | undefined {
  return deltas.get(cidrs);
}

interface Remembered {
  readonly items: readonly unknown[];
  readonly cidrs: string[];
}

/** A comma-separated list text with no whitespace and no empty item, and where each item starts in it. */
interface RememberedText {
  readonly text: string;
  readonly items: readonly string[];
  readonly starts: Int32Array;
}

/** Characters compared at once when looking for the common head and tail of two texts. */
const CHUNK = 4096;

function commonHead(a: string, b: string, max: number): number {
  let n = 0;
  while (n + CHUNK <= max && a.slice(n, n + CHUNK) === b.slice(n, n + CHUNK)) n += CHUNK;
  while (n < max && a.charCodeAt(n) === b.charCodeAt(n)) n++;
  return n;
}

function commonTail(a: string, b: string, max: number): number {
  let n = 0;
  while (
    n + CHUNK <= max &&
    a.slice(a.length - n - CHUNK, a.length - n) === b.slice(b.length - n - CHUNK, b.length - n)
  )
    n += CHUNK;
  while (n < max && a.charCodeAt(a.length - 1 - n) === b.charCodeAt(b.length - 1 - n)) n++;
  return n;
}

function startsOf(items: readonly string[]): Int32Array {
  const starts = new Int32Array(items.length);
  let at = 0;
  for (let i = 0; i < items.length; i++) {
    starts[i] = at;
    at += items[i]!.length + 1;
  }
  return starts;
}

/** The index of the last item starting at or before `pos`. */
function itemAt(starts: Int32Array, pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const WHITESPACE = /\s/;

/** The index of `cidr` in the sorted distinct `list`, or -(insertion point) - 1. */
function search(list: readonly string[], cidr: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareCidrTexts(list[mid]!, cidr);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -lo - 1;
}

/** The sorted canonical texts of `items` when none has an issue, else undefined. */
function cleanCidrs(items: readonly unknown[]): string[] | undefined {
  let clean = true;
  const cidrs = normaliseCidrTexts(items, () => {
    clean = false;
  });
  return clean ? cidrs : undefined;
}

/** The previous result of each long list, by object and key; owned by one agent (or one bench run). */
export class CidrListMemo {
  private readonly lists = new Map<string, Remembered>();
  private readonly texts = new Map<string, RememberedText>();

  /** `minRemembered`: lists shorter than this are not remembered (tests lower it to exercise short lists). */
  constructor(private readonly minRemembered = MIN_REMEMBERED) {}

  /**
   * readListItems(text).value for a long comma-separated text with no whitespace, split
   * only where it differs from the previous text of list `id` (the other items are the
   * previous strings themselves, so normalise() compares them by identity); undefined
   * for any other value, which the caller reads with readListItems.
   */
  items(id: string, value: unknown): readonly string[] | undefined {
    const previous = this.texts.get(id);
    if (typeof value !== 'string' || value.length < this.minRemembered) {
      this.texts.delete(id);
      return undefined;
    }
    const incremental = previous ? splitFrom(previous, value) : undefined;
    if (incremental) {
      this.rememberText(id, incremental);
      return incremental.items;
    }
    this.texts.delete(id);
    if (WHITESPACE.test(value)) return undefined;
    const items = value.split(',');
    if (items.includes('')) return undefined;
    this.rememberText(id, { text: value, items, starts: startsOf(items) });
    return items;
  }

  private rememberText(id: string, text: RememberedText): void {
    this.texts.delete(id);
    this.texts.set(id, text);
    if (this.texts.size > MAX_LISTS) this.texts.delete(this.texts.keys().next().value!);
  }

  /** normaliseCidrTexts(items, onIssue), from the previous result of list `id` when only a few items changed. */
  normalise(id: string, items: readonly unknown[], onIssue: (issue: CidrListIssue) => void): string[] {
    const previous = this.lists.get(id);
    const incremental = previous ? this.update(previous, items) : undefined;
    if (incremental) {
      this.remember(id, items, incremental);
      return incremental;
    }
    let issues = 0;
    const cidrs = normaliseCidrTexts(items, (issue) => {
      issues++;
      onIssue(issue);
    });
    // Only a list without issues is a base for the next: its CIDRs are then distinct, one per item.
    if (issues === 0 && items.length >= this.minRemembered) this.remember(id, items, cidrs);
    else this.lists.delete(id);
    return cidrs;
  }

  private remember(id: string, items: readonly unknown[], cidrs: string[]): void {
    this.lists.delete(id);
    this.lists.set(id, { items, cidrs });
    if (this.lists.size > MAX_LISTS) this.lists.delete(this.lists.keys().next().value!);
  }

  private update(previous: Remembered, items: readonly unknown[]): string[] | undefined {
    const before = previous.items;
    const shorter = Math.min(before.length, items.length);
    let head = 0;
    while (head < shorter && before[head] === items[head]) head++;
    let tail = 0;
    while (tail < shorter - head && before[before.length - 1 - tail] === items[items.length - 1 - tail]) tail++;
    const removedItems = before.slice(head, before.length - tail);
    const addedItems = items.slice(head, items.length - tail);
    if (removedItems.length + addedItems.length > MAX_CHANGED_ITEMS) return undefined;
    const removed = cleanCidrs(removedItems);
    const added = cleanCidrs(addedItems);
    // Removed items were clean in the previous list; added ones must be clean (so distinct: a duplicate is an issue).
    if (!removed || !added) return undefined;
    const cidrs = previous.cidrs.slice();
    for (const cidr of removed) {
      const at = search(cidrs, cidr);
      if (at < 0) return undefined; // cannot happen: every item of a clean list is in its result
      cidrs.splice(at, 1);
    }
    for (const cidr of added) {
      const at = search(cidrs, cidr);
      if (at >= 0) return undefined; // duplicates a kept item: the full normaliser names both
      cidrs.splice(-at - 1, 0, cidr);
    }
    deltas.set(cidrs, { previous: previous.cidrs, removed, added });
    return cidrs;
  }
}

/**
 * `text` split as `previous.text` was, re-splitting only the items around the part that
 * differs; undefined when that part has whitespace or an empty item (the caller splits it all).
 */
function splitFrom(previous: RememberedText, text: string): RememberedText | undefined {
  const before = previous.text;
  const shorter = Math.min(before.length, text.length);
  const head = commonHead(before, text, shorter);
  const tail = commonTail(before, text, shorter - head);
  const { items, starts } = previous;
  // Whole items around the change, one more on each side: their bounds lie in the common head and tail.
  const first = Math.max(0, itemAt(starts, head) - 1);
  const last = Math.min(items.length - 1, itemAt(starts, before.length - tail) + 1);
  const from = starts[first]!;
  const to = starts[last]! + items[last]!.length + (text.length - before.length);
  const middle = text.slice(from, to);
  if (to - from > 64 * 1024 || WHITESPACE.test(middle)) return undefined;
  const changed = middle.split(',');
  if (changed.includes('')) return undefined;
  const next = [...items.slice(0, first), ...changed, ...items.slice(last + 1)];
  if (next.length > items.length + MAX_CHANGED_ITEMS) return undefined;
  const nextStarts = new Int32Array(next.length);
  nextStarts.set(starts.subarray(0, first));
  let at = from;
  for (let i = 0; i < changed.length; i++) {
    nextStarts[first + i] = at;
    at += changed[i]!.length + 1;
  }
  const shift = text.length - before.length;
  for (let i = last + 1, j = first + changed.length; i < items.length; i++, j++) nextStarts[j] = starts[i]! + shift;
  return { text, items: next, starts: nextStarts };
}
