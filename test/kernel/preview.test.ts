// `meshgate preview` must agree with the kernel. The real standalone agent enforces a random
// config from its files (a global config and two allowlist files of namespace shop) on a
// sandboxed pod; random real traffic fills mg_flows; preview (the code the CLI runs, over the
// live pins) decides every recorded flow under random candidate files; then the agent is given
// those same files, every flow is replayed for real, and the kernel's new verdict and rule (the
// socket's result, and the flow the kernel filed under the new generation) must equal
// preview's "after". Preview's "now" must equal what the kernel recorded under the live policy.
// Reproduce a failure with MG_PREVIEW_SEED=<seed printed in the failure>.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readFlows, type FlowView } from '../../src/report/flows.js';
import { Pins } from '../../src/datapath/pinned.js';
import { readCandidate } from '../../src/preview/candidate.js';
import { previewFlows, type PreviewRow } from '../../src/preview/preview.js';
import { PROXY_PORT, createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { rng, runBatch, socketVerdict, type Probe, type Rng } from '../helpers/probeBatch.js';
import { REPO_ROOT, requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP preview agreement tests: ${skip}`);

const CONFIGS = 8;
const PROBES_PER_CONFIG = 40;

const V4_DESTS = [
  '10.1.2.3',
  '10.200.0.1',
  '203.0.113.10',
  '203.0.113.20',
  '198.51.100.7',
  '198.51.100.200',
  '192.0.2.1',
  '172.16.5.4',
  '8.8.8.8',
  '224.0.0.251',
  '127.0.0.1',
];
const V6_DESTS = ['2001:db8::10', '2001:db8::20', 'fd00::5', '2606:4700::1111', '::1', 'ff05::1:3'];
const CIDRS = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '10.1.2.3/32',
  '203.0.113.0/24',
  '203.0.113.10/32',
  '198.51.100.0/24',
  '192.0.2.0/25',
  '172.16.0.0/12',
  '0.0.0.0/0',
  '2001:db8::/32',
  '2001:db8::10/128',
  'fd00::/8',
  '::/0',
];
const PORTS = [80, 443, 8080, 53, 9000];
const ACTIONS = ['deny', 'redirect', 'audit'] as const;

function randomEntries(r: Rng, prefix: string, max: number) {
  return Array.from({ length: r.int(max + 1) }, (_, i) => ({
    name: `${prefix}${i}`,
    addresses: Array.from({ length: 1 + r.int(2) }, () => r.pick(CIDRS)),
    ports: [{ number: r.pick(PORTS), protocol: r.pick(['TCP', 'HTTPS', 'UDP']) }],
  }));
}

/** A global config file (a plain YAML map; JSON is YAML). */
function randomGlobal(r: Rng): string {
  const mesh = r.chance(0.2) ? [] : Array.from({ length: 1 + r.int(2) }, () => r.pick(CIDRS));
  const egress = r.chance(0.15);
  if (egress && mesh.length === 0) mesh.push('10.0.0.0/8');
  return JSON.stringify({
    egress,
    mesh_cidr_ranges: [...new Set(mesh)],
    outbound_ip_range_exclusion_list: [
      ...new Set(Array.from({ length: r.int(2) }, () => r.pick(CIDRS.filter((c) => !c.endsWith('/0'))))),
    ],
    outbound_port_exclusion_list: [...new Set(Array.from({ length: r.int(2) }, () => r.pick([53, 8080, 9000])))],
    proxy_outbound_port: PROXY_PORT,
    blocked_egress_action: r.pick(ACTIONS),
    unknown_pod_policy: r.pick(['pass', 'deny-external']),
    egress_allowlist: randomEntries(r, 'g', 2),
  });
}

/** The two allowlist files of namespace shop; when both set blocked_egress_action they agree. */
function randomAllowlists(r: Rng): [string, string] {
  const action = r.pick(ACTIONS);
  const file = (prefix: string, p: number) =>
    JSON.stringify({ egress: randomEntries(r, prefix, 3), ...(r.chance(p) ? { blocked_egress_action: action } : {}) });
  return [file('a', 0.7), file('b', 0.3)];
}

function randomProbe(r: Rng): Probe {
  const v6 = r.chance(0.3);
  return {
    op: r.pick(['tcp', 'tcp', 'udp', 'sendto'] as const),
    family: v6 ? '6' : r.chance(0.3) ? 'mapped' : '4',
    addr: v6 ? r.pick(V6_DESTS) : r.pick(V4_DESTS),
    port: r.pick(PORTS),
  };
}

/** The same decision again: a flow's destination, port and protocol, as it was recorded. */
function replayProbe(row: PreviewRow): Probe {
  const v6 = row.address.includes(':');
  return { op: row.protocol === 'tcp' ? 'tcp' : 'sendto', family: v6 ? '6' : '4', addr: row.address, port: row.port };
}

const flowKey = (f: { podCgroupId: string; address: string; port: number; protocol: string }) =>
  `${f.podCgroupId}|${f.address}|${f.port}|${f.protocol}`;

describe('preview agrees with the kernel once the same files are applied', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let dir: string;
  let agent: ChildProcess | null = null;
  let log = '';
  const applied = () => log.split('"policy applied"').length - 1;
  const live = { global: '', a: '', b: '' };

  /** Replaces a watched file in one rename, so the agent never reads it half written. */
  function put(name: string, text: string): void {
    const tmp = path.join(dir, `.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, path.join(dir, name));
  }

  /** Writes the files the agent watches and waits until it has applied them and gone quiet. */
  async function applyFiles(files: Partial<typeof live>): Promise<void> {
    const before = applied();
    for (const [name, text] of Object.entries(files)) {
      put(`${name}.yaml`, text);
      live[name as keyof typeof live] = text;
    }
    await until('the agent to apply the files', () => applied() > before);
    for (let quiet = applied(); ; quiet = applied()) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      if (applied() === quiet) break;
    }
    // The random files are valid together (an edit of one file alone may clash for a moment).
    const status = pod.dp.readAgentStatus();
    assert.equal(
      status?.objectsInvalid,
      0,
      `the agent rejected a file: ${log
        .split('\n')
        .filter((l) => l.includes('config rejected'))
        .slice(-2)
        .join('\n')}`,
    );
  }

  before(async () => {
    pod = await createPod('preview');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-preview-'));
    const r0 = rng(1);
    put('global.yaml', (live.global = randomGlobal(r0)));
    [live.a, live.b] = randomAllowlists(r0);
    put('a.yaml', live.a);
    put('b.yaml', live.b);
    agent = spawn(
      process.execPath,
      [
        path.join(REPO_ROOT, 'bin/meshgate.js'),
        'agent',
        '--config-file',
        path.join(dir, 'global.yaml'),
        '--allowlist-file',
        path.join(dir, 'a.yaml'),
        '--allowlist-file',
        path.join(dir, 'b.yaml'),
        '--namespace',
        'shop',
        '--pod-name',
        'web',
        '--cgroup',
        pod.sb.cgroup,
        '--proxy-cgroup',
        pod.proxy,
        '--pin-dir',
        pod.sb.pinDir,
        '--listen',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    agent.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await until('the agent to apply its first policy', () => applied() > 0);
  });
  after(() => {
    agent?.kill('SIGKILL');
    pod?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`${CONFIGS} random configs x random traffic: preview's "after" is the kernel's verdict once the files are applied`, async () => {
    const seed = Number(process.env.MG_PREVIEW_SEED ?? Date.now() % 1_000_000_007);
    const r = rng(seed);
    const mismatches: string[] = [];
    let afterCompared = 0;
    let nowCompared = 0;
    let changed = 0;
    const verdictsAfter = new Set<string>();
    for (let c = 0; c < CONFIGS; c++) {
      runBatch(
        pod,
        pod.app,
        0,
        Array.from({ length: PROBES_PER_CONFIG }, () => randomProbe(r)),
      );

      // Candidate files, outside the agent's view until preview has run.
      const what = r.pick(['global', 'allowlists', 'both'] as const);
      const candidate: Partial<typeof live> = {};
      if (what !== 'allowlists') candidate.global = randomGlobal(r);
      if (what !== 'global') [candidate.a, candidate.b] = randomAllowlists(r);
      const candidateDir = path.join(dir, `candidate-${c}`);
      mkdirSync(candidateDir);
      const files = Object.entries(candidate).map(([name, text]) => {
        const file = path.join(candidateDir, `${name}.yaml`);
        writeFileSync(file, text);
        return file;
      });

      const pins = Pins.open(pod.sb.pinDir);
      let rows: readonly PreviewRow[];
      let liveGeneration: string;
      try {
        const read = readCandidate(files, 'shop');
        assert.ok(read.valid, JSON.stringify(read.issues));
        const report = previewFlows(pins, read, { namespace: 'shop', all: true });
        rows = report.rows;
        liveGeneration = report.generation;
        changed += report.changes.length;
      } finally {
        pins.close();
      }
      // "now" is the live policy: it must be what the kernel recorded for flows it decided under this generation.
      for (const row of rows) {
        if (row.kernel.generation !== liveGeneration) continue;
        nowCompared++;
        if (row.now.verdict !== row.kernel.verdict || row.now.rule !== row.kernel.rule) {
          mismatches.push(
            `config ${c} ${row.destination}/${row.protocol}: preview now ${row.now.verdict}/${row.now.rule}, kernel recorded ${row.kernel.verdict}/${row.kernel.rule}`,
          );
        }
      }

      await applyFiles(candidate);
      const probes = rows.map(replayProbe);
      const results = runBatch(pod, pod.app, 0, probes);
      const pinsAfter = Pins.open(pod.sb.pinDir);
      let recorded: Map<string, FlowView>;
      let generation: string;
      try {
        recorded = new Map(readFlows(pinsAfter).flows.map((f) => [flowKey(f), f]));
        generation = (pinsAfter.config(pinsAfter.state()!.activeSlot & 1)?.generation ?? 0n).toString();
      } finally {
        pinsAfter.close();
      }
      rows.forEach((row, i) => {
        afterCompared++;
        verdictsAfter.add(row.after.verdict);
        const seen = socketVerdict(probes[i]!, results[i]!);
        const kernel = recorded.get(flowKey(row));
        const problems: string[] = [];
        if (seen !== (row.after.verdict === 'audit' ? 'pass' : row.after.verdict))
          problems.push(`the socket saw ${seen} (${JSON.stringify(results[i])})`);
        if (!kernel || kernel.generation !== generation)
          problems.push(`no flow decided under generation ${generation}: ${JSON.stringify(kernel)}`);
        else if (kernel.verdict !== row.after.verdict || kernel.rule !== row.after.rule)
          problems.push(`the kernel filed ${kernel.verdict}/${kernel.rule}`);
        if (problems.length) {
          mismatches.push(
            `config ${c} (${what}) ${row.destination}/${row.protocol} uid ${row.uid}: preview after ${row.after.verdict}/${row.after.rule} ` +
              `but ${problems.join('; ')}\n    candidate ${JSON.stringify(candidate)}\n    live ${JSON.stringify(live)}`,
          );
        }
      });
    }
    assert.deepEqual(
      mismatches.slice(0, 5),
      [],
      `seed ${seed}: ${mismatches.length} disagreements in ${afterCompared} after and ${nowCompared} now cases`,
    );
    assert.ok(afterCompared >= CONFIGS * 10, `seed ${seed}: only ${afterCompared} flows compared`);
    assert.ok(nowCompared > 0, `seed ${seed}: no flow was decided under the live generation`);
    console.log(
      `# seed ${seed}: ${afterCompared} after / ${nowCompared} now cases agree, ${changed} predicted changes; verdicts after: ${[...verdictsAfter].sort().join(' ')}`,
    );
  });
  test('meshgate preview: exit 0 without a change, 1 with changes (now -> after, rule and entry), 2 for invalid input, 3 without pins', async () => {
    const global = JSON.stringify({ egress: false, mesh_cidr_ranges: ['10.0.0.0/8'], blocked_egress_action: 'deny' });
    await applyFiles({ global, a: JSON.stringify({ egress: [] }), b: JSON.stringify({ egress: [] }) });
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    const cdir = path.join(dir, 'cli');
    mkdirSync(cdir);
    const write = (name: string, text: string) => {
      writeFileSync(path.join(cdir, name), text);
      return path.join(cdir, name);
    };
    const cli = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [path.join(REPO_ROOT, 'bin/meshgate.js'), 'preview', '--pin-dir', pod.sb.pinDir, ...args],
        { encoding: 'utf8', timeout: 30_000 },
      );

    const same = cli(
      '--namespace',
      'shop',
      write('same-global.yaml', global),
      write('same-a.yaml', JSON.stringify({ egress: [] })),
    );
    assert.equal(same.status, 0, same.stderr + same.stdout);
    assert.match(
      same.stdout,
      /^0 of \d+ recent flow\(s\) would change verdict \(candidate replaces the global config and the allowlists of shop; live generation \d+\)$/m,
    );

    const audit = write('audit.yaml', JSON.stringify({ blocked_egress_action: 'audit', egress: [] }));
    const changed = cli('--namespace', 'shop', audit);
    assert.equal(changed.status, 1, changed.stderr);
    assert.match(changed.stdout, /^POD +DESTINATION +NOW -> AFTER$/m);
    assert.match(changed.stdout, /^shop\/web +198\.51\.100\.7:443\/tcp +deny \(blocked\) -> audit \(blocked\)$/m);
    assert.doesNotMatch(changed.stdout, /10\.1\.2\.3:80/, 'an unchanged flow is not listed');

    const partner = write(
      'partner.yaml',
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: egress-partner',
        '  namespace: shop',
        '  labels: {meshgate.io/egress-allowlist: "true"}',
        'data:',
        '  egress: |',
        '    - name: partner',
        '      addresses: [198.51.100.0/24]',
        '      ports: [{number: 443, protocol: HTTPS}]',
        '',
      ].join('\n'),
    );
    const json = cli('--json', partner);
    assert.equal(json.status, 1, json.stderr);
    const report = JSON.parse(json.stdout) as {
      valid: boolean;
      changes: PreviewRow[];
      replaces: { global: boolean; namespaces: string[] };
    };
    assert.equal(report.valid, true);
    assert.deepEqual(report.replaces, { global: false, namespaces: ['shop'] });
    const row = report.changes.find((c) => c.destination === '198.51.100.7:443' && c.protocol === 'tcp')!;
    assert.deepEqual(
      [row.now.verdict, row.after.verdict, row.after.rule, row.after.entry],
      ['deny', 'pass', 'allow-namespace', 'shop/partner'],
    );

    const bad = cli(write('bad.yaml', JSON.stringify({ egress: 'yes', mesh_cidr_ranges: ['10.0.0.0/33'] })));
    assert.equal(bad.status, 2);
    assert.match(bad.stdout, /^error MG_CONFIG_BAD_BOOLEAN: file \S+bad\.yaml key egress: "yes"/m);
    assert.match(bad.stdout, /invalid candidate: 2 error\(s\); nothing was previewed$/m);

    const conflict = cli(
      '--namespace',
      'shop',
      audit,
      write('deny.yaml', JSON.stringify({ blocked_egress_action: 'deny', egress: [] })),
    );
    assert.equal(conflict.status, 2);
    assert.match(conflict.stdout, /MG_ALLOWLIST_ACTION_CONFLICT/);

    const noPins = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'bin/meshgate.js'), 'preview', '--pin-dir', path.join(dir, 'nowhere'), audit],
      { encoding: 'utf8' },
    );
    assert.equal(noPins.status, 3);
    assert.match(noPins.stderr, /^meshgate: no meshgate pins found/);
    assert.equal(
      spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/meshgate.js'), 'preview'], { encoding: 'utf8' }).status,
      2,
    );
  });
});
