// Apply speed: a 100,000-CIDR osm-config text through parse, compile and
// Datapath.apply, cold (fresh pins) and as one-entry changes to the full map;
// the raw batch-update floor (the same keys, pre-encoded, in the trie order
// Datapath.apply writes them in); iptables-restore of the same rules, cold and for
// a one-rule change (a full-table restore, and a single `iptables -R`).
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AllowlistEntry, GlobalConfig } from '../src/config/index.js';
import { allowlistFromText, globalFromText } from '../src/agent/fileSources.js';
import { CidrListMemo } from '../src/config/cidrListMemo.js';
import { trieBatch } from '../src/datapath/batchOrder.js';
import { TRIE_KEY_SIZE, encodeTrieKey, parsePrefix } from '../src/datapath/codec.js';
import { Datapath, type ApplyResult } from '../src/datapath/datapath.js';
import type { DesiredState } from '../src/datapath/desired.js';
import { cgroupId, cgroupLevel } from '../src/node/cgroup.js';
import { PolicyCompiler, type PodInput } from '../src/policy/compile.js';
import { iptablesRestoreText, meshCidrs, policyObjects } from './policyGen.js';
import { PROXY_PORT, type BenchSandbox } from './sandbox.js';
import { summarize, type Summary } from './stats.js';

export interface ApplyOptions {
  readonly entries: number;
  readonly reps: number;
  /** one-entry changes measured per rep (after the first change, which fills the second slot) */
  readonly changes: number;
  readonly iptables: readonly ('iptables-nft' | 'iptables-legacy')[];
  readonly log: (line: string) => void;
}

export interface PhaseTimes {
  readonly readYamlMs: Summary;
  readonly parseGlobalMs: Summary;
  readonly compileMs: Summary;
  readonly openMs: Summary;
  /** Datapath.apply until the policy is in force */
  readonly applyMs: Summary;
  /** the RCU grace period apply() then waits for, off the enforcement path */
  readonly graceMs: Summary;
  readonly totalMs: Summary;
}

export interface ApplyResultSummary {
  readonly entries: number;
  readonly configBytes: number;
  readonly cold: PhaseTimes;
  /** the first one-entry change after a cold load: the inactive slot is empty, so every entry is written */
  readonly firstChange: PhaseTimes & { readonly trieWrites: number };
  /** later one-entry changes: the inactive slot holds the policy before last */
  readonly change: PhaseTimes & { readonly trieWrites: Summary };
  /** one batch update of the same 100,000 pre-encoded keys into an empty trie */
  readonly batchFloorMs: Summary;
  readonly iptables: readonly IptablesApply[];
}

export interface IptablesApply {
  readonly variant: string;
  readonly coldRestoreMs: Summary;
  readonly changeRestoreMs: Summary;
  readonly changeReplaceRuleMs: Summary;
}

const time = <T>(fn: () => T): [T, number] => {
  const t0 = performance.now();
  const value = fn();
  return [value, performance.now() - t0];
};

function parse(text: string, memo?: CidrListMemo): { global: GlobalConfig; readYamlMs: number; parseGlobalMs: number } {
  // The standalone agent's own path for a --config-file (YAML read and validation together, with the agent's memo of long lists).
  const [result, ms] = time(() => globalFromText(text, 'osm-config.yaml', memo));
  if (!result.ok) throw new Error(`generated config rejected: ${result.errors[0]?.message}`);
  return { global: result.value, readYamlMs: ms, parseGlobalMs: 0 };
}

/** The allowlist files of the policy, parsed as the agent parses --allowlist-file (once: a change edits the global object only). */
function parseAllowlists(texts: readonly string[]): { allowlists: Map<string, readonly AllowlistEntry[]>; ms: number } {
  const [entries, ms] = time(() =>
    texts.flatMap((text, i) => {
      const r = allowlistFromText(text, `allowlist-${i}.yaml`);
      if (!r.ok) throw new Error(`generated allowlist rejected: ${r.errors[0]?.message}`);
      return r.value.entries;
    }),
  );
  return { allowlists: new Map(entries.length ? [['bench', entries]] : []), ms };
}

interface Sample {
  readYamlMs: number;
  parseGlobalMs: number;
  compileMs: number;
  openMs: number;
  applyMs: number;
  graceMs: number;
  totalMs: number;
  writes: number;
}

function phaseTimes(samples: readonly Sample[]): PhaseTimes {
  const s = (k: keyof Sample) => summarize(samples.map((x) => x[k]));
  return {
    readYamlMs: s('readYamlMs'),
    parseGlobalMs: s('parseGlobalMs'),
    compileMs: s('compileMs'),
    openMs: s('openMs'),
    applyMs: s('applyMs'),
    graceMs: s('graceMs'),
    totalMs: s('totalMs'),
  };
}

/** One global config text through parse, compile and apply on `dp` (opened by `open` when null), with the allowlists as parsed. */
function pipeline(
  text: string,
  allow: { allowlists: Map<string, readonly AllowlistEntry[]>; ms: number },
  compiler: PolicyCompiler,
  memo: CidrListMemo,
  pods: PodInput[],
  dp: Datapath | null,
  open: () => Datapath,
): { sample: Sample; dp: Datapath; result: ApplyResult } {
  const t0 = performance.now();
  const { global, readYamlMs, parseGlobalMs } = parse(text, memo);
  const [state, compileMs] = time(() =>
    compiler.compile({ global, allowlists: allow.allowlists, resolved: new Map(), pods }),
  );
  let openMs = 0;
  if (!dp) [dp, openMs] = time(open);
  const datapath = dp;
  const [result, applyWallMs] = time(() => datapath.apply(state));
  // In force at the switch; the RCU grace period apply() waits for afterwards is off the enforcement path.
  const applyMs = result.inForceMs;
  const graceMs = applyWallMs - result.inForceMs;
  const totalMs = performance.now() - t0 + allow.ms - openMs - graceMs;
  return {
    sample: {
      readYamlMs: readYamlMs + allow.ms,
      parseGlobalMs,
      compileMs,
      openMs,
      applyMs,
      graceMs,
      totalMs,
      writes: result.trieUpserts + result.trieDeletes,
    },
    dp: datapath,
    result,
  };
}

/** One batch update of the policy's keys, encoded and put in trie order beforehand (as Datapath.apply writes them). */
function batchFloor(sb: BenchSandbox, state: DesiredState, label: string): number {
  const pinDir = sb.pinDir(label);
  const dp = Datapath.open({ pinDir, cgroupWalkStart: 1 });
  try {
    const entries = state.policy.groups.flatMap((g) => g.entries);
    const keys = Buffer.alloc(entries.length * TRIE_KEY_SIZE);
    entries.forEach((e, i) => {
      encodeTrieKey(
        { slot: 0, table: e.table, proto: 0, port: 0, namespaceId: 0, prefix: parsePrefix(e.cidr) },
        keys,
        i * TRIE_KEY_SIZE,
      );
    });
    const batch = trieBatch([{ keys, labels: new Uint32Array(entries.length).fill(1) }], 1);
    const [, ms] = time(() => dp.maps.mg_policy_trie.updateBatch(batch.keys, batch.values, batch.count));
    return ms;
  } finally {
    dp.close();
  }
}

function iptablesApply(
  sb: BenchSandbox,
  variant: 'iptables-nft' | 'iptables-legacy',
  o: ApplyOptions,
): IptablesApply | null {
  const restore = `${variant}-restore`;
  if (!['/usr/sbin', '/sbin'].some((d) => existsSync(path.join(d, restore)))) return null;
  const cidrs = meshCidrs(o.entries);
  const text = iptablesRestoreText(cidrs);
  const changed = iptablesRestoreText([`10.1.200.1/32`, ...cidrs.slice(1)]);
  const file = path.join(sb.tmpDir(), `${variant}.rules`);
  const changedFile = path.join(sb.tmpDir(), `${variant}-changed.rules`);
  writeFileSync(file, text);
  writeFileSync(changedFile, changed);
  const cold: number[] = [];
  const change: number[] = [];
  const replace: number[] = [];
  for (let rep = 0; rep < o.reps; rep++) {
    const ns = sb.netns(`apply-${variant.replace('iptables-', '')}${rep}`);
    const run = (args: string[]) =>
      time(() => execFileSync('ip', ['netns', 'exec', ns.name, ...args], { stdio: 'ignore', maxBuffer: 1 << 30 }))[1];
    cold.push(run([restore, file]));
    // What a controller with a full desired state does: restore the whole table again.
    change.push(run([restore, changedFile]));
    // The incremental alternative: replace one rule in place.
    replace.push(
      run([
        variant,
        '-t',
        'nat',
        '-R',
        'MESH_OUTPUT',
        '1',
        '-d',
        `10.1.201.${rep}/32`,
        '-p',
        'tcp',
        '-j',
        'REDIRECT',
        '--to-ports',
        String(PROXY_PORT),
      ]),
    );
    execFileSync('ip', ['netns', 'del', ns.name]);
    o.log(
      `${variant} ${o.entries} rules: cold restore ${cold.at(-1)!.toFixed(0)} ms, one-rule restore ${change.at(-1)!.toFixed(0)} ms, -R ${replace.at(-1)!.toFixed(0)} ms`,
    );
  }
  return {
    variant,
    coldRestoreMs: summarize(cold),
    changeRestoreMs: summarize(change),
    changeReplaceRuleMs: summarize(replace),
  };
}

export function benchApply(sb: BenchSandbox, o: ApplyOptions): ApplyResultSummary {
  const pod = sb.cgroup('apply');
  const pods: PodInput[] = [
    { namespace: 'bench', name: 'pod', podCgroupId: cgroupId(pod), proxyCgroupId: null, meshed: true },
  ];
  const base = policyObjects(o.entries);
  const cold: Sample[] = [];
  const change: Sample[] = [];
  const firstChange: Sample[] = [];
  const floors: number[] = [];
  let variant = 1;
  const unchanged = { allowlists: new Map<string, readonly AllowlistEntry[]>(), ms: 0 };
  for (let rep = 0; rep < o.reps; rep++) {
    const pinDir = sb.pinDir(`apply${rep}`);
    const compiler = new PolicyCompiler();
    const memo = new CidrListMemo(); // the agent's, kept with its compiler
    const open = () => Datapath.open({ pinDir, cgroupWalkStart: cgroupLevel(pod) });
    const allow = parseAllowlists(base.allowlists);
    const first = pipeline(base.globalText, allow, compiler, memo, pods, null, open);
    const dp = first.dp;
    const parsed = { ...unchanged, allowlists: allow.allowlists }; // later changes edit the global object only
    try {
      if (first.result.trieUpserts < o.entries)
        throw new Error(`cold apply wrote ${first.result.trieUpserts} entries, expected ${o.entries}`);
      cold.push(first.sample);
      const next = pipeline(policyObjects(o.entries, variant++).globalText, parsed, compiler, memo, pods, dp, open);
      firstChange.push(next.sample);
      for (let c = 0; c < o.changes; c++)
        change.push(
          pipeline(policyObjects(o.entries, variant++).globalText, parsed, compiler, memo, pods, dp, open).sample,
        );
    } finally {
      dp.close();
    }
    const state = new PolicyCompiler().compile({
      global: parse(base.globalText).global,
      allowlists: allow.allowlists,
      resolved: new Map(),
      pods,
    });
    floors.push(batchFloor(sb, state, `floor${rep}`));
    o.log(
      `apply rep ${rep + 1}/${o.reps}: cold ${cold.at(-1)!.totalMs.toFixed(0)} ms, first change ${firstChange.at(-1)!.totalMs.toFixed(0)} ms, change ${change.at(-1)?.totalMs.toFixed(0)} ms (${change.at(-1)?.writes} trie writes), batch floor ${floors.at(-1)!.toFixed(0)} ms`,
    );
  }
  const iptables = o.iptables.map((v) => iptablesApply(sb, v, o)).filter((x): x is IptablesApply => x !== null);
  return {
    entries: o.entries,
    configBytes: Buffer.byteLength(base.globalText) + base.allowlists.reduce((n, t) => n + Buffer.byteLength(t), 0),
    cold: phaseTimes(cold),
    firstChange: { ...phaseTimes(firstChange), trieWrites: firstChange[0]?.writes ?? 0 },
    change: { ...phaseTimes(change), trieWrites: summarize(change.map((s) => s.writes)) },
    batchFloorMs: summarize(floors),
    iptables,
  };
}
