// A reconcile whose apply fails is retried with backoff, without waiting for another event:
// the in-process standalone agent, a kernel write failure injected through Datapath's
// beforeWrite hook, and real connects deciding whether the retried policy is in force.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inProcessAgent, type InProcessAgent } from '../helpers/inProcessAgent.js';
import { createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP agent retry tests: ${skip}`);

const config = (allow: boolean) => `egress: "false"
mesh_cidr_ranges: "10.0.0.0/8"
egress_allowlist: |
  - name: api
    addresses: [203.0.113.10]
    ports: [{number: 443, protocol: HTTPS}]
${
  allow
    ? `  - name: partner
    addresses: [198.51.100.7/32]
    ports: [{number: 443, protocol: TLS}]
`
    : ''
}`;

describe('failed reconciles are retried', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let dir: string;
  let h: InProcessAgent | null = null;
  /** How many of the next trie writes fail. */
  let failNext = 0;

  before(async () => {
    pod = await createPod('retry');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-retry-'));
  });
  after(async () => {
    await h?.agent.stop();
    pod?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const lines = (msg: string) => h!.lines(msg);
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await h!.metrics())?.[1]);

  test('an injected apply failure is retried with backoff and the policy then enforced', async () => {
    const configFile = path.join(dir, 'osm-config.yaml');
    writeFileSync(configFile, config(false));
    failNext = 2;
    h = inProcessAgent(pod, {
      configFile,
      allowlistFiles: [],
      retryBackoff: { initialMs: 30, maxMs: 60 },
      beforeWrite: (step) => {
        if (step === 'trie-update' && failNext > 0) {
          failNext--;
          throw new Error('injected trie write failure');
        }
      },
    });
    await h.agent.start();
    await until(
      'the policy to be applied by a retry',
      () => lines('policy applied').length === 1,
      10_000,
      () => h!.log(),
    );
    const retries = lines('reconcile failed, keeping the policy in force; retrying');
    assert.deepEqual(
      retries.map((l) => [l.attempt, l.retryInMs]),
      [
        [1, 30],
        [2, 60],
      ],
      'one log line per attempt, with its backoff',
    );
    assert.equal(lines('reconcile succeeded after failures')[0]?.failures, 2);
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    assert.equal(await metric('meshgate_reconcile_retries_total'), 2);
    assert.equal(await metric('meshgate_apply_failures_total'), 2);

    // A failed apply of an edit is retried too: no second edit is needed for it to take effect.
    failNext = 1;
    writeFileSync(configFile, config(true));
    await until(
      '198.51.100.7:443 to pass after the retry',
      () => pod.connect('198.51.100.7', 443).verdict === 'pass',
      10_000,
      () => h!.log(),
    );
    assert.equal(
      lines('reconcile failed, keeping the policy in force; retrying').at(-1)?.attempt,
      1,
      'the count restarts after a success',
    );
    assert.equal(await metric('meshgate_reconcile_retries_total'), 3);
    assert.equal(lines('policy applied').length, 2);
  });
});
