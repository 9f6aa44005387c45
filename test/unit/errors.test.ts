// Errors outside config: one base with a registry of codes, each documented in docs/errors.md,
// and no error thrown without a code.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BpfError } from '../../native/libbpf.js';
import { CONFIG_ERROR_CODES } from '../../src/config/index.js';
import { HostResolverOptionsError } from '../../src/dns/errors.js';
import { ERROR_CODES, MeshgateError, isMeshgateError } from '../../src/errors.js';
import { KubeApiError } from '../../src/kube/client.js';
import { REPO_ROOT } from '../helpers/sandbox.js';

const errorsDoc = (): string => readFileSync(path.join(REPO_ROOT, 'docs/errors.md'), 'utf8');

function sources(dir: string): Array<{ file: string; text: string }> {
  return readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => path.join(d.parentPath, d.name))
    .map((f) => ({ file: path.relative(REPO_ROOT, f), text: readFileSync(f, 'utf8') }));
}

test('docs/errors.md has a table row and a section with an example for every error code', () => {
  const doc = errorsDoc();
  for (const code of Object.keys(ERROR_CODES)) {
    assert.ok(doc.includes(`| \`${code}\` |`), `${code} has no table row`);
    const section = doc.split(`### ${code}\n`)[1];
    assert.ok(section !== undefined, `${code} has no section`);
    assert.match(section.split('\n### ')[0] ?? '', /```\n\S/, `${code} has no example message`);
  }
});

test('docs/errors.md documents no code that neither registry has', () => {
  const documented = (errorsDoc().match(/^### MG_[A-Z0-9_]+$/gm) ?? []).map((h) => h.slice('### '.length));
  assert.ok(documented.length > Object.keys(ERROR_CODES).length);
  assert.deepEqual(
    documented.filter((c) => !Object.hasOwn(ERROR_CODES, c) && !Object.hasOwn(CONFIG_ERROR_CODES, c)),
    [],
  );
});

test('no code is in both registries, and every error code is raised somewhere', () => {
  assert.deepEqual(
    Object.keys(ERROR_CODES).filter((c) => Object.hasOwn(CONFIG_ERROR_CODES, c)),
    [],
  );
  const all = [...sources('src'), ...sources('native')]
    .filter((s) => s.file !== 'src/errors.ts')
    .map((s) => s.text)
    .join('\n');
  assert.deepEqual(
    Object.keys(ERROR_CODES).filter((c) => !all.includes(`'${c}'`)),
    [],
    'unused codes: remove them from src/errors.ts and the docs',
  );
});

test('src and native throw no error without a code', () => {
  const bare = [...sources('src'), ...sources('native')].flatMap(({ file, text }) =>
    text
      .split('\n')
      .flatMap((line, i) => (/\bthrow new (Error|TypeError|RangeError)\(/.test(line) ? [`${file}:${i + 1}`] : [])),
  );
  assert.deepEqual(bare, [], 'throw a MeshgateError with a code from src/errors.ts');
  const bases = [...sources('src'), ...sources('native')].flatMap(({ file, text }) =>
    [...text.matchAll(/class (\w+) extends (\w*Error)\b/g)]
      .filter((m) => m[2] !== 'MeshgateError' || !m[1])
      .map((m) => `${file}: ${m[1]} extends ${m[2]}`),
  );
  assert.deepEqual(bases, ['src/errors.ts: MeshgateError extends Error'], 'every error class extends MeshgateError');
});

test('typed errors are MeshgateErrors with their code, message and cause', () => {
  const cause = new Error('underlying');
  const cases: Array<[MeshgateError, string]> = [
    [new BpfError('open pinned map mg_state', 13, 'libbpf: failed\n', { cause }), 'MG_BPF_CALL_FAILED'],
    [new KubeApiError('GET /api/v1/pods: 503', 503, { cause }), 'MG_KUBE_REQUEST_FAILED'],
    [new HostResolverOptionsError('tries', '0.5 is not an integer', { cause }), 'MG_DNS_RESOLVER_OPTIONS'],
    [new MeshgateError('MG_APPLY_FAILED', 'apply of generation 2 failed', { cause }), 'MG_APPLY_FAILED'],
  ];
  for (const [err, code] of cases) {
    assert.ok(isMeshgateError(err), err.name);
    assert.equal(err.code, code);
    assert.ok(isMeshgateError(err, err.code));
    assert.equal(err.cause, cause);
    assert.ok(err.message.length > 10);
  }
  assert.equal(isMeshgateError(new Error('x')), false);
  assert.equal(isMeshgateError(new MeshgateError('MG_INTERNAL', 'x'), 'MG_APPLY_FAILED'), false);
});
