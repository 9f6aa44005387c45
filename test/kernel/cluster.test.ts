// The real cluster agent process against the test API server (the real
// @kubernetes/client-node over HTTP), with pods simulated as kubelet-style
// cgroups that each hold real processes in their own netns. Every assertion is
// a verdict the kernel gave a real connect.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createFakeNode,
  API_ADDR,
  FORBIDDEN_ADDR,
  MESH_ADDR,
  type FakeNode,
  type FakePod,
} from '../helpers/fakeNode.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../helpers/kubeApiServer.js';
import {
  allowlistConfigMap,
  osmConfig,
  killClusterAgent,
  startClusterAgent,
  type AgentProcess,
} from '../helpers/clusterAgent.js';
import { classify } from '../helpers/kernelFixture.js';
import { requireRoot, until } from '../helpers/sandbox.js';
import { openPinnedMaps } from '../../src/datapath/pinned.js';
import { cgroupId } from '../../src/node/cgroup.js';

const skip = requireRoot();
if (skip) console.log(`# skipping cluster agent tests: ${skip}`);

const BASE = {
  egress: 'false',
  mesh_cidr_ranges: '10.96.0.0/12',
  egress_allowlist: '- name: payments\n  addresses: [203.0.113.10]\n  ports: [{number: 443, protocol: HTTPS}]\n',
};

describe('cluster agent (systemd cgroup layout)', { skip: skip ?? false }, () => {
  let node: FakeNode;
  let api: KubeApiServer;
  const createPod = (pod: KubeObject): KubeObject => api.create('pods', pod);
  let dir: string;
  let kubeconfig: string;
  let agent: AgentProcess | null = null;
  let shop: FakePod;
  let blog: FakePod;
  let plain: FakePod;

  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${agent!.port()}/metrics`)).text();
  const appliedCount = (): number =>
    agent!
      .log()
      .split('\n')
      .filter((l) => l.includes('"policy applied"') || l.includes('pods applied')).length;

  before(async () => {
    node = createFakeNode('cluster', 'systemd');
    api = await startKubeApiServer({ bookmarkIntervalMs: 200 });
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-cluster-'));
    kubeconfig = await api.writeKubeconfig(dir);
    api.create('configmaps', osmConfig(BASE));
    shop = await node.addPod({ namespace: 'shop', name: 'web', meshed: true }, createPod);
    blog = await node.addPod({ namespace: 'blog', name: 'writer', meshed: true, qos: 'BestEffort' }, createPod);
    plain = await node.addPod({ namespace: 'shop', name: 'batch', meshed: false, qos: 'Guaranteed' }, createPod);
  });
  after(async () => {
    agent?.child.kill('SIGKILL');
    await api?.stop();
    node?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('writes nothing to the kernel until every informer has synced', async () => {
    const release = api.hold({ verb: 'list', resource: 'pods' });
    agent = startClusterAgent(node, kubeconfig);
    await until('the agent to wait for its informers', () =>
      agent!.log().includes('waiting for every informer to sync'),
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(appliedCount(), 0, 'nothing applied while the pod list is pending');
    const pinned = openPinnedMaps(node.sb.pinDir);
    try {
      assert.equal(pinned.maps.mg_cgroups.keys().length, 0, 'no pod mapped before the sync');
    } finally {
      pinned.close();
    }
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass', 'not attached yet');
    release();
    await until('the first apply', () => appliedCount() > 0);
    assert.equal((await fetch(`http://127.0.0.1:${agent!.port()}/readyz`)).status, 200);
  });

  test('meshed pods are enforced: redirect with the original destination, allowlisted pass, the rest denied; unmeshed pods untouched', () => {
    const r = shop.connect(MESH_ADDR, 80);
    assert.equal(r.verdict, 'redirect');
    assert.equal(r.origdst, `${MESH_ADDR}:80`);
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass');
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny', 'a BestEffort pod is found too');
    assert.equal(plain.connect(FORBIDDEN_ADDR, 443).verdict, 'pass', 'an unmeshed pod is not enforced');
    assert.equal(plain.connect(MESH_ADDR, 80).verdict, 'pass');
  });

  test('the sidecar container cgroup is the proxy identity: its own connects pass', async () => {
    const pinned = openPinnedMaps(node.sb.pinDir);
    try {
      const ids = pinned.maps.mg_cgroups.keys().map((k) => k.readBigUInt64LE(0));
      assert.ok(ids.includes(cgroupId(shop.proxyDir!)), 'the envoy container cgroup is mapped');
      assert.ok(ids.includes(cgroupId(shop.dir)));
      assert.ok(ids.includes(cgroupId(plain.dir)), 'the unmeshed pod is mapped, as not enforced');
    } finally {
      pinned.close();
    }
  });

  test("a restarted sidecar's new cgroup is the proxy before the kubelet reports its new container ID", async () => {
    const pod = await node.addPod({ namespace: 'shop', name: 'restarts', meshed: true }, createPod);
    try {
      await until('the pod and its sidecar mapped', () => {
        return (
          pod.connect(FORBIDDEN_ADDR, 443).verdict === 'deny' &&
          pod.connect(FORBIDDEN_ADDR, 443, pod.proxyDir!).verdict === 'pass'
        );
      });
      const fresh = pod.restartSidecar();
      await until(
        "the new sidecar cgroup's connects to be the proxy's",
        () => pod.connect(FORBIDDEN_ADDR, 443, fresh.dir).verdict === 'pass',
      );
      assert.equal(
        pod.connect(MESH_ADDR, 80, fresh.dir).verdict,
        'pass',
        'mesh traffic from the proxy is not redirected to itself',
      );
      assert.equal(pod.connect(FORBIDDEN_ADDR, 443).verdict, 'deny', 'the app is still enforced');
      assert.equal(pod.connect(MESH_ADDR, 80).verdict, 'redirect');
      await until('the log line', () =>
        agent!.log().includes(`"sidecar restarted: its new container cgroup is the proxy's`),
      );
      // The kubelet's status update names the new container: still the proxy.
      const before = appliedCount();
      api.patch('pods', 'shop', 'restarts', (o) => {
        const statuses = (
          o as unknown as { status: { containerStatuses: Array<{ name: string; containerID: string }> } }
        ).status.containerStatuses;
        statuses.find((c) => c.name === 'envoy')!.containerID = fresh.containerId;
      });
      await until('the status update reconciled', () => appliedCount() > before);
      assert.equal(pod.connect(MESH_ADDR, 80, fresh.dir).verdict, 'pass');
      assert.equal(pod.connect(FORBIDDEN_ADDR, 443, fresh.dir).verdict, 'pass');
      assert.equal(pod.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    } finally {
      node.removePod(pod);
      api.delete('pods', 'shop', 'restarts');
    }
  });

  test('a new pod is enforced as soon as its cgroup and Pod exist, and the pod-start window is measured', async (t) => {
    const late = await node.addPod({ namespace: 'shop', name: 'late', meshed: true }, createPod);
    await until('the new pod to be enforced', () => late.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
    const text = await metrics();
    assert.match(text, /meshgate_pod_start_window_seconds_count [1-9]/);
    const sum = Number(/meshgate_pod_start_window_seconds_sum ([0-9.e-]+)/.exec(text)?.[1]);
    const count = Number(/meshgate_pod_start_window_seconds_count (\d+)/.exec(text)?.[1]);
    t.diagnostic(`pod-start window: ${((sum / count) * 1000).toFixed(1)} ms on average over ${count} pod(s)`);
    node.removePod(late);
    api.delete('pods', 'shop', 'late');
    await until('the deleted pod to be unmapped', () => {
      const pinned = openPinnedMaps(node.sb.pinDir);
      try {
        return pinned.maps.mg_cgroups.keys().length === 5; // shop (+envoy), blog (+envoy), plain
      } finally {
        pinned.close();
      }
    });
  });

  test('a ConfigMap edit changes verdicts without a pod restart', async () => {
    api.patch('configmaps', 'osm-system', 'osm-config', (cm) => {
      (cm as unknown as { data: Record<string, string> }).data.egress = 'true';
    });
    await until('egress on', () => shop.connect(FORBIDDEN_ADDR, 443).verdict === 'pass');
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect', 'mesh traffic still goes to the proxy');
    api.update('configmaps', osmConfig(BASE));
    await until('egress off again', () => shop.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
  });

  test("an allowlist in one namespace lets only that namespace's pods through", async () => {
    api.create(
      'configmaps',
      allowlistConfigMap(
        'shop',
        'partners',
        '- name: partner\n  addresses: [198.51.100.0/24]\n  ports: [{number: 443, protocol: TLS}]\n',
      ),
    );
    await until('shop to reach the partner', () => shop.connect(FORBIDDEN_ADDR, 443).verdict === 'pass');
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny', 'blog has no such allowlist');
    assert.equal(shop.connect(FORBIDDEN_ADDR, 80).verdict, 'deny', 'only the listed port');
  });

  test('an invalid ConfigMap is rejected whole: an Event names the key and value, config_valid is 0, nothing changes', async () => {
    api.patch('configmaps', 'osm-system', 'osm-config', (cm) => {
      const data = (cm as unknown as { data: Record<string, string> }).data;
      data.egress = 'yes';
      data.mesh_cidr_ranges = '10.96.0.0/33';
    });
    await until('an Event on the ConfigMap', () => api.list('events', 'osm-system').length > 0);
    const event = api.list('events', 'osm-system')[0] as unknown as {
      reason: string;
      type: string;
      message: string;
      involvedObject: { name: string; kind: string };
    };
    assert.equal(event.involvedObject.kind, 'ConfigMap');
    assert.equal(event.involvedObject.name, 'osm-config');
    assert.equal(event.type, 'Warning');
    assert.match(event.message, /egress/);
    assert.match(event.message, /"yes"/);
    assert.match(event.message, /10\.96\.0\.0\/33/);
    assert.match(await metrics(), /meshgate_config_valid\{configmap="ConfigMap osm-system\/osm-config"\} 0/);
    assert.equal(shop.connect(FORBIDDEN_ADDR, 443).verdict, 'pass', 'the shop allowlist still applies');
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny', 'egress is still off');
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect', 'the mesh CIDRs are still in force');
  });

  test('an agent restarted while the ConfigMap is invalid applies its persisted last good config and still maps new pods', async () => {
    await killClusterAgent(agent);
    agent = startClusterAgent(node, kubeconfig);
    await until('the restarted agent to apply the last good policy', () => agent!.log().includes('"policy applied"'));
    assert.match(await metrics(), /meshgate_config_valid\{configmap="ConfigMap osm-system\/osm-config"\} 0/);
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect');
    const late = await node.addPod({ namespace: 'blog', name: 'late', meshed: true }, createPod);
    await until(
      'the new pod to be enforced under the kept policy',
      () => late.connect(FORBIDDEN_ADDR, 443).verdict === 'deny',
    );
    node.removePod(late);
    api.delete('pods', 'blog', 'late');
    api.update('configmaps', osmConfig(BASE));
    await until('the ConfigMap valid again', async () =>
      /meshgate_config_valid\{configmap="ConfigMap osm-system\/osm-config"\} 1/.test(await metrics()),
    );
  });

  test('API server down: enforcement continues; the agent catches up when it returns', async () => {
    await api.stop();
    await until('the agent to notice', () => agent!.log().includes('list/watch failed'));
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect');
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.equal((await fetch(`http://127.0.0.1:${agent!.port()}/healthz`)).status, 200);
    // Changed while the server is down: applied once the watch resumes.
    api.create(
      'configmaps',
      allowlistConfigMap(
        'blog',
        'partners',
        '- name: partner\n  addresses: [198.51.100.7]\n  ports: [{number: 443, protocol: TLS}]\n',
      ),
    );
    await api.restart();
    await until('blog to reach the partner', () => blog.connect(FORBIDDEN_ADDR, 443).verdict === 'pass', 15_000);
    assert.match(await metrics(), /meshgate_informer_restarts_total\{informer="[a-z-]+"\} [1-9]/);
  });

  test('410 Gone after compaction: the agent relists and loses nothing', async () => {
    api.compact();
    api.delete('configmaps', 'blog', 'partners');
    api.dropWatches();
    await until(
      'the deletion to be seen after the relist',
      () => blog.connect(FORBIDDEN_ADDR, 443).verdict === 'deny',
      15_000,
    );
  });

  test('a deleted global ConfigMap keeps the last good global config', async () => {
    api.delete('configmaps', 'osm-system', 'osm-config');
    await until('the deletion to be logged', () => agent!.log().includes('the global ConfigMap was deleted'));
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect');
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.equal(shop.connect(API_ADDR, 443).verdict, 'pass');
    api.create('configmaps', osmConfig(BASE));
  });

  test('hostNetwork pods are skipped, with a log line', async () => {
    const host = await node.addPod(
      { namespace: 'kube-system', name: 'node-exporter', meshed: true, hostNetwork: true },
      createPod,
    );
    await until('the skip to be logged', () => agent!.log().includes('hostNetwork pods are never enforced'));
    assert.equal(host.connect(FORBIDDEN_ADDR, 443).verdict, 'pass');
    node.removePod(host);
    api.delete('pods', 'kube-system', 'node-exporter');
  });

  test('an agent restart under traffic leaves no gap and no wrong verdict', async () => {
    const loop = `for i in $(seq 1 100); do ${shop.probeCommand(MESH_ADDR, 80)}; ${shop.probeCommand(API_ADDR, 443)}; ${shop.probeCommand('192.0.2.1', 443)}; done`;
    const traffic = spawn('bash', ['-c', loop], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    traffic.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const finished = new Promise<void>((resolve) => traffic.on('exit', () => resolve()));
    await new Promise((r) => setTimeout(r, 200));
    await killClusterAgent(agent);
    agent = startClusterAgent(node, kubeconfig);
    await until('the restarted agent to apply', () => agent!.log().includes('"policy applied"'));
    assert.match(agent.log(), /"adopted":true/);
    await finished;
    const verdicts = out
      .trim()
      .split('\n')
      .map((l) => classify(JSON.parse(l)).verdict);
    assert.equal(verdicts.length, 300);
    const expected = ['redirect', 'pass', 'deny'];
    verdicts.forEach((v, i) => assert.equal(v, expected[i % 3], `connect ${i} got ${v}`));
  });

  test('SIGTERM leaves enforcement pinned', async () => {
    agent!.child.kill('SIGTERM');
    assert.equal(await agent!.exited, 0);
    agent = null;
    assert.equal(blog.connect(FORBIDDEN_ADDR, 443).verdict, 'deny');
    assert.equal(shop.connect(MESH_ADDR, 80).verdict, 'redirect');
  });
});

describe('cluster agent (cgroupfs cgroup layout)', { skip: skip ?? false }, () => {
  let node: FakeNode;
  let api: KubeApiServer;
  const createPod = (pod: KubeObject): KubeObject => api.create('pods', pod);
  let dir: string;
  let agent: AgentProcess | null = null;

  before(async () => {
    node = createFakeNode('cgroupfs', 'cgroupfs');
    api = await startKubeApiServer();
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-cgroupfs-'));
    api.create('configmaps', osmConfig(BASE));
  });
  after(async () => {
    agent?.child.kill('SIGKILL');
    await api?.stop();
    node?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('pods of every QoS class are found and enforced; opted-out pods are not', async () => {
    agent = startClusterAgent(node, await api.writeKubeconfig(dir));
    await until('the first apply', () => agent!.log().includes('"policy applied"'));
    const pods = [
      await node.addPod({ namespace: 'a', name: 'g', meshed: true, qos: 'Guaranteed' }, createPod),
      await node.addPod({ namespace: 'a', name: 'b', meshed: true, qos: 'Burstable' }, createPod),
      await node.addPod(
        { namespace: 'a', name: 'e', meshed: false, qos: 'BestEffort', labels: { 'meshgate.io/enforce': 'true' } },
        createPod,
      ),
    ];
    const optedOut = await node.addPod(
      { namespace: 'a', name: 'o', meshed: true, annotations: { 'meshgate.io/enforce': 'false' } },
      createPod,
    );
    for (const p of pods) {
      await until(`${p.spec.name} to be enforced`, () => p.connect(FORBIDDEN_ADDR, 443).verdict === 'deny');
      assert.equal(p.connect(MESH_ADDR, 80).verdict, 'redirect');
    }
    assert.equal(optedOut.connect(FORBIDDEN_ADDR, 443).verdict, 'pass');
  });

  test('/healthz fails when a pinned link is gone', async () => {
    const healthz = async () => (await fetch(`http://127.0.0.1:${agent!.port()}/healthz`)).status;
    assert.equal(await healthz(), 200);
    unlinkSync(path.join(node.sb.pinDir, 'links', 'mg_connect4'));
    assert.equal(await healthz(), 503);
  });
});
