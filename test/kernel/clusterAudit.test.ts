// A namespace in audit mode through its own allowlist ConfigMap, with the real cluster agent
// against the test API server and kubelet-style pod cgroups: its pods' blocked connects get
// through and are counted and filed as audit while another namespace is denied; two
// ConfigMaps of the namespace that disagree are reported three ways on both, and the
// namespace keeps its last good action until they agree.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  MESHGATE,
  osmConfig,
  killClusterAgent,
  startClusterAgent,
  type AgentProcess,
} from '../helpers/clusterAgent.js';
import { createFakeNode, API_ADDR, FORBIDDEN_ADDR, type FakeNode, type FakePod } from '../helpers/fakeNode.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../helpers/kubeApiServer.js';
import { requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# skipping cluster audit tests: ${skip}`);

interface EventObject {
  reason: string;
  message: string;
  involvedObject: { name: string };
}

const allowlist = (namespace: string, name: string, data: Record<string, string>): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { 'meshgate.io/egress-allowlist': 'true' } },
    data,
  }) as unknown as KubeObject;
const API_ENTRY = `- name: api\n  addresses: [${API_ADDR}]\n  ports: [{number: 443, protocol: TLS}]\n`;

describe('cluster agent: a namespace in audit mode', { skip: skip ?? false }, () => {
  let node: FakeNode;
  let api: KubeApiServer;
  let dir: string;
  let agent: AgentProcess | null = null;
  let shop: FakePod;
  let billing: FakePod;
  const valid = async (object: string): Promise<string | undefined> =>
    new RegExp(`meshgate_config_valid\\{configmap="ConfigMap ${object}"\\} (\\d)`).exec(await agent!.metrics())?.[1];
  const setAction = (name: string, action: string) =>
    api.patch(
      'configmaps',
      'shop',
      name,
      (cm) => void ((cm as unknown as { data: Record<string, string> }).data.blocked_egress_action = action),
    );
  const flows = () =>
    JSON.parse(
      spawnSync(process.execPath, [MESHGATE, 'flows', '--pin-dir', node.sb.pinDir, '--json'], { encoding: 'utf8' })
        .stdout,
    ) as { flows: Array<{ pod: string; destination: string; verdict: string; rule: string; count: number }> };

  before(async () => {
    node = createFakeNode('audit', 'systemd');
    api = await startKubeApiServer({ bookmarkIntervalMs: 200 });
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-audit-'));
    const kubeconfig = await api.writeKubeconfig(dir);
    api.create(
      'configmaps',
      osmConfig({ egress: 'false', mesh_cidr_ranges: '10.96.0.0/12', blocked_egress_action: 'deny' }),
    );
    api.create('configmaps', allowlist('shop', 'a', { egress: API_ENTRY, blocked_egress_action: 'audit' }));
    api.create('configmaps', allowlist('shop', 'b', { blocked_egress_action: 'audit' }));
    shop = await node.addPod({ namespace: 'shop', name: 'web', meshed: true }, (p) => api.create('pods', p));
    billing = await node.addPod({ namespace: 'billing', name: 'pay', meshed: true }, (p) => api.create('pods', p));
    agent = startClusterAgent(node, kubeconfig);
    await until('the first apply', () => agent!.log().includes('"policy applied"'));
  });
  after(async () => {
    await killClusterAgent(agent);
    await api?.stop();
    node?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the audit namespace's blocked connects get through and are counted, traced and filed as audit; another namespace is denied", async () => {
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass', 'allowlisted');
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass', 'would be denied: audited');
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass');
    assert.equal(billing.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.match(await agent!.metrics(), /meshgate_verdicts_total\{verdict="audit",rule="blocked"\} [2-9]/);
    const f = flows().flows;
    assert.deepEqual(
      f
        .filter((x) => x.destination === `${FORBIDDEN_ADDR}:443`)
        .map((x) => `${x.pod} ${x.verdict}/${x.rule} x${x.count}`)
        .sort(),
      ['billing/pay deny/blocked x1', 'shop/web audit/blocked x2'],
    );
    const explain = spawnSync(
      process.execPath,
      [MESHGATE, 'explain', '--pin-dir', node.sb.pinDir, 'shop/web', `${FORBIDDEN_ADDR}:443`],
      { encoding: 'utf8' },
    );
    assert.equal(explain.status, 5);
    assert.match(explain.stdout, /^audit: would be denied by rule 7/);
  });

  test('two ConfigMaps of the namespace that disagree: an Event, a log line and config_valid 0 on both; the audit stays', async () => {
    setAction('b', 'deny');
    await until(
      'an Event on each ConfigMap',
      () =>
        new Set(api.list('events', 'shop').map((e) => (e as unknown as EventObject).involvedObject.name)).size === 2,
    );
    for (const e of api.list('events', 'shop') as unknown as EventObject[]) {
      assert.equal(e.reason, 'MeshgateConfigRejected');
      assert.match(
        e.message,
        /blocked_egress_action: "(audit|deny)" disagrees with another allowlist of the same namespace \(ConfigMap shop\/[ab] sets "(deny|audit)"\)/,
      );
    }
    assert.equal(await valid('shop/a'), '0');
    assert.equal(await valid('shop/b'), '0');
    const logged = agent!
      .log()
      .split('\n')
      .filter((l) => l.includes('MG_ALLOWLIST_ACTION_CONFLICT'));
    assert.ok(
      logged.some((l) => l.includes('"configmap":"shop/a"')) && logged.some((l) => l.includes('"configmap":"shop/b"')),
      'a log line for each',
    );
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass', 'the last good action (audit) stays');

    // Both move to deny at once: they agree, and the namespace denies.
    setAction('a', 'deny');
    await until('shop denies', () => shop.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
    await until('both valid again', async () => (await valid('shop/a')) === '1' && (await valid('shop/b')) === '1');
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass');
  });
});
