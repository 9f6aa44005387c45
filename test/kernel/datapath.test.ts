// Atomic switching, persistence, adoption, failures and cleanup, with real sockets.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Datapath } from '../../src/datapath/datapath.js';
import {
  DATAPATH_LIMITS,
  type DesiredGroup,
  type DesiredPolicy,
  type DesiredState,
} from '../../src/datapath/desired.js';
import { decodeTrieKey, formatPrefix } from '../../src/datapath/codec.js';
import { HOOK_PROGRAMS, RETIRED_PROGRAMS, cleanupPins, hookPrograms, pinLayout } from '../../src/datapath/loader.js';
import { expectedVariant } from '../helpers/variant.js';
import { libbpf } from '../../native/libbpf.js';
import { readStatus } from '../../src/report/status.js';
import { cgroupLevel } from '../../src/node/cgroup.js';
import { allow, basePolicy, classify, createPod, group, mesh, type PodFixture } from '../helpers/kernelFixture.js';
import { REPO_ROOT, SOCKPROBE, requireRoot } from '../helpers/sandbox.js';

const skip = requireRoot();
/** Hooks the variant under test attaches (compat has no cgroup/setsockopt). */
const hookCount = (): number => hookPrograms(expectedVariant()).length;
if (skip) console.log(`# SKIP kernel datapath tests: ${skip}`);

/** `count` distinct /32s in 100.64.0.0/10 (never a probe target), as one group. */
function filler(id: string, count: number, offset: number): DesiredGroup {
  const entries = Array.from({ length: count }, (_, i) => {
    const n = offset + i;
    return { table: 'mesh' as const, cidr: `100.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}/32` };
  });
  return { id, entries };
}

function bpftoolCgroupPrograms(cgroup: string): Array<{ id: number; attach_type: string; name: string }> {
  return JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }).trim() || '[]');
}

const stateJson = (s: DesiredState): string => JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));

describe('atomic policy switch', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('atomic');
  });
  after(() => pod?.close());

  test('a connect storm during 10,000-entry policy flips sees only the old or the new verdict', async () => {
    // A redirects 10.1.2.3 through the mesh; B passes it through the shop allowlist.
    // A half-applied policy (B's mesh without B's allowlist) would deny it: a third verdict.
    const a: DesiredPolicy = basePolicy({ groups: [filler('fill-a', 10_000, 0), mesh('10.1.2.3/32')] });
    const b: DesiredPolicy = basePolicy({
      groups: [
        filler('fill-b', 10_000, 20_000),
        group('allow:shop', [allow('shop', '10.1.2.3/32', 80)]),
        { id: 'mesh', entries: [{ table: 'mesh', cidr: '10.200.0.0/16' }] },
      ],
    });
    pod.apply(a);
    const script = `for i in $(seq 1 400); do ${SOCKPROBE} --netns ${pod.sb.netnsPath} --cgroup ${pod.app} connect --family 4 --proto tcp --addr 10.1.2.3 --port 80 --read --timeout-ms 1000; done`;
    const storm = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    storm.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<void>((resolve) => storm.on('exit', () => resolve()));
    let flips = 0;
    let running = true;
    void done.then(() => (running = false));
    while (running && flips < 200) {
      pod.apply(flips % 2 === 0 ? b : a);
      flips++;
      await new Promise((r) => setImmediate(r));
    }
    await done;
    const verdicts = out
      .trim()
      .split('\n')
      .map((line) => classify(JSON.parse(line)).verdict);
    const seen = new Set(verdicts);
    assert.ok(verdicts.length === 400, `storm made ${verdicts.length} connects`);
    assert.ok(flips >= 4, `only ${flips} flips happened during the storm`);
    assert.deepEqual(
      [...seen].filter((v) => v !== 'redirect' && v !== 'pass'),
      [],
      `verdicts seen: ${[...seen]}`,
    );
  });

  test('a failure partway through an apply leaves the previous policy in force', () => {
    const denyAll = basePolicy({ groups: [mesh('10.200.0.0/16')] });
    pod.apply(denyAll);
    const generationBefore = pod.dp.currentGeneration;
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'deny');
    let writes = 0;
    const failing = Datapath.open({
      pinDir: pod.sb.pinDir,
      cgroupWalkStart: cgroupLevel(pod.sb.cgroup),
      beforeWrite: (step) => {
        if (step === 'ports' && ++writes === 1) throw new Error('injected failure after the trie writes');
      },
    });
    try {
      const redirectIt = basePolicy({ groups: [filler('fill', 2_000, 0), mesh('10.0.0.0/8')] });
      assert.throws(() => failing.apply({ policy: redirectIt, cgroups: pod.cgroups() }), { code: 'MG_APPLY_FAILED' });
      assert.equal(pod.connect('10.1.2.3', 80).verdict, 'deny', 'the half-written slot must not be in force');
      assert.equal(failing.currentGeneration, generationBefore);
      // The next apply repairs the half-written slot and switches.
      failing.apply({ policy: redirectIt, cgroups: pod.cgroups() });
      assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
      failing.apply({ policy: denyAll, cgroups: pod.cgroups() });
      assert.equal(pod.connect('10.1.2.3', 80).verdict, 'deny');
    } finally {
      failing.close();
    }
  });

  test('an invalid desired state is refused before any kernel write', () => {
    pod.apply(basePolicy({ groups: [mesh('10.0.0.0/8')] }));
    const generation = pod.dp.currentGeneration;
    const cases: Array<[string, DesiredPolicy]> = [
      ['prefix out of range', basePolicy({ groups: [mesh('10.0.0.0/33')] })],
      ['wrong family text', basePolicy({ groups: [mesh('fd00::/129')] })],
      ['bad port', basePolicy({ groups: [group('allow:shop', [allow('shop', '10.0.0.0/8', 0)])] })],
      ['too many entries', basePolicy({ groups: [filler('huge', 262_145, 0)] })],
      ['bad excluded port', basePolicy({ excludedPorts: [70_000] })],
    ];
    for (const [what, policy] of cases) {
      assert.throws(() => pod.dp.apply({ policy, cgroups: pod.cgroups() }), { code: 'MG_DESIRED_STATE_INVALID' }, what);
    }
    assert.equal(pod.dp.currentGeneration, generation);
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
  });

  test('a key two groups hold is enforced, and stays until the last group that holds it lets it go', () => {
    // Not what the compiler makes (it canonicalises), but the datapath must not freeze on it.
    const shop = (id: string, ...cidrs: string[]): DesiredGroup =>
      group(
        id,
        cidrs.map((c) => allow('shop', c, 80)),
      );
    const first = shop('allow:shop#0/2', '10.1.2.3/32');
    const second = shop('allow:shop#1/2', '10.1.2.3/32');
    const firstLetGo = shop('allow:shop#0/2', '192.0.2.8/32');
    const verdict = (): string => pod.connect('10.1.2.3', 80).verdict;
    pod.apply(basePolicy({ groups: [mesh('10.200.0.0/16')] }));
    assert.equal(verdict(), 'deny');
    // Both slots come to hold both groups (a different mesh group makes each apply switch).
    pod.apply(basePolicy({ groups: [first, second, mesh('10.201.0.0/16')] }));
    assert.equal(verdict(), 'pass', 'the shared key is written');
    pod.apply(basePolicy({ groups: [first, second, mesh('10.202.0.0/16')] }));
    assert.equal(verdict(), 'pass');
    // The first holder lets go while the second (the very same object) keeps it, in each slot in turn.
    pod.apply(basePolicy({ groups: [firstLetGo, second, mesh('10.203.0.0/16')] }));
    assert.equal(verdict(), 'pass', 'the second holder still holds it');
    pod.apply(basePolicy({ groups: [firstLetGo, second, mesh('10.204.0.0/16')] }));
    assert.equal(verdict(), 'pass', 'and in the other slot');
    pod.apply(basePolicy({ groups: [firstLetGo, shop('allow:shop#1/2', '192.0.2.9/32'), mesh('10.205.0.0/16')] }));
    assert.equal(verdict(), 'deny', 'gone with its last holder');
  });

  test('applying the same state twice writes nothing the second time', () => {
    const policy = basePolicy({ groups: [mesh('10.0.0.0/8')] });
    const cgroups = pod.cgroups();
    pod.dp.apply({ policy, cgroups });
    const again = pod.dp.apply({ policy, cgroups });
    assert.equal(again.switched, false);
    assert.equal(again.trieUpserts + again.trieDeletes + again.cgroupWrites, 0);
  });

  test('a one-entry change to a large policy writes one entry', () => {
    const big = filler('fill', 50_000, 0);
    const cgroups = pod.cgroups();
    const apply = (...meshCidrs: string[]) =>
      pod.dp.apply({ policy: basePolicy({ groups: [big, mesh(...meshCidrs)] }), cgroups });
    apply('10.0.0.0/8');
    apply('10.0.0.0/8');
    // Both slots now hold the same policy: a one-entry change writes that entry and nothing of the big group.
    const r = apply('10.0.0.0/8', '10.98.0.0/16');
    assert.equal(r.switched, true);
    assert.equal(r.trieUpserts, 1);
    assert.equal(r.trieDeletes, 0);
    assert.equal(pod.connect('10.98.1.1', 80).verdict, 'redirect');
  });
});

describe('the largest policy', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('largest');
  });
  after(() => pod?.close());

  test('a policy as large as the trie takes is written in one trie-ordered batch and reads back key for key', () => {
    // Nested prefixes (a /16, /24s and /32s under it) in one batch, and an allow entry with a label.
    const max = DATAPATH_LIMITS.maxPolicyEntries;
    const nested = ['100.64.0.0/16', '100.64.1.0/24', '100.64.0.0/24'];
    const policy = basePolicy({
      groups: [
        {
          id: 'mesh',
          table: 'mesh',
          cidrs: [...nested, ...filler('fill', max - 4, 0).entries.map((e) => e.cidr)],
          entries: [],
        },
        group('allow:shop', [allow('shop', '203.0.113.10/32', 80)]),
      ],
    });
    pod.apply(policy);
    const want = new Set<string>();
    for (const g of policy.groups) {
      const entries = g.cidrs ? g.cidrs.map((cidr) => ({ table: 'mesh' as const, cidr })) : g.entries;
      for (const e of entries) want.add(`${e.table} ${e.cidr}`);
    }
    assert.equal(want.size, max);
    const slot = pod.dp.currentSlot;
    let inSlot = 0;
    for (const key of pod.dp.maps.mg_policy_trie.keys()) {
      const k = decodeTrieKey(key);
      if (k.slot !== slot) continue;
      inSlot++;
      assert.ok(want.has(`${k.table} ${formatPrefix(k.prefix.bytes, k.prefix.bits)}`), `unexpected key ${k.table}`);
    }
    assert.equal(inSlot, want.size);
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'deny');
    assert.equal(pod.connect('203.0.113.10', 80).verdict, 'pass');
  });
});

describe('persistence, adoption and cleanup', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('persist');
  });
  after(() => pod?.close());

  const state = (): DesiredState => ({ policy: basePolicy({ groups: [mesh('10.0.0.0/8')] }), cgroups: pod.cgroups() });

  test('enforcement holds after the loading process exits, and a new process adopts without a second attachment', () => {
    // The fixture's own Datapath must not attach here: a separate process does it all.
    const child = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'dist/test/helpers/applyAndExit.js'), pod.sb.pinDir, pod.sb.cgroup, stateJson(state())],
      { encoding: 'utf8' },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.equal(JSON.parse(child.stdout).attached.length, hookCount());
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect', 'enforcement after the loader exited');
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');

    const adopter = Datapath.open({ pinDir: pod.sb.pinDir, cgroupWalkStart: cgroupLevel(pod.sb.cgroup) });
    try {
      assert.equal(adopter.object.adoptedMaps, true);
      adopter.apply(state());
      const report = adopter.attach(pod.sb.cgroup);
      assert.deepEqual(report.attached, []);
      assert.equal(report.updated.length, hookCount());
      const programs = bpftoolCgroupPrograms(pod.sb.cgroup);
      assert.equal(programs.length, hookCount(), JSON.stringify(programs));
      assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    } finally {
      adopter.close();
    }
  });

  test('a changed map layout: a new ABI directory under live links, the links moved, the old maps removed', () => {
    // Stand-in for an older layout: the live maps' directory renamed away from this build's ABI hash.
    // The attached programs keep their maps (held by reference, not by path).
    const layout = pinLayout(pod.sb.pinDir);
    const oldDir = path.join(layout.mapsRoot, '0ldlayout000');
    renameSync(layout.mapsDir, oldDir);
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny', 'the old programs enforce with the old maps');
    const upgraded = Datapath.open({ pinDir: pod.sb.pinDir, cgroupWalkStart: cgroupLevel(pod.sb.cgroup) });
    try {
      assert.equal(upgraded.object.adoptedMaps, false, 'new maps under the new ABI hash');
      upgraded.apply(state());
      const report = upgraded.attach(pod.sb.cgroup);
      assert.deepEqual([report.attached, report.updated.length], [[], hookCount()], 'every link moved, none added');
      assert.equal(bpftoolCgroupPrograms(pod.sb.cgroup).length, hookCount());
      assert.equal(existsSync(oldDir), false, 'the old layout is unpinned once every link moved');
      const v = pod.connect('10.1.2.3', 80);
      assert.deepEqual([v.verdict, v.origdst], ['redirect', '10.1.2.3:80'], 'SO_ORIGINAL_DST through the new maps');
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    } finally {
      upgraded.close();
    }
  });

  test("an upgrade retires an older version's pinned mg_sockops and mg_dns_egress links once the new hooks are in place", () => {
    pod.apply(state().policy, [...state().cgroups]);
    const oldPath = path.join(REPO_ROOT, 'build/retired.bpf.o');
    const old = libbpf.openObject(oldPath);
    const pins = RETIRED_PROGRAMS.map((program) => path.join(pod.sb.pinDir, 'links', program));
    try {
      libbpf.loadObject(old, oldPath);
      const cgroupFd = libbpf.openDirectory(pod.sb.cgroup);
      try {
        RETIRED_PROGRAMS.forEach((program, i) => {
          const link = libbpf.attachCgroup(libbpf.findProgram(old, program), cgroupFd, `old ${program}`);
          libbpf.pinLink(link, pins[i]!);
          libbpf.releaseLink(link);
        });
      } finally {
        libbpf.close(cgroupFd);
      }
    } finally {
      libbpf.closeObject(old);
    }
    const before = bpftoolCgroupPrograms(pod.sb.cgroup);
    for (const program of RETIRED_PROGRAMS) {
      assert.ok(
        before.some((p) => p.name === program),
        `${program} in ${JSON.stringify(before)}`,
      );
    }

    const retiredProblems = (): string[] =>
      readStatus(pod.sb.pinDir).problems.filter((p) => p.includes('a program an older meshgate had'));
    assert.equal(retiredProblems().length, RETIRED_PROGRAMS.length, 'status names each retired link');

    const adopter = Datapath.open({ pinDir: pod.sb.pinDir, cgroupWalkStart: cgroupLevel(pod.sb.cgroup) });
    try {
      adopter.apply(state());
      adopter.attach(pod.sb.cgroup);
    } finally {
      adopter.close();
    }
    assert.deepEqual(retiredProblems(), []);
    for (const pin of pins) assert.equal(existsSync(pin), false, pin);
    const programs = bpftoolCgroupPrograms(pod.sb.cgroup);
    assert.deepEqual(
      programs.filter((p) => RETIRED_PROGRAMS.includes(p.name)),
      [],
    );
    assert.equal(programs.length, hookCount());
    assert.equal(programs.filter((p) => p.name === 'mg_egress').length, 1, 'one egress program');
    const v = pod.connect('10.1.2.3', 80);
    assert.equal(v.verdict, 'redirect');
    assert.equal(v.origdst, '10.1.2.3:80', 'the original destination without sockops');
  });

  test('a node that moves to the compat variant keeps enforcing, its setsockopt link goes, and comes back', (t) => {
    pod.apply(state().policy, [...state().cgroups]);
    if (pod.dp.object.variant !== 'kern-ctx') return t.skip('the kern-ctx variant does not load on this kernel');
    const pin = path.join(pod.sb.pinDir, 'links', 'mg_setsockopt');
    const reopen = (variant: 'kern-ctx' | 'compat') => {
      const dp = Datapath.open({ pinDir: pod.sb.pinDir, cgroupWalkStart: cgroupLevel(pod.sb.cgroup), variant });
      try {
        assert.equal(dp.object.variant, variant);
        dp.apply(state());
        return dp.attach(pod.sb.cgroup);
      } finally {
        dp.close();
      }
    };
    assert.equal(existsSync(pin), true);
    const toCompat = reopen('compat');
    assert.deepEqual(toCompat.attached, []);
    assert.equal(toCompat.updated.length, hookPrograms('compat').length);
    assert.equal(existsSync(pin), false);
    const programs = bpftoolCgroupPrograms(pod.sb.cgroup);
    assert.equal(programs.length, hookPrograms('compat').length, JSON.stringify(programs));
    assert.ok(!programs.some((p) => p.name === 'mg_setsockopt'));
    const v = pod.connect('10.1.2.3', 80);
    assert.deepEqual([v.verdict, v.origdst], ['redirect', '10.1.2.3:80'], 'enforcing with the compat programs');
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');

    const back = reopen('kern-ctx');
    assert.deepEqual(back.attached, ['cgroup/setsockopt']);
    assert.equal(existsSync(pin), true);
    assert.equal(bpftoolCgroupPrograms(pod.sb.cgroup).length, HOOK_PROGRAMS.length);
  });

  test('a process killed with SIGKILL leaves enforcement in force', () => {
    const child = spawnSync(
      'bash',
      [
        '-c',
        `node ${path.join(REPO_ROOT, 'dist/test/helpers/applyAndExit.js')} ${pod.sb.pinDir} ${pod.sb.cgroup} '${stateJson(state())}' && kill -9 $$`,
      ],
      { encoding: 'utf8' },
    );
    assert.notEqual(child.signal, null);
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
  });

  test("cleanup detaches and unpins everything meshgate owns and spares another tool's program", () => {
    const foreignPin = `${pod.sb.pinDir}-foreign`;
    execFileSync('bpftool', [
      'prog',
      'load',
      path.join(REPO_ROOT, 'build/foreign.bpf.o'),
      foreignPin,
      'type',
      'cgroup/connect4',
    ]);
    try {
      execFileSync('bpftool', ['cgroup', 'attach', pod.sb.cgroup, 'connect4', 'pinned', foreignPin, 'multi']);
      const report = cleanupPins(pod.sb.pinDir);
      assert.equal(report.detached.length, hookCount());
      assert.equal(existsSync(pod.sb.pinDir), false);
      const left = bpftoolCgroupPrograms(pod.sb.cgroup);
      assert.deepEqual(
        left.map((p) => p.name),
        ['foreign_connect4'],
      );
      assert.notEqual(pod.connect('198.51.100.7', 443).verdict, 'deny', 'no meshgate program decides any more');
      execFileSync('bpftool', ['cgroup', 'detach', pod.sb.cgroup, 'connect4', 'pinned', foreignPin]);
      assert.deepEqual(bpftoolCgroupPrograms(pod.sb.cgroup), []);
    } finally {
      spawnSync('bpftool', ['cgroup', 'detach', pod.sb.cgroup, 'connect4', 'pinned', foreignPin]);
      spawnSync('rm', ['-f', foreignPin]);
    }
    assert.deepEqual(
      readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(path.basename(pod.sb.pinDir))),
      [],
    );
  });
});
