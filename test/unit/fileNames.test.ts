// One file-name case: TypeScript sources and tests are camelCase (hostResolver.ts, lastGood.test.ts).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/sandbox.js';

test('TypeScript file names under src, native, test and bench are camelCase', () => {
  const names = ['src', 'native', 'test', 'bench'].flatMap((dir) =>
    readdirSync(path.join(REPO_ROOT, dir), { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile() && d.name.endsWith('.ts'))
      .map((d) => path.relative(REPO_ROOT, path.join(d.parentPath, d.name))),
  );
  assert.ok(names.length > 50);
  assert.deepEqual(
    names.filter((n) => !/^[a-z][a-zA-Z0-9]*(\.test|\.generated)?\.ts$/.test(path.basename(n))),
    [],
  );
});
