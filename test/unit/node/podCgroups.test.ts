// Pod and container cgroup paths, laid out as the kubelet lays them out, in a temp directory.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  containerCgroupNames,
  findContainerCgroup,
  findKubepods,
  findPodCgroup,
  podCgroupPath,
  podParentDirs,
  podUidOfCgroupName,
} from '../../../src/node/podCgroups.js';

const UID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const UID_ = UID.replace(/-/g, '_');
const dirs: string[] = [];
const tree = (...paths: string[]): string => {
  const root = mkdtempSync(path.join(tmpdir(), 'mg-cgroups-'));
  dirs.push(root);
  for (const p of paths) mkdirSync(path.join(root, p), { recursive: true });
  return root;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('findKubepods', () => {
  test('finds the systemd kubepods.slice', () => {
    const m = tree('system.slice/containerd.service', 'kubepods.slice/kubepods-burstable.slice');
    assert.deepEqual(findKubepods(m), { root: path.join(m, 'kubepods.slice'), driver: 'systemd' });
  });
  test('finds a nested systemd root as kind lays it out (kubelet.slice/kubelet-kubepods.slice)', () => {
    const m = tree('kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice');
    assert.deepEqual(findKubepods(m), {
      root: path.join(m, 'kubelet.slice/kubelet-kubepods.slice'),
      driver: 'systemd',
    });
  });
  test('finds the cgroupfs kubepods, and honours a forced driver', () => {
    const m = tree('kubepods/burstable', 'kubepods.slice');
    assert.equal(findKubepods(m, 'cgroupfs')?.root, path.join(m, 'kubepods'));
    assert.equal(findKubepods(m, 'systemd')?.root, path.join(m, 'kubepods.slice'));
  });
  test('returns null when there is none within the depth', () => {
    assert.equal(findKubepods(tree('a/b/c/d/kubepods.slice')), null);
  });
});

describe('pod cgroup paths', () => {
  const systemd = { root: '/cg/kubepods.slice', driver: 'systemd' as const };
  const nested = { root: '/cg/kubelet.slice/kubelet-kubepods.slice', driver: 'systemd' as const };
  const cgroupfs = { root: '/cg/kubepods', driver: 'cgroupfs' as const };
  const cases: Array<[typeof systemd | typeof cgroupfs, 'Guaranteed' | 'Burstable' | 'BestEffort', string]> = [
    [systemd, 'Guaranteed', `/cg/kubepods.slice/kubepods-pod${UID_}.slice`],
    [systemd, 'Burstable', `/cg/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`],
    [systemd, 'BestEffort', `/cg/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice`],
    [
      nested,
      'Burstable',
      `/cg/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod${UID_}.slice`,
    ],
    [cgroupfs, 'Guaranteed', `/cg/kubepods/pod${UID}`],
    [cgroupfs, 'Burstable', `/cg/kubepods/burstable/pod${UID}`],
    [cgroupfs, 'BestEffort', `/cg/kubepods/besteffort/pod${UID}`],
  ];
  for (const [layout, qos, want] of cases) {
    test(`${layout.root} ${qos}`, () => {
      assert.equal(podCgroupPath(layout, UID, qos), want);
      assert.equal(podUidOfCgroupName(path.basename(want)), UID);
    });
  }
  test('parent dirs are the root and the burstable and besteffort cgroups', () => {
    assert.deepEqual(podParentDirs(systemd), [
      '/cg/kubepods.slice',
      '/cg/kubepods.slice/kubepods-burstable.slice',
      '/cg/kubepods.slice/kubepods-besteffort.slice',
    ]);
    assert.deepEqual(podParentDirs(cgroupfs), ['/cg/kubepods', '/cg/kubepods/burstable', '/cg/kubepods/besteffort']);
  });
  test('names that are not pod cgroups give no uid', () => {
    for (const name of ['kubepods-burstable.slice', 'burstable', 'pod123', 'cri-containerd-abc.scope', `xpod${UID}`])
      assert.equal(podUidOfCgroupName(name), null, name);
  });
  test('finds the pod whatever its QoS class when the status does not say', () => {
    const m = tree(`kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice`);
    const layout = { root: path.join(m, 'kubepods.slice'), driver: 'systemd' as const };
    assert.equal(
      findPodCgroup(layout, UID),
      path.join(layout.root, `kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice`),
    );
    assert.equal(
      findPodCgroup(layout, UID, 'Burstable'),
      path.join(layout.root, `kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice`),
    );
    assert.equal(findPodCgroup(layout, '11111111-2222-3333-4444-555555555555'), null);
  });
});

describe('container cgroups', () => {
  const id = 'a3f5c1d2e4b6';
  test('containerd and cri-o names for both drivers', () => {
    assert.deepEqual(containerCgroupNames('systemd', `containerd://${id}`), [`cri-containerd-${id}.scope`]);
    assert.deepEqual(containerCgroupNames('systemd', `cri-o://${id}`), [`crio-${id}.scope`]);
    assert.deepEqual(containerCgroupNames('cgroupfs', `containerd://${id}`), [id]);
    assert.deepEqual(containerCgroupNames('cgroupfs', `cri-o://${id}`), [`crio-${id}`]);
  });
  test('an unknown runtime tries every known name; a hostile id gives none', () => {
    assert.ok(containerCgroupNames('systemd', `other://${id}`).includes(`crio-${id}.scope`));
    assert.deepEqual(containerCgroupNames('systemd', 'containerd://../../etc'), []);
  });
  test('finds the sidecar cgroup inside the pod cgroup', () => {
    const m = tree(`pod/cri-containerd-${id}.scope`, 'pod/cri-containerd-other.scope');
    assert.equal(
      findContainerCgroup(path.join(m, 'pod'), 'systemd', `containerd://${id}`),
      path.join(m, `pod/cri-containerd-${id}.scope`),
    );
    assert.equal(findContainerCgroup(path.join(m, 'pod'), 'systemd', 'containerd://missing'), null);
  });
});
