// What answering costs (bpf/reply.bpf.h): per datagram, from the kernel's own
// bpf_stats, for a UDP stream from a client in another netns (behind a veth)
// into a UDP server of a pod, and for the server's answers to that client,
// which is outside the pod's allowlist.
//
//   node dist/bench/replies.js [--datagrams N]   (root; prints a table)
//
// Not part of `npm run bench`: a focused measurement of one feature.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FAR, createFarSidePod, type FarSidePod } from '../test/helpers/farSide.js';
import { allow, basePolicy, group, mesh } from '../test/helpers/kernelFixture.js';
import { SOCKPROBE } from '../test/helpers/sandbox.js';
import { STREAMER } from './throughput.js';

const PORT = 5310;

interface Row {
  readonly what: string;
  readonly program: string;
  /** runs during the stream: the answering server answers what it keeps up with */
  readonly runs: number;
  readonly nsPerRun: number;
}

type Stats = Map<string, { ns: number; runs: number }>;

function programStats(cgroup: string): Stats {
  const json = <T>(args: string[]): T =>
    JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T;
  return new Map(
    json<Array<{ id: number }>>(['cgroup', 'show', cgroup]).map(({ id }) => {
      const p = json<{ name: string; run_time_ns?: number; run_cnt?: number }>(['prog', 'show', 'id', String(id)]);
      return [p.name, { ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 }];
    }),
  );
}

function untilLine(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start`)), 5000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}`)));
  });
}

async function measure(pod: FarSidePod, what: string, server: string[], datagrams: number): Promise<Row[]> {
  // server: the command line of the pod's UDP server, which prints a line once it listens
  const child = spawn(server[0]!, server.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await untilLine(child, what);
    const before = programStats(pod.sb.cgroup);
    execFileSync(
      'ip',
      ['netns', 'exec', pod.farNetns, STREAMER, 'send', 'udp', FAR.podAddr4, String(PORT), '64', String(datagrams)],
      { encoding: 'utf8', timeout: 60_000 },
    );
    await new Promise((r) => setTimeout(r, 300)); // answers still in flight
    const rows: Row[] = [];
    for (const [program, after] of programStats(pod.sb.cgroup)) {
      const b = before.get(program)!;
      const runs = after.runs - b.runs;
      if (runs < 100) continue; // once per stream (connect4): not a per-datagram cost
      rows.push({ what, program, runs, nsPerRun: (after.ns - b.ns) / runs });
    }
    return rows;
  } finally {
    child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { datagrams: { type: 'string', default: '20000' } } });
  const datagrams = Number(values.datagrams);
  const pod = await createFarSidePod('replybench');
  const previous = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const policy = basePolicy({
    groups: [mesh('10.0.0.0/8'), group('allow:shop', [allow('shop', `${FAR.allowed4}/32`, 53, 'udp')])],
  });
  const sink = ['sink', 'udp', String(PORT)];
  const inPod = (cmd: string, args: string[]) => [cmd, '--cgroup', pod.app, '--netns', pod.sb.netnsPath, ...args];
  const answering = inPod(SOCKPROBE, ['listen', '--family', '4', '--proto', 'udp', '--addr', '0.0.0.0']);
  answering.push('--port', String(PORT), '--banner', 'answer');
  const rows: Row[] = [];
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  try {
    pod.apply(policy);
    rows.push(...(await measure(pod, 'into an enforced pod (one client)', inPod(STREAMER, sink), datagrams)));
    rows.push(...(await measure(pod, 'answered by an enforced pod', answering, datagrams)));
    pod.apply(policy, pod.cgroups('unenforced'));
    rows.push(...(await measure(pod, 'into a pod not enforced', inPod(STREAMER, sink), datagrams)));
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', previous);
    pod.close();
  }
  console.log(`UDP replies: ${datagrams} datagrams of 64 bytes per row, bpf_stats (kernel.bpf_stats_enabled)`);
  console.log(`${'stream'.padEnd(36)} ${'program'.padEnd(16)} ${'runs'.padStart(8)} ${'ns/run'.padStart(7)}`);
  for (const r of rows)
    console.log(
      `${r.what.padEnd(36)} ${r.program.padEnd(16)} ${String(r.runs).padStart(8)} ${r.nsPerRun.toFixed(0).padStart(7)}`,
    );
  console.log('rerun: node dist/bench/replies.js [--datagrams N] (root)');
}

await main();
