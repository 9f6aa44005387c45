// Which datapath variant a test's datapath runs (src/datapath/variant.ts). scripts/run-tests.sh runs
// the identity tests a second time with MESHGATE_DATAPATH_VARIANT=compat.
import { VARIANT_ENV, probeKernCtx, type DatapathVariant } from '../../src/datapath/variant.js';

/** The variant forced by the environment, else the one the probe picks on this kernel. */
export function expectedVariant(): DatapathVariant {
  const forced = process.env[VARIANT_ENV];
  if (forced === 'compat' || forced === 'kern-ctx') return forced;
  return probeKernCtx() === null ? 'kern-ctx' : 'compat';
}
