// Which pods are enforced (SPEC §1.3).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { decidePod } from '../../../src/agent/pods.js';

const PROXIES = ['envoy', 'istio-proxy'];
function pod(
  over: {
    containers?: string[];
    init?: Array<[string, string?]>;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    hostNetwork?: boolean;
    phase?: string;
    statuses?: Array<[string, string]>;
  } = {},
): V1Pod {
  return {
    metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1', labels: over.labels, annotations: over.annotations },
    spec: {
      containers: (over.containers ?? ['app']).map((name) => ({ name })),
      initContainers: (over.init ?? []).map(([name, restartPolicy]) => ({ name, restartPolicy })),
      hostNetwork: over.hostNetwork,
    },
    status: {
      phase: over.phase ?? 'Running',
      qosClass: 'Burstable',
      containerStatuses: (over.statuses ?? []).map(([name, containerID]) => ({
        name,
        containerID,
        image: '',
        imageID: '',
        ready: true,
        restartCount: 0,
      })),
    },
  };
}

describe('decidePod', () => {
  test('a sidecar container named in --proxy-container makes the pod meshed, with its container ID', () => {
    const d = decidePod(pod({ containers: ['app', 'envoy'], statuses: [['envoy', 'containerd://abc']] }), PROXIES)!;
    assert.equal(d.enforcement, 'meshed');
    assert.equal(d.proxyContainer, 'envoy');
    assert.equal(d.proxyContainerId, 'containerd://abc');
  });
  test('a native sidecar (init container with restartPolicy Always) counts; a plain init container does not', () => {
    assert.equal(decidePod(pod({ init: [['istio-proxy', 'Always']] }), PROXIES)!.enforcement, 'meshed');
    assert.equal(decidePod(pod({ init: [['istio-proxy']] }), PROXIES)!.enforcement, 'unmeshed');
  });
  test('the enforce label meshes a pod without a sidecar; the proxy identity then falls back to proxy_uid', () => {
    const d = decidePod(pod({ labels: { 'meshgate.io/enforce': 'true' } }), PROXIES)!;
    assert.equal(d.enforcement, 'meshed');
    assert.equal(d.proxyContainerId, null);
  });
  test('the annotation opts out, even with a sidecar', () => {
    assert.equal(
      decidePod(pod({ containers: ['envoy'], annotations: { 'meshgate.io/enforce': 'false' } }), PROXIES)!.enforcement,
      'opted-out',
    );
  });
  test('hostNetwork pods are never enforced, whatever else they say', () => {
    const d = decidePod(
      pod({ containers: ['envoy'], labels: { 'meshgate.io/enforce': 'true' }, hostNetwork: true }),
      PROXIES,
    )!;
    assert.equal(d.enforcement, 'host-network');
    assert.match(d.reason, /hostNetwork/);
  });
  test('no sidecar and no label: unmeshed; a sidecar name not in the list does not count', () => {
    assert.equal(decidePod(pod({ containers: ['app', 'linkerd-proxy'] }), PROXIES)!.enforcement, 'unmeshed');
  });
  test('finished pods and pods without a uid have nothing to map', () => {
    assert.equal(decidePod(pod({ phase: 'Succeeded' }), PROXIES), null);
    assert.equal(decidePod(pod({ phase: 'Failed' }), PROXIES), null);
    assert.equal(decidePod({ metadata: { name: 'x', namespace: 'y' } }, PROXIES), null);
  });
  test("the sidecar's siblings: live long-running containers' IDs, and every ID the status names", () => {
    const p = pod({
      containers: ['app', 'envoy', 'done'],
      init: [['setup'], ['log', 'Always']],
      statuses: [
        ['app', 'containerd://a'],
        ['envoy', 'containerd://e'],
        ['done', 'containerd://d'],
        ['setup', 'containerd://s'],
        ['log', 'containerd://l'],
      ],
    });
    p.status!.containerStatuses!.find((c) => c.name === 'done')!.state = { terminated: { exitCode: 0 } };
    const d = decidePod(p, PROXIES)!;
    assert.deepEqual(d.otherLiveContainerIds, ['containerd://a', 'containerd://l']);
    assert.deepEqual(d.containerIds, [
      'containerd://a',
      'containerd://e',
      'containerd://d',
      'containerd://s',
      'containerd://l',
    ]);
  });
});
