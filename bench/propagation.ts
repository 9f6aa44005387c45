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
import { parse as parseYaml } from 'yaml';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../test/helpers/kubeApiServer.js';
import { startAgent, writeAtomically, type AgentHandle, clusterAgentArgs } from './agentProcess.js';
import { osmConfigText } from './policyGen.js';
import { CONNECTLOOP, TARGETS, type BenchSandbox } from './sandbox.js';
import { quantile, summarize, type Summary } from './stats.js';

export interface PropagationSource {
  readonly mode: 'standalone' | 'cluster';
  /** Makes the pod's cgroup where the agent will look for it (default: a plain bench cgroup). */
  podCgroup?(): Promise<string>;
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
 * Cluster mode: the real agent against the Kubernetes API test server. The
 * pod is a Guaranteed pod labelled meshgate.io/enforce (cgroupfs layout:
 * <kubepods>/pod<uid>), and each edit is a ConfigMap update. The latency
 * includes the watch event, the debounce, the parse of the changed
 * ConfigMap, the compile and the apply.
 */
export function clusterSource(sb: BenchSandbox, entries: number): PropagationSource {
  let api: KubeApiServer | null = null;
  let agent: AgentHandle | null = null;
  let kubepods = '';
  const configMap = (allow: boolean): KubeObject =>
    ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'osm-config', namespace: 'osm-system' },
      data: parseYaml(osmConfigText(entries, 0, allow)) as Record<string, string>,
    }) as unknown as KubeObject;
  return {
    mode: 'cluster',
    async podCgroup() {
      api = await startKubeApiServer();
      kubepods = sb.cgroup('prop-kubepods');
      const pod = api.create('pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'bench', namespace: 'bench', labels: { 'meshgate.io/enforce': 'true' } },
        spec: { nodeName: 'node-a', containers: [{ name: 'app' }] },
        status: { phase: 'Running', qosClass: 'Guaranteed' },
      } as unknown as KubeObject);
      return sb.childCgroup(kubepods, `pod${pod.metadata.uid}`);
    },
    async start() {
      api!.create('configmaps', configMap(false));
      const kubeconfig = await api!.writeKubeconfig(sb.tmpDir());
      agent = await startAgent(sb, {
        label: 'prop-cluster',
        pinDir: sb.pinDir('prop-cluster'),
        args: clusterAgentArgs(kubeconfig, kubepods),
      });
    },
    edit(allowTarget) {
      api!.update('configmaps', configMap(allowTarget));
    },
    applies: () => agent?.applies ?? [],
    async stop() {
      await agent?.stop();
      await api?.stop();
    },
  };
}

interface Watcher {
  ask(want: 'deny' | 'pass'): Promise<string>;
  next(): Promise<string>;
}

function startWatcher(sb: BenchSandbox, netnsPath: string, cgroup: string): Watcher {
  const child: ChildProcess = sb.spawn(CONNECTLOOP, [
    '--netns',
    netnsPath,
    '--cgroup',
    cgroup,
    'watch',
    '--addr',
    TARGETS.deny.addr,
    '--port',
    String(TARGETS.deny.port),
    '--interval-us',
    '200',
    '--timeout-ms',
    '5000',
  ]);
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
  const next = (): Promise<string> =>
    new Promise((resolve, reject) => {
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

export async function benchPropagation(
  sb: BenchSandbox,
  source: PropagationSource,
  o: PropagationOptions,
): Promise<PropagationResult> {
  const pod = source.podCgroup ? await source.podCgroup() : sb.cgroup(`prop-${source.mode}`);
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
      if (armed !== 'armed')
        throw new Error(`edit ${i}: the verdict was already ${allowed ? 'pass' : 'deny'} before the edit (${armed})`);
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
    o.log(
      `propagation (${source.mode}, ${o.entries} entries): p50 ${latencyMs.median.toFixed(1)} ms, p99 ${latencyMs.p99.toFixed(1)} ms over ${latencies.length} edits, ${timeouts} timeouts`,
    );
    return {
      mode: source.mode,
      entries: o.entries,
      edits: o.edits,
      latencyMs,
      agentApplyMs: summarize(applyMs),
      writeToAppliedLogMs: summarize(toLog),
      timeouts,
    };
  } finally {
    await source.stop();
  }
}
