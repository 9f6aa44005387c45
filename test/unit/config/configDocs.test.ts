// The docs are the contract users read: every code and key must be documented, and nothing
// documented may be gone from the code.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CONFIG_ERROR_CODES, GLOBAL_KEYS } from '../../../src/config/index.js';

/** The repository's docs/, found from the working directory or above this test file. */
function readDoc(name: string): string {
  const candidates = [process.cwd()];
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir))
    candidates.push(dir);
  const found = candidates.map((dir) => join(dir, 'docs', name)).find((path) => existsSync(path));
  assert.ok(found, `docs/${name} not found from ${process.cwd()}`);
  return readFileSync(found, 'utf8');
}

test('docs/errors.md has a table row and a section with an example for every code', () => {
  const errors = readDoc('errors.md');
  for (const code of Object.keys(CONFIG_ERROR_CODES)) {
    assert.ok(errors.includes(`| \`${code}\` |`), `${code} has no table row`);
    const section = errors.split(`### ${code}\n`)[1];
    assert.ok(section !== undefined, `${code} has no section`);
    assert.match(section.split('\n### ')[0] ?? '', /```\n(ConfigMap|file) /, `${code} has no example message`);
  }
});

test('docs/errors.md documents no configuration code that does not exist', () => {
  // Only config sections are checked: the page may also document other modules' codes.
  const headings = readDoc('errors.md').match(/^### MG_(?:CONFIG|ALLOWLIST|WARN)_[A-Z0-9_]+$/gm) ?? [];
  const documented = headings.map((heading) => heading.slice('### '.length));
  assert.deepEqual(
    documented.filter((code) => !Object.hasOwn(CONFIG_ERROR_CODES, code)),
    [],
  );
});

test('docs/config.md documents every global key', () => {
  const config = readDoc('config.md');
  for (const key of GLOBAL_KEYS) assert.ok(config.includes(`| \`${key}\` |`), `${key} is not in the key table`);
});
