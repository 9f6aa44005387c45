// Hostnames as the pod sees them: the real standalone agent, a DNS server inside the test netns on
// the trusted resolver address, and a pod that resolves a name and connects at once to what it was
// told. The kernel learns the addresses from the pod's own answers (bpf/dns.bpf.c) before the pod
// can read them; forged, unsolicited and expired answers allow nothing.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { encode } from 'dns-packet';
import { startDnsServer, type DnsTestRecords, type DnsTestServer } from '../helpers/dnsServer.js';
import { createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { REPO_ROOT, requireRoot, until as waitUntil } from '../helpers/sandbox.js';
import { cgroupId } from '../../src/node/cgroup.js';
import { killAndWait, startDnsAgent } from '../helpers/standaloneAgent.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP DNS learning tests: ${skip}`);

const DNSPROBE = path.join(REPO_ROOT, 'build/dnsprobe');
// Extra addresses on the sandbox's loopback; the fixture's listeners (bound to ::) answer on all.
const POOL = ['203.0.113.10', '198.51.100.7', '203.0.113.30'];
const AGENT_VIEW = '203.0.113.40';
const WILDCARD_ANSWER = '203.0.113.50';
const CNAME_ANSWER = '203.0.113.60';
const SHORT_ANSWER = '203.0.113.20';
const NEVER = '192.0.2.1';
const EXTRA = ['203.0.113.30', '203.0.113.40', '203.0.113.50', '203.0.113.60'];
const TTL_CEILING_S = 2;
const GRACE_S = 1;

const CONFIG = `egress: "false"
mesh_cidr_ranges: "10.0.0.0/8"
`;
const ALLOWLIST = `- name: partner
  hosts: [pool.partner.test, alias.partner.test, short.partner.test]
  ports: [{number: 443, protocol: HTTPS}]
- name: cdn
  hosts: ["*.cdn.test"]
  ports: [{number: 443, protocol: HTTPS}]
`;

const POD_RECORDS: DnsTestRecords = {
  'pool.partner.test': { a: POOL.map((address) => ({ address, ttl: 30 })), rotate: true },
  'x.y.cdn.test': { a: [{ address: WILDCARD_ANSWER, ttl: 30 }] },
  'cdn.test': { a: [{ address: NEVER, ttl: 30 }] },
  'alias.partner.test': { cname: 'edge.elsewhere.test' },
  'edge.elsewhere.test': { a: [{ address: CNAME_ANSWER, ttl: 30 }] },
  'short.partner.test': { a: [{ address: SHORT_ANSWER, ttl: 1 }] },
};
// What the agent's own resolver (on the host's loopback, same address and port) is told.
const AGENT_RECORDS: DnsTestRecords = { 'pool.partner.test': { a: [{ address: AGENT_VIEW, ttl: 30 }] } };
// An untrusted server on the pod's side (same port, another address) that lies.
const FORGED_RECORDS: DnsTestRecords = { 'pool.partner.test': { a: [{ address: NEVER, ttl: 30 }] } };

interface ResolveResult {
  rcode: number;
  answers: string[];
  connects: Array<{ addr: string; ok: boolean; error: string | null }>;
}

/** The DNS test server as a process inside the netns, driven through stdin. */
class NetnsDnsServer {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];

  private constructor(child: ChildProcess) {
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (l) => this.lines.push(l));
  }

  static async start(netns: string, address: string, port: number, records: DnsTestRecords): Promise<NetnsDnsServer> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        netns,
        process.execPath,
        path.join(REPO_ROOT, 'dist/test/helpers/dnsServerMain.js'),
        '--address',
        address,
        '--port',
        String(port),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const server = new NetnsDnsServer(child);
    await waitUntil(
      `DNS server on ${address}:${port} in ${netns}`,
      () => server.lines.some((l) => l.includes('listening')),
      10_000,
    );
    await server.command({ records });
    return server;
  }

  async command(cmd: object): Promise<void> {
    const want = this.lines.filter((l) => l.includes('"ok"')).length + 1;
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    await waitUntil(
      'the DNS server to take a command',
      () => this.lines.filter((l) => l.includes('"ok"')).length >= want,
      5_000,
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

describe("the kernel learns allowlisted hostnames from the pod's own DNS answers", { skip: skip ?? false }, () => {
  let pod: PodFixture | undefined;
  let agentDns: DnsTestServer | undefined;
  let podDns: NetnsDnsServer | undefined;
  let forger: NetnsDnsServer | undefined;
  let dir: string | undefined;
  let agent: ChildProcess | undefined;
  let log = '';
  let port = 0;

  const until = (what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> =>
    waitUntil(what, check, ms, () => `agent log tail:\n${log.split('\n').slice(-15).join('\n')}`);
  const verdict = (address: string, p = 443) => pod!.connect(address, p).verdict;
  const resolve = (name: string, server = '127.0.0.1'): ResolveResult => {
    const r = spawnSync(
      DNSPROBE,
      [
        '--cgroup',
        pod!.app,
        '--netns',
        pod!.sb.netnsPath,
        'resolve',
        '--server',
        server,
        '--port',
        String(port),
        '--name',
        name,
        '--connect-port',
        '443',
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim()) as ResolveResult;
  };
  const dump = (...args: string[]) => {
    const r = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'bin/meshgate.js'), 'dump', ...args, '--pin-dir', pod!.sb.pinDir],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  before(async () => {
    agentDns = await startDnsServer(AGENT_RECORDS);
    port = agentDns.port;
    pod = await createPod('dnslearn');
    for (const a of EXTRA) pod.sb.inNetns('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
    pod.sb.inNetns('ip', ['addr', 'add', '127.0.0.2/8', 'dev', 'lo']);
    podDns = await NetnsDnsServer.start(pod.sb.netns, '127.0.0.1', port, POD_RECORDS);
    forger = await NetnsDnsServer.start(pod.sb.netns, '127.0.0.2', port, FORGED_RECORDS);
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-dnslearn-'));
    const configFile = path.join(dir, 'osm-config.yaml');
    const allowlistFile = path.join(dir, 'egress.yaml');
    writeFileSync(configFile, CONFIG);
    writeFileSync(allowlistFile, ALLOWLIST);
    agent = startDnsAgent(
      { pod, configFile, allowlistFile, dnsPort: port, ttlCeilingS: TTL_CEILING_S, graceS: GRACE_S },
      (text) => (log += text),
    );
    await until('the agent to apply its first policy', () => log.includes('"policy applied"'));
  });

  after(async () => {
    await killAndWait(agent);
    await podDns?.stop();
    await forger?.stop();
    pod?.close();
    await agentDns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a rotating answer: every address the pod is told passes at once; one never told stays denied', () => {
    assert.equal(verdict(POOL[0]!), 'deny', 'nothing is allowed before the pod asks');
    const seen = new Set<string>();
    for (let i = 0; i < POOL.length * 2; i++) {
      const r = resolve('pool.partner.test');
      assert.equal(r.rcode, 0);
      assert.equal(r.answers.length, 1, JSON.stringify(r));
      assert.deepEqual(
        r.connects.map((c) => [c.addr, c.ok, c.error]),
        [[r.answers[0], true, null]],
        `connect at once to ${r.answers[0]}`,
      );
      seen.add(r.answers[0]!);
    }
    assert.deepEqual([...seen].sort(), [...POOL].sort(), 'the server rotated through the whole pool');
    assert.equal(verdict(NEVER), 'deny', 'an address no answer held stays denied');
    assert.equal(verdict(POOL[0]!, 80), 'deny', "only the entry's port is learned");
  });

  test("the agent's own resolver seeing another answer changes nothing for the pod; either source allows", async () => {
    await until(`${AGENT_VIEW} to pass through the agent's own resolution`, () => verdict(AGENT_VIEW) === 'pass');
    const r = resolve('pool.partner.test');
    assert.notEqual(r.answers[0], AGENT_VIEW);
    assert.equal(r.connects[0]?.ok, true, JSON.stringify(r));
  });

  test('a wildcard host learns any deeper name, but not the bare domain', () => {
    const deep = resolve('x.y.cdn.test');
    assert.deepEqual(
      deep.connects.map((c) => [c.addr, c.ok]),
      [[WILDCARD_ANSWER, true]],
    );
    const bare = resolve('cdn.test');
    assert.deepEqual(
      bare.connects.map((c) => [c.addr, c.ok, c.error]),
      [[NEVER, false, 'EPERM']],
      '*.cdn.test does not match cdn.test',
    );
  });

  test('explain names the DNS answer a learned address came from, with its age and expiry, and agrees with the kernel', () => {
    resolve('x.y.cdn.test');
    const run = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [
          path.join(REPO_ROOT, 'bin/meshgate.js'),
          'explain',
          '--cgroup',
          String(cgroupId(pod!.app)),
          ...args,
          '--pin-dir',
          pod!.sb.pinDir,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
    const text = run(`${WILDCARD_ANSWER}:443`);
    assert.equal(text.status, 0, text.stderr);
    assert.match(
      text.stdout.replace(/\n +/g, ' '),
      /passed: learned from the DNS answer for x\.y\.cdn\.test \(\*\.cdn\.test\) \d+\.\ds ago \(TTL 30s\); allowed for \d+\.\ds more/,
    );
    const json = JSON.parse(run(`${WILDCARD_ANSWER}:443`, '--json').stdout) as {
      verdict: string;
      rule: string;
      entry: { name: string; host: string; learned: { name: string; expiresInMs: number } };
    };
    assert.deepEqual(
      [json.verdict, json.rule, json.entry.name, json.entry.host, json.entry.learned.name],
      ['pass', 'allow-learned', 'cdn', '*.cdn.test', 'x.y.cdn.test'],
    );
    assert.ok(json.entry.learned.expiresInMs > 0 && json.entry.learned.expiresInMs <= (TTL_CEILING_S + GRACE_S) * 1000);
    assert.equal(verdict(WILDCARD_ANSWER), 'pass', 'the kernel agrees');
    const other = JSON.parse(run(`${WILDCARD_ANSWER}:80`, '--json').stdout) as { verdict: string; rule: string };
    assert.deepEqual([other.verdict, other.rule], ['deny', 'blocked'], 'another port of a learned address');
    assert.equal(verdict(WILDCARD_ANSWER, 80), 'deny', 'the kernel agrees');
  });

  test('preview decides learned addresses as the kernel did: kept with their host, gone without it', () => {
    resolve('x.y.cdn.test');
    assert.equal(verdict(WILDCARD_ANSWER), 'pass');
    const candidate = (name: string, text: string) => {
      writeFileSync(path.join(dir!, name), text);
      return path.join(dir!, name);
    };
    const preview = (file: string) => {
      const r = spawnSync(
        process.execPath,
        [
          path.join(REPO_ROOT, 'bin/meshgate.js'),
          'preview',
          '--pin-dir',
          pod!.sb.pinDir,
          '--namespace',
          'shop',
          '--all',
          '--json',
          file,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      const report = JSON.parse(r.stdout) as {
        rows: Array<{
          address: string;
          port: number;
          protocol: string;
          kernel: { verdict: string; rule: string };
          now: { verdict: string; rule: string; entry: string | null };
          after: { verdict: string; rule: string };
        }>;
      };
      const row = report.rows.find((x) => x.address === WILDCARD_ANSWER && x.port === 443 && x.protocol === 'tcp');
      assert.ok(row, r.stdout);
      return { status: r.status, row };
    };
    const same = preview(candidate('same.yaml', ALLOWLIST));
    assert.equal(same.status, 0);
    assert.deepEqual([same.row.kernel.verdict, same.row.kernel.rule], ['pass', 'allow-learned']);
    assert.deepEqual(
      [same.row.now.verdict, same.row.now.rule, same.row.now.entry],
      ['pass', 'allow-learned', 'shop/cdn (*.cdn.test)'],
      'now is what the kernel did',
    );
    assert.deepEqual([same.row.after.verdict, same.row.after.rule], ['pass', 'allow-learned']);
    const without = preview(candidate('without-cdn.yaml', ALLOWLIST.slice(0, ALLOWLIST.indexOf('- name: cdn'))));
    assert.equal(without.status, 1);
    assert.deepEqual(
      [without.row.after.verdict, without.row.after.rule],
      ['deny', 'blocked'],
      'without its host, the learned address allows nothing',
    );
  });

  test('a CNAME chain inside the answer is followed to its addresses', () => {
    const r = resolve('alias.partner.test');
    assert.deepEqual(
      r.connects.map((c) => [c.addr, c.ok]),
      [[CNAME_ANSWER, true]],
    );
  });

  test('a forged answer from an untrusted resolver and an unsolicited one teach nothing', async () => {
    const forged = resolve('pool.partner.test', '127.0.0.2');
    assert.deepEqual(
      forged.connects.map((c) => [c.addr, c.ok, c.error]),
      [[NEVER, false, 'EPERM']],
    );

    // The trusted server sends a well-formed answer to a pod socket that never asked.
    const waiter = spawn(
      DNSPROBE,
      ['--cgroup', pod!.app, '--netns', pod!.sb.netnsPath, 'wait', '--port', '5533', '--timeout-ms', '3000'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const out: string[] = [];
    createInterface({ input: waiter.stdout! }).on('line', (l) => out.push(l));
    const exited = new Promise((r) => waiter.once('exit', r));
    await until('the pod socket to bind', () => out.some((l) => l.includes('bound')), 5_000);
    const answer = encode({
      type: 'response',
      id: 4242,
      flags: 0x8180,
      questions: [{ type: 'A', name: 'pool.partner.test' }],
      answers: [{ type: 'A', name: 'pool.partner.test', ttl: 30, data: NEVER }],
    });
    await podDns!.command({ send: { hex: answer.toString('hex'), port: 5533, address: '127.0.0.1' } });
    await exited;
    assert.ok(
      out.some((l) => /"received":[1-9]/.test(l)),
      `the answer was delivered (never dropped): ${out.join(' ')}`,
    );
    assert.equal(verdict(NEVER), 'deny');
  });

  test('after the TTL (clamped) and the grace period, a learned address is denied again', async () => {
    const r = resolve('short.partner.test');
    assert.deepEqual(
      r.connects.map((c) => [c.addr, c.ok]),
      [[SHORT_ANSWER, true]],
    );
    await until(
      `${SHORT_ANSWER} to be denied after TTL + grace`,
      () => verdict(SHORT_ANSWER) === 'deny',
      (TTL_CEILING_S + GRACE_S + 5) * 1000,
    );
  });

  test('trace --verdict pass shows learn events: the address, the pod and the allowlisted host', async () => {
    const tracer = spawn(
      process.execPath,
      [
        path.join(REPO_ROOT, 'bin/meshgate.js'),
        'trace',
        '--verdict',
        'pass',
        '--json',
        '--duration',
        '8',
        '--pin-dir',
        pod!.sb.pinDir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    createInterface({ input: tracer.stdout! }).on('line', (l) => lines.push(l));
    const exited = new Promise((r) => tracer.once('exit', r));
    try {
      // trace asks the kernel for pass events as it starts; retry until one learn event comes through.
      await until(
        'a learn event in trace',
        () => {
          resolve('x.y.cdn.test');
          return lines.some((l) => l.includes('"dns_learn"'));
        },
        8_000,
      );
    } finally {
      tracer.kill('SIGINT');
      await exited;
    }
    const event = JSON.parse(lines.find((l) => l.includes('"dns_learn"'))!) as {
      verdict: string;
      rule: string;
      address: string;
      pod: string | null;
      hook: string;
    };
    assert.deepEqual(
      [event.verdict, event.rule, event.address, event.hook],
      ['pass', 'allow-learned', WILDCARD_ANSWER, 'dns_learn'],
    );
    assert.match(event.pod ?? '', /^shop\//);
  });

  test('metrics count learned answers and refused ones by reason', async () => {
    const serving = log.split('\n').find((l) => l.includes('serving /healthz'));
    const port = (JSON.parse(serving!) as { port: number }).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.ok(value(/^meshgate_dns_answers_learned_total (\d+)$/m) >= POOL.length * 2, text);
    assert.ok(value(/^meshgate_dns_answers_refused_total\{reason="untrusted"\} (\d+)$/m) >= 1, 'the forged answer');
    assert.ok(
      value(/^meshgate_dns_answers_refused_total\{reason="unsolicited"\} (\d+)$/m) >= 1,
      'the unsolicited answer',
    );
    assert.ok(value(/^meshgate_dns_answers_refused_total\{reason="not_allowlisted"\} (\d+)$/m) >= 1, 'cdn.test');
    assert.equal(value(/^meshgate_dns_answers_refused_total\{reason="malformed"\} (\d+)$/m), 0);
    assert.equal(value(/^meshgate_dns_learned_evictions_total (\d+)$/m), 0);
  });

  test('dump learned lists the learned addresses by namespace, with host, TTL left and source', () => {
    resolve('x.y.cdn.test');
    const json = JSON.parse(dump('learned', '--json')) as {
      learned: Array<{
        namespace: string;
        address: string;
        host: string;
        name: string | null;
        source: string;
        expiresInMs: number;
      }>;
    };
    const wild = json.learned.find((l) => l.address === WILDCARD_ANSWER);
    assert.ok(wild, JSON.stringify(json));
    assert.deepEqual(
      [wild.namespace, wild.host, wild.name, wild.source],
      ['shop', '*.cdn.test', 'x.y.cdn.test', 'pod-dns'],
    );
    assert.ok(wild.expiresInMs > 0);
    assert.ok(
      json.learned.some((l) => l.address === AGENT_VIEW && l.source === 'agent' && l.host === 'pool.partner.test'),
      JSON.stringify(json),
    );
    assert.match(
      dump('learned'),
      /namespace shop\n[\s\S]*203\.0\.113\.50\s+\*\.cdn\.test \(x\.y\.cdn\.test\)\s+pod DNS/,
    );
  });
});
