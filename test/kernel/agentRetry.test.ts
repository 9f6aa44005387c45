// A reconcile whose apply fails is retried with backoff, without waiting for another event:
// the in-process standalone agent, a kernel write failure injected through Datapath's
// beforeWrite hook, and real connects deciding whether the retried policy is in force.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { StandaloneAgent } from '../../src/agent/standalone.js';
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
  let agent: StandaloneAgent | null = null;
  let log = '';
  /** How many of the next trie writes fail. */
  let failNext = 0;

  before(async () => {
    pod = await createPod('retry');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-retry-'));
  });
  after(async () => {
    await agent?.stop();
    pod?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const lines = (msg: string) =>
    log
      .split('\n')
      .filter((l) => l.includes(`"msg":"${msg}"`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const metric = async (name: string) => {
    const port = Number(lines('serving /healthz /readyz /metrics')[0]?.port);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
  };

  test('an injected apply failure is retried with backoff and the policy then enforced', async () => {
    const configFile = path.join(dir, 'osm-config.yaml');
    writeFileSync(configFile, config(false));
    const sink = new Writable({
      write(chunk, _enc, done) {
        log += chunk.toString();
        done();
      },
    });
    failNext = 2;
    agent = new StandaloneAgent(
      {
        configFile,
        allowlistFiles: [],
        cgroup: pod.sb.cgroup,
        proxyCgroup: pod.proxy,
        namespace: 'shop',
        podName: 'web',
        pinDir: pod.sb.pinDir,
        listen: '127.0.0.1:0',
        debounceMs: 10,
        retryBackoff: { initialMs: 30, maxMs: 60 },
        beforeWrite: (step) => {
          if (step === 'trie-update' && failNext > 0) {
            failNext--;
            throw new Error('injected trie write failure');
          }
        },
      },
      pino({ level: 'info' }, sink),
    );
    await agent.start();
    await until(
      'the policy to be applied by a retry',
      () => lines('policy applied').length === 1,
      10_000,
      () => log,
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
      () => log,
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
