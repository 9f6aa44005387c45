// Module boundaries that the layout promises (docs/architecture.md): only the
// datapath and the native bridge talk to libbpf, so every other module can be
// read, tested and changed without knowing a C signature.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/sandbox.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => path.relative(REPO_ROOT, path.join(d.parentPath, d.name)));
}

/** Module specifiers of every static and dynamic import and re-export in a TypeScript source. */
export function importsOf(text: string): string[] {
  const specifiers: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)) specifiers.push(m[1]!);
  return specifiers;
}

const importsLibbpf = (file: string): boolean =>
  importsOf(readFileSync(path.join(REPO_ROOT, file), 'utf8')).some((s) => /(^|\/)native\/libbpf(\.js)?$/.test(s));

test('the import scan sees static, dynamic and re-export forms', () => {
  const text =
    "import { libbpf } from '../../native/libbpf.js';\nexport * from \"../native/libbpf\";\nconst m = await import('../native/libbpf.js');";
  assert.deepEqual(importsOf(text), ['../../native/libbpf.js', '../native/libbpf', '../native/libbpf.js']);
});

test('only src/datapath and native import native/libbpf (src and bench)', () => {
  const files = [...sourceFiles('src'), ...sourceFiles('bench')];
  assert.ok(
    files.some((f) => f.startsWith('src/datapath/') && importsLibbpf(f)),
    "the scan finds the datapath's own imports",
  );
  const offenders = files.filter((f) => !f.startsWith('src/datapath/') && importsLibbpf(f));
  assert.deepEqual(offenders, [], 'route these through src/datapath/');
});
