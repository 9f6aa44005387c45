// Numeric flags: one validated parser (src/cli/numberFlag.ts) for every command, and each bad
// value a usage error (`error: …`, exit 2) that names the flag and the value, before anything is
// touched. The agent's cluster seed flags (--enable-egress, --mesh-cidr) are checked the same way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { parseNumberFlag } from '../../../src/cli/numberFlag.js';
import { checkSeedFlags, parseSeed } from '../../../src/agent/seedFlags.js';
import { GLOBAL_DEFAULTS } from '../../../src/config/index.js';
import { MeshgateError } from '../../../src/errors.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const BIN = path.join(REPO_ROOT, 'bin/meshgate.js');
// Never the default pin dir: should a check be missing, preflight stops the agent here (exit 1).
const SAFE = ['--pin-dir', `/nonexistent/mgtest-flags-${process.pid}`, '--listen', '127.0.0.1:0'];

function meshgate(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, String(r.error));
  return { status: r.status, stderr: r.stderr };
}
const badFlag = (err: unknown) => err instanceof MeshgateError && err.code === 'MG_CLI_BAD_FLAG';

describe('parseNumberFlag', () => {
  test('takes plain decimal digits in range', () => {
    assert.equal(parseNumberFlag('--n', '0', { min: 0, max: 10, integer: true }), 0);
    assert.equal(parseNumberFlag('--n', '10', { min: 0, max: 10, integer: true }), 10);
    assert.equal(parseNumberFlag('--s', '0.5', { min: 0.001, max: 10 }), 0.5);
    assert.equal(parseNumberFlag('--s', '.25', { min: 0, max: 10 }), 0.25);
  });

  test('refuses NaN, blanks, signs, exponents, hex, Infinity, fractions of integers and values out of range', () => {
    for (const [value, range] of [
      ['abc', { min: 0, max: 10 }],
      ['1O', { min: 0, max: 100, integer: true }],
      ['', { min: 0, max: 10 }],
      [' 5', { min: 0, max: 10 }],
      ['-1', { min: -5, max: 10 }],
      ['1e3', { min: 0, max: 10_000 }],
      ['0x10', { min: 0, max: 100 }],
      ['Infinity', { min: 0, max: Number.MAX_VALUE }],
      ['1.5', { min: 0, max: 10, integer: true }],
      ['11', { min: 0, max: 10, integer: true }],
      ['0', { min: 1, max: 10, integer: true }],
    ] as const) {
      assert.throws(() => parseNumberFlag('--n', value, range), badFlag, JSON.stringify(value));
    }
  });

  test('the message names the flag, the value (quoted, escaped), the range and the unit', () => {
    assert.throws(
      () => parseNumberFlag('--debounce-ms', '1O\u001b', { min: 0, max: 60000, integer: true, unit: 'milliseconds' }),
      { message: '--debounce-ms: "1O\\u001b" is not an integer in 0..60000 (milliseconds)' },
    );
  });
});

describe('checkSeedFlags', () => {
  test('no flag, or usable flags, pass', () => {
    checkSeedFlags({ meshCidrs: [] });
    checkSeedFlags({ egress: true, meshCidrs: ['10.0.0.0/8,fd00::/8', '172.16.0.0/12'] });
    checkSeedFlags({ meshCidrs: ['10.0.0.0/8'] });
  });

  test('with no ConfigMap, the defaults apply (no flag at all too), with what the flags set', () => {
    const none = parseSeed({ meshCidrs: [] });
    assert.ok(none.ok, JSON.stringify(none));
    assert.equal(none.value.egress, GLOBAL_DEFAULTS.egress);
    assert.deepEqual(none.value.meshCidrs, []);
    const seeded = parseSeed({ egress: true, meshCidrs: ['10.0.0.0/8'] });
    assert.ok(seeded.ok);
    assert.equal(seeded.value.egress, true);
  });

  test('--enable-egress without --mesh-cidr, and a bad CIDR, are refused naming the flag and the value', () => {
    assert.throws(() => checkSeedFlags({ egress: true, meshCidrs: [] }), {
      code: 'MG_CLI_BAD_FLAG',
      message: /^--enable-egress: given without --mesh-cidr/,
    });
    assert.throws(() => checkSeedFlags({ meshCidrs: ['10.0.0.0/8,10.0.0.0/33'] }), {
      code: 'MG_CLI_BAD_FLAG',
      message: /^--mesh-cidr: "10\.0\.0\.0\/33" has prefix length \/33/,
    });
  });
});

describe('meshgate commands: a bad numeric or seed flag is a usage error (exit 2), before anything is touched', () => {
  const standalone = ['agent', ...SAFE, '--config-file', '/nonexistent/c.yaml', '--cgroup', '/nonexistent/cg'];
  const cluster = ['agent', ...SAFE, '--node-name', 'node-1', '--kubeconfig', '/nonexistent/kubeconfig'];
  for (const [args, expected] of [
    [
      [...standalone, '--debounce-ms', '1O'],
      'error: --debounce-ms: "1O" is not an integer in 0..60000 (milliseconds)\n',
    ],
    [[...standalone, '--flows-max', '-1'], /^error: --flows-max: "-1" is not an integer in 0\.\.\d+\n$/],
    [[...standalone, '--dns-grace', 'soon'], /^error: --dns-grace: "soon" is not a number in 0\.\.\d+ \(seconds\)\n$/],
    [[...standalone, '--dns-ttl-ceiling', '9999999'], /^error: --dns-ttl-ceiling: "9999999" is not a number/],
    [
      [...cluster, '--informer-backoff-max-ms', '30s'],
      'error: --informer-backoff-max-ms: "30s" is not an integer in 1..3600000 (milliseconds)\n',
    ],
    [[...cluster, '--informer-backoff-max-ms', '0'], /^error: --informer-backoff-max-ms: "0" is not an integer/],
    [[...cluster, '--enable-egress'], /^error: --enable-egress: given without --mesh-cidr: .*\n$/],
    [
      [...cluster, '--enable-egress', '--mesh-cidr', '10.0.0.0/8', '--mesh-cidr', '10.300.0.0/16'],
      /^error: --mesh-cidr: "10\.300\.0\.0\/16" is not an IPv4 or IPv6 address or CIDR\n$/,
    ],
    [['trace', '--count', 'ten'], /^error: --count: "ten" is not an integer in 1\.\.\d+\n$/],
    [['trace', '--duration', 'NaN'], /^error: --duration: "NaN" is not a number in 0\.001\.\.\d+ \(seconds\)\n$/],
    [
      ['explain', '--uid', '1500x', 'shop/web', '192.0.2.1:443'],
      /^error: --uid: "1500x" is not an integer in 0\.\.4294967295\n$/,
    ],
  ] as const) {
    test(`${args.filter((a) => !SAFE.includes(a)).join(' ')}`, () => {
      const r = meshgate(...args);
      assert.equal(r.status, 2, r.stderr);
      if (typeof expected === 'string') assert.equal(r.stderr, expected);
      else assert.match(r.stderr, expected);
    });
  }
});
