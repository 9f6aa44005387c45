// The real standalone agent process, driven through its files, with real sockets.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startStandaloneAgent } from '../helpers/standaloneAgent.js';
import { classify, createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { SOCKPROBE, requireRoot, until } from '../helpers/sandbox.js';
import { expectedVariant } from '../helpers/variant.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP standalone agent tests: ${skip}`);

const config = (extra: string, egress = '"false"') => `egress: ${egress}
mesh_cidr_ranges: "10.0.0.0/8"
egress_allowlist: |
  - name: api
    addresses: [203.0.113.10]
    ports: [{number: 443, protocol: HTTPS}]
${extra}`;
const allow198 = `  - name: partner
    addresses: [198.51.100.7/32]
    ports: [{number: 443, protocol: TLS}]
`;

describe('standalone agent', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  let dir: string;
  let configFile: string;
  let agent: ChildProcess | null = null;
  let log = '';
  let port = 0;

  async function startAgent(): Promise<void> {
    log = '';
    agent = startStandaloneAgent(pod, configFile, [], (text) => {
      log += text;
    });
    await until('the agent to apply its first policy', () => log.includes('"policy applied"'));
    port = Number(/"port":(\d+)/.exec(log)?.[1]);
  }

  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

  before(async () => {
    pod = await createPod('agent');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-agent-'));
    configFile = path.join(dir, 'osm-config.yaml');
    writeFileSync(configFile, config(''));
    await startAgent();
  });
  after(() => {
    agent?.kill('SIGKILL');
    pod?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serves readiness and health after the first apply, and logs the datapath variant it loaded', async () => {
    assert.ok(log.includes(`"variant":"${expectedVariant()}"`), 'the variant in the "datapath opened" line');
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    assert.equal(pod.connect('203.0.113.10', 443).verdict, 'pass');
    assert.match(await metrics(), /meshgate_verdicts_total\{verdict="redirect",rule="mesh-cidr"\} [1-9]/);
  });

  test('/metrics counts the entries of every map the agent or the programs fill (SPEC 3: entries per map)', async () => {
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    const text = await metrics();
    const entries = (map: string): number => {
      const m = new RegExp(`^meshgate_map_entries\\{map="${map}"\\} (\\d+)$`, 'm').exec(text);
      assert.ok(m, `meshgate_map_entries{map="${map}"} is served`);
      return Number(m[1]);
    };
    for (const map of [
      'mg_learned',
      'mg_reply_peers',
      'mg_dns_hosts',
      'mg_dns_ports',
      'mg_dns_names',
      'mg_excluded_ports',
    ])
      entries(map);
    // The programs filed the redirected flows and their original destinations; the agent mapped the pod.
    assert.ok(entries('mg_flows') >= 2, 'mg_flows holds the decided flows');
    assert.ok(entries('mg_origdst_by_peer') >= 1, 'mg_origdst_by_peer holds the redirected connects');
    assert.ok(entries('mg_cgroups') >= 1 && entries('mg_policy_trie') >= 1);
    assert.ok(entries('mg_dns_resolvers') >= 1, 'the trusted resolvers');
  });

  test('a config edit changes verdicts without a restart', async () => {
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    writeFileSync(configFile, config(allow198));
    await until('198.51.100.7:443 to pass', () => pod.connect('198.51.100.7', 443).verdict === 'pass');
  });

  test('an invalid edit changes nothing and sets config_valid to 0', async () => {
    writeFileSync(configFile, config('', '"yes"'));
    await until('the rejection', () => log.includes('config rejected, keeping its last good state'));
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'pass');
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    assert.match(await metrics(), /meshgate_config_valid\{configmap="file [^"]+"\} 0/);
    writeFileSync(configFile, config(allow198));
    await until('config_valid back to 1', async () =>
      /meshgate_config_valid\{configmap="file [^"]+"\} 1/.test(await metrics()),
    );
  });

  test('kill -9 leaves enforcement in force, and a restarted agent adopts the pins with no wrong verdict under traffic', async () => {
    const loop = `for i in $(seq 1 150); do for d in 198.51.100.7:443 10.1.2.3:80 192.0.2.1:443; do ${SOCKPROBE} --netns ${pod.sb.netnsPath} --cgroup ${pod.app} connect --family 4 --proto tcp --addr \${d%:*} --port \${d#*:} --read --timeout-ms 1000; done; done`;
    const traffic = spawn('bash', ['-c', loop], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    traffic.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const finished = new Promise<void>((resolve) => traffic.on('exit', () => resolve()));
    await new Promise((r) => setTimeout(r, 200));
    agent!.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await startAgent();
    assert.match(log, /"adopted":true/);
    await finished;
    const verdicts = out
      .trim()
      .split('\n')
      .map((l) => classify(JSON.parse(l)).verdict);
    assert.equal(verdicts.length, 450);
    const expected = ['pass', 'redirect', 'deny'];
    verdicts.forEach((v, i) => assert.equal(v, expected[i % 3], `connect ${i} got ${v}`));
    assert.match(log, /"updated":\[/);
  });

  test('SIGTERM stops the agent and leaves enforcement pinned', async () => {
    const exited = new Promise<number | null>((resolve) => agent!.once('exit', (code) => resolve(code)));
    agent!.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
    assert.equal(pod.connect('192.0.2.1', 443).verdict, 'deny');
  });
});
