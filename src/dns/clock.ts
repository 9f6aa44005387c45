// Time is injected so that refresh, retry and grace logic can be tested with a fake clock.

export interface Clock {
  /** Milliseconds; only differences between two readings are interpreted. */
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/**
 * Wall-clock time (so `resolvedAt` is readable in dumps and logs) with unref'd timers: background
 * refreshes never keep the process alive on their own.
 */
export const systemClock: Clock = Object.freeze({
  now: (): number => Date.now(),
  setTimer: (fn: () => void, ms: number): unknown => {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clearTimer: (handle: unknown): void => {
    clearTimeout(handle as NodeJS.Timeout);
  },
});
