// Which build of the programs runs here (bpf/kernel.bpf.h, docs/decisions.md "The compat variant").
//
// kern-ctx: the socket hooks read the socket's own cgroup through bpf_cast_to_kern_ctx.
// compat:   Linux 5.15's helpers only; the socket hooks take the calling task's cgroup.
// The agent picks kern-ctx when build/kernctx_probe.bpf.o loads: the same kfunc and the same
// trusted-pointer reads, in both program types that use them. A trial load answers for the
// running kernel (backports included), which no version number does.
// MESHGATE_DATAPATH_VARIANT=compat|kern-ctx forces one (tests; a node where the probe misleads).
import path from 'node:path';
import { libbpf } from '../../native/libbpf.js';
import { MeshgateError } from '../errors.js';

export type DatapathVariant = 'kern-ctx' | 'compat';
export const DATAPATH_VARIANTS: readonly DatapathVariant[] = Object.freeze(['kern-ctx', 'compat']);
export const VARIANT_ENV = 'MESHGATE_DATAPATH_VARIANT';

/** Programs only the kern-ctx object has: compat's cgroup/setsockopt could not find the pod before 6.4. */
export const KERN_CTX_ONLY_PROGRAMS: readonly string[] = Object.freeze(['mg_setsockopt']);

export interface VariantChoice {
  readonly variant: DatapathVariant;
  /** Why: forced by the environment, or the probe's outcome (its first error line when it failed). */
  readonly reason: string;
}

const buildDir = (): string => path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../build');

export function variantObjectPath(variant: DatapathVariant): string {
  return path.join(buildDir(), variant === 'compat' ? 'meshgate-compat.bpf.o' : 'meshgate.bpf.o');
}

/** null when the kernel loads the kern-ctx probe, else the first line of why not. */
export function probeKernCtx(probePath = path.join(buildDir(), 'kernctx_probe.bpf.o')): string | null {
  let obj: ReturnType<typeof libbpf.openObject> | null = null;
  try {
    obj = libbpf.openObject(probePath);
    libbpf.loadObject(obj, probePath);
    return null;
  } catch (err) {
    return (err as Error).message.split('\n')[0] ?? 'load failed';
  } finally {
    if (obj) libbpf.closeObject(obj);
  }
}

/** The variant to load: MESHGATE_DATAPATH_VARIANT's when set (not auto), else the probe's (pure: the probe is passed). */
export function chooseVariant(forced: string | undefined, probeFailure: () => string | null): VariantChoice {
  if (forced !== undefined && forced !== '' && forced !== 'auto') {
    if (!(DATAPATH_VARIANTS as readonly string[]).includes(forced)) {
      throw new MeshgateError(
        'MG_DATAPATH_VARIANT_INVALID',
        `${VARIANT_ENV}=${JSON.stringify(forced)} is not one of auto, ${DATAPATH_VARIANTS.join(', ')}`,
      );
    }
    return { variant: forced as DatapathVariant, reason: `forced by ${VARIANT_ENV}` };
  }
  const failure = probeFailure();
  return failure === null
    ? { variant: 'kern-ctx', reason: 'the kernel loads bpf_cast_to_kern_ctx in the socket hooks' }
    : { variant: 'compat', reason: `the bpf_cast_to_kern_ctx probe did not load: ${failure}` };
}

/** chooseVariant with this process's environment and the real probe (a few milliseconds). */
export function selectVariant(env: NodeJS.ProcessEnv = process.env): VariantChoice {
  return chooseVariant(env[VARIANT_ENV], () => probeKernCtx());
}
