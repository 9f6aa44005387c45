// The real standalone agent with a hostname allowlist entry, resolved through a real DNS
// server on loopback: the resolved address passes, a changed answer moves the allowance with
// no restart, and a silent DNS server leaves the last addresses in force for the grace period.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type DnsTestServer } from '../helpers/dnsServer.js';
import { createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { REPO_ROOT, requireRoot, until as waitUntil } from '../helpers/sandbox.js';
import { killAndWait, startDnsAgent } from '../helpers/standaloneAgent.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP standalone agent hostname tests: ${skip}`);

const HOST = 'api.partner.test';
// Both are on the sandbox netns's loopback (kernelFixture V4_HOSTS), with a listener on 443.
const FIRST = '203.0.113.10';
const SECOND = '203.0.113.20';
const TTL_S = 1;
const GRACE_S = 4;

const CONFIG = `egress: "false"
mesh_cidr_ranges: "10.0.0.0/8"
`;
const ALLOWLIST = `- name: partner
  hosts: [${HOST}]
  ports: [{number: 443, protocol: HTTPS}]
`;

describe('standalone agent with a hostname allowlist entry', { skip: skip ?? false }, () => {
  let pod: PodFixture | undefined;
  let dns: DnsTestServer | undefined;
  let dir: string | undefined;
  let agent: ChildProcess | undefined;
  let log = '';

  /** Polls until `check` holds, failing with the agent's last log lines after `ms`. */
  const until = (what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> =>
    waitUntil(what, check, ms, () => `agent log tail:\n${log.split('\n').slice(-15).join('\n')}`);
  const verdict = (address: string, port = 443) => pod!.connect(address, port).verdict;
  const logLines = (msg: string) =>
    log
      .split('\n')
      .filter((l) => l.includes(`"msg":"${msg}"`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    dns = await startDnsServer({ [HOST]: { a: [{ address: FIRST, ttl: TTL_S }] } });
    pod = await createPod('agenthost');
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-agenthost-'));
    const configFile = path.join(dir, 'osm-config.yaml');
    const allowlistFile = path.join(dir, 'egress.yaml');
    writeFileSync(configFile, CONFIG);
    writeFileSync(allowlistFile, ALLOWLIST);
    agent = startDnsAgent(
      { pod, configFile, allowlistFile, dnsPort: dns.port, ttlCeilingS: TTL_S, graceS: GRACE_S },
      (text) => (log += text),
    );
    await until('the agent to apply its first policy', () => log.includes('"policy applied"'));
  });

  after(async () => {
    await killAndWait(agent);
    pod?.close();
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the address the hostname resolves to passes on the entry's port; others are denied", async () => {
    await until(`${FIRST}:443 to pass once ${HOST} is resolved`, () => verdict(FIRST) === 'pass');
    assert.equal(verdict(SECOND), 'deny');
    assert.equal(verdict(FIRST, 80), 'deny', "only the entry's port is allowed");
    assert.equal(verdict('10.1.2.3', 80), 'redirect', 'the mesh still redirects');
    // The verdict can flip before the agent's log line has come through the pipe: wait for it.
    await until("the resolver's log line", () =>
      logLines('hostname addresses changed').some(
        (l) => l['host'] === HOST && JSON.stringify(l['addresses']) === JSON.stringify([FIRST]),
      ),
    );
  });

  test('meshgate dump allowlists names the entry and its hostname', () => {
    const run = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [path.join(REPO_ROOT, 'bin/meshgate.js'), 'dump', ...args, '--pin-dir', pod!.sb.pinDir],
        { encoding: 'utf8', timeout: 30_000 },
      );
    const text = run('allowlists');
    assert.equal(text.status, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(
        `namespace shop\\n\\s+partner \\(${HOST.replace(/\./g, '\\.')}\\)\\n\\s+${FIRST.replace(/\./g, '\\.')}/32 443/tcp`,
      ),
    );
    const json = run('allowlists', '--json');
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).allowlists, [
      {
        namespace: 'shop',
        entries: [{ name: 'partner', destinations: [{ cidr: `${FIRST}/32`, host: HOST, ports: ['443/tcp'] }] }],
      },
    ]);
  });

  test('a changed DNS answer moves the allowance after the TTL, with no agent restart', async () => {
    const pid = agent!.pid;
    dns!.setRecords({ [HOST]: { a: [{ address: SECOND, ttl: TTL_S }] } });
    await until(`${SECOND}:443 to pass after the TTL`, () => verdict(SECOND) === 'pass');
    assert.equal(verdict(FIRST), 'deny');
    assert.equal(agent!.pid, pid);
    assert.equal(agent!.exitCode, null);
    assert.equal(logLines('datapath opened').length, 1, 'the agent opened its datapath once: no restart');
  });

  test('when the DNS server stops answering, the last addresses stay through the grace period, and the log says so', async () => {
    await dns!.stop();
    await until(
      'the agent to log the failed refresh',
      () => logLines('hostname refresh failed, keeping last addresses').length > 0,
    );
    const kept = logLines('hostname refresh failed, keeping last addresses')[0]!;
    assert.equal(kept['host'], HOST);
    assert.ok(
      typeof kept['graceLeftMs'] === 'number' && kept['graceLeftMs'] > 0 && kept['graceLeftMs'] <= GRACE_S * 1000,
      JSON.stringify(kept),
    );
    assert.equal(verdict(SECOND), 'pass', 'the last address stays allowed during the grace period');
    assert.equal(verdict(FIRST), 'deny');

    // The grace period is bounded: once over, the addresses go, and so does the allowance.
    await until(
      'the grace period to end',
      () => logLines('hostname grace period over, addresses dropped').length > 0,
      (GRACE_S + 6) * 1000,
    );
    await until(`${SECOND}:443 to be denied after the grace period`, () => verdict(SECOND) === 'deny');
    assert.equal(agent!.exitCode, null);
  });
});
