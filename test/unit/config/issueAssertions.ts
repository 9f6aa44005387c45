// Shared assertions for config issues: an issue must carry its code, where it is, the value,
// and a message that names all of them.
import assert from 'node:assert/strict';

import type { ConfigIssue, ObjectRef, ParseResult } from '../../../src/config/index.js';

export const GLOBAL_REF: ObjectRef = { kind: 'ConfigMap', namespace: 'osm-system', name: 'osm-config' };
export const GLOBAL_OBJECT = 'ConfigMap osm-system/osm-config';
export const ALLOWLIST_REF: ObjectRef = { kind: 'ConfigMap', namespace: 'shop', name: 'egress' };
export const ALLOWLIST_OBJECT = 'ConfigMap shop/egress';

/** The fields of a ConfigIssue a test names (severity and message are checked apart). */
export type ExpectedIssue = Pick<
  ConfigIssue,
  'code' | 'object' | 'key' | 'entryIndex' | 'entryName' | 'path' | 'value'
>;

export function allIssues(
  result: ParseResult<unknown> | { readonly errors: readonly ConfigIssue[] },
): readonly ConfigIssue[] {
  if ('ok' in result) return result.ok ? result.warnings : [...result.errors, ...result.warnings];
  return result.errors;
}

/** Finds the one issue with the expected code and checks every field and the message. */
export function assertIssue(issues: readonly ConfigIssue[], expected: ExpectedIssue): ConfigIssue {
  const matching = issues.filter((issue) => issue.code === expected.code);
  assert.ok(
    matching.length > 0,
    `no ${expected.code} among ${JSON.stringify(
      issues.map((issue) => issue.message),
      null,
      1,
    )}`,
  );
  const issue =
    matching.find((candidate) => candidate.entryIndex === expected.entryIndex && candidate.key === expected.key) ??
    matching[0];
  assert.ok(issue !== undefined);
  assert.equal(issue.object, expected.object);
  assert.equal(issue.key, expected.key);
  assert.equal(issue.entryIndex, expected.entryIndex);
  assert.equal(issue.entryName, expected.entryName);
  if (expected.path !== undefined) assert.equal(issue.path, expected.path);
  assert.equal(issue.value, expected.value);
  assert.ok(issue.message.startsWith(expected.object), `message should start with the object: ${issue.message}`);
  if (expected.key !== '')
    assert.ok(issue.message.includes(`key ${expected.key}`), `message should name the key: ${issue.message}`);
  if (expected.value !== undefined)
    assert.ok(issue.message.includes(expected.value), `message should quote the value: ${issue.message}`);
  if (expected.entryName !== undefined)
    assert.ok(issue.message.includes(`"${expected.entryName}"`), `message should name the entry: ${issue.message}`);
  if (expected.entryIndex !== undefined)
    assert.ok(issue.message.includes(`[${expected.entryIndex}]`), `message should give the index: ${issue.message}`);
  assert.ok(!issue.message.includes('\n'), 'a message is one line');
  return issue;
}

export function assertOk<T>(result: ParseResult<T>): T {
  if (!result.ok)
    assert.fail(
      `expected ok, got ${JSON.stringify(
        result.errors.map((issue) => issue.message),
        null,
        1,
      )}`,
    );
  return result.value;
}

export function codesOf(issues: readonly ConfigIssue[]): string[] {
  return issues.map((issue) => issue.code);
}
