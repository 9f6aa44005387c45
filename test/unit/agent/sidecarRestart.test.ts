// A restarted sidecar's new cgroup is recognised only when nothing else can explain it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { restartedProxyCgroup } from '../../../src/agent/sidecarRestart.js';

const scope = (id: string) => `cri-containerd-${id}.scope`;
const SANDBOX = scope('sandbox');
const pod = {
  proxyContainerId: 'containerd://envoy1',
  otherLiveContainerIds: ['containerd://app1'],
  containerIds: ['containerd://init1', 'containerd://app1', 'containerd://envoy1'],
};
const baseline = new Set([SANDBOX, scope('app1'), scope('envoy1')]);

describe('restartedProxyCgroup', () => {
  test('the sidecar went and one new container cgroup came: it is the proxy', () => {
    assert.equal(
      restartedProxyCgroup([SANDBOX, scope('app1'), scope('envoy2')], baseline, 'systemd', pod),
      scope('envoy2'),
    );
    assert.equal(
      restartedProxyCgroup(['sandbox', 'app1', 'envoy2'], new Set(['sandbox', 'app1', 'envoy1']), 'cgroupfs', pod),
      'envoy2',
    );
  });

  test("the sidecar's known cgroup is still there (an app container restarted): nothing", () => {
    assert.equal(restartedProxyCgroup([SANDBOX, scope('envoy1'), scope('app2')], baseline, 'systemd', pod), null);
  });

  test('another live container lost its cgroup too (it may be the new one): nothing', () => {
    assert.equal(restartedProxyCgroup([SANDBOX, scope('new')], baseline, 'systemd', pod), null);
  });

  test('two new cgroups, or none, or no baseline: nothing', () => {
    assert.equal(
      restartedProxyCgroup([SANDBOX, scope('app1'), scope('a'), scope('b')], baseline, 'systemd', pod),
      null,
    );
    assert.equal(restartedProxyCgroup([SANDBOX, scope('app1')], baseline, 'systemd', pod), null);
    assert.equal(restartedProxyCgroup([SANDBOX, scope('app1'), scope('envoy2')], null, 'systemd', pod), null);
  });

  test('a cgroup the status names (a terminated init container) is never taken for the proxy', () => {
    assert.equal(restartedProxyCgroup([SANDBOX, scope('app1'), scope('init1')], baseline, 'systemd', pod), null);
  });
});
