// The container e2e (test/e2e/container/run.sh) runs the image with the privileges it reads from
// deploy/daemonset.yaml. These tests check, without root, that the reader and the OCI spec built
// from it carry exactly what the manifest says, and that anything the e2e cannot reproduce is an
// error rather than silently dropped.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/sandbox.js';
import { readAgentContainer, type AgentMount } from '../e2e/container/manifest.js';
import {
  containerArgv,
  containerCapabilities,
  containerEnv,
  ociSpec,
  type HostSide,
  type ImageConfig,
  type RuntimeDefaults,
} from '../e2e/container/ociSpec.js';

const MANIFEST = readFileSync(path.join(REPO_ROOT, 'deploy/daemonset.yaml'), 'utf8');
const agent = readAgentContainer(MANIFEST);

const image: ImageConfig = {
  env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production'],
  entrypoint: ['meshgate'],
  cmd: ['agent'],
  workingDir: '/opt/meshgate',
};
const defaults: RuntimeDefaults = {
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['ro'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [] },
  ],
  rlimits: [],
  devices: [],
  maskedPaths: ['/proc/kcore'],
  readonlyPaths: ['/proc/sys'],
  seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['bpf'], action: 'SCMP_ACT_ALLOW' }] },
};
const host: HostSide = {
  rootfs: '/var/tmp/rootfs',
  netnsPath: '/run/netns/pod',
  cgroupsPath: '/agent',
  hostname: 'meshgate-e2e',
  fields: { 'spec.nodeName': 'node-a' },
  volumePath: (m: AgentMount) => `/host/${m.name}`,
  extraArgs: ['--cgroup-root=/sys/fs/cgroup/test/kubepods.slice'],
  extraMounts: [{ source: '/work/secrets', destination: '/var/run/secrets/meshgate-e2e' }],
};

test("the reader takes the agent container's capabilities, user and security flags from deploy/daemonset.yaml", () => {
  assert.equal(agent.capabilitiesDropAll, true);
  assert.deepEqual([...agent.capabilitiesAdd].sort(), ['BPF', 'NET_ADMIN', 'PERFMON']);
  assert.deepEqual(
    containerCapabilities(agent, ['CAP_CHOWN', 'CAP_NET_RAW']).sort(),
    ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON'],
    'drop ALL leaves no runtime default',
  );
  assert.equal(agent.runAsUser, 0);
  assert.equal(agent.readOnlyRootFilesystem, true);
  assert.equal(agent.allowPrivilegeEscalation, false);
  assert.equal(agent.privileged, false);
  assert.equal(agent.seccompProfile, 'RuntimeDefault');
});

test('the reader takes every volume mount with its host path, read-only flag and propagation', () => {
  const byPath = new Map(agent.mounts.map((m) => [m.mountPath, m]));
  const bpf = byPath.get('/sys/fs/bpf');
  assert.deepEqual(bpf?.source, { kind: 'hostPath', path: '/sys/fs/bpf', type: 'Directory' });
  assert.equal(bpf?.propagation, 'HostToContainer');
  assert.equal(bpf?.readOnly, false);
  const cgroup = byPath.get('/sys/fs/cgroup');
  assert.equal(cgroup?.source.kind === 'hostPath' && cgroup.source.path, '/sys/fs/cgroup');
  assert.equal(cgroup?.readOnly, true);
  assert.equal(byPath.get('/tmp')?.source.kind, 'emptyDir');
});

test("argv is the manifest's command and args (they replace the image's entrypoint and cmd), then the test's own flags", () => {
  const argv = containerArgv(agent, image, host.extraArgs);
  assert.deepEqual(argv.slice(0, 2), ['meshgate', 'agent']);
  assert.ok(argv.includes('--pin-dir=/sys/fs/bpf/meshgate'));
  assert.ok(argv.includes('--listen=:9090'));
  assert.equal(argv.at(-1), '--cgroup-root=/sys/fs/cgroup/test/kubepods.slice');
  assert.deepEqual(
    containerArgv({ ...agent, command: [], args: [] }, image),
    ['meshgate', 'agent'],
    "the image's ENTRYPOINT and CMD otherwise",
  );
});

test("env merges the image's, the manifest's values and the downward API; a field the test cannot supply is an error", () => {
  const env = containerEnv(agent, image, host.fields, host.hostname);
  assert.ok(env.includes('NODE_NAME=node-a'));
  assert.ok(env.includes('NODE_ENV=production'));
  assert.throws(() => containerEnv(agent, image, {}, 'h'), /fieldRef spec\.nodeName/);
});

test("the OCI spec: exact capability sets, no_new_privs, read-only root, the volumes over the runtime's mounts, seccomp, the pod netns", () => {
  const spec = ociSpec(agent, image, defaults, host) as {
    process: { capabilities: Record<string, string[]>; noNewPrivileges: boolean; user: { uid: number } };
    root: { readonly: boolean };
    mounts: { destination: string; type: string; source: string; options: string[] }[];
    linux: { namespaces: { type: string; path?: string }[]; seccomp?: unknown; rootfsPropagation?: string };
  };
  const caps = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON'];
  assert.deepEqual(
    Object.keys(spec.process.capabilities).sort(),
    ['bounding', 'effective', 'permitted'],
    'no inheritable, no ambient',
  );
  for (const set of Object.values(spec.process.capabilities)) assert.deepEqual([...set].sort(), caps);
  assert.equal(spec.process.noNewPrivileges, true);
  assert.equal(spec.process.user.uid, 0);
  assert.equal(spec.root.readonly, true);
  const bpf = spec.mounts.find((m) => m.destination === '/sys/fs/bpf');
  assert.deepEqual(bpf, {
    destination: '/sys/fs/bpf',
    type: 'bind',
    source: '/host/bpffs',
    options: ['rbind', 'rslave', 'rw'],
  });
  assert.deepEqual(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options, ['rbind', 'rprivate', 'ro']);
  assert.equal(
    spec.mounts.filter((m) => m.destination === '/tmp').length,
    1,
    "the emptyDir replaces the runtime's /tmp",
  );
  assert.equal(spec.mounts.find((m) => m.destination === '/tmp')?.source, '/host/tmp');
  const order = spec.mounts.map((m) => m.destination);
  assert.ok(order.indexOf('/sys') < order.indexOf('/sys/fs/bpf'), '/sys is mounted before the volumes inside it');
  assert.equal(spec.linux.rootfsPropagation, 'rslave', 'a HostToContainer mount needs a slave root');
  assert.deepEqual(spec.linux.seccomp, defaults.seccomp);
  assert.deepEqual(
    spec.linux.namespaces.find((n) => n.type === 'network'),
    { type: 'network', path: '/run/netns/pod' },
  );
  assert.ok(
    spec.linux.namespaces.some((n) => n.type === 'cgroup'),
    'a private cgroup namespace, as containerd gives on cgroup v2',
  );
});

test('the preflight variants leave out exactly one added capability', () => {
  for (const cap of agent.capabilitiesAdd) {
    const without = containerCapabilities(agent, [], { withoutCapabilities: [cap] });
    assert.equal(without.length, agent.capabilitiesAdd.length - 1);
    assert.ok(!without.includes(`CAP_${cap}`));
  }
});

test('what the e2e cannot reproduce is an error naming it, not silently dropped', () => {
  const withVolume = MANIFEST.replace(
    /- name: tmp\n(\s+)emptyDir:/,
    '- name: tmp\n$1configMap: {name: x}\n$1emptyDir:',
  ).replace(/emptyDir:\n\s+medium: Memory\n\s+sizeLimit: 16Mi/, '');
  assert.throws(() => readAgentContainer(withVolume), /volume tmp is a configMap/);
  const subPath = MANIFEST.replace('mountPath: /tmp', 'mountPath: /tmp\n              subPath: x');
  assert.throws(() => readAgentContainer(subPath), /subPath is not reproduced/);
  const localhost = MANIFEST.replace('type: RuntimeDefault', 'type: Localhost');
  assert.throws(() => readAgentContainer(localhost), /seccompProfile Localhost/);
  assert.throws(() => ociSpec({ ...agent, privileged: true }, image, defaults, host), /privileged/);
});
