// docs/cli.md against the real command line: its command table lists every command, the
// "need root" convention names every command that reads pins, and every command that takes
// --pin-dir is said to (the README's claim included).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const BIN = path.join(REPO_ROOT, 'bin/meshgate.js');
const CLI_MD = readFileSync(path.join(REPO_ROOT, 'docs/cli.md'), 'utf8');
const COMMANDS_DIR = path.join(REPO_ROOT, 'src/cli/commands');

function help(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args, '--help'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}
/** The commands `meshgate --help` lists. */
const commands = [...help().matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]!).filter((c) => c !== 'help');

test('the CLI has the commands SPEC §4 names (the list below is read from --help)', () => {
  for (const c of ['agent', 'validate', 'dump', 'explain', 'trace', 'status', 'flows', 'preview', 'cleanup', 'demo'])
    assert.ok(commands.includes(c), c);
});

test("docs/cli.md's command table has a row, and the page a section, for every command", () => {
  const table = CLI_MD.slice(0, CLI_MD.indexOf('## Conventions'));
  for (const c of commands) {
    assert.match(table, new RegExp(`^\\| \\[\`${c}.*?\\]\\(#${c}\\) \\|`, 'm'), `table row for ${c}`);
    assert.match(CLI_MD, new RegExp(`^## ${c}$`, 'm'), `section for ${c}`);
  }
});

test('the "need root" convention names every command that calls requireRoot', () => {
  const line = /^- (.*?) read bpffs and BPF maps:/ms.exec(CLI_MD.slice(CLI_MD.indexOf('## Conventions')))?.[1] ?? '';
  const named = [...line.matchAll(/`([a-z]+)`/g)].map((m) => m[1]);
  const rooted = readdirSync(COMMANDS_DIR)
    .filter((f) => /requireRoot\('/.test(readFileSync(path.join(COMMANDS_DIR, f), 'utf8')))
    .map((f) => f.replace(/\.ts$/, ''));
  assert.ok(rooted.length >= 7, `${rooted}`);
  assert.deepEqual([...named].sort(), [...rooted].sort());
});

test('--pin-dir: every command but validate and demo takes it, as docs/cli.md and the README say', () => {
  const withPinDir = commands.filter((c) => help(c).includes('--pin-dir'));
  assert.deepEqual(
    commands.filter((c) => !withPinDir.includes(c)),
    ['validate', 'demo'],
  );
  assert.match(CLI_MD, /every command but `validate` and `demo`/);
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  assert.match(readme, /every command but `validate` and `demo` takes `--pin-dir`/);
});
