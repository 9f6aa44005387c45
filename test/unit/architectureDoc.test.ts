// docs/architecture.md's source layout names every source folder, and names nothing that is gone.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/sandbox.js';

function layoutTable(): string {
  const doc = readFileSync(path.join(REPO_ROOT, 'docs/architecture.md'), 'utf8');
  const start = doc.indexOf('## Source layout');
  assert.ok(start >= 0, 'docs/architecture.md has a "Source layout" section');
  const rest = doc.slice(start + 1);
  const end = rest.indexOf('\n## ');
  return end < 0 ? rest : rest.slice(0, end);
}

test('the source layout names every folder of src/', () => {
  const table = layoutTable();
  const folders = readdirSync(path.join(REPO_ROOT, 'src'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => `src/${d.name}`);
  assert.ok(folders.length > 5);
  assert.deepEqual(
    folders.filter((f) => !table.includes(`\`${f}\``)),
    [],
    'add a row for these to docs/architecture.md',
  );
});

test('every path the source layout names exists', () => {
  const table = layoutTable();
  const rows = [...table.matchAll(/^\| `([^`]+)`(?:, `([^`]+)`)? \|/gm)].flatMap((m) =>
    [m[1]!, m[2]].filter((x): x is string => !!x),
  );
  assert.ok(rows.length > 5);
  assert.deepEqual(
    rows.filter((p) => !existsSync(path.join(REPO_ROOT, p))),
    [],
    'these rows name paths that do not exist',
  );
});
