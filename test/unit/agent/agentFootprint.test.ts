// What the agent process loads (SPEC §7: 60 MB idle). prom-client and koffi are loaded from their
// own files, not from their indexes, which bring node:https, node:tls, node:zlib and node:cluster
// (src/agent/promClient.ts, native/koffi.ts). Checked in a fresh process, as the agent starts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from '../../../src/agent/promClient.js';
import koffi from '../../../native/koffi.js';
import { REPO_ROOT } from '../../helpers/sandbox.js';

const load = createRequire(import.meta.url);

test('the prom-client classes the agent uses are the ones prom-client exports', () => {
  const index = load('prom-client') as Record<string, unknown>;
  assert.deepEqual(
    [Registry, Counter, Gauge, Histogram],
    [index.Registry, index.Counter, index.Gauge, index.Histogram],
  );
});

test("koffi is this platform's prebuilt module, the same version as koffi's index loads", () => {
  const index = load('koffi') as { version: string };
  assert.equal((koffi as unknown as { version: string }).version, index.version);
  const strlen = koffi.load('libc.so.6').func('size_t strlen(const char *s)') as (s: string) => number;
  assert.equal(strlen('meshgate'), 8);
});

test('loading the standalone agent brings in no TLS, HTTPS, zlib or cluster code', () => {
  const agent = path.join(REPO_ROOT, 'dist/src/cli/commands/agent.js');
  const builtins = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(agent)}); console.log(process.moduleLoadList.join('\\n'))`,
    ],
    { encoding: 'utf8' },
  )
    .split('\n')
    .filter((line) => line.startsWith('NativeModule '))
    .map((line) => line.slice('NativeModule '.length));
  assert.ok(builtins.includes('http'), 'the scan sees what the agent loads (its metrics server is node:http)');
  for (const unwanted of ['https', 'tls', 'zlib', 'cluster'])
    assert.ok(!builtins.includes(unwanted), `the agent's modules load node:${unwanted}`);
});
