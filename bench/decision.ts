// Decision cost per connect(): the same C loop (bench/connectloop.c) against
// the same sink, in every setting side by side: no hook, meshgate's hooks with
// 10..100,000 trie entries, an iptables nat chain (nft and legacy) of one rule
// per CIDR, and ipset hash:net + one REDIRECT rule. Settings are measured in
// rounds, each round in a new shuffled order, so machine noise (a shared
// 2-CPU VM) hits every setting alike.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Datapath } from '../src/datapath/datapath.js';
import type { DesiredCgroup } from '../src/datapath/desired.js';
import { cgroupId, cgroupLevel } from '../src/node/cgroup.js';
import { desiredPolicy, ipsetIptablesText, ipsetRestoreText, iptablesRestoreText, meshCidrs } from './policyGen.js';
import { CONNECTLOOP, PROXY_PORT, TARGETS, type BenchNetns, type BenchSandbox } from './sandbox.js';
import { shuffled, seededRandom, summarize, type Summary } from './stats.js';

export type Mechanism = 'baseline' | 'meshgate' | 'iptables-nft' | 'iptables-legacy' | 'ipset';
export type VerdictKind = 'redirect' | 'pass' | 'deny';

export interface DecisionOptions {
  readonly meshgateSizes: readonly number[];
  readonly iptablesSizes: Readonly<Record<'iptables-nft' | 'iptables-legacy' | 'ipset', readonly number[]>>;
  readonly rounds: number;
  readonly batches: number;
  /** Wall time one batch should take; the count per batch is calibrated from it. */
  readonly batchMs: number;
  readonly loopCpu: number | null;
  readonly sinkCpu: number | null;
  /** Opt-in: briefly sets kernel.bpf_stats_enabled=1 (a global sysctl, restored) for per-program costs. */
  readonly bpfStats: boolean;
  readonly log: (line: string) => void;
}

interface Setting {
  readonly id: string;
  readonly mechanism: Mechanism;
  readonly size: number | null;
  readonly verdict: VerdictKind;
  readonly ns: BenchNetns;
  readonly cgroup: string;
  readonly target: { addr: string; port: number };
  /** meshgate only: false when the pin dir runs with --flows-max 0 (mg_flows not written). */
  readonly flows?: boolean;
  /** Checks that the connects just made got the intended verdict (kernel counters / rule counters). */
  readonly verify: (connects: number) => string | null;
  count: number;
  readonly connectMedian: number[];
  readonly connectMean: number[];
  readonly totalMean: number[];
}

export interface DecisionRow {
  readonly id: string;
  readonly mechanism: Mechanism;
  readonly size: number | null;
  readonly verdict: VerdictKind;
  /** meshgate only: false for the setting without mg_flows recording (its cost is the difference). */
  readonly flows?: boolean;
  readonly connectsPerBatch: number;
  /** over batches: the median of each batch's connect() times, ns */
  readonly connectNs: Summary;
  /** over batches: each batch's mean connect(), ns */
  readonly connectMeanNs: Summary;
  /** over batches: each batch's mean of socket() + connect() + close(), ns */
  readonly socketConnectCloseNs: Summary;
  /** against the no-hook connect to the same final destination (127.0.0.1:15001 for redirects) */
  readonly vsBaseline: number;
}

export interface ProgramCost {
  readonly setting: string;
  readonly program: string;
  readonly runsPerConnect: number;
  /** as the kernel's bpf_stats count it (its own clock reads add some ns per run) */
  readonly nsPerRun: number;
  readonly nsPerConnect: number;
}

export interface DecisionResult {
  readonly iptablesDefault: string;
  readonly rows: readonly DecisionRow[];
  readonly programCosts?: readonly ProgramCost[];
}

interface LoopOutput {
  count: number;
  connect_median_ns: number[];
  connect_mean_ns: number[];
  total_mean_ns: number[];
  errors: Record<string, number>;
  ok: number;
}

function runLoop(s: Setting, count: number, batches: number, cpu: number | null): Promise<LoopOutput> {
  const args = [
    '--netns',
    s.ns.path,
    '--cgroup',
    s.cgroup,
    ...(cpu === null ? [] : ['--cpu', String(cpu)]),
    'loop',
    '--addr',
    s.target.addr,
    '--port',
    String(s.target.port),
    '--count',
    String(count),
    '--batches',
    String(batches),
    '--timeout-ms',
    '2000',
  ];
  return new Promise((resolve, reject) => {
    execFile(CONNECTLOOP, args, { timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`connectloop for ${s.id} failed: ${err.message} ${stderr}`));
      const out = JSON.parse(stdout) as LoopOutput;
      const wanted = s.verdict === 'deny' ? { EPERM: count * batches } : {};
      if (JSON.stringify(out.errors) !== JSON.stringify(wanted)) {
        return reject(
          new Error(
            `${s.id}: expected errors ${JSON.stringify(wanted)}, got ${JSON.stringify(out.errors)} (ok ${out.ok})`,
          ),
        );
      }
      resolve(out);
    });
  });
}

/** Which backend `iptables` is on this host: "nf_tables" or "legacy". */
export function iptablesVariant(): string {
  try {
    return /\((\w+)\)/.exec(execFileSync('iptables', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    return 'absent';
  }
}

function hasCommand(cmd: string): boolean {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((dir) => existsSync(`${dir}/${cmd}`));
}

const newSetting = (fields: Omit<Setting, 'count' | 'connectMedian' | 'connectMean' | 'totalMean'>): Setting => ({
  ...fields,
  count: 0,
  connectMedian: [],
  connectMean: [],
  totalMean: [],
});

/** Sets up every setting; everything it creates is registered with the sandbox for cleanup. */
async function setUp(sb: BenchSandbox, o: DecisionOptions): Promise<Setting[]> {
  const settings: Setting[] = [];
  const plainCgroup = sb.cgroup('plain');
  const plain = sb.netns('plain');
  await sb.sink(plain, [TARGETS.pass.port, PROXY_PORT], o.sinkCpu);
  // Two baselines, one per final destination: a redirected connect ends at the
  // proxy port on 127.0.0.1, a passed one at its own address.
  settings.push(
    newSetting({
      id: 'baseline-direct',
      mechanism: 'baseline',
      size: null,
      verdict: 'pass',
      ns: plain,
      cgroup: plainCgroup,
      target: TARGETS.pass,
      verify: () => null,
    }),
  );
  settings.push(
    newSetting({
      id: 'baseline-proxy',
      mechanism: 'baseline',
      size: null,
      verdict: 'redirect',
      ns: plain,
      cgroup: plainCgroup,
      target: { addr: '127.0.0.1', port: PROXY_PORT },
      verify: () => null,
    }),
  );

  // The smallest size once more with mg_flows off (--flows-max 0): the flows LRU's cost is the difference.
  const flowSettings = o.meshgateSizes.map((size) => ({ size, flows: true }));
  if (o.meshgateSizes.length) flowSettings.push({ size: Math.min(...o.meshgateSizes), flows: false });
  for (const { size, flows } of flowSettings) {
    const tag = flows ? `${size}` : `${size}-noflows`;
    const pod = sb.cgroup(`mg${tag}`);
    const app = sb.childCgroup(pod, 'app');
    const pinDir = sb.pinDir(`mg${tag}`);
    const dp = Datapath.open({ pinDir, cgroupWalkStart: cgroupLevel(pod), flowsMax: flows ? undefined : 0 });
    sb.onCleanup(() => dp.close());
    const cgroups: DesiredCgroup[] = [
      { cgroupId: cgroupId(pod), kind: 'pod', namespace: 'bench', label: 'bench/pod', proxyCgroupKnown: false },
    ];
    const t0 = performance.now();
    const applied = dp.apply(desiredPolicy(size, cgroups));
    dp.attach(pod);
    o.log(
      `meshgate ${size} entries${flows ? '' : ', flows off'}: applied ${applied.trieUpserts} trie entries in ${(performance.now() - t0).toFixed(0)} ms`,
    );
    const seen = new Map<string, bigint>();
    for (const verdict of flows ? (['redirect', 'pass', 'deny'] as const) : (['redirect', 'pass'] as const)) {
      const verify = (connects: number): string | null => {
        const count = dp
          .readCounters()
          .filter((c) => c.verdict === verdict)
          .reduce((n, c) => n + c.count, 0n);
        const before = seen.get(verdict) ?? 0n;
        seen.set(verdict, count);
        return count - before >= BigInt(connects)
          ? null
          : `kernel counted ${count - before} ${verdict} verdicts for ${connects} connects`;
      };
      settings.push(
        newSetting({
          id: `meshgate-${tag}-${verdict}`,
          mechanism: 'meshgate',
          size,
          verdict,
          flows,
          ns: plain,
          cgroup: app,
          target: TARGETS[verdict],
          verify,
        }),
      );
    }
  }

  for (const mechanism of ['iptables-nft', 'iptables-legacy', 'ipset'] as const) {
    const restore = mechanism === 'iptables-legacy' ? 'iptables-legacy-restore' : 'iptables-nft-restore';
    const cli = mechanism === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft';
    if (!hasCommand(restore) || (mechanism === 'ipset' && !hasCommand('ipset'))) {
      o.log(`${mechanism}: ${restore}${mechanism === 'ipset' ? ' or ipset' : ''} not installed, skipped`);
      continue;
    }
    for (const size of o.iptablesSizes[mechanism]) {
      const ns = sb.netns(`${mechanism.replace('iptables-', '')}${size}`);
      const cidrs = meshCidrs(size);
      const t0 = performance.now();
      if (mechanism === 'ipset') {
        ns.exec('ipset', ['restore'], ipsetRestoreText('mgbench_mesh', cidrs));
        ns.exec(restore, ['--noflush'], ipsetIptablesText('mgbench_mesh'));
      } else {
        ns.exec(restore, [], iptablesRestoreText(cidrs));
      }
      o.log(`${mechanism} ${size} CIDRs loaded in ${(performance.now() - t0).toFixed(0)} ms`);
      // RST-closed connections would otherwise sit in conntrack for 10 s each and fill the table.
      ns.exec('sysctl', ['-q', '-w', 'net.netfilter.nf_conntrack_tcp_timeout_close=1']);
      await sb.sink(ns, [TARGETS.pass.port, PROXY_PORT], o.sinkCpu);
      const chain = mechanism === 'ipset' ? 'OUTPUT' : 'MESH_OUTPUT';
      // The redirect target matches the chain's last rule; passed traffic matches none.
      const lastRulePackets = (): bigint =>
        BigInt(
          ns.exec(cli, ['-t', 'nat', '-L', chain, '-v', '-x', '-n']).trim().split('\n').pop()!.trim().split(/\s+/)[0]!,
        );
      let seenPackets = 0n;
      const verifyRedirect = (connects: number): string | null => {
        const now = lastRulePackets();
        const delta = now - seenPackets;
        seenPackets = now;
        return delta >= BigInt(connects) ? null : `the REDIRECT rule counted ${delta} packets for ${connects} connects`;
      };
      settings.push(
        newSetting({
          id: `${mechanism}-${size}-redirect`,
          mechanism,
          size,
          verdict: 'redirect',
          ns,
          cgroup: plainCgroup,
          target: TARGETS.redirect,
          verify: verifyRedirect,
        }),
      );
      settings.push(
        newSetting({
          id: `${mechanism}-${size}-pass`,
          mechanism,
          size,
          verdict: 'pass',
          ns,
          cgroup: plainCgroup,
          target: TARGETS.pass,
          verify: () => null,
        }),
      );
    }
  }
  return settings;
}

export async function benchDecision(sb: BenchSandbox, o: DecisionOptions): Promise<DecisionResult> {
  const settings = await setUp(sb, o);
  // Calibrate: a short run per setting sizes its batches to about batchMs each,
  // and checks that the kernel (or netfilter) gave the intended verdict.
  for (const s of settings) {
    s.verify(0);
    const probeCount = 300;
    const out = await runLoop(s, probeCount, 1, o.loopCpu);
    const problem = s.verify(probeCount);
    if (problem) throw new Error(`${s.id}: wrong verdict: ${problem}`);
    const perConnect = Math.max(out.total_mean_ns[0]!, 1000);
    s.count = Math.min(5000, Math.max(100, Math.round((o.batchMs * 1e6) / perConnect)));
  }
  const random = seededRandom(0x62656e63);
  for (let round = 0; round < o.rounds; round++) {
    const started = performance.now();
    for (const s of shuffled(settings, random)) {
      // One extra batch first, discarded: caches and the sink settle.
      const out = await runLoop(s, s.count, o.batches + 1, o.loopCpu);
      s.connectMedian.push(...out.connect_median_ns.slice(1));
      s.connectMean.push(...out.connect_mean_ns.slice(1));
      s.totalMean.push(...out.total_mean_ns.slice(1));
    }
    o.log(`decision round ${round + 1}/${o.rounds}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const direct = summarize(settings.find((s) => s.id === 'baseline-direct')!.connectMedian).median;
  const proxy = summarize(settings.find((s) => s.id === 'baseline-proxy')!.connectMedian).median;
  return {
    iptablesDefault: iptablesVariant(),
    programCosts: o.bpfStats ? await programCosts(settings, o) : undefined,
    rows: settings.map((s) => {
      const connectNs = summarize(s.connectMedian);
      return {
        id: s.id,
        mechanism: s.mechanism,
        size: s.size,
        verdict: s.verdict,
        ...(s.flows === undefined ? {} : { flows: s.flows }),
        connectsPerBatch: s.count,
        connectNs,
        connectMeanNs: summarize(s.connectMean),
        socketConnectCloseNs: summarize(s.totalMean),
        vsBaseline: connectNs.median / (s.verdict === 'redirect' ? proxy : direct),
      };
    }),
  };
}

/** Per-program run counts and times (bpf_stats) for the largest meshgate size, per verdict. */
async function programCosts(settings: readonly Setting[], o: DecisionOptions): Promise<ProgramCost[]> {
  const largest = Math.max(...settings.filter((s) => s.mechanism === 'meshgate').map((s) => s.size!));
  const chosen = settings.filter((s) => s.mechanism === 'meshgate' && s.size === largest);
  if (!chosen.length) return [];
  const json = <T>(args: string[]): T =>
    JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T;
  const pod = path.dirname(chosen[0]!.cgroup);
  const ids = json<Array<{ id: number }>>(['cgroup', 'show', pod]).map((p) => p.id);
  const read = () =>
    new Map(
      ids.map((id) => {
        const p = json<{ name: string; run_time_ns?: number; run_cnt?: number }>(['prog', 'show', 'id', String(id)]);
        return [p.name, { ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 }];
      }),
    );
  const previous = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const costs: ProgramCost[] = [];
  const connects = 20_000;
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  try {
    for (const s of chosen) {
      const before = read();
      await runLoop(s, connects, 1, o.loopCpu);
      for (const [program, after] of read()) {
        const b = before.get(program)!;
        const runs = after.runs - b.runs;
        if (runs === 0) continue;
        const ns = after.ns - b.ns;
        costs.push({
          setting: s.id,
          program,
          runsPerConnect: runs / connects,
          nsPerRun: ns / runs,
          nsPerConnect: ns / connects,
        });
      }
    }
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', previous);
  }
  for (const c of costs)
    o.log(`${c.setting}: ${c.program} ${c.runsPerConnect} runs per connect, ${c.nsPerRun.toFixed(0)} ns per run`);
  return costs;
}
