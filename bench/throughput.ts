// Throughput (issue 11, SPEC §7 "Packets"): what the packet programs cost a
// pod's traffic. One bulk TCP stream and one small-packet UDP stream, from a
// pod netns to an outside netns over a veth, sent from a cgroup with no hook
// and from a cgroup under meshgate's hooks (the backstop and the DNS reader
// included), side by side in one run: rounds in a new shuffled order each, so
// machine noise hits both alike. With --bpf-stats, the per-packet cost of each
// program from the kernel's own counters.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Datapath } from '../src/datapath/datapath.js';
import { cgroupId, cgroupLevel } from '../src/node/cgroup.js';
import { REPO_ROOT, type BenchNetns, type BenchSandbox } from './sandbox.js';
import { seededRandom, shuffled, summarize, type Summary } from './stats.js';

export const STREAMER = path.join(REPO_ROOT, 'build/streamer');
const FAR_HOST = '198.18.1.10';
const TCP_PORT = 5201;
const UDP_PORT = 5202;

export interface ThroughputOptions {
  readonly rounds: number;
  /** bytes of the bulk TCP stream */
  readonly tcpBytes: number;
  /** datagrams of the UDP stream, each `udpSize` bytes */
  readonly udpPackets: number;
  readonly udpSize: number;
  readonly senderCpu: number | null;
  readonly sinkCpu: number | null;
  readonly bpfStats: boolean;
  readonly log: (line: string) => void;
}

export type StreamKind = 'tcp' | 'udp';

export interface ThroughputRow {
  readonly stream: StreamKind;
  readonly setting: 'baseline' | 'meshgate';
  /** TCP: Gbit/s; UDP: thousands of datagrams per second */
  readonly rate: Summary;
  readonly unit: 'Gbit/s' | 'kpps';
}

export interface PacketCost {
  readonly stream: StreamKind;
  readonly program: string;
  /** program runs per datagram (UDP) or per 64 KiB written (TCP: GSO segments are one run each) */
  readonly runsPerUnit: number;
  readonly nsPerRun: number;
}

export interface ThroughputResult {
  readonly tcpBytes: number;
  readonly udpPackets: number;
  readonly udpSize: number;
  readonly rows: readonly ThroughputRow[];
  readonly packetCosts?: readonly PacketCost[];
}

interface Sent {
  readonly bytes: number;
  readonly packets: number;
  readonly ns: number;
}

function veth(sb: BenchSandbox, pod: BenchNetns, far: BenchNetns): void {
  const tag = `${process.pid % 100000}`;
  const podIf = `mgbt${tag}p`;
  const farIf = `mgbt${tag}f`;
  execFileSync('ip', [
    'link',
    'add',
    podIf,
    'netns',
    pod.name,
    'type',
    'veth',
    'peer',
    'name',
    farIf,
    'netns',
    far.name,
  ]);
  pod.exec('ip', ['addr', 'add', '192.168.78.1/30', 'dev', podIf]);
  pod.exec('ip', ['link', 'set', podIf, 'up']);
  pod.exec('ip', ['route', 'add', `${FAR_HOST}/32`, 'via', '192.168.78.2']);
  far.exec('ip', ['addr', 'add', '192.168.78.2/30', 'dev', farIf]);
  far.exec('ip', ['addr', 'add', `${FAR_HOST}/32`, 'dev', 'lo']);
  far.exec('ip', ['link', 'set', farIf, 'up']);
  void sb;
}

async function startSink(sb: BenchSandbox, far: BenchNetns, kind: StreamKind, cpu: number | null): Promise<void> {
  const child = sb.spawn(STREAMER, [
    '--netns',
    far.path,
    ...(cpu === null ? [] : ['--cpu', String(cpu)]),
    'sink',
    kind,
    String(kind === 'tcp' ? TCP_PORT : UDP_PORT),
  ]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} sink did not start`)), 5000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} sink exited ${code}`));
    });
  });
}

function send(pod: BenchNetns, cgroup: string, kind: StreamKind, o: ThroughputOptions): Promise<Sent> {
  const args = [
    '--netns',
    pod.path,
    '--cgroup',
    cgroup,
    ...(o.senderCpu === null ? [] : ['--cpu', String(o.senderCpu)]),
    'send',
    kind,
    FAR_HOST,
  ];
  if (kind === 'tcp') args.push(String(TCP_PORT), String(o.tcpBytes));
  else args.push(String(UDP_PORT), String(o.udpSize), String(o.udpPackets));
  return new Promise((resolve, reject) => {
    const child = spawn(STREAMER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim()) as Sent)
        : reject(new Error(`streamer send ${kind} exited ${code}: ${err}`)),
    );
  });
}

const rateOf = (kind: StreamKind, s: Sent): number =>
  kind === 'tcp' ? (s.bytes * 8) / s.ns : (s.packets / s.ns) * 1e6;

export async function benchThroughput(sb: BenchSandbox, o: ThroughputOptions): Promise<ThroughputResult> {
  const pod = sb.netns('tp-pod');
  const far = sb.netns('tp-far');
  veth(sb, pod, far);
  await startSink(sb, far, 'tcp', o.sinkCpu);
  await startSink(sb, far, 'udp', o.sinkCpu);

  const baseline = sb.cgroup('tp-nohook');
  const meshPod = sb.cgroup('tp-pod');
  const app = sb.childCgroup(meshPod, 'app');
  const dp = Datapath.open({ pinDir: sb.pinDir('tp'), cgroupWalkStart: cgroupLevel(meshPod) });
  sb.onCleanup(() => dp.close());
  // An enforced pod whose allowlist names the far host: the streams pass, as a pod's real traffic would.
  dp.apply({
    policy: {
      egress: false,
      proxyPort: 15001,
      proxyUid: 1500,
      blockedAction: 'deny',
      unknownPodPolicy: 'pass',
      eventVerdicts: ['deny'],
      excludedPorts: [],
      groups: [
        { id: 'mesh', entries: [{ table: 'mesh', cidr: '10.0.0.0/8' }] },
        {
          id: 'allow:bench',
          entries: [
            {
              table: 'allow',
              cidr: `${FAR_HOST}/32`,
              port: TCP_PORT,
              proto: 'tcp',
              namespace: 'bench',
              label: 'bench/far-tcp',
            },
            {
              table: 'allow',
              cidr: `${FAR_HOST}/32`,
              port: UDP_PORT,
              proto: 'udp',
              namespace: 'bench',
              label: 'bench/far-udp',
            },
          ],
        },
      ],
    },
    cgroups: [
      {
        cgroupId: cgroupId(meshPod),
        kind: 'pod',
        namespace: 'bench',
        label: 'bench/streamer',
        proxyCgroupKnown: false,
      },
    ],
  });
  dp.attach(meshPod);

  const settings = [
    { setting: 'baseline' as const, cgroup: baseline },
    { setting: 'meshgate' as const, cgroup: app },
  ];
  const samples = new Map<string, number[]>();
  const random = seededRandom(11);
  for (const kind of ['tcp', 'udp'] as const) {
    await send(pod, baseline, kind, o); // warm-up: routes, neighbours, the sink's buffers
    for (let r = 0; r < o.rounds; r++) {
      for (const s of shuffled(settings, random)) {
        const rate = rateOf(kind, await send(pod, s.cgroup, kind, o));
        const key = `${kind}/${s.setting}`;
        samples.set(key, [...(samples.get(key) ?? []), rate]);
      }
    }
  }
  const rows: ThroughputRow[] = [];
  for (const kind of ['tcp', 'udp'] as const) {
    for (const s of settings) {
      const rate = summarize(samples.get(`${kind}/${s.setting}`) ?? []);
      const unit = kind === 'tcp' ? 'Gbit/s' : 'kpps';
      rows.push({ stream: kind, setting: s.setting, rate, unit });
      o.log(`throughput ${kind} ${s.setting}: median ${rate.median.toFixed(2)} ${unit}`);
    }
  }
  return {
    tcpBytes: o.tcpBytes,
    udpPackets: o.udpPackets,
    udpSize: o.udpSize,
    rows,
    packetCosts: o.bpfStats ? await packetCosts(meshPod, pod, app, o) : undefined,
  };
}

/** bpf_stats of every program on the pod cgroup during one stream of each kind. */
async function packetCosts(meshPod: string, pod: BenchNetns, app: string, o: ThroughputOptions): Promise<PacketCost[]> {
  const json = <T>(args: string[]): T =>
    JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T;
  const ids = json<Array<{ id: number }>>(['cgroup', 'show', meshPod]).map((p) => p.id);
  const read = () =>
    new Map(
      ids.map((id) => {
        const p = json<{ name: string; run_time_ns?: number; run_cnt?: number }>(['prog', 'show', 'id', String(id)]);
        return [p.name, { ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 }];
      }),
    );
  const previous = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const costs: PacketCost[] = [];
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  try {
    for (const kind of ['tcp', 'udp'] as const) {
      const before = read();
      const sent = await send(pod, app, kind, o);
      const units = kind === 'tcp' ? sent.bytes / 65536 : sent.packets;
      for (const [program, after] of read()) {
        const runs = after.runs - before.get(program)!.runs;
        if (runs / units < 0.01) continue; // once per stream (connect4): not a per-packet cost
        costs.push({
          stream: kind,
          program,
          runsPerUnit: runs / units,
          nsPerRun: (after.ns - before.get(program)!.ns) / runs,
        });
      }
    }
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', previous);
  }
  for (const c of costs)
    o.log(
      `throughput ${c.stream}: ${c.program} ${c.runsPerUnit.toFixed(2)} runs per ${c.stream === 'tcp' ? '64 KiB' : 'datagram'}, ${c.nsPerRun.toFixed(0)} ns per run`,
    );
  return costs;
}
