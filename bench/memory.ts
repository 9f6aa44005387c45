// Agent memory: VmRSS (and the peak, VmHWM) of the real standalone agent from
// /proc/PID/status, idle (a tiny config) and holding a 100,000-entry policy,
// read after the first apply and a few seconds of settling.
import path from 'node:path';
import { memoryOf, startAgent, writeAtomically } from './agentProcess.js';
import { osmConfigText } from './policyGen.js';
import type { BenchSandbox } from './sandbox.js';

export interface MemoryRow {
  readonly entries: number;
  readonly rssMiB: number;
  readonly hwmMiB: number;
  readonly firstApplyMs: number;
}

export async function benchMemory(sb: BenchSandbox, sizes: readonly number[], settleMs: number, log: (line: string) => void): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const entries of sizes) {
    const label = `mem${entries}`;
    const pod = sb.cgroup(label);
    const configFile = path.join(sb.tmpDir(), `${label}.yaml`);
    writeAtomically(configFile, osmConfigText(entries));
    const agent = await startAgent(sb, { label, configFile, cgroup: pod, pinDir: sb.pinDir(label) });
    try {
      await new Promise((r) => setTimeout(r, settleMs));
      const mem = memoryOf(agent.pid);
      rows.push({ entries, ...mem, firstApplyMs: agent.applies[0]?.ms ?? NaN });
      log(`agent memory with ${entries} entries: RSS ${mem.rssMiB.toFixed(1)} MiB (peak ${mem.hwmMiB.toFixed(1)} MiB)`);
    } finally {
      await agent.stop();
    }
  }
  return rows;
}
