// Per-object last good across agent restarts (SPEC §1.4, issue 14): the real
// cluster agent process against the test API server, kubelet-style pod cgroups,
// and every assertion a verdict the kernel gave a real connect, before, during
// and after a kill -9 and restart.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  allowlistConfigMap,
  MESHGATE,
  osmConfig,
  killClusterAgent,
  startClusterAgent,
  type AgentProcess,
} from '../helpers/clusterAgent.js';
import {
  createFakeNode,
  API_ADDR,
  FORBIDDEN_ADDR,
  MESH_ADDR,
  type FakeNode,
  type FakePod,
} from '../helpers/fakeNode.js';
import { classify } from '../helpers/kernelFixture.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../helpers/kubeApiServer.js';
import { requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# skipping cluster last good tests: ${skip}`);

const GLOBAL = { egress: 'false', mesh_cidr_ranges: '10.96.0.0/12' };
const entry = (name: string, address: string) =>
  `- name: ${name}\n  addresses: [${address}]\n  ports: [{number: 443, protocol: TLS}]\n`;
const BAD = '- name: broken\n  addresses: [10.0.0.1/33]\n  ports: [{number: 443, protocol: TLS}]\n';

interface EventObject {
  reason: string;
  message: string;
  involvedObject: { name: string };
}

describe('cluster agent: per-object last good survives restarts', { skip: skip ?? false }, () => {
  let node: FakeNode;
  let api: KubeApiServer;
  let dir: string;
  let kubeconfig: string;
  let agent: AgentProcess | null = null;
  let shop: FakePod;
  let billing: FakePod;
  const createPod = (pod: KubeObject): KubeObject => api.create('pods', pod);
  const setEgress = (ns: string, name: string, yaml: string) =>
    api.patch(
      'configmaps',
      ns,
      name,
      (cm) => void ((cm as unknown as { data: Record<string, string> }).data.egress = yaml),
    );
  const valid = async (object: string): Promise<string | undefined> =>
    new RegExp(`meshgate_config_valid\\{configmap="ConfigMap ${object}"\\} (\\d)`).exec(await agent!.metrics())?.[1];

  async function restart(extra: readonly string[] = []): Promise<void> {
    await killClusterAgent(agent);
    agent = startClusterAgent(node, kubeconfig, extra);
    await until('the restarted agent to apply', () => agent!.log().includes('"policy applied"'));
  }

  before(async () => {
    node = createFakeNode('lastgood', 'systemd');
    api = await startKubeApiServer({ bookmarkIntervalMs: 200 });
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-lastgood-'));
    kubeconfig = await api.writeKubeconfig(dir);
    api.create('configmaps', osmConfig(GLOBAL));
    api.create('configmaps', allowlistConfigMap('shop', 'a', entry('payments', '198.51.100.0/24')));
    api.create('configmaps', allowlistConfigMap('shop', 'b', entry('ext2', API_ADDR)));
    shop = await node.addPod({ namespace: 'shop', name: 'web', meshed: true }, createPod);
    billing = await node.addPod({ namespace: 'billing', name: 'pay', meshed: true }, createPod);
    agent = startClusterAgent(node, kubeconfig);
    await until('the first apply', () => agent!.log().includes('"policy applied"'));
  });
  after(async () => {
    await killClusterAgent(agent);
    await api?.stop();
    node?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('two allowlist ConfigMaps of a namespace merge; other namespaces get nothing of them', () => {
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass', 'shop/a payments');
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass', 'shop/b ext2');
    assert.equal(billing.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.equal(billing.connect(API_ADDR, 443).verdict, 'deny');
  });

  test('a name used in two ConfigMaps is reported three ways on both, and no verdict changes', async () => {
    setEgress('shop', 'b', entry('payments', API_ADDR));
    await until(
      'an Event on each ConfigMap',
      () =>
        new Set(api.list('events', 'shop').map((e) => (e as unknown as EventObject).involvedObject.name)).size === 2,
    );
    for (const e of api.list('events', 'shop') as unknown as EventObject[]) {
      assert.equal(e.reason, 'MeshgateConfigRejected');
      assert.match(e.message, /name "payments" is also the name of an entry in ConfigMap shop\/[ab]/);
    }
    assert.equal(await valid('shop/a'), '0');
    assert.equal(await valid('shop/b'), '0');
    const logged = agent!
      .log()
      .split('\n')
      .filter((l) => l.includes('MG_ALLOWLIST_DUPLICATE_NAME'));
    assert.ok(
      logged.some((l) => l.includes('"configmap":"shop/a"')) && logged.some((l) => l.includes('"configmap":"shop/b"')),
      'a log line for each',
    );
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass');
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass', "b's last good entry stays");
  });

  test('kill -9 and restart under traffic: the namespace keeps its last good entries, no connect flips', async () => {
    const loop = `for i in $(seq 1 60); do ${shop.probeCommand(FORBIDDEN_ADDR, 443)}; ${shop.probeCommand(API_ADDR, 443)}; ${billing.probeCommand(API_ADDR, 443)}; done`;
    const traffic = spawn('bash', ['-c', loop], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    traffic.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const finished = new Promise<void>((resolve) => traffic.on('exit', () => resolve()));
    await new Promise((r) => setTimeout(r, 150));
    await restart();
    await finished;
    const verdicts = out
      .trim()
      .split('\n')
      .map((l) => classify(JSON.parse(l)).verdict);
    assert.equal(verdicts.length, 180);
    const expected = ['pass', 'pass', 'deny'];
    verdicts.forEach((v, i) => assert.equal(v, expected[i % 3], `connect ${i} got ${v}`));
    assert.match(agent!.log(), /"last good configuration restored from the pins"/);
    assert.doesNotMatch(agent!.log(), /pods applied/, 'a full apply from the persisted last good, not a frozen policy');
    const explain = spawnSync(
      process.execPath,
      [MESHGATE, 'explain', '--pin-dir', node.sb.pinDir, 'shop/web', `${FORBIDDEN_ADDR}:443`],
      { encoding: 'utf8' },
    );
    assert.equal(explain.status, 0, `explain says pass: ${explain.stdout}${explain.stderr}`);
    await until(
      'both still reported invalid',
      async () => (await valid('shop/a')) === '0' && (await valid('shop/b')) === '0',
    );
  });

  test('after a restart, an allowlist that never was valid freezes nothing: a global edit applies', async () => {
    // Invalid, with a terminal escape in its value: the Event carries it escaped.
    api.create(
      'configmaps',
      allowlistConfigMap(
        'billing',
        'c',
        '- name: broken\n  addresses: ["10.0.0.1/\\e[2J"]\n  ports: [{number: 443, protocol: TLS}]\n',
      ),
    );
    await until('billing/c rejected', async () => (await valid('billing/c')) === '0');
    await until('an Event on billing/c', () => api.list('events', 'billing').length > 0);
    const event = api.list('events', 'billing')[0] as unknown as EventObject;
    assert.doesNotMatch(event.message, /[\u0000-\u001f\u007f]/, 'no raw control character in the Event');
    assert.match(event.message, /\\x1b\[2J/);
    await restart();
    assert.equal(billing.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    api.update('configmaps', osmConfig({ ...GLOBAL, egress: 'true' }));
    await until('egress on for every namespace', () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'pass');
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect');
    api.update('configmaps', osmConfig(GLOBAL));
    await until('egress off again', () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass');
  });

  test("a fixed object's new content is last good from then on, across the next restart", async () => {
    setEgress('shop', 'b', entry('ext3', `${API_ADDR}, 192.0.2.1`));
    await until('both valid again', async () => (await valid('shop/a')) === '1' && (await valid('shop/b')) === '1');
    await restart();
    setEgress('shop', 'b', BAD);
    await until('b rejected', async () => (await valid('shop/b')) === '0');
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass', "b's persisted last good (ext3) is in force");
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass');
    api.delete('configmaps', 'shop', 'b');
    await until("a deleted ConfigMap's entries go", () => shop.connect(API_ADDR, 443).verdict === 'deny');
    await restart();
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'deny', 'and do not come back after a restart');
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass');
  });

  test('after a --config-map change, the persisted global config of the old ConfigMap is dropped, not used', async () => {
    api.update('configmaps', osmConfig({ ...GLOBAL, egress: 'true' }));
    await until(
      'osm-config (egress on) in force and persisted',
      () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'pass',
    );
    api.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'meshgate-config', namespace: 'mesh' },
      data: { egress: 'false', mesh_cidr_ranges: '10.96.0.0/12' },
    } as unknown as KubeObject);
    await restart(['--config-map', 'mesh/meshgate-config']);
    assert.equal(
      billing.connect(FORBIDDEN_ADDR, 443).verdict,
      'deny',
      "mesh/meshgate-config's egress false, not osm-config's",
    );
    assert.match(
      agent!.log(),
      /"object":"ConfigMap osm-system\/osm-config".*"a persisted global config of another ConfigMap/,
    );
    api.patch(
      'configmaps',
      'mesh',
      'meshgate-config',
      (cm) => void ((cm as unknown as { data: Record<string, string> }).data.egress = 'true'),
    );
    await until(
      'an edit of the configured ConfigMap applies',
      () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'pass',
    );
    api.patch(
      'configmaps',
      'mesh',
      'meshgate-config',
      (cm) => void ((cm as unknown as { data: Record<string, string> }).data.egress = 'false'),
    );
    await until('and the next one', () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
    await restart(['--config-map', 'mesh/meshgate-config']);
    assert.equal(billing.connect(FORBIDDEN_ADDR, 443).verdict, 'deny', 'the stale key is gone from the pins too');
    assert.doesNotMatch(agent!.log(), /a persisted global config of another ConfigMap/);
  });

  test("the mesh-overlap warning names the ConfigMap and the entry's index within it", async () => {
    api.create(
      'configmaps',
      allowlistConfigMap('shop', 'd', entry('ext4', API_ADDR) + entry('inmesh', '10.96.0.0/24')),
    );
    const line =
      /^ConfigMap shop\/d key egress entry \[1\] "inmesh": addresses "10\.96\.0\.0\/24" is inside mesh CIDR 10\.96\.0\.0\/12/;
    const messages = (): string[] =>
      agent!
        .log()
        .split('\n')
        .flatMap((l) => (l.startsWith('{') ? [String((JSON.parse(l) as { msg?: string }).msg)] : []));
    await until('the warning', () => messages().some((m) => line.test(m)));
    assert.ok(!messages().some((m) => m.includes('allowlists of')), 'no made-up object name');
    assert.equal(messages().filter((m) => line.test(m)).length, 1, 'said once');
  });

  test('the empty mesh CIDRs warning is said once per change of the condition, not on every reconcile', async () => {
    const said = () =>
      agent!
        .log()
        .split('\n')
        .filter((l) => l.includes('"mesh_cidr_ranges is empty with egress off')).length;
    const applied = () =>
      agent!
        .log()
        .split('\n')
        .filter((l) => l.includes('"policy applied"')).length;
    const setMesh = (cidrs: string | null) =>
      api.patch('configmaps', 'mesh', 'meshgate-config', (cm) => {
        const data = (cm as unknown as { data: Record<string, string> }).data;
        if (cidrs === null) delete data.mesh_cidr_ranges;
        else data.mesh_cidr_ranges = cidrs;
      });
    assert.equal(said(), 0);
    setMesh(null);
    await until('the warning', () => said() === 1);
    await until('in force', () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'redirect');
    for (const name of ['ext5', 'ext6', 'ext7']) {
      const before = applied();
      setEgress('shop', 'd', entry('ext4', API_ADDR) + entry(name, '192.0.2.9'));
      await until('the edit applied', () => applied() > before);
    }
    assert.equal(said(), 1, 'three more reconciles, no repeat');
    setMesh('10.96.0.0/12');
    await until('the mesh CIDRs back', () => billing.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
    setMesh(null);
    await until('said again after the condition came back', () => said() === 2);
  });
});
