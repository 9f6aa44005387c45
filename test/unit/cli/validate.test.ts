// `meshgate validate`, run as a real process on temp files: exit codes, messages that name the
// object, key, entry and value, the --json shape, and agreement with the agent's own file reader.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

import { nodeAsNobody } from '../../helpers/asNobody.js';
import { readAllowlistFile, readGlobalFile, type FileReading } from '../../../src/agent/fileSources.js';
import { LastGoodStore, allowlistObjectFromData } from '../../../src/agent/lastGood.js';
import type { ConfigIssue } from '../../../src/config/index.js';

// dist/test/unit/cli -> the repository root.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const BIN = path.join(REPO_ROOT, 'bin/meshgate.js');
const dir = mkdtempSync(path.join(tmpdir(), 'mgtest-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function file(text: string, name = `f${++fileCounter}.yaml`): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}
function validate(...args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, 'validate', ...args], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, `meshgate validate did not run: ${String(r.error)}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type JsonIssue = ConfigIssue & { file: string };
interface JsonReport {
  valid: boolean;
  objects: number;
  files: Array<{
    file: string;
    role: string;
    valid: boolean;
    objects: Array<{ object: string; kind: string; valid: boolean }>;
  }>;
  issues: JsonIssue[];
}
function validateJson(...args: string[]): { status: number | null; report: JsonReport } {
  const r = validate('--json', ...args);
  let report: JsonReport;
  try {
    report = JSON.parse(r.stdout) as JsonReport;
  } catch {
    assert.fail(`validate --json ${args.join(' ')} printed no JSON (exit ${r.status}): ${r.stdout}${r.stderr}`);
  }
  return { status: r.status, report };
}

/** The issues as the agent's reader has them, in the agent's log order (warnings, then errors). */
function agentIssues(reading: FileReading<unknown>): ConfigIssue[] {
  return [...reading.result.warnings, ...(reading.result.ok ? [] : reading.result.errors)];
}
const withoutFile = (issues: readonly JsonIssue[]): ConfigIssue[] => issues.map(({ file: _file, ...rest }) => rest);

const globalManifest = (data: string) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: osm-config
  namespace: osm-system
data:
${data}`;
const allowlistManifest = (entries: string, name = 'egress') => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
  namespace: shop
  labels: {meshgate.io/egress-allowlist: "true"}
data:
  egress: |
${entries
  .split('\n')
  .map((l) => (l ? `    ${l}` : l))
  .join('\n')}`;

describe('valid files exit 0', () => {
  test('a global ConfigMap manifest', () => {
    const p = file(
      globalManifest(
        '  egress: "false"\n  mesh_cidr_ranges: "10.0.0.0/8, fd00::/64"\n  outbound_port_exclusion_list: "22"\n',
      ),
    );
    const r = validate(p);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, 'ok: 1 object(s) in 1 file(s) are valid\n');
  });

  test('a plain key/value file, with typed YAML scalars and lists', () => {
    const p = file('egress: true\nmesh_cidr_ranges: [10.0.0.0/8, 2001:db8::/32]\nproxy_uid: 1337\n');
    const { status, report } = validateJson(p);
    assert.equal(status, 0);
    assert.deepEqual(report, {
      valid: true,
      objects: 1,
      files: [{ file: p, role: 'auto', valid: true, objects: [{ object: `file ${p}`, kind: 'global', valid: true }] }],
      issues: [],
    });
  });

  test('an allowlist ConfigMap', () => {
    const p = file(
      allowlistManifest(
        '- name: stripe\n  hosts: [api.stripe.com]\n  addresses: [203.0.113.0/24, 2001:db8::/48]\n  ports: [{number: 443, protocol: HTTPS}]\n',
      ),
    );
    const { status, report } = validateJson(p);
    assert.equal(status, 0);
    assert.deepEqual(report.files[0]!.objects, [
      { object: `ConfigMap shop/egress (file ${p})`, kind: 'allowlist', valid: true },
    ]);
  });

  test('a multi-document file: global ConfigMap, allowlist ConfigMap, bare list of entries', () => {
    const p = file(
      [
        globalManifest('  mesh_cidr_ranges: "10.0.0.0/8"\n'),
        allowlistManifest('- name: a\n  addresses: [192.0.2.1]\n  ports: [{number: 53, protocol: UDP}]\n'),
        '- name: b\n  addresses: [198.51.100.7]\n  ports: [{number: 443, protocol: TLS}]\n',
      ].join('---\n'),
    );
    const { status, report } = validateJson(p);
    assert.equal(status, 0);
    assert.equal(report.objects, 3);
    assert.deepEqual(
      report.files[0]!.objects.map((o) => [o.kind, o.object]),
      [
        ['global', `ConfigMap osm-system/osm-config (file ${p})`],
        ['allowlist', `ConfigMap shop/egress (file ${p})`],
        ['allowlist', `file ${p}`],
      ],
    );
  });

  test('warnings alone keep the exit code 0, and are printed', () => {
    const p = file(globalManifest('  mesh_cidr_ranges: "10.0.0.1/8"\n  egres: "true"\n'));
    const r = validate(p);
    assert.equal(r.status, 0, r.stdout);
    assert.match(
      r.stdout,
      /^warning MG_WARN_HOST_BITS: ConfigMap osm-system\/osm-config \(file [^)]+\) key mesh_cidr_ranges item \[0\]: "10.0.0.1\/8" has host bits set; normalised to 10.0.0.0\/8$/m,
    );
    assert.match(r.stdout, /^warning MG_CONFIG_UNKNOWN_KEY: .* key egres: .*did you mean egress\?/m);
    assert.match(r.stdout, /^ok: 1 object\(s\) in 1 file\(s\) are valid$/m);
  });
});

interface InvalidCase {
  readonly name: string;
  readonly text: string;
  readonly role: 'config-file' | 'allowlist-file';
  readonly code: string;
  readonly object: string;
  readonly key: string;
  readonly entryIndex?: number;
  readonly entryName?: string;
  readonly value?: string;
}

const G = 'ConfigMap osm-system/osm-config';
const A = 'ConfigMap shop/egress';
const PORT = '  ports: [{number: 443, protocol: HTTPS}]\n';
const INVALID: readonly InvalidCase[] = [
  {
    name: 'bad CIDR',
    role: 'config-file',
    text: globalManifest('  mesh_cidr_ranges: "10.0.0.0/8, 10.0.0.300/32"\n'),
    code: 'MG_CONFIG_BAD_CIDR',
    object: G,
    key: 'mesh_cidr_ranges',
    entryIndex: 1,
    value: '10.0.0.300/32',
  },
  {
    name: '/33',
    role: 'config-file',
    text: globalManifest('  outbound_ip_range_exclusion_list: "169.254.169.254/33"\n'),
    code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE',
    object: G,
    key: 'outbound_ip_range_exclusion_list',
    entryIndex: 0,
    value: '169.254.169.254/33',
  },
  {
    name: 'egress: "yes"',
    role: 'config-file',
    text: globalManifest('  egress: "yes"\n  mesh_cidr_ranges: "10.0.0.0/8"\n'),
    code: 'MG_CONFIG_BAD_BOOLEAN',
    object: G,
    key: 'egress',
    value: 'yes',
  },
  {
    name: 'empty mesh CIDRs with egress on',
    role: 'config-file',
    text: globalManifest('  egress: "true"\n  mesh_cidr_ranges: ""\n'),
    code: 'MG_CONFIG_MESH_CIDRS_REQUIRED',
    object: G,
    key: 'mesh_cidr_ranges',
  },
  {
    name: 'unknown protocol',
    role: 'allowlist-file',
    text: allowlistManifest('- name: db\n  addresses: [192.0.2.1]\n  ports: [{number: 5432, protocol: SCTP}]\n'),
    code: 'MG_ALLOWLIST_BAD_PROTOCOL',
    object: A,
    key: 'egress',
    entryIndex: 0,
    entryName: 'db',
    value: 'SCTP',
  },
  {
    name: 'missing ports',
    role: 'allowlist-file',
    text: allowlistManifest(`- name: ok\n  addresses: [192.0.2.1]\n${PORT}- name: noports\n  addresses: [192.0.2.2]\n`),
    code: 'MG_ALLOWLIST_PORTS_MISSING',
    object: A,
    key: 'egress',
    entryIndex: 1,
    entryName: 'noports',
  },
  {
    name: 'duplicate name',
    role: 'allowlist-file',
    text: allowlistManifest(
      `- name: api\n  addresses: [192.0.2.1]\n${PORT}- name: api\n  addresses: [192.0.2.2]\n${PORT}`,
    ),
    code: 'MG_ALLOWLIST_DUPLICATE_NAME',
    object: A,
    key: 'egress',
    entryIndex: 1,
    entryName: 'api',
    value: 'api',
  },
  {
    name: 'wildcard host',
    role: 'allowlist-file',
    text: allowlistManifest(`- name: stripe\n  hosts: ["*.com"]\n${PORT}`),
    code: 'MG_ALLOWLIST_WILDCARD_HOST',
    object: A,
    key: 'egress',
    entryIndex: 0,
    entryName: 'stripe',
    value: '*.com',
  },
  {
    name: 'bad CIDR in a global egress_allowlist',
    role: 'config-file',
    text: globalManifest(
      '  mesh_cidr_ranges: "10.0.0.0/8"\n  egress_allowlist: |\n    - name: partner\n      addresses: [198.51.100.0/24, 2001:db8::g/48]\n      ports: [{number: 443, protocol: TLS}]\n',
    ),
    code: 'MG_CONFIG_BAD_CIDR',
    object: G,
    key: 'egress_allowlist',
    entryIndex: 0,
    entryName: 'partner',
    value: '2001:db8::g/48',
  },
];

describe('invalid files exit 1 with the errors the agent reports', () => {
  for (const c of INVALID) {
    test(`${c.name}: the message names the object, key, entry and value`, () => {
      const p = file(c.text);
      const { status, report } = validateJson(p);
      assert.equal(status, 1);
      assert.equal(report.valid, false);
      const issue = report.issues.find((i) => i.code === c.code);
      assert.ok(issue, `no ${c.code} in ${JSON.stringify(report.issues.map((i) => i.message))}`);
      const object = `${c.object} (file ${p})`;
      assert.equal(issue.severity, 'error');
      assert.equal(issue.file, p);
      assert.equal(issue.object, object);
      assert.equal(issue.key, c.key);
      assert.equal(issue.entryIndex, c.entryIndex);
      assert.equal(issue.entryName, c.entryName);
      assert.equal(issue.value, c.value);
      assert.ok(issue.message.startsWith(`${object} key ${c.key}`), issue.message);
      if (c.entryIndex !== undefined) assert.ok(issue.message.includes(`[${c.entryIndex}]`), issue.message);
      if (c.entryName !== undefined) assert.ok(issue.message.includes(JSON.stringify(c.entryName)), issue.message);
      if (c.value !== undefined) assert.ok(issue.message.includes(JSON.stringify(c.value)), issue.message);

      // The same issues, in the same order, as the agent's reader gives the agent for this file.
      const agent = agentIssues(c.role === 'config-file' ? readGlobalFile(p) : readAllowlistFile(p));
      assert.deepEqual(withoutFile(report.issues), agent);
      assert.deepEqual(withoutFile(validateJson(`--${c.role}`, p).report.issues), agent);

      // Human output: one line per issue, the message as is, then a summary.
      const text = validate(p);
      assert.equal(text.status, 1);
      assert.deepEqual(text.stdout.trimEnd().split('\n'), [
        ...agent.map((i) => `${i.severity} ${i.code}: ${i.message}`),
        `${agent.filter((i) => i.severity === 'error').length} error(s) in 1 of 1 file(s)`,
      ]);
    });
  }

  test('every error of an object is reported, not only the first', () => {
    const p = file(
      globalManifest(
        '  egress: "yes"\n  mesh_cidr_ranges: "10.0.0.0/33, 300.1.1.1"\n  blocked_egress_action: "drop"\n',
      ),
    );
    const { status, report } = validateJson(p);
    assert.equal(status, 1);
    assert.deepEqual(report.issues.map((i) => i.code).sort(), [
      'MG_CONFIG_BAD_ACTION',
      'MG_CONFIG_BAD_BOOLEAN',
      'MG_CONFIG_BAD_CIDR',
      'MG_CONFIG_PREFIX_OUT_OF_RANGE',
    ]);
  });

  test('one invalid object in a multi-document file fails the file and names that object only', () => {
    const p = file(
      [
        globalManifest('  mesh_cidr_ranges: "10.0.0.0/8"\n'),
        allowlistManifest(`- name: api\n  addresses: [192.0.2.1/33]\n${PORT}`, 'bad-egress'),
      ].join('---\n'),
    );
    const { status, report } = validateJson(p);
    assert.equal(status, 1);
    assert.deepEqual(
      report.files[0]!.objects.map((o) => [o.object, o.valid]),
      [
        [`${G} (file ${p})`, true],
        [`ConfigMap shop/bad-egress (file ${p})`, false],
      ],
    );
    assert.deepEqual(
      report.issues.map((i) => [i.code, i.object]),
      [['MG_CONFIG_PREFIX_OUT_OF_RANGE', `ConfigMap shop/bad-egress (file ${p})`]],
    );
    // Given as an --allowlist-file, the agent reads that object with the same result.
    const bad = `ConfigMap shop/bad-egress (file ${p})`;
    assert.deepEqual(
      withoutFile(report.issues),
      agentIssues(readAllowlistFile(p)).filter((i) => i.object === bad),
    );
  });

  test('invalid YAML is located by line and column, as the agent logs it', () => {
    const p = file('egress: "false"\nmesh_cidr_ranges: [10.0.0.0/8\n');
    const { status, report } = validateJson(p);
    assert.equal(status, 1);
    assert.deepEqual(
      report.issues.map((i) => i.code),
      ['MG_CONFIG_BAD_YAML'],
    );
    assert.match(
      report.issues[0]!.message,
      new RegExp(`^file ${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: line \\d+, column \\d+: invalid YAML`),
    );
    assert.deepEqual(withoutFile(report.issues), agentIssues(readGlobalFile(p)));
  });

  test('valid and invalid files together: exit 1, and each file has its verdict', () => {
    const good = file('mesh_cidr_ranges: 10.0.0.0/8\n');
    const bad = file('egress: "yes"\n');
    const { status, report } = validateJson(good, bad);
    assert.equal(status, 1);
    assert.deepEqual(
      report.files.map((f) => [f.file, f.valid]),
      [
        [good, true],
        [bad, false],
      ],
    );
    assert.ok(report.issues.every((i) => i.file === bad));
  });
});

describe("checks across objects: what the cluster agent reports on a namespace's allowlists", () => {
  const entry = (name: string, address: string) =>
    `- name: ${name}\n  addresses: [${address}]\n  ports: [{number: 443, protocol: TLS}]\n`;
  const withAction = (manifest: string, action: string) =>
    manifest.replace('\ndata:\n', `\ndata:\n  blocked_egress_action: ${action}\n`);
  const a = withAction(allowlistManifest(entry('x', '192.0.2.1'), 'a'), 'deny');
  const b = withAction(allowlistManifest(entry('x', '192.0.2.2'), 'b'), 'audit');

  /** The codes the cluster agent's store gives each ConfigMap of `shop` for the same data. */
  function clusterCodes(): Record<string, string[]> {
    const store = new LastGoodStore({
      global: () => assert.fail('no global'),
      allowlist: (raw, ref) => allowlistObjectFromData('data' in raw ? raw.data : {}, ref),
    });
    const egress = (n: string, address: string) => entry(n, address);
    for (const [name, action, address] of [
      ['a', 'deny', '192.0.2.1'],
      ['b', 'audit', '192.0.2.2'],
    ] as const) {
      const ref = { kind: 'ConfigMap' as const, namespace: 'shop', name };
      store.observe(
        { key: `ConfigMap shop/${name}`, kind: 'allowlist', ref, namespace: 'shop' },
        { data: { egress: egress('x', address), blocked_egress_action: action } },
      );
    }
    return Object.fromEntries(store.resolve().objects.map((o) => [o.id.ref.name, o.errors.map((e) => e.code).sort()]));
  }
  const codesByObject = (report: JsonReport) => {
    const out: Record<string, string[]> = {};
    for (const i of report.issues) (out[/ConfigMap shop\/(\w+)/.exec(i.object)![1]!] ??= []).push(i.code);
    for (const list of Object.values(out)) list.sort();
    return out;
  };

  test('two allowlist ConfigMaps of one namespace in two files, sharing an entry name and disagreeing on blocked_egress_action: exit 1, both invalid, as the agent judges them', () => {
    const pa = file(a);
    const pb = file(b);
    const { status, report } = validateJson(pa, pb);
    assert.equal(status, 1);
    assert.deepEqual(
      report.files.map((f) => [f.valid, f.objects[0]!.valid]),
      [
        [false, false],
        [false, false],
      ],
    );
    const expected = {
      a: ['MG_ALLOWLIST_ACTION_CONFLICT', 'MG_ALLOWLIST_DUPLICATE_NAME'],
      b: ['MG_ALLOWLIST_ACTION_CONFLICT', 'MG_ALLOWLIST_DUPLICATE_NAME'],
    };
    assert.deepEqual(clusterCodes(), expected);
    assert.deepEqual(codesByObject(report), expected);
    const duplicate = report.issues.find((i) => i.code === 'MG_ALLOWLIST_DUPLICATE_NAME' && i.file === pa)!;
    assert.match(
      duplicate.message,
      new RegExp(`"x": name "x" is also the name of an entry in ConfigMap shop/b \\(file ${pb}\\)`),
    );
  });

  test('the same two ConfigMaps in one file: exit 1 with the same errors', () => {
    const { status, report } = validateJson(file(`${a}---\n${b}`));
    assert.equal(status, 1);
    assert.deepEqual(codesByObject(report), clusterCodes());
  });

  test('ConfigMaps of different namespaces do not clash', () => {
    const { status } = validateJson(file(a), file(b.replace('namespace: shop', 'namespace: other')));
    assert.equal(status, 0);
  });

  test("--allowlist-file: files are one namespace (the agent's --namespace), and documents of one file too", () => {
    const pa = file(`blocked_egress_action: deny\negress:\n${entry('x', '192.0.2.1').replace(/^/gm, '  ')}`);
    const pb = file(entry('x', '192.0.2.2'));
    const { status, report } = validateJson('--allowlist-file', pa, '--allowlist-file', pb);
    assert.equal(status, 1);
    assert.deepEqual(
      report.issues.map((i) => [i.file, i.code]),
      [
        [pa, 'MG_ALLOWLIST_DUPLICATE_NAME'],
        [pb, 'MG_ALLOWLIST_DUPLICATE_NAME'],
      ],
    );
    const one = file(`${entry('x', '192.0.2.1')}---\n${entry('x', '192.0.2.2')}`);
    const single = validateJson('--allowlist-file', one);
    assert.equal(single.status, 1);
    assert.deepEqual([...new Set(single.report.issues.map((i) => i.code))], ['MG_ALLOWLIST_DUPLICATE_NAME']);
  });
});

describe('a file that sets nothing is invalid (SPEC §1.4), as the agent refuses it', () => {
  for (const [what, text] of [
    ['empty', ''],
    ['comments only', '# shop egress\n'],
    ['document markers only', '---\n---\n'],
  ] as const) {
    test(`${what}: exit 1 with MG_CONFIG_NO_MESHGATE_KEY, by shape and in both roles`, () => {
      const p = file(text);
      for (const args of [[p], ['--allowlist-file', p], ['--config-file', p]]) {
        const { status, report } = validateJson(...args);
        assert.equal(status, 1, args.join(' '));
        assert.deepEqual(
          report.issues.map((i) => i.code),
          ['MG_CONFIG_NO_MESHGATE_KEY'],
        );
      }
      assert.doesNotMatch(validate(p).stdout, /^ok: /m);
    });
  }
});

describe('files the agent cannot use', () => {
  test('a missing file is unreadable: exit 1, naming the file', () => {
    const p = path.join(dir, 'does-not-exist.yaml');
    const { status, report } = validateJson(p);
    assert.equal(status, 1);
    assert.deepEqual(
      report.issues.map((i) => [i.code, i.object, i.key]),
      [['MG_CONFIG_FILE_UNREADABLE', `file ${p}`, '']],
    );
    assert.match(report.issues[0]!.message, /cannot be read: ENOENT/);
    assert.deepEqual(withoutFile(report.issues), agentIssues(readGlobalFile(p)));
  });

  test('a directory is unreadable too', () => {
    const p = path.join(dir, 'a-directory');
    mkdirSync(p);
    const r = validate(p);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /^error MG_CONFIG_FILE_UNREADABLE: file .*a-directory: cannot be read: EISDIR/m);
  });

  test('a file without read permission is unreadable', () => {
    const p = file('egress: "false"\n');
    chmodSync(p, 0o000);
    // root reads any file: as root, run the validator as nobody (the directory stays traversable).
    const asRoot = process.getuid?.() === 0;
    if (asRoot) chmodSync(path.dirname(p), 0o711);
    const r = asRoot
      ? nodeAsNobody([BIN, 'validate', p])
      : spawnSync(process.execPath, [BIN, 'validate', p], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /^error MG_CONFIG_FILE_UNREADABLE: file .*: cannot be read: EACCES/m);
  });

  test('--config-file reads the file as the agent does: exactly one global config', () => {
    const p = file(
      [globalManifest('  mesh_cidr_ranges: "10.0.0.0/8"\n'), 'mesh_cidr_ranges: "172.16.0.0/12"\n'].join('---\n'),
    );
    assert.equal(validate(p).status, 0, 'by shape, two global ConfigMaps are two valid objects');
    const { status, report } = validateJson('--config-file', p);
    assert.equal(status, 1);
    assert.deepEqual(
      report.issues.map((i) => i.code),
      ['MG_CONFIG_FILE_SHAPE'],
    );
    assert.deepEqual(withoutFile(report.issues), agentIssues(readGlobalFile(p)));
  });

  test('--allowlist-file reads every document as an allowlist, as the agent does', () => {
    const p = file('mesh_cidr_ranges: "10.0.0.0/8"\n');
    const { status, report } = validateJson('--allowlist-file', p);
    assert.equal(status, 1);
    assert.deepEqual(
      report.issues.map((i) => [i.code, i.key]),
      [['MG_CONFIG_NOT_A_LIST', 'egress']],
    );
    assert.deepEqual(withoutFile(report.issues), agentIssues(readAllowlistFile(p)));
    assert.deepEqual(
      report.files.map((f) => [f.role, f.valid]),
      [['allowlist-file', false]],
    );
  });
});

describe('usage', () => {
  test('no file is a usage error: exit 2, one line in the usage format of docs/cli.md', () => {
    const r = validate();
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'error: no file given (see meshgate validate --help)\n');
    assert.equal(r.stdout, '');
  });

  test('an unknown option is a usage error: exit 2', () => {
    assert.equal(validate('--no-such-flag', file('egress: "false"\n')).status, 2);
  });

  test('--help documents the exit codes and exits 0', () => {
    const r = validate('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Exit codes: 0 valid/);
  });
});
