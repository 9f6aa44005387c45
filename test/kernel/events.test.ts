// Denies reach the ring buffer, decoded, without blocking the event loop.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RULE, VERDICT, formatAddress, type KernelEvent } from '../../src/datapath/codec.js';
import { EventReader } from '../../src/datapath/events.js';
import { basePolicy, createPod, mesh, type PodFixture } from '../helpers/kernelFixture.js';
import { requireRoot } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP event tests: ${skip}`);

describe('decision events', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('events');
  });
  after(() => pod?.close());

  test('a denied connect appears in the ring buffer with its destination and rule', async () => {
    pod.apply(basePolicy({ groups: [mesh('10.0.0.0/8')], eventVerdicts: ['deny'] }));
    const seen: KernelEvent[] = [];
    const reader = new EventReader(pod.dp.maps.mg_events, (e) => seen.push(e), 10);
    try {
      reader.poll(); // drain older events
      seen.length = 0;
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
      assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
      const deadline = Date.now() + 3000;
      while (!seen.some((e) => e.port === 443) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const deny = seen.find((e) => e.port === 443);
      assert.ok(deny, `no event for the denied connect; saw ${seen.length}`);
      assert.equal(formatAddress(deny.address), '198.51.100.7');
      assert.equal(deny.verdict, VERDICT.MG_VERDICT_DENY);
      assert.equal(deny.rule, RULE.MG_RULE_BLOCKED);
      assert.equal(
        seen.some((e) => e.verdict === VERDICT.MG_VERDICT_REDIRECT),
        false,
        'redirects are not emitted unless asked for',
      );
    } finally {
      reader.close();
    }
  });
});
