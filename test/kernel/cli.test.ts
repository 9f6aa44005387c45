// The real CLI (bin/meshgate.js) against live pins in a sandbox: dump, explain,
// trace, status and cleanup, their exit codes, --json shapes and one-line errors.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeU32 } from '../../src/datapath/codec.js';
import { hookPrograms } from '../../src/datapath/loader.js';
import { expectedVariant } from '../helpers/variant.js';
import type { DesiredPolicy } from '../../src/datapath/desired.js';
import { allow, basePolicy, createPod, group, mesh, type PodFixture } from '../helpers/kernelFixture.js';
import { REPO_ROOT, SOCKPROBE, requireRoot } from '../helpers/sandbox.js';
import { NOBODY, nodeAsNobody } from '../helpers/asNobody.js';

const skip = requireRoot();
/** Hooks the variant under test attaches (compat has no cgroup/setsockopt). */
const hookCount = (): number => hookPrograms(expectedVariant()).length;
if (skip) console.log(`# SKIP CLI tests: ${skip}`);

const CLI = path.join(REPO_ROOT, 'bin/meshgate.js');
const entry = (namespace: string, name: string, host?: string) =>
  JSON.stringify(host ? { kind: 'entry', namespace, name, host } : { kind: 'entry', namespace, name });

function cli(args: string[], opts: { uid?: number } = {}) {
  // As nobody from any checkout location, also one nobody cannot read (test/helpers/asNobody.ts).
  const r =
    opts.uid === NOBODY
      ? nodeAsNobody([CLI, ...args])
      : spawnSync(process.execPath, [CLI, ...args], {
          encoding: 'utf8',
          timeout: 30_000,
          uid: opts.uid,
          gid: opts.uid,
        });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cgroupPrograms(cgroup: string): string[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }).trim();
  return (JSON.parse(out || '[]') as Array<{ name: string }>).map((p) => p.name).sort();
}

/** Runs `meshgate trace`, waits until it has asked the kernel for events, runs `act`, then collects its output. */
async function traceWhile(
  pod: PodFixture,
  args: string[],
  act: () => void,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'trace', '--pin-dir', pod.sb.pinDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 10_000;
    while ((pod.dp.maps.mg_trace.lookup(encodeU32(0))?.readBigUInt64LE(8) ?? 0n) === 0n) {
      if (Date.now() > deadline) throw new Error(`trace did not start: ${stderr}`);
      if (child.exitCode !== null) throw new Error(`trace exited ${child.exitCode}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    act();
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const status = await exited;
    clearTimeout(timer);
    return { status, stdout, stderr };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

describe('the meshgate CLI on live pins', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let pin: string[];
  const policy = (overrides: Partial<DesiredPolicy> = {}) =>
    basePolicy({
      groups: [
        mesh('10.0.0.0/8', 'fd00::/8'),
        group('allow:shop', [
          allow('shop', '203.0.113.0/24', 443, 'tcp', entry('shop', 'stripe')),
          allow('shop', '198.51.100.200/32', 443, 'tcp', entry('shop', 'stripe', 'api.stripe.com')),
          allow('shop', '2001:db8::10/128', 53, 'udp', entry('shop', 'dns')),
        ]),
        group('allow:', [allow('', '192.0.2.1/32', 8080, 'tcp', entry('', 'metrics'))]),
      ],
      ...overrides,
    });
  before(async () => {
    pod = await createPod('cli');
    pin = ['--pin-dir', pod.sb.pinDir];
    pod.apply(policy());
    pod.dp.writeAgentStatus({
      lastApplyUnixMs: Date.now(),
      lastReconcileUnixMs: Date.now(),
      generation: pod.dp.currentGeneration,
      agentPid: process.pid,
      mode: 'standalone',
      objectsTotal: 2,
      objectsInvalid: 0,
    });
  });
  after(() => pod?.close());

  test('every command has --help, also without root', () => {
    for (const cmd of [
      'agent',
      'validate',
      'cleanup',
      'status',
      'dump',
      'explain',
      'trace',
      'flows',
      'preview',
      'demo',
    ]) {
      const r = cli([cmd, '--help'], { uid: 65534 });
      assert.equal(r.status, 0, `${cmd} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: meshgate ${cmd}`));
    }
  });

  test('without root, reading pins fails with one line and exit 1', () => {
    for (const args of [['dump'], ['status'], ['explain', 'shop/web', '1.2.3.4:80'], ['trace'], ['cleanup']]) {
      const r = cli([...args, ...pin], { uid: 65534 });
      assert.equal(r.status, 1, `${args[0]}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^meshgate: \w+ needs root: .*\n$/);
    }
  });

  test('no pins: one line naming the pin dir, exit 1', () => {
    for (const args of [['dump'], ['status'], ['explain', 'shop/web', '1.2.3.4:80'], ['trace']]) {
      const r = cli([...args, '--pin-dir', '/sys/fs/bpf/mgtest-none']);
      assert.equal(r.status, 1, args[0]);
      assert.equal(
        r.stderr,
        'meshgate: no meshgate pins found: is the agent running? (pin dir /sys/fs/bpf/mgtest-none does not exist; see --pin-dir)\n',
      );
    }
  });

  test('dump decodes allowlists by namespace and entry, with the hostname, pods and counters', () => {
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    const r = cli(['dump', ...pin]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ {2}namespace shop$/m);
    assert.match(
      r.stdout,
      /^ {4}stripe \(api\.stripe\.com\)\n {6}198\.51\.100\.200\/32 443\/tcp {2}\(api\.stripe\.com\)\n {6}203\.0\.113\.0\/24 443\/tcp$/m,
    );
    assert.match(r.stdout, /^ {2}global \(every namespace\)$/m);
    assert.match(r.stdout, /shop\/web +meshed +sidecar cgroup \d+/);
    assert.match(r.stdout, /^ {2}deny +blocked +\d+$/m);
    for (const line of r.stdout.split('\n')) assert.ok(line.length <= 80, `longer than 80 columns: ${line}`);

    const j = JSON.parse(cli(['dump', '--json', ...pin]).stdout);
    assert.deepEqual(Object.keys(j), [
      'generation',
      'activeSlot',
      'config',
      'meshCidrs',
      'exclusions',
      'allowlists',
      'pods',
      'counters',
      'events',
      'learned',
      'dnsReader',
      'replies',
    ]);
    assert.deepEqual(j.meshCidrs, ['10.0.0.0/8', 'fd00::/8']);
    const shop = j.allowlists.find((a: { namespace: string }) => a.namespace === 'shop');
    assert.deepEqual(shop.entries.find((e: { name: string }) => e.name === 'stripe').destinations, [
      { cidr: '198.51.100.200/32', host: 'api.stripe.com', ports: ['443/tcp'] },
      { cidr: '203.0.113.0/24', host: null, ports: ['443/tcp'] },
    ]);
    assert.equal(j.pods.length, 1);
    assert.equal(j.pods[0].pod, 'shop/web');
    assert.equal(j.pods[0].meshed, true);
    assert.equal(j.pods[0].proxyIdentity, 'cgroup');
    assert.ok(
      j.counters.some(
        (c: { verdict: string; rule: string; count: number }) =>
          c.verdict === 'deny' && c.rule === 'blocked' && c.count >= 1,
      ),
    );

    const only = JSON.parse(cli(['dump', 'pods', '--json', ...pin]).stdout);
    assert.deepEqual(Object.keys(only), ['generation', 'activeSlot', 'pods']);
    const bad = cli(['dump', 'nonsense', ...pin]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^error: no section or map "nonsense"/);
    const flows = cli(['dump', 'mg_flows', ...pin]);
    assert.equal(flows.status, 2);
    assert.match(flows.stderr, /^error: mg_flows is decoded by `meshgate flows`/);
  });

  test('explain: verdict, rule and entry from the live maps, and the verdict as exit code', () => {
    const deny = cli(['explain', 'shop/web', '198.51.100.7:443', ...pin]);
    assert.equal(deny.status, 4, deny.stderr);
    assert.match(
      deny.stdout,
      /^denied: no allowlist entry in namespace shop or the global allowlist covers\n\s+198\.51\.100\.7:443\/tcp; egress is off/,
    );
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');

    const redirect = cli(['explain', 'shop/web', '10.1.2.3:80', ...pin]);
    assert.equal(redirect.status, 3);
    assert.match(redirect.stdout, /redirect to +127\.0\.0\.1:15001/);
    assert.match(redirect.stdout, /entry +mesh_cidr_ranges: 10\.0\.0\.0\/8/);

    const pass = cli(['explain', 'shop/web', '198.51.100.200:443', '--json', ...pin]);
    assert.equal(pass.status, 0);
    const x = JSON.parse(pass.stdout);
    assert.equal(x.verdict, 'pass');
    assert.equal(x.rule, 'allow-namespace');
    assert.deepEqual(x.entry, {
      map: 'mg_policy_trie',
      table: 'allow',
      cidr: '198.51.100.200/32',
      port: 443,
      protocol: 'tcp',
      namespace: 'shop',
      name: 'stripe',
      host: 'api.stripe.com',
    });
    assert.equal(pod.connect('198.51.100.200', 443).verdict, 'pass');

    const udp = cli(['explain', '--cgroup', String(x.caller.cgroupId), '[2001:db8::10]:53', '--udp', ...pin]);
    assert.equal(udp.status, 0, udp.stderr);
    assert.match(udp.stdout, /allowlist shop\/dns: 2001:db8::10\/128 53\/udp/);

    const proxy = cli([
      'explain',
      '--cgroup',
      execFileSync('stat', ['-c', '%i', pod.proxy], { encoding: 'utf8' }).trim(),
      '198.51.100.7:443',
      ...pin,
    ]);
    assert.equal(proxy.status, 0);
    assert.match(proxy.stdout, /^passed: cgroup \d+ is a sidecar's container cgroup/);
  });

  test('explain: one-line errors for no such pod (1) and bad arguments (2)', () => {
    const nopod = cli(['explain', 'shop/nope', '1.2.3.4:80', ...pin]);
    assert.equal(nopod.status, 1);
    assert.match(
      nopod.stderr,
      /^meshgate: no such pod: shop\/nope is not in mg_cgroups under .* \(known: shop\/web\)\n$/,
    );
    for (const [args, message] of [
      [['shop/web', '2001:db8::1:443'], /write an IPv6 destination as \[ADDRESS\]:PORT/],
      [['shop/web', 'example.com:443'], /is not an IP address/],
      [['shop/web', '1.2.3.4:70000'], /port 70000 is not in 1\.\.65535/],
      [['shop/web/app', '1.2.3.4:80'], /is not NAMESPACE\/POD or POD/],
      [['--cgroup', 'abc', '1.2.3.4:80'], /is not a cgroup id/],
      [['shop/web', `${'a'.repeat(100_000)}:443`], /"a{64}…" \(100000 characters\) is not an IP address/],
      [['shop/web', `1.2.3.4:${'9'.repeat(100_000)}`], /port 9{12}… is not in/],
      [['shop/web\u001b[2J\u0007', '1.2.3.4:80'], /"shop\/web\\u001b\[2J\\u0007" is not NAMESPACE\/POD/],
    ] as const) {
      const r = cli(['explain', ...args, ...pin]);
      assert.equal(r.status, 2, `${args.join(' ').slice(0, 200)}: ${r.stderr.slice(0, 500)}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr.slice(0, 500));
      assert.ok(r.stderr.length < 400, `echoed input is bounded: ${r.stderr.length} characters`);
      assert.doesNotMatch(r.stderr, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'no raw control character');
    }
  });

  test('explain, flows and trace take a bare pod name when one namespace has it, and refuse it naming the namespaces when several do', async () => {
    const full = cli(['explain', 'shop/web', '198.51.100.7:443', ...pin]);
    const bare = cli(['explain', 'web', '198.51.100.7:443', ...pin]);
    assert.equal(bare.status, full.status, bare.stderr);
    assert.equal(bare.stdout, full.stdout);
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    const flows = cli(['flows', '--pod', 'web', '--json', ...pin]);
    assert.equal(flows.status, 0, flows.stderr);
    const listed = (JSON.parse(flows.stdout) as { flows: Array<{ pod: string }> }).flows;
    assert.ok(listed.length > 0 && listed.every((f) => f.pod === 'shop/web'), flows.stdout);
    const traced = await traceWhile(pod, ['--json', '--pod', 'web', '--count', '1'], () =>
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny'),
    );
    assert.equal(traced.status, 0, traced.stderr);
    assert.equal(JSON.parse(traced.stdout.trim().split('\n')[0]!).pod, 'shop/web');
    // Another namespace's pod of the same name (a cgroup id no process uses).
    const other = {
      cgroupId: 0xfff0_0000n,
      kind: 'pod' as const,
      namespace: 'other',
      label: 'other/web',
      proxyCgroupKnown: false,
    };
    pod.apply(policy(), [...pod.cgroups(), other]);
    try {
      for (const args of [
        ['explain', 'web', '198.51.100.7:443'],
        ['flows', '--pod', 'web'],
        ['trace', '--pod', 'web'],
      ]) {
        const r = cli([...args, ...pin]);
        assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(
          r.stderr,
          'meshgate: pod name web is mapped in 2 namespaces (other/web, shop/web): give NAMESPACE/NAME\n',
        );
      }
      assert.equal(
        cli(['explain', 'shop/web', '198.51.100.7:443', ...pin]).status,
        full.status,
        'a full name still works',
      );
    } finally {
      pod.apply(policy());
    }
  });

  test('trace shows a denied connect from the test cgroup, with pod and rule', async () => {
    const r = await traceWhile(pod, ['--json', '--count', '1'], () =>
      assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny'),
    );
    assert.equal(r.status, 0, r.stderr);
    const e = JSON.parse(r.stdout.trim().split('\n')[0]!);
    assert.equal(e.type, 'event');
    assert.equal(e.verdict, 'deny');
    assert.equal(e.rule, 'blocked');
    assert.equal(e.pod, 'shop/web');
    assert.equal(e.destination, '198.51.100.7:443');
    assert.equal(e.protocol, 'tcp');
    assert.equal(
      pod.dp.maps.mg_trace.lookup(encodeU32(0))!.readBigUInt64LE(8),
      0n,
      'trace withdrew its request on exit',
    );
  });

  test('trace --verdict redirect asks the programs for redirect events', async () => {
    const r = await traceWhile(pod, ['--verdict', 'redirect', '--pod', 'shop/web', '--count', '1'], () =>
      assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect'),
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^TIME +VERDICT +POD +DESTINATION +RULE$/);
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{3} redirect +shop\/web +10\.1\.2\.3:80\/tcp +mesh-cidr$/);
  });

  test('trace shows audits by default, as would-deny; the call got through', async () => {
    pod.apply(policy({ namespaceActions: [{ namespace: 'shop', action: 'audit' }] }));
    try {
      const r = await traceWhile(pod, ['--count', '1'], () =>
        assert.equal(pod.connect('198.51.100.7', 443).verdict, 'pass'),
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^tracing deny, audit events/);
      assert.match(
        r.stdout.trim().split('\n')[1]!,
        /^\d\d:\d\d:\d\d\.\d{3} audit +shop\/web +198\.51\.100\.7:443\/tcp +blocked \(would deny\)$/,
      );
    } finally {
      pod.apply(policy());
    }
  });

  test('trace reports events dropped by the rate limit', async () => {
    const r = await traceWhile(pod, ['--duration', '4'], () => {
      // 600 denied connects in a burst: far over the bucket (burst 200, 100/s per CPU).
      spawnSync(
        SOCKPROBE,
        [
          '--netns',
          pod.sb.netnsPath,
          '--cgroup',
          pod.app,
          'loop',
          '--family',
          '4',
          '--addr',
          '198.51.100.7',
          '--port',
          '443',
          '--count',
          '600',
          '--batches',
          '1',
        ],
        { timeout: 30_000 },
      );
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /-- events dropped: \d+ by the rate limit/);
  });

  test('status: hooks, attach cgroup, generation, last apply; problems make exit 3', () => {
    const ok = cli(['status', ...pin]);
    assert.equal(ok.status, 0, ok.stdout);
    assert.match(ok.stdout, new RegExp(`^attached to  ${pod.sb.cgroup} \\(cgroup \\d+, level 1\\)$`, 'm'));
    assert.equal((ok.stdout.match(/ attached$/gm) ?? []).length, hookCount());
    assert.match(ok.stdout, /^policy +generation \d+ \(slot [01]\)$/m);
    assert.match(ok.stdout, /^config +valid \(2 objects\)$/m);
    assert.match(ok.stdout, /^problems: +none$/m);
    const j = JSON.parse(cli(['status', '--json', ...pin]).stdout);
    assert.equal(j.hooks.length, hookCount());
    assert.ok(j.hooks.every((h: { attached: boolean; linkId: number }) => h.attached && h.linkId > 0));

    // The cluster agent keeps its last good configuration under state/: not a problem.
    const state = path.join(pod.sb.pinDir, 'state');
    const madeState = !existsSync(state);
    if (madeState) mkdirSync(state);
    try {
      assert.equal(cli(['status', ...pin]).status, 0, 'state/ is reported as a problem');
    } finally {
      if (madeState) rmdirSync(state);
    }

    const orphan = path.join(pod.sb.pinDir, 'maps', '0123456789ab');
    mkdirSync(orphan);
    try {
      const bad = cli(['status', ...pin]);
      assert.equal(bad.status, 3);
      assert.match(bad.stdout, /orphaned maps under .*0123456789ab/);
    } finally {
      rmdirSync(orphan);
    }
  });

  test('status shows a link that is pinned but not attached', () => {
    const link = path.join(pod.sb.pinDir, 'links', 'mg_connect4');
    execFileSync('bpftool', ['link', 'detach', 'pinned', link]);
    const r = cli(['status', ...pin]);
    assert.equal(r.status, 3);
    assert.match(r.stdout, /cgroup\/connect4 +link \d+ +prog \d+ +NOT ATTACHED/);
    assert.match(
      r.stdout.replace(/\n +/g, ' '),
      /cgroup\/connect4: link \d+ is pinned at \S+\/links\/mg_connect4 but not attached/,
    );
  });

  test("cleanup removes meshgate's links and maps and spares another tool's program and pins", () => {
    const foreignProg = `${pod.sb.pinDir}-foreign`;
    const foreignInPinDir = path.join(pod.sb.pinDir, 'foreign_prog');
    execFileSync('bpftool', [
      'prog',
      'load',
      path.join(REPO_ROOT, 'build/foreign.bpf.o'),
      foreignProg,
      'type',
      'cgroup/connect4',
    ]);
    try {
      execFileSync('bpftool', ['cgroup', 'attach', pod.sb.cgroup, 'connect4', 'pinned', foreignProg, 'multi']);
      execFileSync('bpftool', [
        'prog',
        'load',
        path.join(REPO_ROOT, 'build/foreign.bpf.o'),
        foreignInPinDir,
        'type',
        'cgroup/connect4',
      ]);
      assert.ok(cgroupPrograms(pod.sb.cgroup).includes('mg_connect6'));
      const r = cli(['cleanup', '--json', ...pin]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.unpinned.filter((p: string) => p.includes('/links/')).length, hookCount());
      assert.deepEqual(out.left, [foreignInPinDir]);
      assert.deepEqual(cgroupPrograms(pod.sb.cgroup), ['foreign_connect4']);
      assert.deepEqual(readdirSync(pod.sb.pinDir), ['foreign_prog']);
      assert.notEqual(pod.connect('198.51.100.7', 443).verdict, 'deny', 'no meshgate program decides any more');
      const again = cli(['cleanup', ...pin]);
      assert.equal(again.status, 0);
      assert.match(again.stdout, /left .*foreign_prog: not meshgate's/);
    } finally {
      spawnSync('bpftool', ['cgroup', 'detach', pod.sb.cgroup, 'connect4', 'pinned', foreignProg]);
      spawnSync('rm', ['-f', foreignProg, foreignInPinDir]);
    }
    assert.equal(existsSync(foreignProg), false);
  });
});
