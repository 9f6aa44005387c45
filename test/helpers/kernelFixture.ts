// One pod in a sandbox: app and proxy container cgroups, listeners standing in
// for the sidecar and for real destinations, and an open Datapath.
import type { ChildProcess } from 'node:child_process';
import { Datapath } from '../../src/datapath/datapath.js';
import type { DesiredCgroup, DesiredPolicy, DesiredState, DesiredTrieEntry } from '../../src/datapath/desired.js';
import { cgroupId, cgroupLevel } from '../../src/node/cgroup.js';
import { sockprobeFlags } from '../../src/node/sockprobe.js';
import { createSandbox, listen, probe, type ProbeResult, type Sandbox } from './sandbox.js';

export const PROXY_PORT = 15001;
/** Addresses added to the sandbox's loopback, so passed connects reach a listener. */
export const V4_HOSTS = ['203.0.113.10', '203.0.113.20', '198.51.100.7', '10.1.2.3', '192.0.2.1'];
export const V6_HOSTS = ['2001:db8::10', '2001:db8::20', 'fd00::5'];
export const SERVICE_PORTS = [80, 443, 8080];

export function basePolicy(overrides: Partial<DesiredPolicy> = {}): DesiredPolicy {
  return {
    egress: false,
    proxyPort: PROXY_PORT,
    proxyUid: 1500,
    blockedAction: 'deny',
    unknownPodPolicy: 'pass',
    eventVerdicts: ['deny'],
    excludedPorts: [],
    groups: [],
    ...overrides,
  };
}

export const group = (id: string, entries: DesiredTrieEntry[]) => ({ id, entries });
export const mesh = (...cidrs: string[]) =>
  group(
    'mesh',
    cidrs.map((cidr) => ({ table: 'mesh' as const, cidr })),
  );
export const allow = (
  namespace: string,
  cidr: string,
  port: number,
  proto: 'tcp' | 'udp' = 'tcp',
  label = `${namespace || 'global'}/entry`,
) => ({ table: 'allow' as const, cidr, port, proto, namespace, label });

export interface PodFixture {
  readonly sb: Sandbox;
  readonly dp: Datapath;
  readonly app: string;
  readonly proxy: string;
  /** The pod's cgroups as DesiredCgroup entries (namespace "shop"). */
  cgroups(opts?: { proxyCgroupKnown?: boolean; podKind?: DesiredCgroup['kind'] }): DesiredCgroup[];
  apply(policy: DesiredPolicy, cgroups?: DesiredCgroup[]): void;
  /** TCP/UDP client in the app container (or `cgroup`), returning what the kernel did. */
  connect(addr: string, port: number, opts?: ConnectOptions): Verdict;
  close(): void;
}

export interface ConnectOptions {
  proto?: 'tcp' | 'udp';
  family?: '4' | '6' | 'mapped';
  cgroup?: string;
  uid?: number;
  extra?: string[];
  sendto?: boolean;
}

/** What a client observed: 'denied' (EPERM), 'redirect' (the sidecar answered) or 'pass' (anything else answered or refused). */
export interface Verdict {
  readonly verdict: 'deny' | 'redirect' | 'pass';
  readonly origdst: string | null;
  readonly raw: ProbeResult;
}

export function classify(r: ProbeResult): Verdict {
  if (!r.ok && r.error === 'EPERM') return { verdict: 'deny', origdst: null, raw: r };
  const reply = r.reply
    ? (JSON.parse(r.reply.trim().split('\n')[0]!) as { server: string; origdst: string | null })
    : null;
  if (reply?.server === 'proxy') return { verdict: 'redirect', origdst: reply.origdst, raw: r };
  return { verdict: 'pass', origdst: null, raw: r };
}

export async function createPod(label: string): Promise<PodFixture> {
  const sb = createSandbox(label);
  const listeners: ChildProcess[] = [];
  let dp: Datapath | null = null;
  try {
    for (const a of V4_HOSTS) sb.inNetns('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
    for (const a of V6_HOSTS) sb.inNetns('ip', ['addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
    sb.inNetns('sysctl', ['-q', '-w', 'net.ipv4.tcp_fastopen=3']);
    const app = sb.child('app');
    const proxy = sb.child('proxy');
    // The sidecar listens dual-stack on the proxy port, in its own cgroup; so do the services.
    const dualStack = (proto: 'tcp' | 'udp', port: number, banner: string) =>
      listen(sb, sockprobeFlags({ family: 6, dualStack: true, proto, addr: '::', port, banner }), { cgroup: proxy });
    listeners.push(await dualStack('tcp', PROXY_PORT, 'proxy'));
    for (const port of SERVICE_PORTS) {
      listeners.push(await dualStack('tcp', port, `service:${port}`));
      listeners.push(await dualStack('udp', port, `udp:${port}`));
    }
    dp = Datapath.open({ pinDir: sb.pinDir, cgroupWalkStart: cgroupLevel(sb.cgroup) });
    const datapath = dp;
    let attached = false;
    const fixture: PodFixture = {
      sb,
      dp: datapath,
      app,
      proxy,
      cgroups({ proxyCgroupKnown = true, podKind = 'pod' } = {}) {
        const out: DesiredCgroup[] = [
          { cgroupId: cgroupId(sb.cgroup), kind: podKind, namespace: 'shop', label: 'shop/web', proxyCgroupKnown },
        ];
        if (proxyCgroupKnown)
          out.push({
            cgroupId: cgroupId(proxy),
            kind: 'proxy',
            namespace: 'shop',
            label: 'shop/web envoy',
            proxyCgroupKnown,
          });
        return out;
      },
      apply(policy, cgroups = fixture.cgroups()) {
        const state: DesiredState = { policy, cgroups };
        datapath.apply(state);
        if (!attached) {
          datapath.attach(sb.cgroup);
          attached = true;
        }
      },
      connect(addr, port, opts = {}) {
        const family = opts.family ?? (addr.includes(':') ? '6' : '4');
        const args =
          opts.sendto || opts.proto === 'udp'
            ? [
                opts.sendto ? 'sendto' : 'connect',
                '--family',
                family,
                '--addr',
                addr,
                '--port',
                String(port),
                ...(opts.sendto ? ['--data', 'ping'] : ['--proto', 'udp', '--send', 'ping']),
                '--read',
                '--timeout-ms',
                '1000',
              ]
            : ['connect', '--family', family, '--proto', 'tcp', '--addr', addr, '--port', String(port), '--read'];
        return classify(probe(sb, [...args, ...(opts.extra ?? [])], { cgroup: opts.cgroup ?? app, uid: opts.uid }));
      },
      close() {
        datapath.close();
        for (const l of listeners) l.kill('SIGKILL');
        sb.cleanup();
      },
    };
    return fixture;
  } catch (err) {
    dp?.close();
    for (const l of listeners) l.kill('SIGKILL');
    sb.cleanup();
    throw err;
  }
}
