// The optimising-compiler hold (src/agent/tiering.ts) releases to V8's own defaults: the values it
// restores are the ones this node's V8 reports, so a node upgrade that changes them fails here
// instead of silently changing how the agent is compiled after start-up.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { TIERING_DEFAULTS } from '../../../src/agent/tiering.js';

test("the hold releases to this node's V8 defaults", () => {
  const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  for (const [flag, value] of Object.entries(TIERING_DEFAULTS)) {
    const found = new RegExp(`default: --${flag}=(\\d+)`).exec(options);
    assert.ok(found, `node --v8-options lists --${flag}`);
    assert.equal(Number(found[1]), value, `--${flag}`);
  }
});

test('held, a hot function stays unoptimised; released, or with tiering flags given to node, it is optimised', () => {
  // A child process, so the flags of this test process are never touched.
  const script = `
    import v8 from 'node:v8';
    const { holdOptimisingCompiler, releaseOptimisingCompiler } = await import(${JSON.stringify(new URL('../../../src/agent/tiering.js', import.meta.url).href)});
    holdOptimisingCompiler();
    if (process.env.RELEASE) releaseOptimisingCompiler();
    function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }
    for (let k = 0; k < 200; k++) hot(1e5);
    console.log(%GetOptimizationStatus(hot) & 16 ? 'optimised' : 'not optimised'); // V8's kOptimized bit`;
  const run = (flags: string[], env: Record<string, string> = {}) =>
    execFileSync(process.execPath, ['--allow-natives-syntax', ...flags, '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    }).trim();
  assert.equal(run([]), 'not optimised', 'held: a hot function stays unoptimised');
  assert.equal(run([], { RELEASE: '1' }), 'optimised', 'released');
  assert.equal(run(['--ticks_before_optimization=3']), 'optimised', 'node was given a tiering flag: no hold');
});
