import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseAllowlist, parseGlobalConfig, readConfigDocuments } from '../../../src/config/index.js';
import { assertOk, codesOf } from './issueAssertions.js';

const OSM_CONFIG = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: osm-config
  namespace: osm-system
data:
  egress: "false"
  mesh_cidr_ranges: "10.96.0.0/12 10.244.0.0/16"
  envoy_log_level: debug
`;

const SHOP_ALLOWLIST = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: egress-stripe
  namespace: shop
  labels:
    meshgate.io/egress-allowlist: "true"
data:
  egress: |
    - name: stripe
      hosts: [api.stripe.com]
      ports:
        - number: 443
          protocol: HTTPS
`;

test('a ConfigMap manifest is the global config, named after the ConfigMap and the file', () => {
  const { documents, errors } = readConfigDocuments(OSM_CONFIG, './osm-config.yaml');
  assert.deepEqual(errors, []);
  assert.equal(documents.length, 1);
  const [doc] = documents;
  assert.equal(doc?.kind, 'global');
  assert.deepEqual(doc?.ref, {
    kind: 'ConfigMap',
    namespace: 'osm-system',
    name: 'osm-config',
    path: './osm-config.yaml',
  });
  const config = parseGlobalConfig(doc?.data ?? {}, doc?.ref ?? { kind: 'File', name: '' });
  assert.deepEqual(assertOk(config).meshCidrs, ['10.96.0.0/12', '10.244.0.0/16']);
  assert.equal(config.warnings[0]?.object, 'ConfigMap osm-system/osm-config (file ./osm-config.yaml)');
});

test('a ConfigMap labelled meshgate.io/egress-allowlist: "true" is an allowlist', () => {
  const { documents, errors } = readConfigDocuments(SHOP_ALLOWLIST, 'shop.yaml');
  assert.deepEqual(errors, []);
  assert.equal(documents[0]?.kind, 'allowlist');
  assert.equal(documents[0]?.ref.namespace, 'shop');
  const entries = assertOk(parseAllowlist(documents[0]?.data ?? {}, documents[0]?.ref ?? { kind: 'File', name: '' }));
  assert.deepEqual(
    entries.map((entry) => entry.name),
    ['stripe'],
  );
});

test('the label value must be exactly "true", as a label selector would match it', () => {
  const { documents } = readConfigDocuments(SHOP_ALLOWLIST.replace('"true"', '"True"'), 'shop.yaml');
  assert.equal(documents[0]?.kind, 'global');
});

test('a plain key/value map is the global config of a standalone file', () => {
  const { documents, errors } = readConfigDocuments(
    'egress: false\nmesh_cidr_ranges: [10.0.0.0/8]\nproxy_uid: 1337\n',
    './meshgate.yaml',
  );
  assert.deepEqual(errors, []);
  assert.deepEqual(documents, [
    {
      kind: 'global',
      ref: { kind: 'File', name: './meshgate.yaml', path: './meshgate.yaml' },
      data: { egress: false, mesh_cidr_ranges: ['10.0.0.0/8'], proxy_uid: 1337 },
    },
  ]);
  assert.equal(
    assertOk(parseGlobalConfig(documents[0]?.data ?? {}, documents[0]?.ref ?? { kind: 'File', name: '' })).proxyUid,
    1337,
  );
});

test('a plain map whose egress is a list is an allowlist', () => {
  const { documents } = readConfigDocuments(
    'egress:\n  - name: a\n    hosts: [a.io]\n    ports: [{number: 443, protocol: TCP}]\n',
    'a.yaml',
  );
  assert.equal(documents[0]?.kind, 'allowlist');
  assert.equal(
    assertOk(parseAllowlist(documents[0]?.data ?? {}, documents[0]?.ref ?? { kind: 'File', name: '' })).length,
    1,
  );
});

test('a bare list is allowlist entries', () => {
  const { documents } = readConfigDocuments(
    '- name: a\n  addresses: [10.0.0.1]\n  ports: [{number: 53, protocol: UDP}]\n',
    'list.yaml',
  );
  assert.equal(documents[0]?.kind, 'allowlist');
  assert.ok(Array.isArray(documents[0]?.data['egress']));
  const [entry] = assertOk(parseAllowlist(documents[0]?.data ?? {}, documents[0]?.ref ?? { kind: 'File', name: '' }));
  assert.deepEqual(entry?.addresses, ['10.0.0.1/32']);
});

test('a multi-document file yields every ConfigMap in order and skips empty documents', () => {
  const { documents, errors } = readConfigDocuments(`${OSM_CONFIG}\n---\n---\n${SHOP_ALLOWLIST}`, 'all.yaml');
  assert.deepEqual(errors, []);
  assert.deepEqual(
    documents.map((doc) => [doc.kind, doc.ref.name]),
    [
      ['global', 'osm-config'],
      ['allowlist', 'egress-stripe'],
    ],
  );
});

test('a v1 List (kubectl get -o yaml) yields its ConfigMaps', () => {
  const list = `apiVersion: v1\nkind: List\nitems:\n${[OSM_CONFIG, SHOP_ALLOWLIST].map((doc) => `- ${doc.trim().replace(/\n/g, '\n  ')}`).join('\n')}\n`;
  const { documents, errors } = readConfigDocuments(list, 'list.yaml');
  assert.deepEqual(errors, []);
  assert.deepEqual(
    documents.map((doc) => doc.ref.name),
    ['osm-config', 'egress-stripe'],
  );
});

test('broken YAML is reported with the file, line and column', () => {
  const { documents, errors } = readConfigDocuments(
    'egress: "false"\nmesh_cidr_ranges: [10.0.0.0/8\n',
    './broken.yaml',
  );
  assert.deepEqual(documents, []);
  assert.deepEqual(codesOf(errors), ['MG_CONFIG_BAD_YAML']);
  assert.equal(errors[0]?.object, 'file ./broken.yaml');
  assert.match(errors[0]?.message ?? '', /^file \.\/broken\.yaml: line \d+, column \d+: invalid YAML: /);
});

test('a broken document in a multi-document file is reported and the others are still read', () => {
  const { documents, errors } = readConfigDocuments(
    `${OSM_CONFIG}---\nkey: [unclosed\n---\n${SHOP_ALLOWLIST}`,
    'mixed.yaml',
  );
  assert.deepEqual(codesOf(errors), ['MG_CONFIG_BAD_YAML']);
  assert.match(
    errors[0]?.message ?? '',
    /^file mixed\.yaml: document starting at line 11: line 13, column 1: invalid YAML/,
  );
  assert.deepEqual(
    documents.map((doc) => doc.ref.name),
    ['osm-config', 'egress-stripe'],
  );
});

test('duplicate keys are a YAML error, not a silent override', () => {
  const { errors } = readConfigDocuments('egress: "true"\negress: "false"\n', 'dup.yaml');
  assert.deepEqual(codesOf(errors), ['MG_CONFIG_BAD_YAML']);
  assert.match(errors[0]?.message ?? '', /line 2/);
});

test('an empty or comment-only file holds no documents', () => {
  for (const text of ['', '\n', '# nothing\n', '---\n']) {
    assert.deepEqual(readConfigDocuments(text, 'empty.yaml'), { documents: [], errors: [] }, JSON.stringify(text));
  }
});

test('an unquoted boolean in ConfigMap data is refused, as the API server would', () => {
  const { documents, errors } = readConfigDocuments(OSM_CONFIG.replace('egress: "false"', 'egress: false'), 'osm.yaml');
  assert.deepEqual(documents, []);
  assert.deepEqual(codesOf(errors), ['MG_CONFIG_BAD_MANIFEST']);
  assert.equal(errors[0]?.key, 'egress');
  assert.match(
    errors[0]?.message ?? '',
    /^ConfigMap osm-system\/osm-config \(file osm\.yaml\) key egress: false is not a string/,
  );
});

test('manifests that are not usable ConfigMaps are refused', () => {
  const cases = [
    'apiVersion: v1\nkind: Secret\nmetadata: { name: s }\n',
    'apiVersion: apps/v1\nkind: ConfigMap\nmetadata: { name: s }\n',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { namespace: x }\n',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: s }\ndata: [a, b]\n',
  ];
  for (const text of cases)
    assert.deepEqual(codesOf(readConfigDocuments(text, 'x.yaml').errors), ['MG_CONFIG_BAD_MANIFEST'], text);
});

test('a ConfigMap without data is an empty global config', () => {
  const { documents } = readConfigDocuments(
    'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: osm-config, namespace: osm-system }\n',
    'x.yaml',
  );
  assert.deepEqual(documents[0]?.data, {});
});

test('a scalar document is neither config nor allowlist', () => {
  const { documents, errors } = readConfigDocuments('just some text\n', 'x.yaml');
  assert.deepEqual(documents, []);
  assert.deepEqual(codesOf(errors), ['MG_CONFIG_NOT_A_MAP']);
  assert.match(errors[0]?.message ?? '', /^file x\.yaml: document at line 1 "just some text" is neither/);
});

test('documents are deep-frozen', () => {
  const { documents } = readConfigDocuments('mesh_cidr_ranges: [10.0.0.0/8]\n', 'x.yaml');
  assert.ok(
    Object.isFrozen(documents[0]) &&
      Object.isFrozen(documents[0]?.data) &&
      Object.isFrozen(documents[0]?.data['mesh_cidr_ranges']),
  );
});

test('an alias bomb is refused instead of expanded', () => {
  const bomb = [
    'a: &a [x, x, x, x, x, x, x, x, x, x]',
    ...Array.from(
      { length: 8 },
      (_, i) =>
        `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(97 + i)}`)
          .join(', ')}]`,
    ),
  ].join('\n');
  const { errors } = readConfigDocuments(bomb, 'bomb.yaml');
  assert.deepEqual(codesOf(errors), ['MG_CONFIG_BAD_YAML']);
});
