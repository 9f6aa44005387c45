// A pod with a far side: the pod's netns (a sandbox) reaches a second netns
// through a veth pair, and everything the tests call "outside" lives there.
// A sniffer (AF_PACKET on the far end of the veth) counts the frames that carry
// a given address, so "nothing addressed to the denied host left the pod" is
// checked where it matters: on the wire, not from a syscall's return code.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Datapath } from '../../src/datapath/datapath.js';
import { netnsCookie } from '../../native/libbpf.js';
import type { DesiredCgroup, DesiredPolicy } from '../../src/datapath/desired.js';
import { cgroupId, cgroupLevel } from '../../src/node/cgroup.js';
import { sockprobeFlags } from '../../src/node/sockprobe.js';
import { REPO_ROOT, SANDBOX_PREFIX, SOCKPROBE, createSandbox, type Sandbox } from './sandbox.js';

export const SIDEDOOR = path.join(REPO_ROOT, 'build/sidedoor');

/** Hosts on the far side's loopback: routed through the veth, never on-link (no ARP names them). */
export const FAR = Object.freeze({
  allowed4: '198.18.0.10',
  denied4: '198.18.0.66',
  other4: '198.18.0.77',
  allowed6: '2001:db8:f::10',
  denied6: '2001:db8:f::66',
  podAddr4: '192.168.77.1',
  podAddr6: 'fd77::1',
});

export interface SideDoorResult {
  readonly ok: boolean;
  readonly errno: number;
  readonly stage: string;
  readonly sent: number;
}

export interface Capture {
  /** Stops the sniffer and returns, per watched address, the frames that carried it. */
  stop(): Promise<Record<string, number>>;
}

export interface FarSidePod {
  readonly sb: Sandbox;
  readonly dp: Datapath;
  readonly app: string;
  readonly proxy: string;
  readonly farNetns: string;
  readonly farIface: string;
  cgroups(kind?: DesiredCgroup['kind']): DesiredCgroup[];
  apply(policy: DesiredPolicy, cgroups?: DesiredCgroup[]): void;
  /** Runs build/sidedoor MODE ARGS in the pod (app container unless `cgroup`). */
  attempt(args: string[], opts?: { cgroup?: string }): SideDoorResult;
  /** Starts a process in the far netns, stopped (by PID) at close(). */
  startFar(cmd: string, args: string[]): ChildProcess;
  /** A dual-stack sockprobe listener on [::]:port in the far netns (banner far:PORT), resolved once it listens. */
  listenFar(proto: 'tcp' | 'udp', port: number): Promise<ChildProcess>;
  /** Starts a sniffer on the far end of the veth, resolved once it listens. */
  capture(addresses: string[]): Promise<Capture>;
  inFar(cmd: string, args: string[]): string;
  close(): void;
}

let counter = 0;

function waitForLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start`)), 5000);
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(buf.slice(0, nl));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited ${code}`));
    });
  });
}

export interface FarSideOptions {
  /** Which netns the datapath takes as the node's (mg_state.host_netns_cookie): the pod's, the far side's, or none. */
  readonly hostNetns?: 'pod' | 'far';
}

export async function createFarSidePod(label: string, opts: FarSideOptions = {}): Promise<FarSidePod> {
  const sb = createSandbox(label);
  const n = ++counter;
  const farNetns = `${SANDBOX_PREFIX}-far-${process.pid}-${n}`;
  const tag = `${process.pid % 100000}${n}`;
  const podIface = `mgv${tag}p`;
  const farIface = `mgv${tag}f`;
  const started: ChildProcess[] = [];
  let dp: Datapath | null = null;
  const far = (cmd: string, args: string[]): string =>
    execFileSync('ip', ['netns', 'exec', farNetns, cmd, ...args], { encoding: 'utf8' });
  const cleanupFar = (): void => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', farNetns]);
  };
  try {
    execFileSync('ip', ['netns', 'add', farNetns]);
    far('ip', ['link', 'set', 'lo', 'up']);
    execFileSync('ip', [
      'link',
      'add',
      podIface,
      'netns',
      sb.netns,
      'type',
      'veth',
      'peer',
      'name',
      farIface,
      'netns',
      farNetns,
    ]);
    sb.inNetns('ip', ['addr', 'add', `${FAR.podAddr4}/30`, 'dev', podIface]);
    sb.inNetns('ip', ['addr', 'add', `${FAR.podAddr6}/64`, 'dev', podIface, 'nodad']);
    sb.inNetns('ip', ['link', 'set', podIface, 'up']);
    sb.inNetns('ip', ['route', 'add', 'default', 'via', '192.168.77.2']);
    sb.inNetns('ip', ['-6', 'route', 'add', 'default', 'via', 'fd77::2']);
    sb.inNetns('sysctl', ['-q', '-w', 'net.ipv4.ping_group_range=0 2147483647']);
    far('ip', ['addr', 'add', '192.168.77.2/30', 'dev', farIface]);
    far('ip', ['addr', 'add', 'fd77::2/64', 'dev', farIface, 'nodad']);
    far('ip', ['link', 'set', farIface, 'up']);
    for (const a of [FAR.allowed4, FAR.denied4, FAR.other4]) far('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
    for (const a of [FAR.allowed6, FAR.denied6]) far('ip', ['addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
    const app = sb.child('app');
    const proxy = sb.child('proxy');
    const hostNetnsCookie =
      opts.hostNetns === 'pod'
        ? netnsCookie(sb.netnsPath)
        : opts.hostNetns === 'far'
          ? netnsCookie(`/run/netns/${farNetns}`)
          : undefined;
    dp = Datapath.open({ pinDir: sb.pinDir, cgroupWalkStart: cgroupLevel(sb.cgroup), hostNetnsCookie });
    const datapath = dp;
    let attached = false;
    const pod: FarSidePod = {
      sb,
      dp: datapath,
      app,
      proxy,
      farNetns,
      farIface,
      cgroups(kind = 'pod') {
        return [
          { cgroupId: cgroupId(sb.cgroup), kind, namespace: 'shop', label: 'shop/web', proxyCgroupKnown: true },
          {
            cgroupId: cgroupId(proxy),
            kind: 'proxy',
            namespace: 'shop',
            label: 'shop/web envoy',
            proxyCgroupKnown: true,
          },
        ];
      },
      apply(policy, cgroups = pod.cgroups()) {
        datapath.apply({ policy, cgroups });
        if (!attached) {
          datapath.attach(sb.cgroup);
          attached = true;
        }
      },
      attempt(args, opts = {}) {
        const r = spawnSync(SIDEDOOR, ['--cgroup', opts.cgroup ?? app, '--netns', sb.netnsPath, ...args], {
          encoding: 'utf8',
          timeout: 10_000,
        });
        if (r.status !== 0) throw new Error(`sidedoor ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
        return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as SideDoorResult;
      },
      startFar(cmd, args) {
        const child = spawn('ip', ['netns', 'exec', farNetns, cmd, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
        started.push(child);
        return child;
      },
      async listenFar(proto, port) {
        const flags = { family: 6, dualStack: true, proto, addr: '::', port, banner: `far:${port}` };
        const child = pod.startFar(SOCKPROBE, ['listen', ...sockprobeFlags(flags)]);
        await waitForLine(child, `far ${proto} listener on ${port}`);
        return child;
      },
      async capture(addresses) {
        const child = pod.startFar(SIDEDOOR, ['sniff', farIface, '20000', ...addresses]);
        let out = '';
        child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
        await waitForLine(child, 'sniffer');
        return {
          stop: () =>
            new Promise((resolve, reject) => {
              // Frames still in flight (a retransmission, a subflow) get a moment to arrive.
              setTimeout(() => {
                child.once('exit', () => {
                  const last = out.trim().split('\n').pop() ?? '';
                  try {
                    resolve((JSON.parse(last) as { counts: Record<string, number> }).counts);
                  } catch {
                    reject(new Error(`sniffer output unreadable: ${out}`));
                  }
                });
                child.kill('SIGTERM');
              }, 150);
            }),
        };
      },
      inFar: far,
      close() {
        datapath.close();
        cleanupFar();
        sb.cleanup();
      },
    };
    return pod;
  } catch (err) {
    dp?.close();
    cleanupFar();
    sb.cleanup();
    throw err;
  }
}

/** The reason side-door tests cannot run here (beyond requireRoot), or null; in CI a failure. */
export function requireSideDoorTools(): string | null {
  const reason = existsSync(SIDEDOOR) ? null : `${SIDEDOOR} is missing: run make`;
  if (reason && process.env.CI === 'true') throw new Error(`kernel tests must run in CI, but: ${reason}`);
  return reason;
}
