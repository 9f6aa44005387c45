// Long CIDR lists (mesh CIDRs, exclusions) as hash buckets of canonical texts,
// kept up to date incrementally. A list longer than BUCKET_SIZE is split by a
// hash of each CIDR into 2^k buckets, each its own DesiredGroup: a one-entry
// change to a 100,000-entry list is a diff of the two sorted lists and a new
// group for the one bucket it touches, and the datapath diffs only that
// bucket. Groups hold the CIDR texts themselves (CidrGroup), no entry objects.
import { cidrListDelta } from '../config/cidrListMemo.js';
import { compareCidrTexts } from '../config/cidrNumeric.js';
import type { DesiredGroup, DesiredTrieEntry } from '../datapath/desired.js';

/** Lists longer than this are split into hash buckets. */
export const BUCKET_SIZE = 1024;
/** A diff with more changed CIDRs than this rebuilds the buckets (still reusing equal ones). */
const MAX_INCREMENTAL_CHANGES = 256;

type CidrTable = 'mesh' | 'exclude';

/** A group of plain CIDRs of one table: entries are made on demand, never kept. */
export class CidrGroup implements DesiredGroup {
  constructor(
    readonly id: string,
    readonly table: CidrTable,
    readonly cidrs: readonly string[],
  ) {
    Object.freeze(this);
  }

  get entries(): readonly DesiredTrieEntry[] {
    return Object.freeze(this.cidrs.map((cidr) => Object.freeze({ table: this.table, cidr })));
  }
}

/** 32-bit FNV-1a of `${cidr}||` (the entry key of a CIDR with no protocol or port): its bucket, stable across runs. */
export function cidrBucketHash(cidr: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < cidr.length; i++) {
    h ^= cidr.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  for (let i = 0; i < 2; i++) {
    h ^= 124; // '|'
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const bucketCount = (length: number): number =>
  length <= BUCKET_SIZE ? 1 : 2 ** Math.ceil(Math.log2(length / BUCKET_SIZE));

/**
 * What turns sorted list `a` into sorted list `b`: a greedy walk with one item
 * of lookahead (exact for one insertion, removal or replacement, and always a
 * valid edit: removed ∪ kept = a and added ∪ kept = b). Null when more than
 * `max` items change.
 */
export function diffSortedLists(
  a: readonly string[],
  b: readonly string[],
  max: number,
): { removed: string[]; added: string[] } | null {
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      i++;
      j++;
    } else if (a[i + 1] === b[j]) {
      removed.push(a[i++]!);
    } else if (a[i] === b[j + 1]) {
      added.push(b[j++]!);
    } else {
      removed.push(a[i++]!);
      added.push(b[j++]!);
    }
    if (removed.length + added.length > max) return null;
  }
  while (i < a.length) removed.push(a[i++]!);
  while (j < b.length) added.push(b[j++]!);
  return removed.length + added.length > max ? null : { removed, added };
}

/** Inserts `cidr` into the sorted `list` at its place in compareCidrs order. */
function insertSorted(list: string[], cidr: string): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareCidrTexts(list[mid]!, cidr) <= 0) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, cidr);
}

const sameList = (a: readonly string[] | undefined, b: readonly string[]): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

interface BucketedList {
  readonly table: CidrTable;
  readonly cidrs: readonly string[];
  readonly buckets: ReadonlyArray<readonly string[]>;
  /** the group of each bucket, null when the bucket is empty */
  readonly groups: ReadonlyArray<CidrGroup | null>;
  readonly result: readonly DesiredGroup[];
}

/**
 * The bucketed groups of each named CIDR list, remembered between compiles.
 * Each bucket holds its CIDRs in the list's order (compareCidrs), so an
 * incremental update gives exactly what a fresh build gives.
 */
export class CidrLists {
  private readonly lists = new Map<string, BucketedList>();

  groups(id: string, table: CidrTable, cidrs: readonly string[]): readonly DesiredGroup[] {
    const cached = this.lists.get(id);
    if (cached && cached.cidrs === cidrs && cached.table === table) return cached.result;
    const n = bucketCount(cidrs.length);
    const previous = cached && cached.table === table && cached.buckets.length === n ? cached : undefined;
    let buckets: Array<readonly string[]>;
    // A list the parser made incrementally from the previous one says what changed; other lists are diffed.
    const delta = cidrListDelta(cidrs);
    const known =
      delta &&
      previous &&
      delta.previous === previous.cidrs &&
      delta.removed.length + delta.added.length <= MAX_INCREMENTAL_CHANGES
        ? delta
        : undefined;
    const diff = previous ? (known ?? diffSortedLists(previous.cidrs, cidrs, MAX_INCREMENTAL_CHANGES)) : null;
    if (previous && diff) {
      buckets = [...previous.buckets];
      const removed = new Set(diff.removed);
      const touched = new Map<number, string[]>();
      const bucketOf = (cidr: string): string[] => {
        const b = cidrBucketHash(cidr) % n;
        let list = touched.get(b);
        if (!list) {
          list = buckets[b]!.filter((c) => !removed.has(c));
          touched.set(b, list);
        }
        return list;
      };
      for (const cidr of diff.removed) bucketOf(cidr);
      for (const cidr of diff.added) insertSorted(bucketOf(cidr), cidr);
      for (const [b, list] of touched) buckets[b] = list;
    } else {
      const fresh: string[][] = Array.from({ length: n }, () => []);
      for (const cidr of cidrs) fresh[n === 1 ? 0 : cidrBucketHash(cidr) % n]!.push(cidr);
      buckets = fresh;
    }
    const groups = buckets.map((list, b) => {
      if (list.length === 0) return null;
      const old = previous?.groups[b];
      if (old && (old.cidrs === list || sameList(old.cidrs, list))) return old;
      return new CidrGroup(n === 1 ? id : `${id}#${b}/${n}`, table, Object.freeze(list));
    });
    const result = Object.freeze(groups.filter((g): g is CidrGroup => g !== null));
    this.lists.set(id, { table, cidrs, buckets, groups, result });
    return result;
  }

  /** Forgets the lists not named in `ids`. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of [...this.lists.keys()]) if (!ids.has(id)) this.lists.delete(id);
  }
}
