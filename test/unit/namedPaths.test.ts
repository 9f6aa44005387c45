// Docs and comments that name a file name one that exists: a renamed or removed
// module must take its mentions with it (a comment once cited a limits.ts that never existed).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/sandbox.js';

const PATH =
  /(?<![\w<./-])(?:src|test|bench|native|scripts|docs|deploy|bpf)\/[A-Za-z0-9_./-]+\.(?:ts|mjs|c|h|sh|md|yaml)\b/g;

function files(dir: string, ends: readonly string[]): string[] {
  return readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && ends.some((e) => d.name.endsWith(e)))
    .map((d) => path.relative(REPO_ROOT, path.join(d.parentPath, d.name)));
}

test('every repository path named in docs, sources and comments exists', () => {
  const sources = [
    'README.md',
    ...files('docs', ['.md']),
    ...files('src', ['.ts']),
    ...files('native', ['.ts']),
    ...files('bpf', ['.c', '.h']),
    ...files('scripts', ['.mjs', '.sh']),
    ...files('bench', ['.ts']),
    ...files('test/helpers', ['.ts']),
  ];
  const missing: string[] = [];
  let named = 0;
  for (const file of sources) {
    const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
    for (const m of text.matchAll(PATH)) {
      named++;
      const p = m[0].replace(/\.$/, '');
      if (p.startsWith('bpf/bpf_') || /\/[A-Z]+\./.test(p)) continue; // libbpf's own headers (<bpf/bpf_helpers.h>), placeholders (bench/NAME.c)
      if (!existsSync(path.join(REPO_ROOT, p))) missing.push(`${file}: ${p}`);
    }
  }
  assert.ok(named > 50, 'the scan finds the paths the docs name');
  assert.deepEqual(missing, []);
});
