// The agent's explicit full collection (src/agent/heap.ts), compiled from V8's %CollectGarbage
// with natives syntax allowed only for that one function.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectGarbage } from '../../../src/agent/heap.js';

test('collectGarbage runs a full collection', async () => {
  let target: { data: number[] } | null = { data: new Array(10_000).fill(1) };
  const ref = new WeakRef(target);
  target = null;
  await new Promise((r) => setImmediate(r)); // a WeakRef keeps its target until the job ends
  assert.equal(collectGarbage(), true);
  assert.equal(ref.deref(), undefined, 'the unreachable object survived');
});

test('natives syntax is off again afterwards', () => {
  collectGarbage();
  assert.throws(() => new Function('%CollectGarbage(null)'), SyntaxError);
});
