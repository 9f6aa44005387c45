// Valid objects that together do not fit the policy maps: the in-process standalone agent with a
// small injected capacity, real connects, and the report (log line with its code, config_valid,
// the held-back metric). The allowlist that does not fit is held back, everything else is
// enforced, and nothing of the held-back allowlist passes unless it was in force before. And an
// apply the kernel refuses (an injected write failure) still maps the pods.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { AgentCore } from '../../src/agent/core.js';
import { parseGlobalConfig } from '../../src/config/index.js';
import { cgroupId, cgroupLevel } from '../../src/node/cgroup.js';
import type { PodInput } from '../../src/policy/compile.js';
import { inProcessAgent, type InProcessAgent } from '../helpers/inProcessAgent.js';
import { createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP agent capacity tests: ${skip}`);

const CONFIG = `egress: "false"
mesh_cidr_ranges: "10.0.0.0/8"
egress_allowlist: |
  - name: api
    addresses: [203.0.113.10]
    ports: [{number: 443, protocol: HTTPS}]
`;

/** One entry allowing 198.51.100.1..n on 443. */
const allowlist = (n: number): string =>
  `- name: bulk\n  addresses: [${Array.from({ length: n }, (_, i) => `198.51.100.${i + 1}`).join(', ')}]\n  ports: [{number: 443, protocol: TLS}]\n`;

describe('a policy larger than the maps', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let dir: string;
  let h: InProcessAgent | null = null;

  before(async () => {
    pod = await createPod('capacity');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-capacity-'));
  });
  after(async () => {
    await h?.agent.stop();
    pod?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const lines = (msg: RegExp) => h!.lines(msg);
  const metrics = () => h!.metrics();
  const verdict = (address: string): string => pod.connect(address, 443).verdict;

  test('the allowlist that does not fit is held back and reported; the rest is enforced; it applies once it fits', async () => {
    const configFile = path.join(dir, 'osm-config.yaml');
    const allowlistFile = path.join(dir, 'shop.yaml');
    writeFileSync(configFile, CONFIG);
    writeFileSync(allowlistFile, allowlist(50));
    h = inProcessAgent(pod, {
      configFile,
      allowlistFiles: [allowlistFile],
      // The mesh CIDR, the global allowlist's one entry and 38 more.
      policyCapacity: { entries: 40, labels: 1000 },
    });
    await h.agent.start();
    await until(
      'the policy to be applied',
      () => lines(/^policy applied$/).length === 1,
      10_000,
      () => h!.log(),
    );

    const held = lines(/do not fit the policy maps/);
    assert.equal(held.length, 1, h!.log());
    assert.equal(held[0]!.code, 'MG_POLICY_CAPACITY_EXCEEDED');
    assert.equal(held[0]!.namespace, 'shop');
    assert.equal(held[0]!.entries, 50);
    assert.equal(held[0]!.kept, 'none');
    assert.equal(verdict('198.51.100.7'), 'deny', 'nothing of the held-back allowlist passes');
    assert.equal(verdict('203.0.113.10'), 'pass', 'the global allowlist is enforced');
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect', 'the mesh is enforced');
    let text = await metrics();
    assert.match(text, /^meshgate_policy_held_back_entries\{namespace="shop"\} 50$/m);
    assert.match(text, new RegExp(`^meshgate_config_valid\\{configmap="file ${allowlistFile}"\\} 0$`, 'm'));

    // It shrinks and fits: applied at once, reported valid again.
    writeFileSync(allowlistFile, allowlist(20));
    await until(
      '198.51.100.7 to pass',
      () => verdict('198.51.100.7') === 'pass',
      10_000,
      () => h!.log(),
    );
    text = await metrics();
    assert.doesNotMatch(text, /^meshgate_policy_held_back_entries\{/m);
    assert.match(text, new RegExp(`^meshgate_config_valid\\{configmap="file ${allowlistFile}"\\} 1$`, 'm'));

    // It grows past the room left: what was in force stays, the new addresses are not allowed.
    writeFileSync(allowlistFile, allowlist(45));
    await until(
      'the second hold-back',
      () => lines(/do not fit the policy maps/).length === 2,
      10_000,
      () => h!.log(),
    );
    assert.equal(lines(/do not fit the policy maps/)[1]!.kept, 'previous');
    assert.equal(verdict('198.51.100.7'), 'pass', 'the allowlist in force before stays');
    assert.equal(verdict('198.51.100.30'), 'deny', 'the addresses that did not fit are not allowed');
  });
});

describe('an apply the kernel refuses', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let core: AgentCore | null = null;
  before(async () => {
    pod = await createPod('applyfail');
  });
  after(async () => {
    await core?.stop();
    pod?.close();
  });

  test('still maps a new pod, to the policy in force, instead of leaving it to unknown_pod_policy', async () => {
    let fail = false;
    core = new AgentCore(
      {
        pinDir: pod.sb.pinDir,
        listen: '127.0.0.1:0',
        debounceMs: 10,
        mode: 'standalone',
        beforeWrite: (step) => {
          if (fail && step === 'trie-update') throw new Error('injected trie write failure');
        },
      },
      pino({ level: 'silent' }),
    );
    await core.open(cgroupLevel(pod.sb.cgroup), async () => {});
    const global = (mesh: string) => {
      const r = parseGlobalConfig({ mesh_cidr_ranges: mesh }, { kind: 'ConfigMap', namespace: 'x', name: 'g' });
      assert.ok(r.ok);
      return r.value;
    };
    const input = (mesh: string, pods: PodInput[]) => ({
      global: global(mesh),
      allowlists: new Map(),
      pods,
      objectsTotal: 1,
      objectsInvalid: 0,
    });
    core.apply(input('10.0.0.0/8', []), pod.sb.cgroup);
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'pass', 'not mapped yet: unknown_pod_policy pass');
    const web: PodInput = {
      namespace: 'shop',
      name: 'web',
      podCgroupId: cgroupId(pod.sb.cgroup),
      proxyCgroupId: cgroupId(pod.proxy),
      meshed: true,
    };
    fail = true;
    assert.throws(() => core!.apply(input('10.0.0.0/8 192.0.2.0/24', [web]), pod.sb.cgroup), {
      code: 'MG_APPLY_FAILED',
    });
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect', 'mapped, under the policy in force');
    assert.equal(pod.connect('192.0.2.1', 80).verdict, 'deny', 'the refused policy is not in force');
  });
});
