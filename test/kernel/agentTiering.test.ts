// The real agent holds V8's optimising compiler back while it starts, and releases it for its
// first policy (src/agent/tiering.ts; SPEC §7's 60 MB idle). Node's --trace-opt prints every
// optimisation: none may happen before the first "policy applied" or while the agent idles after
// it, and a 50,000-entry policy written later is optimised as it is read.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { killAndWait, startStandaloneAgent } from '../helpers/standaloneAgent.js';
import { requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP agent tiering tests: ${skip}`);

const config = (cidrs: string) => `egress: "false"
mesh_cidr_ranges: "${cidrs}"
egress_allowlist: |
  - name: web
    addresses: [203.0.113.10]
    ports: [{number: 80, protocol: TCP}]
`;

describe("the agent's start-up does not wake the optimising compiler", { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let dir: string;
  let agent: ChildProcess | undefined;
  let log = '';

  before(async () => {
    pod = await createPod('tiering');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-tiering-'));
  });
  after(async () => {
    await killAndWait(agent);
    pod?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const optimised = () => log.split('\n').filter((l) => l.startsWith('[completed optimizing'));
  const applies = () => log.split('\n').filter((l) => l.includes('"policy applied"')).length;

  test('nothing is optimised through start-up and idling; a large policy is', async () => {
    const configFile = path.join(dir, 'osm-config.yaml');
    writeFileSync(configFile, config('10.0.0.0/8,192.168.0.0/16'));
    agent = startStandaloneAgent(pod, configFile, ['--debounce-ms', '5'], (text) => (log += text), ['--trace-opt']);
    await until('the first policy applied', () => applies() >= 1);
    await new Promise((r) => setTimeout(r, 1500)); // idling: timers, the metrics registry, file watches
    assert.deepEqual(optimised(), [], 'functions optimised during start-up or idling');

    const cidrs: string[] = [];
    for (let i = 0; i < 50_000; i++) cidrs.push(`10.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}/32`);
    writeFileSync(`${configFile}.tmp`, config(cidrs.join(',')));
    renameSync(`${configFile}.tmp`, configFile);
    await until('the large policy applied', () => applies() >= 2, 30_000);
    // Optimised code is compiled on a background thread: on a busy machine it may land just after.
    await until('the 50,000-entry policy to be optimised as it is read', () => optimised().length > 0, 10_000);
  });
});
