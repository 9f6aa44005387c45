// Preflight's parsing of what the kernel and /proc say.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  capabilityProblems,
  effectiveCaps,
  parseKernelRelease,
  planBpffs,
  type MountProbe,
} from '../../../src/agent/preflight.js';

describe('preflight', () => {
  test('kernel releases', () => {
    assert.deepEqual(parseKernelRelease('6.18.0-1-cloud-amd64'), [6, 18]);
    assert.deepEqual(parseKernelRelease('5.8.0'), [5, 8]);
    assert.equal(parseKernelRelease('garbage'), null);
  });
  test('capabilities: one line per missing one, SYS_ADMIN covers BPF and PERFMON but not NET_ADMIN', () => {
    const caps = (...bits: number[]) => bits.reduce((m, b) => m | (1n << BigInt(b)), 0n);
    assert.deepEqual(capabilityProblems(caps(39, 38, 12)), []);
    assert.deepEqual(capabilityProblems(caps(21, 12)), []);
    const none = capabilityProblems(0n).map((p) => p.message);
    assert.equal(none.length, 3);
    assert.match(none.join('\n'), /CAP_BPF/);
    assert.match(none.join('\n'), /CAP_PERFMON/);
    assert.match(none.join('\n'), /CAP_NET_ADMIN/);
    assert.deepEqual(
      capabilityProblems(caps(21)).map((p) => p.message.split(' ')[1]),
      ['CAP_NET_ADMIN'],
    );
  });
  test('CapEff from /proc/self/status', () => {
    assert.equal(effectiveCaps('Name:\tnode\nCapEff:\t000001ffffffffff\n'), 0x1ffffffffffn);
    assert.equal(effectiveCaps('Name:\tnode\n'), 0n);
  });
});

describe('planBpffs: where bpffs may be mounted', () => {
  const probe = (over: Partial<MountProbe> = {}): MountProbe => ({
    onBpffs: () => false,
    isMountPoint: () => false,
    isEmpty: () => true,
    ...over,
  });

  test('a pin dir already on bpffs needs nothing', () => {
    assert.deepEqual(planBpffs('/sys/fs/bpf/meshgate', probe({ onBpffs: () => true })), { action: 'ok' });
  });

  test('an empty, unmounted /sys/fs/bpf is mounted for a pin dir under it', () => {
    assert.deepEqual(planBpffs('/sys/fs/bpf/meshgate', probe()), { action: 'mount' });
    assert.deepEqual(planBpffs('/sys/fs/bpf', probe()), { action: 'mount' });
  });

  test('paths are compared by segment: /sys/fs/bpf-x is not under /sys/fs/bpf, and nothing is mounted for it', () => {
    for (const dir of ['/sys/fs/bpf-x', '/sys/fs/bpfmeshgate/x', '/sys/fs', '/tmp/pins']) {
      const plan = planBpffs(dir, probe());
      assert.equal(plan.action, 'refuse', dir);
      assert.match((plan as { message: string }).message, /is not on a bpf filesystem/);
    }
  });

  test('never mounts over a mount point or a directory that holds anything', () => {
    const overMount = planBpffs('/sys/fs/bpf/meshgate', probe({ isMountPoint: (d) => d === '/sys/fs/bpf' }));
    assert.equal(overMount.action, 'refuse');
    assert.match((overMount as { message: string }).message, /never mounts over it/);
    const overFiles = planBpffs('/sys/fs/bpf/meshgate', probe({ isEmpty: () => false }));
    assert.equal(overFiles.action, 'refuse');
    assert.match((overFiles as { message: string }).message, /not empty/);
  });
});
