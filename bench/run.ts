// meshgate's benchmarks: `make bench` (or `node dist/bench/run.js [options]`
// after `make all`), as root. Prints one markdown table of every measurement
// against SPEC §7, and writes the full results as JSON.
//
//   --quick             about a minute: fewer sizes, rounds and edits (a smoke run)
//   --rounds N          decision-cost rounds (default 8; --quick 2)
//   --reps N            apply repetitions (default 3; --quick 1)
//   --edits N           propagation edits (default 100; --quick 20)
//   --only LIST         comma-separated: decision,apply,propagation,memory,throughput,dns
//   --no-bpf-stats      skip the per-program costs read from the kernel (they set the global
//                       sysctl kernel.bpf_stats_enabled for a few seconds, then restore it;
//                       the "sockops runs per passed connect" row comes from them)
//   --no-pin            do not pin the loop and the sink to CPUs 1 and 0
//   --json FILE         where to write the results (default bench/results/latest.json)
//   --cleanup           remove what an earlier bench killed with SIGKILL left, then exit
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchApply } from './apply.js';
import { benchDecision, iptablesVariant } from './decision.js';
import { benchMemory } from './memory.js';
import { STREAMER, benchThroughput } from './throughput.js';
import { benchDnsReader } from './dnsReader.js';
import { benchPropagation, clusterSource, standaloneSource, type PropagationResult } from './propagation.js';
import { markdownTable, type BenchResults } from './report.js';
import { BenchSandbox, CONNECTLOOP, REPO_ROOT, sweepLeftovers } from './sandbox.js';

const SECTIONS = ['decision', 'apply', 'propagation', 'memory', 'throughput', 'dns'] as const;
type Section = (typeof SECTIONS)[number];

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      reps: { type: 'string' },
      edits: { type: 'string' },
      only: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      'bpf-stats': { type: 'boolean', default: true },
      'no-bpf-stats': { type: 'boolean', default: false },
      json: { type: 'string', default: path.join(REPO_ROOT, 'bench/results/latest.json') },
      cleanup: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const int = (name: string, v: string | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: ${JSON.stringify(v)} is not a positive integer`);
    return n;
  };
  const only = values.only === undefined ? [...SECTIONS] : values.only.split(',').map((s) => s.trim());
  for (const s of only)
    if (!(SECTIONS as readonly string[]).includes(s))
      throw new Error(`--only: unknown section ${JSON.stringify(s)} (known: ${SECTIONS.join(', ')})`);
  const quick = values.quick;
  return {
    help: values.help,
    cleanup: values.cleanup,
    quick,
    only: only as Section[],
    rounds: int('rounds', values.rounds, quick ? 2 : 8),
    reps: int('reps', values.reps, quick ? 1 : 3),
    edits: int('edits', values.edits, quick ? 20 : 100),
    pin: !values['no-pin'] && os.cpus().length >= 2,
    bpfStats: !values['no-bpf-stats'],
    json: values.json,
  };
}

/** Builds a bench C tool (bench/NAME.c) when the binary is missing or older than the source. */
function buildTool(binary: string, name: string): void {
  const src = path.join(REPO_ROOT, `bench/${name}.c`);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(src).mtimeMs) return;
  mkdirSync(path.dirname(binary), { recursive: true });
  execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', binary, src], { stdio: 'inherit' });
}

/** deploy/daemonset.yaml's memory limit for the agent container, in MiB (null when it cannot be read). */
function daemonSetMemoryLimitMiB(): number | null {
  const text = readFileSync(path.join(REPO_ROOT, 'deploy/daemonset.yaml'), 'utf8');
  const m = /limits:\s*\n\s*memory:\s*([0-9]+)Mi/.exec(text);
  return m ? Number(m[1]) : null;
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const text = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
    } catch {
      return 'absent';
    }
  };
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cores: os.cpus().length,
    kernel: os.release(),
    node: process.version,
    iptables: iptablesVariant(),
    iptablesVersion: text('iptables', ['--version']),
    iptablesLegacy: text('iptables-legacy', ['--version']),
    iptablesNft: text('iptables-nft', ['--version']),
    loadAverageAtStart: os.loadavg(),
  };
}

async function main(): Promise<number> {
  const o = options();
  if (o.help) {
    const lines = readFileSync(new URL(import.meta.url), 'utf8').split('\n');
    process.stdout.write(
      `${lines
        .filter((l) => l.startsWith('//'))
        .map((l) => l.slice(3))
        .join('\n')}\n`,
    );
    return 0;
  }
  if (process.getuid?.() !== 0)
    throw new Error('the benchmarks need root: they create cgroups, network namespaces and BPF pins');
  if (o.cleanup) {
    const removed = sweepLeftovers();
    process.stderr.write(removed.length ? `removed:\n${removed.join('\n')}\n` : 'nothing left behind\n');
    return 0;
  }
  buildTool(CONNECTLOOP, 'connectloop');
  buildTool(STREAMER, 'streamer');
  const log = (line: string) => process.stderr.write(`# ${line}\n`);
  const sb = new BenchSandbox();
  const stop = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    try {
      sb.cleanup();
    } finally {
      process.exit(130);
    }
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const started = Date.now();
  const host = machine();
  const results: { -readonly [K in keyof BenchResults]: BenchResults[K] } = {};
  const full = !o.quick;
  try {
    if (o.only.includes('decision')) {
      results.decision = await benchDecision(sb, {
        meshgateSizes: full ? [10, 1000, 10_000, 100_000] : [10, 100_000],
        iptablesSizes: {
          'iptables-nft': full ? [10, 1000, 10_000, 100_000] : [10, 10_000],
          'iptables-legacy': full ? [10, 1000, 10_000, 100_000] : [10_000],
          ipset: full ? [10, 1000, 10_000, 100_000] : [10, 100_000],
        },
        rounds: o.rounds,
        batches: full ? 5 : 3,
        batchMs: full ? 100 : 50,
        loopCpu: o.pin ? 1 : null,
        sinkCpu: o.pin ? 0 : null,
        bpfStats: o.bpfStats,
        log,
      });
    }
    if (o.only.includes('apply')) {
      results.apply = benchApply(sb, {
        entries: 100_000,
        reps: o.reps,
        changes: full ? 5 : 2,
        iptables: full ? ['iptables-legacy', 'iptables-nft'] : ['iptables-legacy'],
        log,
      });
    }
    if (o.only.includes('propagation')) {
      const propagation: PropagationResult[] = [];
      propagation.push(
        await benchPropagation(sb, standaloneSource(sb, 10_000), { entries: 10_000, edits: o.edits, log }),
      );
      propagation.push(await benchPropagation(sb, clusterSource(sb, 10_000), { entries: 10_000, edits: o.edits, log }));
      results.propagation = propagation;
    }
    if (o.only.includes('memory')) {
      results.memory = await benchMemory(sb, [10, 100_000], full ? 3000 : 1000, log);
    }
    if (o.only.includes('throughput')) {
      results.throughput = await benchThroughput(sb, {
        rounds: full ? 5 : 2,
        tcpBytes: full ? 1 << 30 : 256 << 20,
        udpPackets: full ? 1_000_000 : 200_000,
        udpSize: 64,
        senderCpu: o.pin ? 1 : null,
        sinkCpu: o.pin ? 0 : null,
        bpfStats: o.bpfStats,
        log,
      });
    }
    if (o.only.includes('dns')) {
      results.dnsReader = benchDnsReader(sb, {
        batches: full ? 9 : 3,
        repeat: full ? 200_000 : 50_000,
        rounds: full ? 6 : 2,
        streamMs: full ? 2000 : 1000,
        cpuRecv: o.pin ? 0 : null,
        cpuSend: o.pin ? 1 : null,
        log,
      });
    }
  } finally {
    sb.cleanup();
  }
  const command = `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim();
  const table = markdownTable(results, daemonSetMemoryLimitMiB());
  process.stdout.write(`${table}\n\n`);
  process.stdout.write(
    `Reproduce: \`make all && ${command}\` (as root). Took ${((Date.now() - started) / 1000).toFixed(0)} s.\n`,
  );
  mkdirSync(path.dirname(o.json), { recursive: true });
  writeFileSync(
    o.json,
    `${JSON.stringify({ date: new Date().toISOString(), command, options: o, machine: host, durationS: (Date.now() - started) / 1000, results, table }, null, 1)}\n`,
  );
  log(`results written to ${path.relative(process.cwd(), o.json)}`);
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err: Error) => {
    process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
