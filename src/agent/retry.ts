// When a failed reconcile runs again. A reconcile that fails (an apply the
// kernel refused, a read that threw) is retried with exponential backoff
// (controller-runtime's rule), never left waiting for the next event: a pod
// that arrived during the failed run would otherwise stay unmapped. Pure
// arithmetic; the timer goes through an injectable Clock (src/dns/clock.ts).
import { systemClock, type Clock } from '../dns/clock.js';

export interface BackoffOptions {
  /** Delay before the first retry. */
  readonly initialMs: number;
  /** Cap on the delay. */
  readonly maxMs: number;
}

export const DEFAULT_RECONCILE_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 100, maxMs: 30_000 });

/** initialMs, 2×, 4×, … up to maxMs: the delay before retry number `attempt` (1-based). */
export function backoffDelayMs(attempt: number, o: BackoffOptions): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  return Math.min(o.initialMs * 2 ** exponent, o.maxMs);
}

/**
 * Counts consecutive failures and arms one retry timer at a time. `failed()`
 * returns the attempt number and the delay it scheduled; `succeeded()` resets
 * the count; `cancel()` drops a pending retry (a run started for another reason).
 */
export class ReconcileRetry {
  private failures = 0;
  private timer: unknown = null;

  constructor(
    private readonly run: () => void,
    private readonly o: BackoffOptions = DEFAULT_RECONCILE_BACKOFF,
    private readonly clock: Clock = systemClock,
  ) {}

  failed(): { attempt: number; delayMs: number } {
    this.failures++;
    const delayMs = backoffDelayMs(this.failures, this.o);
    this.cancel();
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      this.run();
    }, delayMs);
    return { attempt: this.failures, delayMs };
  }

  succeeded(): void {
    this.failures = 0;
    this.cancel();
  }

  cancel(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
  }

  /** Consecutive failures so far (0 after a success). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  get pending(): boolean {
    return this.timer !== null;
  }
}
