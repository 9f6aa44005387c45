// Propagation: from a config change to the kernel's verdict changing for a
// real connect. A PropagationSource makes the change (standalone: an atomic
// rewrite of the config file the real agent process watches); a C watcher in
// the pod's cgroup connects every 200 µs until the verdict for 192.0.2.1:80
// flips (deny <-> pass) and reports the CLOCK_MONOTONIC time of the first
// flipped connect, the same clock as process.hrtime here.
//
// Cluster mode plugs in as another PropagationSource: the edit is a ConfigMap
// update through the Kubernetes API test server, the rest is unchanged.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startAgent, writeAtomically, type AgentHandle } from './agentProcess.js';
import { osmConfigText } from './policyGen.js';
import { CONNECTLOOP, TARGETS, type BenchSandbox } from './sandbox.js';
import { quantile, summarize, type Summary } from './stats.js';

export interface PropagationSource {
  readonly mode: 'standalone' | 'cluster';
  /** Starts the agent enforcing on `podCgroup` with `entries` entries; the flip target starts denied. */
  start(podCgroup: string): Promise<void>;
  /** Makes the one-entry change: allow (or stop allowing) TARGETS.deny. */
  edit(allowTarget: boolean): void;
  /** The agent's "policy applied" log so far: its apply() duration and the log time (epoch ms). */
  applies(): ReadonlyArray<{ readonly ms: number; readonly time: number }>;
  stop(): Promise<void>;
}

export interface PropagationOptions {
  readonly entries: number;
  readonly edits: number;
  readonly log: (line: string) => void;
}

export interface PropagationResult {
  readonly mode: string;
  readonly entries: number;
  readonly edits: number;
  readonly latencyMs: Summary & { readonly p99: number };
  /** the agent's own apply() time per edit, from its log */
  readonly agentApplyMs: Summary;
  /** from the write to the agent's "policy applied" log line (ms clock resolution): detect, debounce, read, parse, compile, apply */
  readonly writeToAppliedLogMs: Summary;
  readonly timeouts: number;
}

/** Standalone mode: the real agent process watching a config file. */
export function standaloneSource(sb: BenchSandbox, entries: number): PropagationSource {
  const configFile = path.join(sb.tmpDir(), 'osm-config.yaml');
  let agent: AgentHandle | null = null;
  return {
    mode: 'standalone',
    async start(podCgroup) {
      writeAtomically(configFile, osmConfigText(entries, 0, false));
      agent = await startAgent(sb, { label: 'prop', configFile, cgroup: podCgroup, pinDir: sb.pinDir('prop') });
    },
    edit(allowTarget) {
      writeAtomically(configFile, osmConfigText(entries, 0, allowTarget));
    },
    applies: () => agent?.applies ?? [],
    async stop() {
      await agent?.stop();
    },
  };
}

/**
 * Why cluster-mode propagation is not measured yet. The pieces exist
 * (src/agent/cluster.ts, test/helpers/kubeApiServer.ts, and
 * test/helpers/fakeNode.ts for a kubelet-style cgroup tree); a cluster
 * PropagationSource would start the API server, create the osm-config
 * ConfigMap and one meshed pod, start `meshgate agent --kubeconfig ...
 * --node-name node-a --cgroup-root <kubepods>`, and make edit() a ConfigMap
 * update (api.update). It is not wired because fakeNode builds its cgroups
 * and netns through createSandbox() with the mgtest- prefix, and the bench's
 * resources must be mgbench-*: createSandbox needs a prefix parameter first.
 */
export function clusterSourceUnavailable(): string {
  return 'the cluster source needs test/helpers/fakeNode.ts to take a name prefix (it makes mgtest-* resources); see bench/propagation.ts';
}

interface Watcher {
  ask(want: 'deny' | 'pass'): Promise<string>;
  next(): Promise<string>;
}

function startWatcher(sb: BenchSandbox, netnsPath: string, cgroup: string): Watcher {
  const child: ChildProcess = sb.spawn(CONNECTLOOP, ['--netns', netnsPath, '--cgroup', cgroup, 'watch', '--addr', TARGETS.deny.addr,
    '--port', String(TARGETS.deny.port), '--interval-us', '200', '--timeout-ms', '5000']);
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let pending = '';
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const next = (): Promise<string> => new Promise((resolve, reject) => {
    const line = lines.shift();
    if (line !== undefined) return resolve(line);
    const timer = setTimeout(() => reject(new Error('the watcher did not answer within 10 s')), 10_000);
    waiting.push((l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
  return {
    next,
    async ask(want) {
      child.stdin!.write(`${want}\n`);
      return next();
    },
  };
}

export async function benchPropagation(sb: BenchSandbox, source: PropagationSource, o: PropagationOptions): Promise<PropagationResult> {
  const pod = sb.cgroup(`prop-${source.mode}`);
  const app = sb.childCgroup(pod, 'app');
  const ns = sb.netns(`prop-${source.mode}`);
  await source.start(pod);
  try {
    const watcher = startWatcher(sb, ns.path, app);
    if ((await watcher.next()) !== 'ready') throw new Error('the watcher did not start');
    const latencies: number[] = [];
    const toLog: number[] = [];
    const applyMs: number[] = [];
    let timeouts = 0;
    let allowed = false;
    for (let i = 0; i < o.edits; i++) {
      allowed = !allowed;
      const armed = await watcher.ask(allowed ? 'pass' : 'deny');
      if (armed !== 'armed') throw new Error(`edit ${i}: the verdict was already ${allowed ? 'pass' : 'deny'} before the edit (${armed})`);
      const applied = source.applies().length;
      const wall = Date.now();
      const t0 = process.hrtime.bigint();
      source.edit(allowed);
      const reply = await watcher.next();
      const m = /^flipped (\d+) (\d+)$/.exec(reply);
      if (!m) {
        timeouts++;
        continue;
      }
      latencies.push(Number(BigInt(m[1]!) - t0) / 1e6);
      // Let the agent finish its apply and log before the next edit.
      await new Promise((r) => setTimeout(r, 30));
      const log = source.applies()[applied];
      if (log && source.applies().length === applied + 1) {
        toLog.push(log.time - wall);
        applyMs.push(log.ms);
      }
    }
    const latencyMs = { ...summarize(latencies), p99: quantile(latencies, 0.99) };
    o.log(`propagation (${source.mode}, ${o.entries} entries): p50 ${latencyMs.median.toFixed(1)} ms, p99 ${latencyMs.p99.toFixed(1)} ms over ${latencies.length} edits, ${timeouts} timeouts`);
    return { mode: source.mode, entries: o.entries, edits: o.edits, latencyMs, agentApplyMs: summarize(applyMs), writeToAppliedLogMs: summarize(toLog), timeouts };
  } finally {
    await source.stop();
  }
}
