// The real `meshgate agent` process in cluster mode against the test API
// server, on a fake node (test/helpers/fakeNode.ts). Killed by its PID only.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { FakeNode } from './fakeNode.js';
import type { KubeObject } from './kubeApiServer.js';
import { REPO_ROOT } from './sandbox.js';

export const MESHGATE = path.join(REPO_ROOT, 'bin/meshgate.js');

export interface AgentProcess {
  readonly child: ChildProcess;
  log(): string;
  port(): number;
  readonly exited: Promise<number | null>;
  metrics(): Promise<string>;
}

/** `extra`: more agent flags (`--config-map mesh/meshgate-config`). */
export function startClusterAgent(node: FakeNode, kubeconfig: string, extra: readonly string[] = []): AgentProcess {
  let log = '';
  const child = spawn(
    process.execPath,
    [
      MESHGATE,
      'agent',
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      'node-a',
      '--cgroup-root',
      node.kubepods,
      '--pin-dir',
      node.sb.pinDir,
      '--listen',
      '127.0.0.1:0',
      '--debounce-ms',
      '5',
      '--informer-backoff-max-ms',
      '500',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = () => Number(/"port":(\d+)/.exec(log)?.[1] ?? 0);
  return {
    child,
    log: () => log,
    port,
    exited,
    metrics: async () => (await fetch(`http://127.0.0.1:${port()}/metrics`)).text(),
  };
}

/** Kills the agent (by its PID) and waits for it to exit; nothing when it was never started. */
export async function killClusterAgent(agent: AgentProcess | null): Promise<void> {
  if (!agent) return;
  agent.child.kill('SIGKILL');
  await agent.exited;
}

export const osmConfig = (data: Record<string, string>): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'osm-config', namespace: 'osm-system' },
    data,
  }) as unknown as KubeObject;

export const allowlistConfigMap = (namespace: string, name: string, yaml: string): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { 'meshgate.io/egress-allowlist': 'true' } },
    data: { egress: yaml },
  }) as unknown as KubeObject;
