// Events on rejected ConfigMaps survive a failing API server: a failed POST is retried with
// backoff, a bounded number of times, and what was posted is remembered in a bounded set.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { makeIssue } from '../../../src/config/issues.js';
import { KubeClient, loadKubeConnection } from '../../../src/kube/client.js';
import { EventRecorder } from '../../../src/kube/events.js';
import { startKubeTestEnv, type KubeTestEnv } from './support.js';

const REF = { kind: 'ConfigMap' as const, namespace: 'shop', name: 'egress' };
const ERRORS = [
  makeIssue('MG_CONFIG_BAD_CIDR', { ref: REF, key: 'egress' }, { value: '10.0.0.1/33', reason: 'is not a CIDR' }),
];
const cm = (name: string, resourceVersion = '1') => ({
  metadata: { namespace: 'shop', name, uid: `uid-${name}`, resourceVersion },
});

describe('EventRecorder', () => {
  let env: KubeTestEnv;
  let dir: string;
  let client: KubeClient;
  const log = pino({ level: 'silent' });
  const events = () => env.server.list('events', 'shop').length;

  before(async () => {
    env = await startKubeTestEnv();
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-events-'));
    client = new KubeClient(await loadKubeConnection(await env.server.writeKubeconfig(dir)));
  });
  after(async () => {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a failed POST is retried with backoff until it is stored', async () => {
    const delays: number[] = [];
    const recorder = new EventRecorder(client, 'node-a', log, { sleep: async (ms) => void delays.push(ms) });
    env.server.failNext({ verb: 'create', resource: 'events', status: 503, times: 2 });
    const before = events();
    await recorder.rejected(cm('retried'), ERRORS);
    assert.equal(events(), before + 1, 'posted on the third attempt');
    assert.deepEqual(delays, [1000, 2000]);
    await recorder.rejected(cm('retried'), ERRORS);
    assert.equal(events(), before + 1, 'and not twice');
  });

  test('retries are bounded; an Event given up on is posted when the object is reported again', async () => {
    const delays: number[] = [];
    const recorder = new EventRecorder(client, 'node-a', log, {
      retries: 3,
      backoffMs: { initial: 100, max: 250 },
      sleep: async (ms) => void delays.push(ms),
    });
    env.server.failNext({ verb: 'create', resource: 'events', status: 500, times: 4 });
    const before = events();
    await recorder.rejected(cm('lost'), ERRORS);
    assert.equal(events(), before, 'four failures: given up');
    assert.deepEqual(delays, [100, 200, 250]);
    assert.equal(recorder.remembered, 0);
    await recorder.rejected(cm('lost'), ERRORS);
    assert.equal(events(), before + 1);
  });

  test('the set of posted Events is bounded, oldest forgotten first', async () => {
    const recorder = new EventRecorder(client, 'node-a', log, { remember: 3 });
    const before = events();
    for (let i = 0; i < 5; i++) await recorder.rejected(cm(`many-${i}`), ERRORS);
    assert.equal(recorder.remembered, 3);
    await recorder.rejected(cm('many-4'), ERRORS);
    assert.equal(events(), before + 5, 'a remembered one is not posted again');
    await recorder.rejected(cm('many-0'), ERRORS);
    assert.equal(events(), before + 6, 'a forgotten one is');
  });
});
