// `meshgate demo`: a sandbox cgroup and netns on this host, the standalone agent
// on a sample config, a few connects (redirect, pass, deny), a live config edit,
// then `dump`. Everything it creates is removed at the end, on failure too.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupPins } from '../datapath/loader.js';
import { openPinnedMaps } from '../datapath/pinned.js';
import { findCgroup2Mount } from '../node/cgroup.js';
import { sockprobeArgv, tcpConnectArgv } from '../node/sockprobe.js';
import { dumpMaps, formatDump } from '../report/dump.js';
import { MeshgateError } from '../errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SOCKPROBE = path.join(ROOT, 'build/sockprobe');

const CONFIG = (allowForbidden: boolean) => `# The demo's osm-config (standalone mode reads the same keys from a file)
egress: "false"
mesh_cidr_ranges: "10.96.0.0/12"
proxy_outbound_port: "15001"
blocked_egress_action: deny
egress_allowlist: |
  - name: payments-api
    addresses: [203.0.113.10]
    ports: [{number: 443, protocol: HTTPS}]
${
  allowForbidden
    ? `  - name: now-allowed
    addresses: [198.51.100.7]
    ports: [{number: 443, protocol: TLS}]
`
    : ''
}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runDemo(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('meshgate demo: needs root (it creates a cgroup, a netns and BPF pins)\n');
    return 1;
  }
  const name = `mgdemo-${process.pid}`;
  const cgroup = path.join(findCgroup2Mount(), name);
  const app = path.join(cgroup, 'app');
  const proxy = path.join(cgroup, 'sidecar');
  const pinDir = `/sys/fs/bpf/${name}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'meshgate-demo-'));
  const configFile = path.join(dir, 'osm-config.yaml');
  const children: ChildProcess[] = [];
  const say = (text: string) => process.stdout.write(`${text}\n`);
  const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', name, ...args]);

  try {
    say(`meshgate demo: sandbox cgroup ${cgroup}, netns ${name}, pins ${pinDir}\n`);
    mkdirSync(cgroup);
    mkdirSync(app);
    mkdirSync(proxy);
    execFileSync('ip', ['netns', 'add', name]);
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    for (const a of ['10.96.0.20', '203.0.113.10', '198.51.100.7']) inNs('ip', 'addr', 'add', `${a}/32`, 'dev', 'lo');
    const listener = (port: number, banner: string, cg: string) => {
      const child = spawn(
        SOCKPROBE,
        sockprobeArgv({ netns: `/run/netns/${name}`, cgroup: cg }, 'listen', {
          family: 4,
          proto: 'tcp',
          addr: '0.0.0.0',
          port,
          banner,
        }),
        { stdio: 'ignore' },
      );
      children.push(child);
    };
    listener(15001, 'sidecar', proxy);
    listener(80, 'in-mesh service', proxy);
    listener(443, 'external site', proxy);
    writeFileSync(configFile, CONFIG(false));
    say(`sample config (${configFile}):\n${CONFIG(false).replace(/^/gm, '  ')}`);

    const agent = spawn(
      process.execPath,
      [
        path.join(ROOT, 'bin/meshgate.js'),
        'agent',
        '--config-file',
        configFile,
        '--cgroup',
        cgroup,
        '--proxy-cgroup',
        proxy,
        '--pin-dir',
        pinDir,
        '--namespace',
        'demo',
        '--pod-name',
        'web',
        '--listen',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(agent);
    let agentLog = '';
    agent.stdout!.on('data', (d: Buffer) => (agentLog += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (agentLog += d.toString()));
    for (let i = 0; i < 100 && !agentLog.includes('"hooks attached"'); i++) await sleep(50);
    if (!agentLog.includes('"hooks attached"'))
      throw new MeshgateError('MG_DEMO_FAILED', `the agent did not start:\n${agentLog}`);
    say('agent started (standalone mode), hooks attached to the sandbox cgroup\n');

    const connect = (addr: string, port: number, what: string): string => {
      const r = spawnSync(SOCKPROBE, tcpConnectArgv({ netns: `/run/netns/${name}`, cgroup: app }, addr, port), {
        encoding: 'utf8',
      });
      const out = JSON.parse(r.stdout.trim()) as { ok: boolean; error: string | null; reply: string | null };
      let verdict: string;
      if (!out.ok && out.error === 'EPERM') verdict = 'DENIED     connect() failed with EPERM, no packet left';
      else {
        const reply = out.reply ? (JSON.parse(out.reply.trim()) as { server: string; origdst: string | null }) : null;
        verdict =
          reply?.server === 'sidecar'
            ? `REDIRECTED to the sidecar, which recovered the original destination ${reply.origdst} (SO_ORIGINAL_DST)`
            : `PASSED     answered by "${reply?.server ?? out.error}"`;
      }
      const line = `  ${`${addr}:${port}`.padEnd(18)} ${what.padEnd(26)} ${verdict}`;
      say(line);
      return verdict;
    };
    say('connects from the app container:');
    connect('10.96.0.20', 80, '(in-mesh service)');
    connect('203.0.113.10', 443, '(allowlisted payments-api)');
    connect('198.51.100.7', 443, '(not allowlisted)');

    say('\nediting the config live: allowlisting 198.51.100.7:443 (no restart)...');
    writeFileSync(configFile, CONFIG(true));
    let verdict = '';
    for (let i = 0; i < 40 && !verdict.startsWith('PASSED'); i++) {
      await sleep(50);
      const r = spawnSync(
        SOCKPROBE,
        sockprobeArgv({ netns: `/run/netns/${name}`, cgroup: app }, 'connect', {
          family: 4,
          proto: 'tcp',
          addr: '198.51.100.7',
          port: 443,
          timeoutMs: 500,
        }),
        { encoding: 'utf8' },
      );
      verdict = JSON.parse(r.stdout.trim()).error === 'EPERM' ? 'DENIED' : 'PASSED';
    }
    connect('198.51.100.7', 443, '(after the edit)');

    say('\nmeshgate dump:');
    const pinned = openPinnedMaps(pinDir);
    try {
      say(formatDump(dumpMaps(pinned.maps)).replace(/^/gm, '  '));
    } finally {
      pinned.close();
    }
    return 0;
  } catch (err) {
    process.stderr.write(`meshgate demo failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await sleep(100);
    cleanupPins(pinDir);
    for (const d of [app, proxy, cgroup]) {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(d);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          await sleep(20);
        }
      }
    }
    spawnSync('ip', ['netns', 'del', name]);
    rmSync(dir, { recursive: true, force: true });
    say('\ncleaned up: cgroup, netns, pins and files removed');
  }
}
