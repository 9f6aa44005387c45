// The optimising-compiler hold (src/agent/tiering.ts) releases to V8's own defaults: the values it
// restores are the ones this node's V8 reports, so a node upgrade that changes them fails here
// instead of silently changing how the agent is compiled after start-up.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { TIERING_DEFAULTS, TIERING_V8 } from '../../../src/agent/tiering.js';

test("the hold releases to this node's V8 defaults", () => {
  assert.ok(
    process.versions.v8.startsWith(TIERING_V8),
    `the hold knows V8 ${TIERING_V8}x's defaults and is off on this node's V8 ${process.versions.v8}: check them and update`,
  );
  const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  for (const [flag, value] of Object.entries(TIERING_DEFAULTS)) {
    const found = new RegExp(`default: --${flag}=(\\d+)`).exec(options);
    assert.ok(found, `node --v8-options lists --${flag}`);
    assert.equal(Number(found[1]), value, `--${flag}`);
  }
});

test('held, a hot function stays unoptimised; released, with tiering flags given to node, or on another V8, it is optimised', () => {
  // A child process, so the flags of this test process are never touched.
  const script = `
    import v8 from 'node:v8';
    const { holdOptimisingCompiler, releaseOptimisingCompiler } = await import(${JSON.stringify(new URL('../../../src/agent/tiering.js', import.meta.url).href)});
    holdOptimisingCompiler(process.execArgv, process.env.OTHER_V8 ?? process.versions.v8);
    if (process.env.RELEASE) releaseOptimisingCompiler();
    function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }
    // Optimisation is compiled on a background thread: on a busy machine it lands later, so run
    // until it has (V8's kOptimized bit) or a bounded count of calls has passed.
    const optimised = () => (%GetOptimizationStatus(hot) & 16) !== 0;
    for (let k = 0; k < 1500 && !optimised(); k++) hot(1e5);
    console.log(optimised() ? 'optimised' : 'not optimised');`;
  const run = (flags: string[], env: Record<string, string> = {}) =>
    execFileSync(process.execPath, ['--allow-natives-syntax', ...flags, '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    }).trim();
  assert.equal(run([]), 'not optimised', 'held: a hot function stays unoptimised');
  assert.equal(run([], { RELEASE: '1' }), 'optimised', 'released');
  assert.equal(run(['--ticks_before_optimization=3']), 'optimised', 'node was given a tiering flag: no hold');
  assert.equal(run([], { OTHER_V8: '12.4.254.21' }), 'optimised', 'another V8, whose defaults are not known: no hold');
});
