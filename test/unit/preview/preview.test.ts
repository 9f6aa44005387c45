// preview's pure parts, without root: reading candidate files (what replaces what, and the
// errors), and the in-memory policy (longest prefix, what a candidate replaces, hostnames).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parsePrefix, protoNumber } from '../../../src/datapath/codec.js';
import { decide } from '../../../src/explain/decisionTable.js';
import { readCandidate } from '../../../src/preview/candidate.js';
import {
  PolicyModel,
  compileCandidate,
  liveResolved,
  overlay,
  type ModelEntry,
  type ModelSource,
} from '../../../src/preview/policyModel.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mgtest-preview-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = (text: string): string => {
  const p = path.join(dir, `f${++n}.yaml`);
  writeFileSync(p, text);
  return p;
};
const manifest = (namespace: string, name: string, data: Record<string, string>) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { 'meshgate.io/egress-allowlist': 'true' } },
    data,
  });
const entryYaml = (name: string, address: string, port = 443, protocol = 'TCP', host?: string) =>
  `- name: ${name}\n  ${host ? `hosts: [${host}]` : `addresses: [${address}]`}\n  ports: [{number: ${port}, protocol: ${protocol}}]\n`;

describe('readCandidate', () => {
  test('a global config and the allowlists of namespaces: by manifest namespace, else --namespace', () => {
    const c = readCandidate(
      [
        file(JSON.stringify({ egress: false, mesh_cidr_ranges: ['10.0.0.0/8'] })),
        file(manifest('shop', 'a', { egress: entryYaml('api', '192.0.2.1'), blocked_egress_action: 'audit' })),
        file(manifest('shop', 'b', { egress: entryYaml('db', '192.0.2.2') })),
        file(
          JSON.stringify({
            egress: [{ name: 'x', addresses: ['198.51.100.1'], ports: [{ number: 80, protocol: 'TCP' }] }],
          }),
        ),
      ],
      'billing',
    );
    assert.equal(c.valid, true, JSON.stringify(c.issues));
    assert.deepEqual(c.global?.meshCidrs, ['10.0.0.0/8']);
    assert.deepEqual([...c.namespaces.keys()], ['billing', 'shop']);
    assert.deepEqual(
      c.namespaces.get('shop')!.entries.map((e) => e.name),
      ['api', 'db'],
    );
    assert.equal(c.namespaces.get('shop')!.action, 'audit');
    assert.equal(c.namespaces.get('billing')!.action, null);
  });

  test('invalid input: the errors of validate, a duplicate name across objects, disagreeing actions, two global configs', () => {
    const bad = readCandidate([file('egress: "yes"\n')], 'default');
    assert.equal(bad.valid, false);
    assert.deepEqual(
      bad.issues.map((i) => i.code),
      ['MG_CONFIG_BAD_BOOLEAN'],
    );
    assert.match(bad.issues[0]!.file, /f\d+\.yaml$/);

    const clash = readCandidate(
      [
        file(manifest('shop', 'a', { egress: entryYaml('api', '192.0.2.1'), blocked_egress_action: 'audit' })),
        file(manifest('shop', 'b', { egress: entryYaml('api', '192.0.2.2'), blocked_egress_action: 'deny' })),
      ],
      'default',
    );
    assert.equal(clash.valid, false);
    assert.deepEqual(clash.issues.map((i) => i.code).sort(), [
      'MG_ALLOWLIST_ACTION_CONFLICT',
      'MG_ALLOWLIST_ACTION_CONFLICT',
      'MG_ALLOWLIST_DUPLICATE_NAME',
    ]);

    const two = readCandidate(
      [file('egress: false\n'), file('egress: true\nmesh_cidr_ranges: 10.0.0.0/8\n')],
      'default',
    );
    assert.equal(two.valid, false);
    assert.deepEqual(
      two.issues.map((i) => i.code),
      ['MG_CONFIG_FILE_SHAPE', 'MG_CONFIG_FILE_SHAPE'],
    );
  });
});

const v4 = (a: string) => parsePrefix(a).bytes;
const entry = (table: ModelEntry['table'], cidr: string, extra: Partial<ModelEntry> = {}): ModelEntry => {
  const p = parsePrefix(cidr);
  return { table, proto: 0, port: 0, namespace: '', bytes: p.bytes, bits: p.bits, label: null, ...extra };
};
const allowEntry = (namespace: string, cidr: string, port: number, label: object) =>
  entry('allow', cidr, {
    namespace,
    proto: protoNumber('tcp'),
    port,
    label: JSON.stringify({ kind: 'entry', namespace, ...label }),
  });

/** A live policy: mesh 10/8, shop allows 203.0.113.0/24:443 (and api.example.com as 198.51.100.200), deny. */
const LIVE: ModelSource = {
  config: {
    flags: 1 | 4,
    proxyPort: 15001,
    blockedAction: 0,
    unknownPodPolicy: 0,
    proxyUid: 1500,
    eventMask: 4,
    generation: 7n,
  },
  entries: [
    entry('mesh', '10.0.0.0/8'),
    allowEntry('shop', '203.0.113.0/24', 443, { name: 'stripe' }),
    allowEntry('shop', '198.51.100.200/32', 443, { name: 'api', host: 'api.example.com' }),
  ],
  excludedPorts: [],
  actions: new Map(),
};
const NS: Record<number, string> = { 5: 'shop', 6: 'billing' };
const walk = (namespaceId: number) => [
  { level: 1, cgroupId: 99n, entry: { kind: 1, namespaceId, flags: 1, labelId: 0 } },
];
const verdictOf = (source: ModelSource, addr: string, port: number, namespaceId = 5) => {
  const m = new PolicyModel(source, (id) => NS[id] ?? `#${id}`);
  const d = decide({
    config: m.config,
    walk: walk(namespaceId),
    uid: 0,
    address: v4(addr),
    port,
    proto: 6,
    lookups: m,
  });
  return `${d.verdict}/${d.rule}`;
};

describe('the in-memory policy: addresses learned from DNS answers (rule 6, allow-learned)', () => {
  const NOW = 100_000_000_000n;
  const addr = v4('198.51.100.9');
  const learnedLive: ModelSource = {
    ...LIVE,
    learned: new Map([
      [
        `shop|${Buffer.from(addr).toString('hex')}`,
        [
          {
            hostNamespace: 'shop',
            host: 'api.example.com',
            ttlS: 60,
            learnedNs: NOW - 5_000_000_000n,
            expiresNs: NOW + 55_000_000_000n,
          },
        ],
      ],
    ]),
    dnsPorts: new Map([
      [
        'shop|api.example.com|6|443',
        JSON.stringify({ kind: 'entry', namespace: 'shop', name: 'api', host: 'api.example.com' }),
      ],
    ]),
  };
  const decideAt = (source: ModelSource, port: number, now = NOW) => {
    const m = new PolicyModel(source, (id) => NS[id] ?? `#${id}`, now);
    const d = decide({ config: m.config, walk: walk(5), uid: 0, address: addr, port, proto: 6, lookups: m });
    return `${d.verdict}/${d.rule}`;
  };

  test("a learned address passes on its entry's port until it expires", () => {
    assert.equal(decideAt(learnedLive, 443), 'pass/allow-learned');
    assert.equal(decideAt(learnedLive, 80), 'deny/blocked');
    assert.equal(decideAt(learnedLive, 443, NOW + 56_000_000_000n), 'deny/blocked', 'expired');
  });

  test('a candidate that keeps the host keeps what was learned; one that drops it, or moves it to another port, does not', () => {
    const keep = readCandidate(
      [file(manifest('shop', 'a', { egress: entryYaml('api', '', 443, 'TLS', 'api.example.com') }))],
      'default',
    );
    assert.equal(decideAt(overlay(learnedLive, keep, compileCandidate(keep, new Map())), 443), 'pass/allow-learned');
    const drop = readCandidate([file(manifest('shop', 'a', { egress: entryYaml('other', '192.0.2.9') }))], 'default');
    assert.equal(decideAt(overlay(learnedLive, drop, compileCandidate(drop, new Map())), 443), 'deny/blocked');
    const moved = readCandidate(
      [file(manifest('shop', 'a', { egress: entryYaml('api', '', 8443, 'TLS', 'api.example.com') }))],
      'default',
    );
    assert.equal(decideAt(overlay(learnedLive, moved, compileCandidate(moved, new Map())), 443), 'deny/blocked');
    const globalOnly = readCandidate(
      [file(JSON.stringify({ egress: false, mesh_cidr_ranges: ['10.0.0.0/8'] }))],
      'default',
    );
    assert.equal(
      decideAt(overlay(learnedLive, globalOnly, compileCandidate(globalOnly, new Map())), 443),
      'pass/allow-learned',
      "shop's hosts stay",
    );
  });
});

describe('the in-memory policy', () => {
  test('decides like the live maps: longest prefix per namespace, port and protocol', () => {
    assert.equal(verdictOf(LIVE, '10.1.2.3', 80), 'redirect/mesh-cidr');
    assert.equal(verdictOf(LIVE, '203.0.113.9', 443), 'pass/allow-namespace');
    assert.equal(verdictOf(LIVE, '203.0.113.9', 80), 'deny/blocked');
    assert.equal(
      verdictOf(LIVE, '203.0.113.9', 443, 6),
      'deny/blocked',
      "another namespace's allowlist does not apply",
    );
  });

  test("a candidate namespace replaces that namespace's allowlist and action; hosts keep the addresses the live maps hold", () => {
    const candidate = readCandidate(
      [
        file(
          manifest('shop', 'a', {
            egress:
              entryYaml('api', '', 443, 'TLS', 'api.example.com') + entryYaml('new', '', 443, 'TLS', 'new.example.com'),
            blocked_egress_action: 'audit',
          }),
        ),
      ],
      'default',
    );
    assert.ok(candidate.valid);
    const resolved = liveResolved(LIVE);
    assert.deepEqual([...resolved], [['api.example.com', ['198.51.100.200/32']]]);
    const next = overlay(LIVE, candidate, compileCandidate(candidate, resolved));
    assert.equal(
      verdictOf(next, '203.0.113.9', 443),
      'audit/blocked',
      'stripe is gone with the old allowlist; shop audits',
    );
    assert.equal(verdictOf(next, '198.51.100.200', 443), 'pass/allow-namespace', 'the host keeps its live address');
    assert.equal(verdictOf(next, '10.1.2.3', 80), 'redirect/mesh-cidr', 'the global part stays live');
    assert.equal(verdictOf(next, '203.0.113.9', 443, 6), 'deny/blocked', 'billing keeps the global action');
  });

  test('a candidate global config replaces mesh CIDRs, the global allowlist and the scalars, not the namespaces', () => {
    const candidate = readCandidate(
      [file(JSON.stringify({ egress: false, mesh_cidr_ranges: ['172.16.0.0/12'], blocked_egress_action: 'redirect' }))],
      'default',
    );
    const next = overlay(LIVE, candidate, compileCandidate(candidate, new Map()));
    assert.equal(
      verdictOf(next, '10.1.2.3', 80),
      'redirect/blocked',
      '10/8 is no longer mesh: blocked, and the action is redirect now',
    );
    assert.equal(verdictOf(next, '172.16.1.1', 80), 'redirect/mesh-cidr');
    assert.equal(verdictOf(next, '203.0.113.9', 443), 'pass/allow-namespace', "shop's allowlist stays");
    assert.equal(next.config!.generation, 8n);
  });
});
