// The CLI never touches what is not its own (issue 14): cleanup refuses a pin
// dir that is not bpffs and removes only pins whose kernel type and name are
// meshgate's; the agent's preflight never mounts bpffs over anything.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hookPrograms, pinLayout } from '../../src/datapath/loader.js';
import { expectedVariant } from '../helpers/variant.js';
import { basePolicy, createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { REPO_ROOT, requireRoot } from '../helpers/sandbox.js';

const skip = requireRoot();
/** Hooks the variant under test attaches (compat has no cgroup/setsockopt). */
const hookCount = (): number => hookPrograms(expectedVariant()).length;
if (skip) console.log(`# SKIP CLI safety tests: ${skip}`);

const CLI = path.join(REPO_ROOT, 'bin/meshgate.js');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
const bpfMounts = (): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - bpf /.test(l))
    .sort();

describe('the CLI never touches what is not its own', { skip: skip ?? false }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'mgtest-clisafety-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('cleanup --pin-dir on a directory that is not bpffs removes nothing and exits 1', () => {
    const pinDir = path.join(dir, 'not-bpffs');
    mkdirSync(path.join(pinDir, 'maps', '0123456789ab'), { recursive: true });
    mkdirSync(path.join(pinDir, 'links'));
    const files = [
      path.join(pinDir, 'maps', '0123456789ab', 'mg_state'),
      path.join(pinDir, 'links', 'mg_connect4'),
      path.join(pinDir, 'mg_precious'),
    ];
    for (const f of files) writeFileSync(f, 'precious\n');
    const r = cli(['cleanup', '--pin-dir', pinDir]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /is not on a bpffs mount: refusing to remove anything/);
    for (const f of files) assert.equal(readFileSync(f, 'utf8'), 'precious\n', `${f} is untouched`);
  });

  test("cleanup unlinks only pins whose kernel type and name are meshgate's", async () => {
    const pod: PodFixture = await createPod('clisafety');
    const { mapsDir, linksDir } = pinLayout(pod.sb.pinDir);
    const stateDir = path.join(pod.sb.pinDir, 'state');
    // Named like meshgate's, but not what the name says: a map under links/, a map pinned under another
    // map's name, a program where maps live.
    const planted = [path.join(linksDir, 'mg_notalink'), path.join(mapsDir, 'mg_fake'), path.join(stateDir, 'mg_prog')];
    try {
      pod.apply(basePolicy()); // attaches: links/ holds the six hooks' links
      mkdirSync(stateDir, { recursive: true });
      execFileSync('bpftool', ['map', 'pin', 'pinned', path.join(mapsDir, 'mg_cgroups'), planted[0]!]);
      execFileSync('bpftool', ['map', 'pin', 'pinned', path.join(mapsDir, 'mg_state'), planted[1]!]);
      execFileSync('bpftool', [
        'prog',
        'load',
        path.join(REPO_ROOT, 'build/foreign.bpf.o'),
        planted[2]!,
        'type',
        'cgroup/connect4',
      ]);
      const r = cli(['cleanup', '--json', '--pin-dir', pod.sb.pinDir]);
      assert.equal(r.status, 1, "objects named like meshgate's that are not are errors");
      const out = JSON.parse(r.stdout) as { unpinned: string[]; left: string[]; errors: string[] };
      assert.deepEqual(out.left.sort(), [...planted].sort());
      assert.equal(out.unpinned.filter((p) => p.includes('/links/')).length, hookCount(), 'the real links go');
      assert.ok(
        out.unpinned.includes(path.join(mapsDir, 'mg_state')) &&
          out.unpinned.includes(path.join(mapsDir, 'mg_cgroups')),
        'the real maps go',
      );
      assert.ok(
        out.errors.some((e) => e.includes("mg_notalink is a BPF map named mg_cgroups, not meshgate's link")),
        out.errors.join('\n'),
      );
      assert.ok(
        out.errors.some((e) => e.includes("mg_fake is a BPF map named mg_state, not meshgate's map mg_fake")),
        out.errors.join('\n'),
      );
      assert.ok(
        out.errors.some((e) => e.includes('mg_prog is a BPF prog')),
        out.errors.join('\n'),
      );
      for (const p of planted) assert.ok(existsSync(p), `${p} is left in place`);
    } finally {
      spawnSync('rm', ['-f', ...planted]);
      pod.close();
    }
  });

  test('agent --pin-dir /sys/fs/bpf-x (or any dir off bpffs) mounts nothing and exits 1', () => {
    const before = bpfMounts();
    for (const pinDir of [`/sys/fs/bpf-mgtest-${process.pid}`, path.join(dir, 'pins')]) {
      const r = cli([
        'agent',
        '--pin-dir',
        pinDir,
        '--config-file',
        '/dev/null',
        '--cgroup',
        '/sys/fs/cgroup/mgtest-none',
        '--listen',
        '127.0.0.1:0',
      ]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /preflight bpffs: pin dir .* is not on a bpf filesystem/);
    }
    assert.deepEqual(bpfMounts(), before, 'no bpffs was mounted');
  });
});
