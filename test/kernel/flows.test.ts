// mg_flows records what the kernel decided: real connects and datagrams from a test cgroup,
// the verdict each socket saw, and the flow the decision programs filed (verdict, rule, entry,
// count, generation); `meshgate flows` shows them with pod names; --flows-max sizes the LRU.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Datapath } from '../../src/datapath/datapath.js';
import type { DesiredPolicy } from '../../src/datapath/desired.js';
import { pinLayout, pinnedMaxEntries } from '../../src/datapath/loader.js';
import { readFlows, type FlowView } from '../../src/report/flows.js';
import { Pins } from '../../src/datapath/pinned.js';
import { cgroupLevel } from '../../src/node/cgroup.js';
import { allow, basePolicy, createPod, group, mesh, type PodFixture } from '../helpers/kernelFixture.js';
import { REPO_ROOT, requireRoot } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP flows kernel tests: ${skip}`);

const CLI = path.join(REPO_ROOT, 'bin/meshgate.js');
const entry = (namespace: string, name: string) => JSON.stringify({ kind: 'entry', namespace, name });

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function flowsNow(pod: PodFixture): FlowView[] {
  const pins = Pins.open(pod.sb.pinDir);
  try {
    return [...readFlows(pins).flows];
  } finally {
    pins.close();
  }
}

const find = (flows: readonly FlowView[], destination: string, protocol: string) =>
  flows.filter((f) => f.destination === destination && f.protocol === protocol);

describe('mg_flows in the kernel', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('flows');
  });
  after(() => pod?.close());

  const policy = (overrides: Partial<DesiredPolicy> = {}): DesiredPolicy =>
    basePolicy({
      groups: [
        mesh('10.0.0.0/8', 'fd00::/8'),
        group('allow:shop', [allow('shop', '203.0.113.10/32', 443, 'tcp', entry('shop', 'api'))]),
      ],
      ...overrides,
    });

  test('every decided connect and datagram of the pod is filed with the verdict its socket saw, the rule and the entry', () => {
    pod.apply(policy());
    const seen = new Map<string, string>();
    const tries: Array<[string, number, 'tcp' | 'udp']> = [
      ['10.1.2.3', 80, 'tcp'],
      ['10.1.2.3', 80, 'tcp'],
      ['203.0.113.10', 443, 'tcp'],
      ['198.51.100.7', 443, 'tcp'],
      ['198.51.100.7', 443, 'udp'],
      ['2001:db8::20', 443, 'tcp'],
      ['fd00::5', 8080, 'tcp'],
      ['10.1.2.3', 443, 'udp'],
    ];
    for (const [addr, port, proto] of tries)
      seen.set(
        `${addr.includes(':') ? `[${addr}]` : addr}:${port}/${proto}`,
        pod.connect(addr, port, { proto }).verdict,
      );
    const flows = flowsNow(pod).filter((f) => f.pod === 'shop/web');
    const mine = [...seen.keys()].map((key) => {
      const [dest, proto] = key.split('/') as [string, string];
      const hits = find(flows, dest, proto);
      assert.equal(hits.length, 1, `one flow for ${key}: ${JSON.stringify(flows)}`);
      return `${key} ${hits[0]!.verdict}/${hits[0]!.rule}${hits[0]!.entry ? ` ${hits[0]!.entry}` : ''} x${hits[0]!.count}`;
    });
    assert.deepEqual(mine, [
      '10.1.2.3:80/tcp redirect/mesh-cidr x2',
      '203.0.113.10:443/tcp pass/allow-namespace shop/api x1',
      '198.51.100.7:443/tcp deny/blocked x1',
      '198.51.100.7:443/udp deny/blocked x1',
      '[2001:db8::20]:443/tcp deny/blocked x1',
      '[fd00::5]:8080/tcp redirect/mesh-cidr x1',
      '10.1.2.3:443/udp pass/mesh-cidr x1',
    ]);
    // ...and each is what the socket saw.
    for (const [key, verdict] of seen) {
      const [dest, proto] = key.split('/') as [string, string];
      assert.equal(find(flows, dest, proto)[0]!.verdict, verdict, key);
    }
    assert.equal(
      flows.every((f) => f.generation === pod.dp.currentGeneration.toString()),
      true,
    );
  });

  test('a flow keeps its key across policies: the last verdict, the new generation, the count goes on', () => {
    pod.apply(policy());
    pod.connect('198.51.100.200', 80);
    const before = find(flowsNow(pod), '198.51.100.200:80', 'tcp')[0]!;
    assert.equal(before.verdict, 'deny');
    pod.apply(policy({ namespaceActions: [{ namespace: 'shop', action: 'audit' }] }));
    assert.equal(pod.connect('198.51.100.200', 80).verdict, 'pass');
    const now = find(flowsNow(pod), '198.51.100.200:80', 'tcp')[0]!;
    assert.equal(now.verdict, 'audit');
    assert.equal(now.rule, 'blocked');
    assert.equal(now.count, before.count + 1);
    assert.equal(BigInt(now.generation), BigInt(before.generation) + 1n);
    assert.ok(now.ageMs < 60_000 && now.ageMs >= 0);
  });

  test("the sidecar's own traffic and a pod that is not meshed are not filed; proxy_uid's fallback is, with its uid", () => {
    pod.apply(policy());
    pod.connect('198.51.100.7', 8080, { cgroup: pod.proxy });
    assert.equal(find(flowsNow(pod), '198.51.100.7:8080', 'tcp').length, 0, 'sidecar');
    pod.apply(policy(), pod.cgroups({ podKind: 'unenforced', proxyCgroupKnown: false }));
    pod.connect('198.51.100.7', 80);
    assert.equal(find(flowsNow(pod), '198.51.100.7:80', 'tcp').length, 0, 'not meshed');
    pod.apply(policy(), pod.cgroups({ proxyCgroupKnown: false }));
    assert.equal(pod.connect('192.0.2.1', 443, { uid: 1500 }).verdict, 'pass');
    const f = find(flowsNow(pod), '192.0.2.1:443', 'tcp')[0]!;
    assert.equal(f.rule, 'proxy-uid');
    assert.equal(f.uid, 1500);
  });

  test('meshgate flows lists them with pod names, filters by pod and verdict, and says no such pod', () => {
    pod.apply(policy());
    pod.connect('198.51.100.7', 443);
    pod.connect('10.1.2.3', 80);
    const pin = ['--pin-dir', pod.sb.pinDir];
    const json = cli(['flows', ...pin, '--json']);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as {
      flows: FlowView[];
      total: number;
      capacity: number;
      recording: boolean;
    };
    assert.equal(report.capacity, 16384);
    assert.equal(report.recording, true);
    assert.ok(
      report.flows.some((f) => f.pod === 'shop/web' && f.destination === '198.51.100.7:443' && f.verdict === 'deny'),
    );
    const denies = JSON.parse(
      cli(['flows', ...pin, '--json', '--pod', 'shop/web', '--verdict', 'deny,audit']).stdout,
    ) as { flows: FlowView[] };
    assert.ok(denies.flows.length > 0 && denies.flows.every((f) => f.verdict === 'deny' || f.verdict === 'audit'));
    const text = cli(['flows', ...pin, '--verdict', 'redirect']);
    assert.equal(text.status, 0);
    assert.match(text.stdout, /^LAST SEEN +COUNT VERDICT +POD +DESTINATION +RULE\n/);
    assert.match(text.stdout, /redirect +shop\/web +10\.1\.2\.3:80\/tcp +mesh-cidr/);
    assert.doesNotMatch(text.stdout, / deny /);
    assert.match(text.stdout, /flow\(s\); the kernel keeps the 16384 most recent\n$/);
    const noPod = cli(['flows', ...pin, '--pod', 'shop/nope']);
    assert.equal(noPod.status, 1);
    assert.match(noPod.stderr, /^meshgate: no such pod: shop\/nope/);
    assert.equal(cli(['flows', ...pin, '--verdict', 'drop']).status, 2);
  });

  // Last: it moves the links to another object and replaces the pinned mg_flows.
  test('--flows-max sizes the LRU before load: a pinned map of another size is replaced, enforcement goes on; 0 stops recording', () => {
    const flowsPin = path.join(pinLayout(pod.sb.pinDir).mapsDir, 'mg_flows');
    assert.equal(pinnedMaxEntries(flowsPin), 16384);
    const walk = cgroupLevel(pod.sb.cgroup);
    const resized = Datapath.open({ pinDir: pod.sb.pinDir, cgroupWalkStart: walk, flowsMax: 2048 });
    try {
      assert.equal(pinnedMaxEntries(flowsPin), 2048);
      assert.equal(resized.maps.mg_flows.keys().length, 0, 'a new map: the old flows are gone');
      // Until the links move, the old programs keep deciding (on the old map): no gap.
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
      resized.apply({ policy: policy(), cgroups: pod.cgroups() });
      resized.attach(pod.sb.cgroup);
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
      assert.equal(resized.maps.mg_flows.keys().length, 1);
    } finally {
      resized.close();
    }
    const off = Datapath.open({ pinDir: pod.sb.pinDir, cgroupWalkStart: walk, flowsMax: 0 });
    try {
      off.apply({ policy: policy(), cgroups: pod.cgroups() });
      off.attach(pod.sb.cgroup);
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
      assert.equal(off.maps.mg_flows.keys().length, 0, 'recording is off');
      const r = cli(['flows', '--pin-dir', pod.sb.pinDir]);
      assert.match(r.stdout, /recording is off/);
    } finally {
      off.close();
    }
  });
});
