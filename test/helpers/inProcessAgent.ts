// The standalone agent in this test process, for one test pod (sidecar cgroup, pin dir, namespace
// "shop", an ephemeral metrics port, a 10 ms debounce): what tests that inject a capacity or a
// kernel write failure run. Its log lines are kept for the test to read. Made, not started: the
// test keeps the handle first, so its `after` stops the agent even when the start fails.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { StandaloneAgent, type StandaloneOptions } from '../../src/agent/standalone.js';
import type { PodFixture } from './kernelFixture.js';

export interface InProcessAgent {
  readonly agent: StandaloneAgent;
  /** Everything logged so far. */
  log(): string;
  /** The log lines whose msg is `msg` (a string: exactly), parsed. */
  lines(msg: string | RegExp): Record<string, unknown>[];
  /** The agent's /metrics text. */
  metrics(): Promise<string>;
}

export function inProcessAgent(
  pod: PodFixture,
  opts: Pick<StandaloneOptions, 'configFile' | 'allowlistFiles'> & Partial<StandaloneOptions>,
): InProcessAgent {
  let log = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      log += chunk.toString();
      done();
    },
  });
  const agent = new StandaloneAgent(
    {
      cgroup: pod.sb.cgroup,
      proxyCgroup: pod.proxy,
      namespace: 'shop',
      podName: 'web',
      pinDir: pod.sb.pinDir,
      listen: '127.0.0.1:0',
      debounceMs: 10,
      ...opts,
    },
    pino({ level: 'info' }, sink),
  );
  const lines = (msg: string | RegExp) =>
    log
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg))));
  return {
    agent,
    log: () => log,
    lines,
    metrics: async () => {
      const port = Number(lines(/^serving \/healthz/)[0]?.port);
      return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    },
  };
}
