// A failed reconcile is retried with exponential backoff, one timer at a time, on an injected clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReconcileRetry, backoffDelayMs } from '../../../src/agent/retry.js';
import { FakeClock } from '../dns/support.js';

test('retry delays double from the initial delay and stop at the cap', () => {
  const o = { initialMs: 100, maxMs: 1000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 60].map((n) => backoffDelayMs(n, o)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
});

test('each failure arms one retry at the next delay; a success resets the count', async () => {
  const clock = new FakeClock();
  let runs = 0;
  const retry = new ReconcileRetry(() => runs++, { initialMs: 50, maxMs: 400 }, clock);
  assert.deepEqual(retry.failed(), { attempt: 1, delayMs: 50 });
  await clock.advance(49);
  assert.equal(runs, 0);
  await clock.advance(1);
  assert.equal(runs, 1);
  assert.deepEqual(retry.failed(), { attempt: 2, delayMs: 100 });
  assert.deepEqual(retry.failed(), { attempt: 3, delayMs: 200 }, 'a second failure before the timer fired re-arms it');
  assert.equal(clock.pendingTimers(), 1);
  await clock.advance(200);
  assert.equal(runs, 2);
  retry.succeeded();
  assert.equal(retry.consecutiveFailures, 0);
  assert.deepEqual(retry.failed(), { attempt: 1, delayMs: 50 });
});

test('cancel drops the pending retry (a run started for another reason)', async () => {
  const clock = new FakeClock();
  let runs = 0;
  const retry = new ReconcileRetry(() => runs++, { initialMs: 10, maxMs: 10 }, clock);
  retry.failed();
  assert.equal(retry.pending, true);
  retry.cancel();
  await clock.advance(100);
  assert.equal(runs, 0);
  assert.equal(retry.consecutiveFailures, 1, 'cancel keeps the count: the next failure backs off further');
});
