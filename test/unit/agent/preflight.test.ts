// Preflight's parsing of what the kernel and /proc say.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { capabilityProblems, effectiveCaps, parseKernelRelease } from '../../../src/agent/preflight.js';

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
    assert.deepEqual(capabilityProblems(caps(21)).map((p) => p.message.split(' ')[1]), ['CAP_NET_ADMIN']);
  });
  test('CapEff from /proc/self/status', () => {
    assert.equal(effectiveCaps('Name:\tnode\nCapEff:\t000001ffffffffff\n'), 0x1ffffffffffn);
    assert.equal(effectiveCaps('Name:\tnode\n'), 0n);
  });
});
