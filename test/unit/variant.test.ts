import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KERN_CTX_ONLY_PROGRAMS, chooseVariant } from '../../src/datapath/variant.js';
import { HOOK_PROGRAMS, hookPrograms } from '../../src/datapath/loader.js';
import { MeshgateError } from '../../src/errors.js';

const probeLoads = () => null;
const probeFails = () => 'load BPF object kernctx_probe.bpf.o: Invalid argument (EINVAL)';

test('without an override the probe decides: kern-ctx when it loads, compat with its error otherwise', () => {
  assert.equal(chooseVariant(undefined, probeLoads).variant, 'kern-ctx');
  assert.equal(chooseVariant('auto', probeLoads).variant, 'kern-ctx');
  const compat = chooseVariant('', probeFails);
  assert.equal(compat.variant, 'compat');
  assert.match(compat.reason, /probe did not load: load BPF object kernctx_probe/);
});

test('MESHGATE_DATAPATH_VARIANT forces a variant without probing', () => {
  const never = () => assert.fail('the probe ran although the variant was forced');
  assert.deepEqual(chooseVariant('compat', never), {
    variant: 'compat',
    reason: 'forced by MESHGATE_DATAPATH_VARIANT',
  });
  assert.equal(chooseVariant('kern-ctx', never).variant, 'kern-ctx');
});

test('an unknown MESHGATE_DATAPATH_VARIANT is refused with its code', () => {
  assert.throws(
    () => chooseVariant('old', probeLoads),
    (err: unknown) =>
      err instanceof MeshgateError && err.code === 'MG_DATAPATH_VARIANT_INVALID' && /"old"/.test(err.message),
  );
});

test('the compat variant attaches every hook but cgroup/setsockopt', () => {
  assert.deepEqual(KERN_CTX_ONLY_PROGRAMS, ['mg_setsockopt']);
  assert.equal(hookPrograms('kern-ctx'), HOOK_PROGRAMS);
  assert.deepEqual(
    hookPrograms('compat').map((h) => h.program),
    HOOK_PROGRAMS.map((h) => h.program).filter((p) => p !== 'mg_setsockopt'),
  );
});
