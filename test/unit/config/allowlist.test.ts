import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type AllowlistEntry, parseAllowlist, parseAllowlistEntries } from '../../../src/config/index.js';
import { ALLOWLIST_REF, GLOBAL_REF, allIssues, assertOk, codesOf } from './issueAssertions.js';

const PORT_443 = { number: 443, protocol: 'HTTPS' };

function entries(list: unknown): readonly AllowlistEntry[] {
  return assertOk(parseAllowlist({ egress: list }, ALLOWLIST_REF));
}

function refusal(entry: Record<string, unknown>): {
  codes: string[];
  messages: string[];
  paths: (string | undefined)[];
} {
  const result = parseAllowlist({ egress: [{ name: 'stripe', ...entry }] }, ALLOWLIST_REF);
  assert.equal(result.ok, false, 'expected the entry to be refused');
  const errors = result.ok ? [] : result.errors;
  return {
    codes: codesOf(errors),
    messages: errors.map((issue) => issue.message),
    paths: errors.map((issue) => issue.path),
  };
}

test('the SPEC example entry is normalised', () => {
  const yaml = `
- name: stripe
  hosts: [api.stripe.com]
  addresses: [203.0.113.0/24, 2001:db8::/48]
  ports:
    - number: 443
      protocol: HTTPS
`;
  assert.deepEqual(entries(yaml), [
    {
      name: 'stripe',
      hosts: ['api.stripe.com'],
      addresses: ['203.0.113.0/24', '2001:db8::/48'],
      ports: [{ number: 443, protocol: 'TCP', declaredProtocol: 'HTTPS' }],
    },
  ]);
});

test('hosts are lower-cased, lose the trailing dot, and are deduplicated and sorted', () => {
  const result = parseAllowlist(
    { egress: [{ name: 's', hosts: ['Files.Stripe.com', 'API.Stripe.com.', 'api.stripe.com'], ports: [PORT_443] }] },
    ALLOWLIST_REF,
  );
  assert.deepEqual(assertOk(result)[0]?.hosts, ['api.stripe.com', 'files.stripe.com']);
  assert.deepEqual(codesOf(result.warnings), ['MG_WARN_DUPLICATE']);
  assert.equal(result.warnings[0]?.path, 'egress[0].hosts[2]');
});

test('addresses are normalised like mesh CIDRs: bare IPs, host bits, IPv6 form, order', () => {
  const result = parseAllowlist(
    {
      egress: [
        {
          name: 's',
          addresses: ['2001:DB8::/48', '203.0.113.7/24', '198.51.100.1', '::ffff:198.51.100.1'],
          ports: [PORT_443],
        },
      ],
    },
    ALLOWLIST_REF,
  );
  assert.deepEqual(assertOk(result)[0]?.addresses, ['198.51.100.1/32', '203.0.113.0/24', '2001:db8::/48']);
  assert.deepEqual(codesOf(result.warnings), ['MG_WARN_HOST_BITS', 'MG_WARN_DUPLICATE']);
  assert.equal(result.warnings[0]?.path, 'egress[0].addresses[1]');
});

test('protocols map to TCP or UDP case-insensitively and keep what was written', () => {
  const written = ['http', 'HTTPS', 'grpc', 'Http2', 'mongo', 'tcp', 'TLS', 'udp'];
  const [entry] = entries([
    { name: 's', hosts: ['a.io'], ports: written.map((protocol, i) => ({ number: 1000 + i, protocol })) },
  ]);
  assert.deepEqual(
    entry?.ports.map((port) => [port.number, port.protocol, port.declaredProtocol]),
    [
      [1000, 'TCP', 'HTTP'],
      [1001, 'TCP', 'HTTPS'],
      [1002, 'TCP', 'GRPC'],
      [1003, 'TCP', 'HTTP2'],
      [1004, 'TCP', 'MONGO'],
      [1005, 'TCP', 'TCP'],
      [1006, 'TCP', 'TLS'],
      [1007, 'UDP', 'UDP'],
    ],
  );
});

test('ports are deduplicated by number and protocol and sorted; TCP and UDP on one port both stay', () => {
  const result = parseAllowlist(
    {
      egress: [
        {
          name: 's',
          hosts: ['a.io'],
          ports: [
            { number: 443, protocol: 'TLS' },
            { number: 53, protocol: 'UDP' },
            { number: 53, protocol: 'TCP' },
            { number: '443', protocol: 'HTTPS' },
          ],
        },
      ],
    },
    ALLOWLIST_REF,
  );
  assert.deepEqual(assertOk(result)[0]?.ports, [
    { number: 53, protocol: 'TCP', declaredProtocol: 'TCP' },
    { number: 53, protocol: 'UDP', declaredProtocol: 'UDP' },
    { number: 443, protocol: 'TCP', declaredProtocol: 'TLS' },
  ]);
  assert.deepEqual(codesOf(result.warnings), ['MG_WARN_DUPLICATE']);
});

test('a port name (ServiceEntry shape) is accepted without a warning', () => {
  const result = parseAllowlist(
    { egress: [{ name: 's', hosts: ['a.io'], ports: [{ number: 443, protocol: 'HTTPS', name: 'https' }] }] },
    ALLOWLIST_REF,
  );
  assertOk(result);
  assert.deepEqual(result.warnings, []);
});

test('entries keep the order they were written in', () => {
  const list = ['zeta', 'alpha', 'mid'].map((name) => ({ name, hosts: [`${name}.io`], ports: [PORT_443] }));
  assert.deepEqual(
    entries(list).map((entry) => entry.name),
    ['zeta', 'alpha', 'mid'],
  );
});

test('YAML text and an already-parsed list give the same entries', () => {
  const list = [{ name: 'a', hosts: ['a.io'], ports: [{ number: 443, protocol: 'TCP' }] }];
  assert.deepEqual(entries('- name: a\n  hosts: [a.io]\n  ports: [{number: 443, protocol: TCP}]'), entries(list));
});

test('an empty, blank, null or missing allowlist allows nothing', () => {
  for (const data of [
    { egress: '' },
    { egress: '  \n' },
    { egress: '[]' },
    { egress: '# only a comment\n' },
    { egress: null },
  ]) {
    assert.deepEqual(assertOk(parseAllowlist(data, ALLOWLIST_REF)), [], JSON.stringify(data));
  }
});

test('an allowlist ConfigMap without the egress key is refused with its own code, its keys not quoted', () => {
  for (const data of [{}, { 'root:$6$secret:19000:0:99999:7:::': null, 'daemon:*:19000': null }]) {
    const result = parseAllowlist(data, ALLOWLIST_REF);
    assert.equal(result.ok, false);
    assert.deepEqual(
      allIssues(result).map((i) => i.code),
      ['MG_CONFIG_NO_MESHGATE_KEY'],
    );
    assert.doesNotMatch(allIssues(result)[0]!.message, /secret|daemon/);
  }
});

test('wildcard hosts: "*" as the whole first label over a registrable domain, lower-cased', () => {
  const [entry] = entries([
    { name: 's', hosts: ['*.Stripe.com', '*.eu.example.co.uk', '*.example.co.uk.'], ports: [PORT_443] },
  ]);
  assert.deepEqual(entry?.hosts, ['*.eu.example.co.uk', '*.example.co.uk', '*.stripe.com']);
});

test('accepted hostnames', () => {
  const hosts = [
    'localhost',
    'a.b-c.d',
    'xn--bcher-kva.de',
    `${'a'.repeat(63)}.io`,
    'x.io.',
    '1password.com',
    'EXAMPLE.COM',
  ];
  assert.deepEqual(entries([{ name: 's', hosts, ports: [PORT_443] }])[0]?.hosts.length, hosts.length);
});

const BAD_HOSTS: ReadonlyArray<{ host: unknown; code: string; reason: RegExp }> = [
  { host: '*', code: 'MG_ALLOWLIST_WILDCARD_HOST', reason: /bare "\*": it would allow every name/ },
  { host: '*.com', code: 'MG_ALLOWLIST_WILDCARD_HOST', reason: /whole top-level domain "com"/ },
  { host: '*.co.uk', code: 'MG_ALLOWLIST_WILDCARD_HOST', reason: /public suffix "co.uk"/ },
  { host: 'api.*.com', code: 'MG_ALLOWLIST_WILDCARD_HOST', reason: /not the whole first label/ },
  { host: '*api.stripe.com', code: 'MG_ALLOWLIST_WILDCARD_HOST', reason: /not the whole first label/ },
  { host: '*.*.stripe.com', code: 'MG_ALLOWLIST_WILDCARD_HOST', reason: /beyond the first label/ },
  {
    host: '*.api_x.com',
    code: 'MG_ALLOWLIST_WILDCARD_HOST',
    reason: /wildcard whose domain "api_x.com" is not a valid DNS name/,
  },
  { host: '203.0.113.7', code: 'MG_ALLOWLIST_BAD_HOST', reason: /IP address.*put it in addresses/ },
  { host: '2001:db8::1', code: 'MG_ALLOWLIST_BAD_HOST', reason: /IP address.*put it in addresses/ },
  { host: '[2001:db8::1]', code: 'MG_ALLOWLIST_BAD_HOST', reason: /IP address/ },
  { host: '10.0.0.0/8', code: 'MG_ALLOWLIST_BAD_HOST', reason: /CIDR.*put it in addresses/ },
  { host: '10.0.0.300', code: 'MG_ALLOWLIST_BAD_HOST', reason: /last label is all digits/ },
  { host: '', code: 'MG_ALLOWLIST_BAD_HOST', reason: /empty/ },
  { host: 'a..b', code: 'MG_ALLOWLIST_BAD_HOST', reason: /empty label/ },
  { host: '-a.com', code: 'MG_ALLOWLIST_BAD_HOST', reason: /RFC 1123/ },
  { host: 'a-.com', code: 'MG_ALLOWLIST_BAD_HOST', reason: /RFC 1123/ },
  { host: 'api_stripe.com', code: 'MG_ALLOWLIST_BAD_HOST', reason: /RFC 1123/ },
  { host: 'exa mple.com', code: 'MG_ALLOWLIST_BAD_HOST', reason: /RFC 1123/ },
  { host: `${'a'.repeat(64)}.io`, code: 'MG_ALLOWLIST_BAD_HOST', reason: /RFC 1123/ },
  { host: Array.from({ length: 64 }, () => 'abc').join('.'), code: 'MG_ALLOWLIST_BAD_HOST', reason: /longer than 253/ },
  { host: 'bücher.de', code: 'MG_ALLOWLIST_BAD_HOST', reason: /punycode/ },
  { host: 'https://api.stripe.com', code: 'MG_ALLOWLIST_BAD_HOST', reason: /RFC 1123/ },
  { host: 42, code: 'MG_ALLOWLIST_BAD_HOST', reason: /not a hostname string/ },
];

for (const { host, code, reason } of BAD_HOSTS) {
  test(`host ${JSON.stringify(host).slice(0, 40)} is refused with ${code}`, () => {
    const { codes, messages, paths } = refusal({ hosts: [host], ports: [PORT_443] });
    assert.deepEqual(codes, [code]);
    assert.match(messages[0] ?? '', reason);
    assert.equal(paths[0], 'egress[0].hosts[0]');
  });
}

const BAD_ENTRIES: ReadonlyArray<{
  behaviour: string;
  entry: Record<string, unknown>;
  codes: string[];
  path: string;
  message: RegExp;
}> = [
  {
    behaviour: 'a missing protocol says so',
    entry: { hosts: ['a.io'], ports: [{ number: 443 }] },
    codes: ['MG_ALLOWLIST_BAD_PROTOCOL'],
    path: 'egress[0].ports[0].protocol',
    message: /protocol is missing/,
  },
  {
    behaviour: 'a missing port number says so',
    entry: { hosts: ['a.io'], ports: [{ protocol: 'TCP' }] },
    codes: ['MG_CONFIG_BAD_PORT'],
    path: 'egress[0].ports[0].number',
    message: /number is missing/,
  },
  {
    behaviour: 'port 0 is refused',
    entry: { hosts: ['a.io'], ports: [{ number: 0, protocol: 'TCP' }] },
    codes: ['MG_CONFIG_BAD_PORT'],
    path: 'egress[0].ports[0].number',
    message: /out of range 1\.\.65535/,
  },
  {
    behaviour: 'a port number that is not a number is refused',
    entry: { hosts: ['a.io'], ports: [{ number: 'https', protocol: 'TCP' }] },
    codes: ['MG_CONFIG_BAD_PORT'],
    path: 'egress[0].ports[0].number',
    message: /"https" is not a decimal integer/,
  },
  {
    behaviour: 'a port that is not a map is refused',
    entry: { hosts: ['a.io'], ports: [443] },
    codes: ['MG_ALLOWLIST_BAD_ENTRY'],
    path: 'egress[0].ports[0]',
    message: /443 is not a map/,
  },
  {
    behaviour: 'ports that are a map, not a list, are refused',
    entry: { hosts: ['a.io'], ports: PORT_443 },
    codes: ['MG_CONFIG_NOT_A_LIST'],
    path: 'egress[0].ports',
    message: /not a list/,
  },
  {
    behaviour: 'an empty ports list allows nothing and is refused',
    entry: { hosts: ['a.io'], ports: [] },
    codes: ['MG_ALLOWLIST_PORTS_MISSING'],
    path: 'egress[0].ports',
    message: /never everything/,
  },
  {
    behaviour: 'hosts given as one string are refused with a hint',
    entry: { hosts: 'a.io', ports: [PORT_443] },
    codes: ['MG_CONFIG_NOT_A_LIST'],
    path: 'egress[0].hosts',
    message: /write hosts: \[/,
  },
  {
    behaviour: 'an invalid address is refused',
    entry: { addresses: ['203.0.113.0/33'], ports: [PORT_443] },
    codes: ['MG_CONFIG_PREFIX_OUT_OF_RANGE'],
    path: 'egress[0].addresses[0]',
    message: /"203\.0\.113\.0\/33"/,
  },
  {
    behaviour: 'empty hosts and addresses allow nothing and are refused',
    entry: { hosts: [], addresses: [], ports: [PORT_443] },
    codes: ['MG_ALLOWLIST_NO_DESTINATION'],
    path: 'egress[0]',
    message: /neither hosts nor addresses/,
  },
  {
    behaviour: 'a name that is not a string is refused',
    entry: { name: 42, hosts: ['a.io'], ports: [PORT_443] },
    codes: ['MG_ALLOWLIST_NAME_MISSING'],
    path: 'egress[0].name',
    message: /42 is not a string/,
  },
  {
    behaviour: 'a name with control characters is refused, escaped in the message',
    entry: { name: 'a\u0007b', hosts: ['a.io'], ports: [PORT_443] },
    codes: ['MG_ALLOWLIST_BAD_NAME'],
    path: 'egress[0].name',
    message: /"a\\u0007b" contains control/,
  },
  {
    behaviour: 'a name longer than 253 characters is refused',
    entry: { name: 'n'.repeat(254), hosts: ['a.io'], ports: [PORT_443] },
    codes: ['MG_ALLOWLIST_BAD_NAME'],
    path: 'egress[0].name',
    message: /longer than 253/,
  },
];

for (const { behaviour, entry, codes, path, message } of BAD_ENTRIES) {
  test(`entry refused: ${behaviour}`, () => {
    const refused = refusal(entry);
    assert.deepEqual(refused.codes, codes);
    assert.equal(refused.paths[0], path);
    assert.match(refused.messages[0] ?? '', message);
  });
}

test('the message of an unknown protocol reads as in the contract', () => {
  const list = [1, 2].map((i) => ({ name: `e${i}`, hosts: ['a.io'], ports: [PORT_443] }));
  const result = parseAllowlist(
    { egress: [...list, { name: 'stripe', hosts: ['api.stripe.com'], ports: [{ number: 443, protocol: 'SCTPX' }] }] },
    ALLOWLIST_REF,
  );
  const messages = allIssues(result).map((issue) => issue.message);
  assert.deepEqual(messages, [
    'ConfigMap shop/egress key egress entry [2] "stripe": ports[0].protocol "SCTPX" is not a known protocol (HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS, UDP)',
  ]);
});

test('errors of every entry are collected, and one bad entry rejects the whole ConfigMap', () => {
  const result = parseAllowlist(
    {
      egress: [
        { name: 'ok', hosts: ['a.io'], ports: [PORT_443] },
        { name: 'w', hosts: ['*.io'], ports: [PORT_443] },
        { hosts: ['b.io'] },
        'text',
      ],
    },
    ALLOWLIST_REF,
  );
  assert.equal(result.ok, false);
  assert.deepEqual(codesOf(allIssues(result)), [
    'MG_ALLOWLIST_WILDCARD_HOST',
    'MG_ALLOWLIST_NAME_MISSING',
    'MG_ALLOWLIST_PORTS_MISSING',
    'MG_ALLOWLIST_BAD_ENTRY',
  ]);
  assert.deepEqual(
    allIssues(result).map((issue) => issue.entryIndex),
    [1, 2, 2, 3],
  );
});

test('a duplicate name names the first entry', () => {
  const result = parseAllowlist(
    { egress: [0, 1].map(() => ({ name: 'dup', hosts: ['a.io'], ports: [PORT_443] })) },
    ALLOWLIST_REF,
  );
  assert.match(allIssues(result)[0]?.message ?? '', /entry \[1\] "dup": name "dup" is already the name of entry \[0\]/);
});

test('host x port pairs count against maxPolicyEntries', () => {
  const list = [
    {
      name: 's',
      hosts: ['a.io', 'b.io'],
      addresses: ['10.0.0.1'],
      ports: [PORT_443, { number: 80, protocol: 'HTTP' }],
    },
  ];
  assertOk(parseAllowlist({ egress: list }, ALLOWLIST_REF, { maxPolicyEntries: 6, maxExcludedPorts: 1 }));
  const result = parseAllowlist({ egress: list }, ALLOWLIST_REF, { maxPolicyEntries: 5, maxExcludedPorts: 1 });
  assert.deepEqual(codesOf(allIssues(result)), ['MG_CONFIG_TOO_MANY_ENTRIES']);
  assert.match(allIssues(result)[0]?.message ?? '', /6 policy entries/);
});

test('an allowlist ConfigMap warns about keys other than egress', () => {
  const result = parseAllowlist({ egress: '', egres: '- x', note: 'hello' }, ALLOWLIST_REF);
  assert.deepEqual(assertOk(result), []);
  assert.deepEqual(
    result.warnings.map((issue) => [issue.code, issue.key]),
    [
      ['MG_CONFIG_UNKNOWN_KEY', 'egres'],
      ['MG_CONFIG_UNKNOWN_KEY', 'note'],
    ],
  );
  assert.match(result.warnings[0]?.message ?? '', /did you mean egress\?/);
});

test('parseAllowlistEntries reads the global egress_allowlist under its own key', () => {
  const result = parseAllowlistEntries(
    [{ name: 'x', hosts: ['a.*.io'], ports: [PORT_443] }],
    GLOBAL_REF,
    'egress_allowlist',
  );
  assert.equal(allIssues(result)[0]?.path, 'egress_allowlist[0].hosts[0]');
  assert.match(
    allIssues(result)[0]?.message ?? '',
    /^ConfigMap osm-system\/osm-config key egress_allowlist entry \[0\] "x": /,
  );
});

test('the YAML line of a syntax error inside the egress value is reported', () => {
  const result = parseAllowlist(
    { egress: '- name: a\n  hosts: [a.io]\n  ports: [{number: 443, protocol: TCP}\n' },
    ALLOWLIST_REF,
  );
  assert.deepEqual(codesOf(allIssues(result)), ['MG_CONFIG_BAD_YAML']);
  assert.match(
    allIssues(result)[0]?.message ?? '',
    /^ConfigMap shop\/egress key egress: line \d+, column \d+ of the value: invalid YAML: /,
  );
});

test('parsed entries are deep-frozen', () => {
  const [entry] = entries([{ name: 's', hosts: ['a.io'], addresses: ['10.0.0.1'], ports: [PORT_443] }]);
  assert.ok(
    entry !== undefined &&
      Object.isFrozen(entry) &&
      Object.isFrozen(entry.hosts) &&
      Object.isFrozen(entry.addresses) &&
      Object.isFrozen(entry.ports[0]),
  );
});
