// The real `meshgate agent` in standalone mode for one test pod: what the agent, hostile-input and
// hostname tests start. Killed by its PID only.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { PodFixture } from './kernelFixture.js';
import { REPO_ROOT } from './sandbox.js';

export interface DnsAgentOptions {
  readonly pod: PodFixture;
  readonly configFile: string;
  readonly allowlistFile: string;
  /** The test resolver on 127.0.0.1 (--dns-server). */
  readonly dnsPort: number;
  readonly ttlCeilingS: number;
  readonly graceS: number;
}

/**
 * Starts `meshgate agent` in standalone mode for `pod` in namespace "shop" (sidecar cgroup, pin dir,
 * an ephemeral metrics port), with `extraArgs` after those; everything it prints goes to `onOutput`.
 * `nodeArgs` go to node itself, before the script.
 */
export function startStandaloneAgent(
  pod: PodFixture,
  configFile: string,
  extraArgs: readonly string[],
  onOutput: (text: string) => void,
  nodeArgs: readonly string[] = [],
): ChildProcess {
  const agent = spawn(
    process.execPath,
    [
      ...nodeArgs,
      path.join(REPO_ROOT, 'bin/meshgate.js'),
      'agent',
      '--config-file',
      configFile,
      '--cgroup',
      pod.sb.cgroup,
      '--proxy-cgroup',
      pod.proxy,
      '--pin-dir',
      pod.sb.pinDir,
      '--namespace',
      'shop',
      '--listen',
      '127.0.0.1:0',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  agent.stdout!.on('data', (d: Buffer) => onOutput(d.toString()));
  agent.stderr!.on('data', (d: Buffer) => onOutput(d.toString()));
  return agent;
}

/** The standalone agent with hostname learning from the test resolver. */
export function startDnsAgent(o: DnsAgentOptions, onOutput: (text: string) => void): ChildProcess {
  return startStandaloneAgent(
    o.pod,
    o.configFile,
    [
      '--allowlist-file',
      o.allowlistFile,
      '--dns-server',
      `127.0.0.1:${o.dnsPort}`,
      '--dns-ttl-floor',
      '0.1',
      '--dns-ttl-ceiling',
      String(o.ttlCeilingS),
      '--dns-grace',
      String(o.graceS),
    ],
    onOutput,
  );
}

/** SIGKILL (by PID) and wait for the exit; nothing when the child was never started or has exited. */
export async function killAndWait(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
