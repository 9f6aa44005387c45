// The pure core of a refresh: previous per-family addresses + this round's answers -> what to keep,
// whether the round counts as a success, and when to ask again. No I/O, no clock.
import type { TtlAnswer } from './systemResolve.js';

export type Family = 4 | 6;

/** One family's answer in one round. Error texts read like 'ESERVFAIL api.stripe.com'. */
export type FamilyOutcome =
  | { readonly kind: 'data'; readonly answers: readonly TtlAnswer[] } // canonical addresses, non-empty
  | { readonly kind: 'nodata' } // ENODATA: the name exists, no record of this type
  | { readonly kind: 'nxdomain'; readonly error: string } // ENOTFOUND
  | { readonly kind: 'error'; readonly error: string }; // timeout, SERVFAIL, refused, ...

/** What is remembered per family between rounds. */
export interface FamilyMemory {
  readonly addresses: readonly string[];
  /** Time of the first failure of the current failure streak, null when the last round answered. */
  readonly failingSince: number | null;
}

export const EMPTY_FAMILY: FamilyMemory = Object.freeze({ addresses: Object.freeze([]), failingSince: null });

export interface RefreshTiming {
  readonly floorMs: number;
  readonly ceilingMs: number;
  readonly graceMs: number;
  /** Already clamped to [floorMs, ceilingMs]. */
  readonly retryMs: number;
}

export interface FamilyDrop {
  readonly family: Family;
  readonly addresses: readonly string[];
}

export interface RefreshDecision {
  /** At least one family answered with data, or both answered "no data" (not both NXDOMAIN). */
  readonly success: boolean;
  readonly families: Readonly<Record<Family, FamilyMemory>>;
  /** The round's error, if any family failed (also on a partial success). */
  readonly error: string | null;
  /** Families whose failure was tolerated, addresses kept, with the smallest grace left. */
  readonly keptWhileFailing: readonly Family[];
  readonly graceLeftMs: number | null;
  /** Families whose grace ran out in this round. */
  readonly dropped: readonly FamilyDrop[];
  readonly delayMs: number;
}

const FAMILIES: readonly Family[] = [4, 6];

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function isSuccess(v4: FamilyOutcome, v6: FamilyOutcome): boolean {
  if (v4.kind === 'data' || v6.kind === 'data') return true;
  if (v4.kind === 'error' || v6.kind === 'error') return false;
  return !(v4.kind === 'nxdomain' && v6.kind === 'nxdomain');
}

function transientError(outcomes: readonly FamilyOutcome[]): string | null {
  for (const outcome of outcomes) {
    if (outcome.kind === 'error') return outcome.error;
  }
  return null;
}

/** The error to report: a transient one first (it is the actionable one), IPv4 before IPv6. */
function roundError(outcomes: readonly FamilyOutcome[]): string | null {
  const nxdomain = outcomes.find((outcome) => outcome.kind === 'nxdomain');
  return transientError(outcomes) ?? (nxdomain?.kind === 'nxdomain' ? nxdomain.error : null);
}

export function decideRefresh(
  previous: Readonly<Record<Family, FamilyMemory>>,
  outcomes: Readonly<Record<Family, FamilyOutcome>>,
  now: number,
  timing: RefreshTiming,
): RefreshDecision {
  const success = isSuccess(outcomes[4], outcomes[6]);
  const families: Record<Family, FamilyMemory> = { 4: EMPTY_FAMILY, 6: EMPTY_FAMILY };
  const keptWhileFailing: Family[] = [];
  const dropped: FamilyDrop[] = [];
  let graceLeftMs: number | null = null;
  let minTtlSeconds: number | null = null;

  for (const family of FAMILIES) {
    const outcome = outcomes[family];
    const before = previous[family];
    // On a success, an answered family (even NXDOMAIN next to data on the other) replaces its
    // addresses; only a family that failed transiently keeps its old ones. On a failure, all keep.
    const failing = !success || outcome.kind === 'error';
    if (!failing) {
      const answers = outcome.kind === 'data' ? outcome.answers : [];
      for (const answer of answers) {
        minTtlSeconds = Math.min(minTtlSeconds ?? answer.ttl, answer.ttl);
      }
      families[family] = { addresses: answers.map((a) => a.address), failingSince: null };
      continue;
    }
    const failingSince = before.failingSince ?? now;
    const left = timing.graceMs - (now - failingSince);
    if (before.addresses.length > 0 && left <= 0) {
      dropped.push({ family, addresses: before.addresses });
      families[family] = { addresses: [], failingSince };
    } else {
      families[family] = { addresses: before.addresses, failingSince };
      if (before.addresses.length > 0) {
        keptWhileFailing.push(family);
        graceLeftMs = Math.min(graceLeftMs ?? left, left);
      }
    }
  }

  // TTL 0 (or a bogus negative one) means "do not cache": the floor protects the server.
  const ttlDelay =
    minTtlSeconds === null
      ? timing.retryMs
      : clamp(Math.max(0, minTtlSeconds) * 1000, timing.floorMs, timing.ceilingMs);
  let delayMs = success ? ttlDelay : timing.retryMs;
  if (keptWhileFailing.length > 0) {
    // Retry soon while old addresses are on borrowed time, and ask once more right at the end of the
    // grace period, so they are dropped on time rather than up to one retry interval late.
    delayMs = Math.min(delayMs, timing.retryMs, Math.max(1, graceLeftMs ?? timing.retryMs));
  }

  return {
    success,
    families,
    // On a success only a transient error is worth reporting: NXDOMAIN next to data is normal.
    error: success ? transientError([outcomes[4], outcomes[6]]) : roundError([outcomes[4], outcomes[6]]),
    keptWhileFailing,
    graceLeftMs,
    dropped,
    delayMs,
  };
}
