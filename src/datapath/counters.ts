// The kernel's per-CPU verdict counters, summed over CPUs, with names from the ABI.
import { RULE, RULE_NAMES, VERDICT_NAMES, encodeU32, type VerdictName } from './codec.js';
import type { MapHandle } from './maps.js';

export interface VerdictCount {
  readonly verdict: VerdictName;
  readonly rule: string;
  readonly count: bigint;
}

/** Every non-zero (verdict, rule) counter of mg_counters. */
export function readVerdictCounters(counters: MapHandle): VerdictCount[] {
  const out: VerdictCount[] = [];
  const nRules = RULE.MG_RULE_COUNT;
  VERDICT_NAMES.forEach((verdict, v) => {
    for (let r = 0; r < nRules; r++) {
      const count = counters.sumPerCpuU64(encodeU32(v * nRules + r));
      if (count > 0n) out.push({ verdict, rule: RULE_NAMES[r] ?? String(r), count });
    }
  });
  return out;
}
