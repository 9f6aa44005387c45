// Agent memory: VmRSS (and the peak, VmHWM) of the real agent from
// /proc/PID/status, idle (a tiny config) and holding a 100,000-entry policy,
// read after the first apply and a few seconds of settling. Both modes: the
// standalone agent reading files, and the cluster agent against the
// Kubernetes API test server serving the same objects as ConfigMaps. A
// 100,000-entry policy is several objects (each under the 1 MiB a ConfigMap
// allows): see policyObjects.
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startKubeApiServer, type KubeObject } from '../test/helpers/kubeApiServer.js';
import { memoryOf, startAgent, writeAtomically, type AgentHandle, clusterAgentArgs } from './agentProcess.js';
import { policyObjects } from './policyGen.js';
import type { BenchSandbox } from './sandbox.js';

export interface MemoryRow {
  readonly mode: 'standalone' | 'cluster';
  readonly entries: number;
  readonly rssMiB: number;
  readonly hwmMiB: number;
  readonly firstApplyMs: number;
}

async function settle(agent: AgentHandle, settleMs: number): Promise<{ rssMiB: number; hwmMiB: number }> {
  await new Promise((r) => setTimeout(r, settleMs));
  return memoryOf(agent.pid);
}

async function standaloneRow(sb: BenchSandbox, entries: number, settleMs: number): Promise<MemoryRow> {
  const label = `mem${entries}`;
  const pod = sb.cgroup(label);
  const objects = policyObjects(entries);
  const configFile = path.join(sb.tmpDir(), `${label}.yaml`);
  writeAtomically(configFile, objects.globalText);
  const allowlistArgs = objects.allowlists.flatMap((text, i) => {
    const file = path.join(sb.tmpDir(), `${label}-allow${i}.yaml`);
    writeAtomically(file, text);
    return ['--allowlist-file', file];
  });
  const agent = await startAgent(sb, {
    label,
    pinDir: sb.pinDir(label),
    args: ['--config-file', configFile, ...allowlistArgs, '--cgroup', pod, '--namespace', 'bench'],
  });
  try {
    return {
      mode: 'standalone',
      entries,
      ...(await settle(agent, settleMs)),
      firstApplyMs: agent.applies[0]?.ms ?? NaN,
    };
  } finally {
    await agent.stop();
  }
}

async function clusterRow(sb: BenchSandbox, entries: number, settleMs: number): Promise<MemoryRow> {
  const label = `memc${entries}`;
  const api = await startKubeApiServer();
  try {
    const kubepods = sb.cgroup(`${label}-kubepods`);
    const objects = policyObjects(entries);
    api.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'osm-config', namespace: 'osm-system' },
      data: parseYaml(objects.globalText) as Record<string, string>,
    } as unknown as KubeObject);
    objects.allowlists.forEach((text, i) => {
      api.create('configmaps', {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `allow-${i}`, namespace: 'bench', labels: { 'meshgate.io/egress-allowlist': 'true' } },
        data: { egress: text },
      } as unknown as KubeObject);
    });
    const kubeconfig = await api.writeKubeconfig(sb.tmpDir());
    const agent = await startAgent(sb, {
      label,
      pinDir: sb.pinDir(label),
      args: clusterAgentArgs(kubeconfig, kubepods),
    });
    try {
      return {
        mode: 'cluster',
        entries,
        ...(await settle(agent, settleMs)),
        firstApplyMs: agent.applies[0]?.ms ?? NaN,
      };
    } finally {
      await agent.stop();
    }
  } finally {
    await api.stop();
  }
}

export async function benchMemory(
  sb: BenchSandbox,
  sizes: readonly number[],
  settleMs: number,
  log: (line: string) => void,
): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const mode of ['standalone', 'cluster'] as const) {
    for (const entries of sizes) {
      const row =
        mode === 'standalone' ? await standaloneRow(sb, entries, settleMs) : await clusterRow(sb, entries, settleMs);
      rows.push(row);
      log(
        `${mode} agent memory with ${entries} entries: RSS ${row.rssMiB.toFixed(1)} MiB (peak ${row.hwmMiB.toFixed(1)} MiB)`,
      );
    }
  }
  return rows;
}
