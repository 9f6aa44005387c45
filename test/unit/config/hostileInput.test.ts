// Hostile input stays harmless (issue 14): nothing a config holds reaches a
// message, log line or Event raw, errors are bounded per object, oversized and
// odd files are refused before they are read, and YAML's own limits are named.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { readFileObjects, readGlobalFile } from '../../../src/agent/fileSources.js';
import { MAX_OBJECT_BYTES, parseAllowlist, parseGlobalConfig, type ConfigIssue } from '../../../src/config/index.js';
import { KubeClient, loadKubeConnection } from '../../../src/kube/client.js';
import { EventRecorder } from '../../../src/kube/events.js';
import { startKubeTestEnv } from '../kube/support.js';

const REF = { kind: 'ConfigMap' as const, namespace: 'shop', name: 'egress' };
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;
const issuesOf = (r: { errors?: readonly ConfigIssue[]; warnings: readonly ConfigIssue[] }) => [
  ...(r.errors ?? []),
  ...r.warnings,
];

function assertNoRawControl(issues: readonly ConfigIssue[]): void {
  assert.ok(issues.length > 0);
  for (const i of issues)
    for (const field of [i.message, i.key, i.value, i.entryName, i.path])
      if (field !== undefined) assert.doesNotMatch(field, RAW_CONTROL, JSON.stringify(field));
}

const dir = mkdtempSync(path.join(tmpdir(), 'mgtest-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string | Buffer): string => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('control characters are escaped everywhere', () => {
  test('in values, keys, entry names and reasons (a CIDR whose prefix is a terminal escape)', () => {
    const g = parseGlobalConfig(
      { egress: 'false', mesh_cidr_ranges: '10.0.0.0/\u001b[2J\u0000', 'x\u001b]0;pwned\u0007': 'y', 'rtl\u202e': 'z' },
      REF,
    );
    assertNoRawControl(issuesOf(g));
    assert.ok(
      issuesOf(g).some((i) => i.message.includes('\\x1b[2J\\x00')),
      'shown as escapes',
    );
    const a = parseAllowlist(
      {
        egress:
          '- name: "bad\\u202ename"\n  addresses: ["10.0.0.1/\\e[31m"]\n  ports: [{number: 443, protocol: "TC\\x00P"}]\n',
      },
      REF,
    );
    assertNoRawControl(issuesOf(a));
  });

  test('in file messages (a path with an escape) and in YAML parser excerpts', () => {
    const odd = file('odd\u001b[2J.yaml', 'egress: [unclosed\n\u001b[2J: x\n');
    const r = readGlobalFile(odd).result;
    assert.equal(r.ok, false);
    assertNoRawControl(issuesOf(r));
  });

  test('in the Kubernetes Event posted for a rejected ConfigMap', async () => {
    const env = await startKubeTestEnv();
    try {
      const result = parseGlobalConfig({ egress: 'false', mesh_cidr_ranges: '10.0.0.0/\u001b[2J\u0000' }, REF);
      assert.equal(result.ok, false);
      const client = new KubeClient(await loadKubeConnection(await env.server.writeKubeconfig(dir)));
      const recorder = new EventRecorder(client, 'node-a', pino({ level: 'silent' }));
      const cm = { metadata: { namespace: 'shop', name: 'egress', uid: 'u1', resourceVersion: '1' } };
      await recorder.rejected(cm, result.ok ? [] : result.errors);
      const events = env.server.list('events', 'shop') as unknown as Array<{ message: string }>;
      assert.equal(events.length, 1);
      assert.doesNotMatch(events[0]!.message, RAW_CONTROL);
      assert.match(events[0]!.message, /\\x1b\[2J/);
    } finally {
      await env.close();
    }
  });
});

describe('echo is bounded', () => {
  test('a symlink to an unrelated file (an /etc/shadow look-alike) is refused with its own code, and none of its text is echoed', () => {
    const secret = file(
      'shadow',
      `${Array.from({ length: 24 }, (_, i) => `user${i}:$6$s3cr3tHash${i}:19000:0:99999:7:::`).join('\n')}\n`,
    );
    const link = path.join(dir, 'config.yaml');
    symlinkSync(secret, link);
    for (const issues of [
      issuesOf(readGlobalFile(link).result),
      readFileObjects(link).objects.flatMap((o) => issuesOf(o.result)),
    ]) {
      assert.deepEqual(
        issues.map((i) => i.code),
        ['MG_CONFIG_NO_MESHGATE_KEY'],
      );
      for (const i of issues) assert.doesNotMatch(`${i.message} ${i.key} ${i.value ?? ''}`, /s3cr3t|user\d/);
    }
  });

  test('an unknown key next to meshgate keys is shown as a short escaped prefix only', () => {
    const long = `k${'x'.repeat(5000)}`;
    const r = parseGlobalConfig({ egress: 'false', [long]: 'v' }, REF);
    const w = r.warnings.find((i) => i.code === 'MG_CONFIG_UNKNOWN_KEY')!;
    assert.ok(w.message.length < 200, w.message);
    assert.ok(w.key.length < 80);
  });

  test('200,000 invalid items give 100 errors and one that counts the rest', () => {
    const items = Array.from({ length: 200_000 }, () => '1.2.3.999').join(',');
    const r = parseGlobalConfig({ egress: 'false', mesh_cidr_ranges: items.slice(0, MAX_OBJECT_BYTES - 100) }, REF);
    assert.equal(r.ok, false);
    const errors = r.ok ? [] : r.errors;
    assert.equal(errors.length, 101);
    assert.match(errors[100]!.message, /and \d{5,} more errors, not shown \(only the first 100 are\)$/);
  });

  test('a file of many broken documents is capped too', () => {
    const p = file(
      'many.yaml',
      Array.from({ length: 500 }, () => 'kind: Deployment\napiVersion: apps/v1\n').join('---\n'),
    );
    const r = readGlobalFile(p).result;
    assert.equal(r.ok, false);
    assert.equal(r.ok ? 0 : r.errors.length, 101);
  });
});

describe('files are refused before they are read', () => {
  test('a file over 1 MiB is refused unread', () => {
    const p = file('huge.yaml', Buffer.alloc(MAX_OBJECT_BYTES + 1, 'a'));
    const r = readGlobalFile(p).result;
    assert.deepEqual(r.ok ? [] : r.errors.map((e) => e.code), ['MG_CONFIG_TOO_LARGE']);
  });

  test('a FIFO is refused without blocking', () => {
    const fifo = path.join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const r = readGlobalFile(fifo).result;
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.errors[0]!.message, /not a regular file/);
  });

  test('a ConfigMap whose data exceeds 1 MiB is refused before any value is parsed', () => {
    const r = parseAllowlist(
      { egress: `- name: a\n  addresses: [${'10.0.0.1, '.repeat(120_000)}]\n  ports: [{number: 1, protocol: TCP}]\n` },
      REF,
    );
    assert.deepEqual(r.ok ? [] : r.errors.map((e) => e.code), ['MG_CONFIG_TOO_LARGE']);
  });
});

describe("YAML's limits are named with key and line", () => {
  test('a duplicate key names the key and its line', () => {
    const p = file('dup.yaml', 'egress: "false"\nmesh_cidr_ranges: 10.0.0.0/8\negress: "true"\n');
    const r = readGlobalFile(p).result;
    assert.match(
      r.ok ? '' : r.errors[0]!.message,
      /line 3, column 1: invalid YAML: duplicate key "egress": a key may appear only once in a map/,
    );
    const a = parseAllowlist({ egress: '- name: a\n  name: b\n  addresses: [10.0.0.1]\n' }, REF);
    assert.match(a.ok ? '' : a.errors[0]!.message, /line 2, column 3 of the value: invalid YAML: duplicate key "name"/);
  });

  test('deep nesting is refused before parsing, with its line', () => {
    const p = file('deep.yaml', `egress: "false"\nmesh_cidr_ranges: ${'['.repeat(100_000)}\n`);
    const r = readGlobalFile(p).result;
    assert.match(
      r.ok ? '' : r.errors[0]!.message,
      /line 2, column \d+: invalid YAML: flow collections \(\[ or \{\) nest deeper than 64 levels/,
    );
    const block = file('deep-block.yaml', Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'));
    const b = readGlobalFile(block).result;
    assert.match(b.ok ? '' : b.errors[0]!.message, /line \d+, column \d+: invalid YAML: nesting too deep to read/);
  });
});
