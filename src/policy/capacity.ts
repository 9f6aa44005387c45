// When the whole policy does not fit the kernel's maps: the allowlists that do
// not fit are held back, deterministically, and everything else is enforced as
// compiled (docs/decisions.md, "When the whole policy does not fit"). Pure: the
// compiler passes what each allowlist compiled to and what it was given last.
import { DATAPATH_LIMITS, type DesiredGroup } from '../datapath/desired.js';

/** What one policy may hold: trie entries (one slot) and label ids. */
export interface PolicyCapacity {
  readonly entries: number;
  readonly labels: number;
}

export const POLICY_CAPACITY: PolicyCapacity = Object.freeze({
  entries: DATAPATH_LIMITS.maxPolicyEntries,
  labels: DATAPATH_LIMITS.maxLabels,
});

/** One namespace's allowlist ('' is the global one) as compiled now. */
export interface CompiledAllowlist {
  readonly id: string;
  readonly namespace: string;
  readonly groups: readonly DesiredGroup[];
}

/** An allowlist that did not fit, and what is enforced for it instead. */
export interface HeldBack {
  readonly namespace: string;
  /** Trie entries and labels it needs. */
  readonly entries: number;
  readonly labels: number;
  /** What was left when its turn came. */
  readonly room: PolicyCapacity;
  /** Its groups given last time (they fit), or nothing: its pods' external traffic gets the blocked action. */
  readonly kept: 'previous' | 'none';
}

export interface CapacityFit {
  /** The groups to enforce, allowlists in the order given. */
  readonly groups: readonly DesiredGroup[];
  /** What each allowlist was given (the next call's `previous`). */
  readonly given: ReadonlyMap<string, readonly DesiredGroup[]>;
  readonly heldBack: readonly HeldBack[];
}

const sizeOf = (groups: readonly DesiredGroup[]): number =>
  groups.reduce((n, g) => n + (g.cidrs ? g.cidrs.length : g.entries.length), 0);

/** Distinct labels of an allowlist's entries, plus its namespace's own label. */
function labelsOf(groups: readonly DesiredGroup[]): number {
  const labels = new Set<string>();
  for (const g of groups) if (!g.cidrs) for (const e of g.entries) if (e.label) labels.add(e.label);
  return labels.size + 1;
}

const sameGroups = (a: readonly DesiredGroup[] | undefined, b: readonly DesiredGroup[]): boolean =>
  a !== undefined && a.length === b.length && a.every((g, i) => g === b[i]);

/**
 * Fits the allowlists into what the fixed groups (mesh CIDRs and exclusions,
 * `fixedEntries` entries, and `fixedLabels` labels for pods and DNS hosts) leave.
 * Allowlists unchanged since the last call go first (they fit then), in the
 * order given; then the changed ones, smallest first (ties by namespace), so
 * the largest change is the one held back. One that does not fit keeps what it
 * was given last time when that still fits, else it gets nothing.
 */
export function fitCapacity(
  fixedEntries: number,
  fixedLabels: number,
  lists: readonly CompiledAllowlist[],
  previous: ReadonlyMap<string, readonly DesiredGroup[]>,
  capacity: PolicyCapacity,
): CapacityFit {
  const total = lists.reduce((n, l) => n + sizeOf(l.groups), fixedEntries);
  // Each entry has at most one label: when entries and labels both fit, count nothing more.
  if (total <= capacity.entries && total + lists.length + fixedLabels <= capacity.labels) {
    return {
      groups: lists.flatMap((l) => l.groups),
      given: new Map(lists.map((l) => [l.id, l.groups])),
      heldBack: [],
    };
  }
  const room = { entries: capacity.entries - fixedEntries, labels: capacity.labels - fixedLabels };
  const need = new Map(lists.map((l) => [l.id, { entries: sizeOf(l.groups), labels: labelsOf(l.groups) }]));
  const unchanged = lists.filter((l) => sameGroups(previous.get(l.id), l.groups));
  const changed = lists
    .filter((l) => !unchanged.includes(l))
    .sort(
      (a, b) =>
        need.get(a.id)!.entries - need.get(b.id)!.entries ||
        (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0),
    );
  const given = new Map<string, readonly DesiredGroup[]>();
  const heldBack: HeldBack[] = [];
  const take = (entries: number, labels: number): boolean => {
    if (entries > room.entries || labels > room.labels) return false;
    room.entries -= entries;
    room.labels -= labels;
    return true;
  };
  for (const l of [...unchanged, ...changed]) {
    const n = need.get(l.id)!;
    if (take(n.entries, n.labels)) {
      given.set(l.id, l.groups);
      continue;
    }
    const before = previous.get(l.id);
    const left = { ...room };
    const kept = before !== undefined && take(sizeOf(before), labelsOf(before));
    if (kept) given.set(l.id, before);
    heldBack.push({
      namespace: l.namespace,
      entries: n.entries,
      labels: n.labels,
      room: left,
      kept: kept ? 'previous' : 'none',
    });
  }
  return {
    groups: lists.flatMap((l) => given.get(l.id) ?? []),
    given,
    heldBack: heldBack.sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0)),
  };
}

/** One sentence for logs and Events: the namespace, what it needs, what was left, and what is enforced instead. */
export function heldBackMessage(h: HeldBack): string {
  const whose = h.namespace === '' ? 'the global egress_allowlist' : `the allowlists of namespace ${h.namespace}`;
  const instead =
    h.kept === 'previous'
      ? 'the allowlist applied before this change stays in force'
      : "nothing of it is enforced: its pods' external traffic gets blocked_egress_action";
  return `${whose} (${h.entries} trie entries, ${h.labels} labels) do not fit the policy maps: ${h.room.entries} entries and ${h.room.labels} labels were left after the mesh CIDRs, the exclusions and the allowlists that fit; ${instead}`;
}
