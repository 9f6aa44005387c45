// Where the time of a 100,000-entry parse + compile + apply goes: runs it
// once under the V8 sampling profiler (started after the BPF object is
// loaded: the profiler's signals would interrupt the verifier) and prints the
// inclusive time of every call path above 20 ms.
//   node dist/bench/profileApply.js [ENTRIES] [--change]
// --change profiles a one-entry change to a full map instead of a cold apply.
import { Session } from 'node:inspector/promises';
import { allowlistFromText, globalFromText } from '../src/agent/fileSources.js';
import { CidrListMemo } from '../src/config/cidrListMemo.js';
import type { AllowlistEntry } from '../src/config/index.js';
import { Datapath } from '../src/datapath/datapath.js';
import { PolicyCompiler } from '../src/policy/compile.js';
import { policyObjects } from './policyGen.js';
import { BenchSandbox } from './sandbox.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function printTree(p: Profile, minMs: number): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((s, i) => {
    self.set(s, (self.get(s) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  });
  const inclusive = new Map<number, number>();
  const total = (id: number): number => {
    const known = inclusive.get(id);
    if (known !== undefined) return known;
    const t = (self.get(id) ?? 0) + (byId.get(id)!.children ?? []).reduce((n, c) => n + total(c), 0);
    inclusive.set(id, t);
    return t;
  };
  const show = (id: number, depth: number): void => {
    const n = byId.get(id)!;
    const t = total(id) / 1000;
    if (t < minMs || depth > 14) return;
    const where = n.callFrame.url
      ? ` ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`
      : '';
    process.stdout.write(
      `${' '.repeat(depth)}${t.toFixed(0).padStart(6)} ms  ${n.callFrame.functionName || '(anonymous)'}${where}\n`,
    );
    for (const c of n.children ?? []) show(c, depth + 1);
  };
  show(p.nodes[0]!.id, 0);
}

async function main(): Promise<void> {
  const entries = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 100_000);
  const change = process.argv.includes('--change');
  const sb = new BenchSandbox();
  try {
    const dp = Datapath.open({ pinDir: sb.pinDir('profile'), cgroupWalkStart: 1 });
    sb.onCleanup(() => dp.close());
    const compiler = new PolicyCompiler();
    const allowlists = new Map<string, readonly AllowlistEntry[]>();
    const memo = new CidrListMemo(); // the agent's, kept with its compiler
    const run = (variant: number) => {
      const times: Record<string, number> = {};
      let t = performance.now();
      const lap = (name: string) => {
        times[name] = Math.round((performance.now() - t) * 10) / 10;
        t = performance.now();
      };
      const objects = policyObjects(entries, variant);
      lap('generate (not part of the pipeline)');
      // The allowlist objects are parsed once: a change edits the global object only, as the agent re-parses only what changed.
      if (!allowlists.size && objects.allowlists.length) {
        const parsed = objects.allowlists.map((text, i) => allowlistFromText(text, `allowlist-${i}.yaml`));
        allowlists.set(
          'bench',
          parsed.flatMap((r) => (r.ok ? r.value.entries : [])),
        );
        lap('allowlistFromText');
      }
      const parsed = globalFromText(objects.globalText, 'osm-config.yaml', memo);
      lap('globalFromText');
      if (!parsed.ok) throw new Error(parsed.errors[0]?.message);
      const state = compiler.compile({ global: parsed.value, allowlists, resolved: new Map(), pods: [] });
      lap('compile');
      const result = dp.apply(state);
      lap('Datapath.apply');
      return { ...times, trieWrites: result.trieUpserts + result.trieDeletes };
    };
    if (change) {
      run(0);
      run(1); // fills the second slot
    }
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    const times = run(change ? 2 : 0);
    const { profile } = await session.post('Profiler.stop');
    process.stdout.write(
      `${entries} entries, ${change ? 'one-entry change to a full map' : 'cold'}: ${JSON.stringify(times)}\n`,
    );
    printTree(profile as unknown as Profile, Number(process.env.PROFILE_MIN_MS ?? 20));
  } finally {
    sb.cleanup();
  }
}

await main();
