// PolicyCompiler: pure, deterministic, independent of orderings that carry no meaning, and
// memoised per group so that a one-entry change rebuilds one group only.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import fc from 'fast-check';

import {
  parseAllowlist,
  parseGlobalConfig,
  type AllowlistEntry,
  type GlobalConfig,
  type ObjectRef,
} from '../../../src/config/index.js';
import {
  validateDesired,
  type DesiredGroup,
  type DesiredState,
  type DesiredTrieEntry,
} from '../../../src/datapath/desired.js';
import { entryLabel } from '../../../src/datapath/labels.js';
import { PolicyCompiler, allowlistHosts, type CompileInput, type PodInput } from '../../../src/policy/compile.js';

const GLOBAL_REF: ObjectRef = { kind: 'ConfigMap', namespace: 'osm-system', name: 'osm-config' };
const refOf = (namespace: string): ObjectRef => ({ kind: 'ConfigMap', namespace, name: 'egress' });

function globalConfig(data: Record<string, unknown>): GlobalConfig {
  const r = parseGlobalConfig(data, GLOBAL_REF);
  assert.ok(r.ok, `global config refused: ${r.ok ? '' : r.errors.map((e) => e.message).join('; ')}`);
  return r.value;
}

function allowlist(namespace: string, list: unknown): readonly AllowlistEntry[] {
  const r = parseAllowlist({ egress: list }, refOf(namespace));
  assert.ok(r.ok, `allowlist refused: ${r.ok ? '' : r.errors.map((e) => e.message).join('; ')}`);
  return r.value;
}

const pod = (
  namespace: string,
  name: string,
  id: number,
  opts: { proxy?: number; meshed?: boolean } = {},
): PodInput => ({
  namespace,
  name,
  podCgroupId: BigInt(id),
  proxyCgroupId: opts.proxy === undefined ? null : BigInt(opts.proxy),
  meshed: opts.meshed ?? true,
});

function input(over: Partial<CompileInput> = {}): CompileInput {
  return {
    global: globalConfig({ mesh_cidr_ranges: '10.0.0.0/8' }),
    allowlists: new Map(),
    resolved: new Map(),
    pods: [],
    ...over,
  };
}

const allowGroup = (state: DesiredState, namespace: string): DesiredGroup | undefined =>
  state.policy.groups.find((g) => g.id === `allow:${namespace}`);
const keyOf = (e: DesiredTrieEntry): string =>
  `${e.table}|${e.namespace ?? ''}|${e.cidr}|${e.proto ?? ''}|${e.port ?? ''}`;
/** What the datapath makes of a group: a set of keys, each with its label (array order is irrelevant to it). */
const asKernelSees = (state: DesiredState) =>
  state.policy.groups.map((g) => ({
    id: g.id,
    entries: [...g.entries].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0)),
  }));

// ---- random valid inputs, built through the real parsers --------------------------------

const NAMESPACES = ['shop', 'billing', 'search', 'edge'];
const HOSTS = ['api.stripe.com', 'files.example.org', 'db.example.net', 'cdn.example.io'];
const ADDRESSES = [
  '203.0.113.10',
  '203.0.113.20',
  '198.51.100.7',
  '192.0.2.1',
  '2001:db8::10',
  '2001:db8::20',
  'fd00::5',
  '2001:db8:1::1',
];
const CIDRS = [
  '203.0.113.0/24',
  '198.51.100.7/32',
  '192.0.2.128/25',
  '2001:db8::/48',
  '2001:db8:1::/64',
  'fd00::5',
  '100.64.0.0/10',
];
const PROTOCOLS = ['TCP', 'https', 'HTTP', 'GRPC', 'TLS', 'UDP', 'udp', 'MONGO', 'HTTP2'];

const rawPort = fc.record({
  number: fc.constantFrom(53, 80, 443, 8443, 27017),
  protocol: fc.constantFrom(...PROTOCOLS),
});
const rawEntry = fc
  .record({
    hosts: fc.subarray(HOSTS),
    addresses: fc.subarray(CIDRS),
    ports: fc.array(rawPort, { minLength: 1, maxLength: 3 }),
  })
  .filter((e) => e.hosts.length + e.addresses.length > 0);
/** Entries with unique names, as the parser requires. */
const rawEntries = fc
  .uniqueArray(fc.constantFrom('a', 'b', 'c', 'stripe', 'partner', 'zeta'), { maxLength: 4 })
  .chain((names) =>
    fc.tuple(...names.map(() => rawEntry)).map((entries) => entries.map((e, i) => ({ name: names[i]!, ...e }))),
  );
const rawGlobal = fc.record({
  egress: fc.constantFrom('true', 'false'),
  mesh_cidr_ranges: fc.subarray(['10.0.0.0/8', '172.16.0.0/12', 'fd10::/64', '2001:db8:ff::/56'], { minLength: 1 }),
  outbound_ip_range_exclusion_list: fc.subarray(['169.254.169.254/32', '192.168.0.0/16', 'fe80::/10']),
  outbound_port_exclusion_list: fc.subarray(['22', '9090', '15020', '8125']),
  proxy_outbound_port: fc.constantFrom('15001', '15006'),
  proxy_uid: fc.constantFrom('1500', '1337'),
  blocked_egress_action: fc.constantFrom('deny', 'redirect'),
  unknown_pod_policy: fc.constantFrom('pass', 'deny-external'),
  egress_allowlist: rawEntries,
});
const rawResolved = fc.dictionary(fc.constantFrom(...HOSTS), fc.subarray(ADDRESSES));
const rawPods = fc.uniqueArray(
  fc.record({
    id: fc.integer({ min: 1000, max: 1999 }),
    namespace: fc.constantFrom(...NAMESPACES),
    meshed: fc.boolean(),
    proxy: fc.option(fc.integer({ min: 5000, max: 5999 }), { nil: undefined }),
  }),
  { maxLength: 6, selector: (p) => p.id },
);

interface RawInput {
  global: {
    mesh_cidr_ranges: string[];
    outbound_ip_range_exclusion_list: string[];
    outbound_port_exclusion_list: string[];
  } & Record<string, unknown>;
  namespaces: Array<[string, Array<Record<string, unknown>>]>;
  resolved: Record<string, string[]>;
  pods: Array<{ id: number; namespace: string; meshed: boolean; proxy?: number | undefined }>;
}
const rawInput: fc.Arbitrary<RawInput> = fc.record({
  global: rawGlobal,
  namespaces: fc.uniqueArray(fc.tuple(fc.constantFrom(...NAMESPACES), rawEntries), {
    maxLength: 4,
    selector: ([ns]) => ns,
  }),
  resolved: rawResolved,
  pods: rawPods,
});

/** A seeded Fisher-Yates shuffle, so fast-check can shrink and replay it. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Builds the compiler's input through the parsers. `seed` reorders everything whose order
 * carries no meaning: list items in the config text, entries, namespaces, pods.
 */
function build(raw: RawInput, seed = 0): CompileInput {
  const g = raw.global;
  const global = globalConfig({
    ...g,
    mesh_cidr_ranges: shuffled(g.mesh_cidr_ranges, seed).join(', '),
    outbound_ip_range_exclusion_list: shuffled(g.outbound_ip_range_exclusion_list, seed + 1).join(' '),
    outbound_port_exclusion_list: shuffled(g.outbound_port_exclusion_list, seed + 2).join(','),
    egress_allowlist: shuffled(g.egress_allowlist as unknown[], seed + 3),
  });
  const allowlists = new Map(
    shuffled(raw.namespaces, seed + 4).map(([ns, entries]) => [ns, allowlist(ns, shuffled(entries, seed + 5))]),
  );
  const resolved = new Map(shuffled(Object.entries(raw.resolved), seed + 6));
  // A sidecar's cgroup belongs to one pod: derive its id from the pod's, so no two pods share one.
  const pods = shuffled(raw.pods, seed + 7).map((p) =>
    pod(p.namespace, `pod-${p.id}`, p.id, { meshed: p.meshed, proxy: p.proxy === undefined ? undefined : p.id + 4000 }),
  );
  return { global, allowlists, resolved, pods };
}

describe('determinism', () => {
  test('the same input compiles to equal output, twice on one compiler and on two compilers', () => {
    fc.assert(
      fc.property(rawInput, (raw) => {
        const first = new PolicyCompiler();
        const a = first.compile(build(raw));
        assert.deepEqual(first.compile(build(raw)), a);
        assert.deepEqual(new PolicyCompiler().compile(build(raw)), a);
      }),
      { numRuns: 200 },
    );
  });

  test('the order of namespaces, entries, pods and config list items does not change the output', () => {
    fc.assert(
      fc.property(rawInput, fc.nat(), (raw, seed) => {
        assert.deepEqual(new PolicyCompiler().compile(build(raw, seed)), new PolicyCompiler().compile(build(raw, 0)));
      }),
      { numRuns: 200 },
    );
  });

  test("the order of resolved addresses changes no trie key nor label, only the order of a group's entries", () => {
    // The resolver hands addresses over canonically ordered; the datapath keys its diff by
    // trie key, so the array order inside a group is not meaningful.
    fc.assert(
      fc.property(rawInput, fc.nat(), (raw, seed) => {
        const base = build(raw);
        const reordered: CompileInput = {
          ...base,
          resolved: new Map([...base.resolved].map(([h, a], i) => [h, shuffled(a, seed + i)])),
        };
        assert.deepEqual(
          asKernelSees(new PolicyCompiler().compile(reordered)),
          asKernelSees(new PolicyCompiler().compile(base)),
        );
      }),
      { numRuns: 200 },
    );
  });

  test('every compiled state is one the datapath accepts: valid entries, no trie key in two places', () => {
    fc.assert(
      fc.property(rawInput, (raw) => {
        const state = new PolicyCompiler().compile(build(raw));
        const total = state.policy.groups.reduce((n, g) => n + g.entries.length, 0);
        validateDesired(state, state.policy.groups, total);
        const keys = state.policy.groups.flatMap((g) => g.entries.map(keyOf));
        assert.equal(new Set(keys).size, keys.length);
        const ids = state.cgroups.map((c) => c.cgroupId);
        assert.equal(new Set(ids).size, ids.length);
      }),
      { numRuns: 200 },
    );
  });

  test('the output is frozen: no consumer can change a memoised group', () => {
    const state = new PolicyCompiler().compile(
      input({
        allowlists: new Map([
          [
            'shop',
            allowlist('shop', [{ name: 'a', addresses: ['192.0.2.1'], ports: [{ number: 443, protocol: 'TLS' }] }]),
          ],
        ]),
      }),
    );
    assert.ok(
      Object.isFrozen(state) &&
        Object.isFrozen(state.policy) &&
        Object.isFrozen(state.policy.groups) &&
        Object.isFrozen(state.cgroups),
    );
    for (const g of state.policy.groups) assert.ok(Object.isFrozen(g) && Object.isFrozen(g.entries), g.id);
  });
});

describe('group memo', () => {
  test('an unchanged group is returned as the very same object', () => {
    fc.assert(
      fc.property(rawInput, (raw) => {
        const compiler = new PolicyCompiler();
        const before = compiler.compile(build(raw));
        // A fresh parse: equal values, new objects. The memo compares content, not identity.
        const after = compiler.compile(build(raw));
        assert.equal(after.policy.groups.length, before.policy.groups.length);
        after.policy.groups.forEach((g, i) => assert.equal(g, before.policy.groups[i], `group ${g.id} was rebuilt`));
      }),
      { numRuns: 100 },
    );
  });

  test('a one-entry change rebuilds exactly the group of that namespace', () => {
    const hasAddresses = (entries: Array<Record<string, unknown>>) =>
      entries.some((e) => (e['addresses'] as unknown[]).length > 0);
    fc.assert(
      fc.property(
        rawInput.filter((r) => r.namespaces.some(([, e]) => hasAddresses(e))),
        fc.nat(),
        (raw, pick) => {
          const compiler = new PolicyCompiler();
          const first = build(raw);
          const before = compiler.compile(first);
          const candidates = raw.namespaces.filter(([, entries]) => hasAddresses(entries));
          const [namespace, entries] = candidates[pick % candidates.length]!;
          // Change one entry with addresses: it now also allows a port no generated entry uses.
          const target = entries.findIndex((e) => (e['addresses'] as unknown[]).length > 0);
          const changed = entries.map((e, i) =>
            i === target ? { ...e, ports: [...(e['ports'] as unknown[]), { number: 7777, protocol: 'TCP' }] } : e,
          );
          const allowlists = new Map(first.allowlists);
          allowlists.set(namespace, allowlist(namespace, changed));
          const after = compiler.compile({ ...first, allowlists });
          const rebuilt = after.policy.groups.filter((g) => !before.policy.groups.includes(g)).map((g) => g.id);
          assert.deepEqual(rebuilt, [`allow:${namespace}`]);
          assert.ok(allowGroup(after, namespace)!.entries.some((e) => e.port === 7777));
        },
      ),
      { numRuns: 100 },
    );
  });

  test('a long allowlist is bucketed: a fresh parse of it rebuilds no bucket, one more address rebuilds one', () => {
    const addresses = Array.from({ length: 5000 }, (_, i) => `100.64.${i >> 8}.${i & 255}`);
    const parse = (list: string[]) =>
      new Map([
        ['shop', allowlist('shop', [{ name: 'bulk', addresses: list, ports: [{ number: 80, protocol: 'TCP' }] }])],
      ]);
    const compiler = new PolicyCompiler();
    const before = compiler.compile(input({ allowlists: parse(addresses) })).policy.groups;
    const buckets = before.filter((g) => g.id.startsWith('allow:shop#'));
    assert.equal(buckets.length, 8, before.map((g) => g.id).join(', '));
    const again = compiler.compile(input({ allowlists: parse(addresses) })).policy.groups;
    again.forEach((g, i) => assert.equal(g, before[i], `group ${g.id} was rebuilt`));
    const after = compiler.compile(input({ allowlists: parse([...addresses, '100.65.0.1']) })).policy.groups;
    const rebuilt = after.filter((g) => !before.includes(g));
    assert.equal(rebuilt.length, 1);
    assert.ok(rebuilt[0]!.entries.some((e) => e.cidr === '100.65.0.1/32'));
    assert.equal(
      after.reduce((n, g) => n + g.entries.length, 0),
      before.reduce((n, g) => n + g.entries.length, 0) + 1,
    );
  });

  test('a changed DNS answer rebuilds only the groups that name the host', () => {
    const compiler = new PolicyCompiler();
    const allowlists = new Map([
      [
        'shop',
        allowlist('shop', [{ name: 'stripe', hosts: ['api.stripe.com'], ports: [{ number: 443, protocol: 'HTTPS' }] }]),
      ],
      [
        'search',
        allowlist('search', [{ name: 'es', addresses: ['198.51.100.7'], ports: [{ number: 9200, protocol: 'HTTP' }] }]),
      ],
    ]);
    const before = compiler.compile(input({ allowlists, resolved: new Map([['api.stripe.com', ['203.0.113.10']]]) }));
    const after = compiler.compile(input({ allowlists, resolved: new Map([['api.stripe.com', ['203.0.113.20']]]) }));
    assert.notEqual(allowGroup(after, 'shop'), allowGroup(before, 'shop'));
    assert.equal(allowGroup(after, 'search'), allowGroup(before, 'search'));
    assert.equal(
      after.policy.groups.find((g) => g.id === 'mesh'),
      before.policy.groups.find((g) => g.id === 'mesh'),
    );
    assert.deepEqual(
      allowGroup(after, 'shop')!.entries.map((e) => e.cidr),
      ['203.0.113.20/32'],
    );
  });

  test('a group that disappears and comes back is rebuilt with the new content', () => {
    const compiler = new PolicyCompiler();
    const shop = (port: number) =>
      new Map([
        [
          'shop',
          allowlist('shop', [{ name: 'a', addresses: ['192.0.2.1'], ports: [{ number: port, protocol: 'TCP' }] }]),
        ],
      ]);
    compiler.compile(input({ allowlists: shop(443) }));
    assert.equal(allowGroup(compiler.compile(input()), 'shop'), undefined);
    assert.deepEqual(
      allowGroup(compiler.compile(input({ allowlists: shop(8443) })), 'shop')!.entries.map((e) => e.port),
      [8443],
    );
  });
});

describe('what the compiled state holds', () => {
  test("addresses a hostname resolves to are allowed on the entry's ports and labelled with the host", () => {
    const state = new PolicyCompiler().compile(
      input({
        allowlists: new Map([
          [
            'shop',
            allowlist('shop', [
              {
                name: 'stripe',
                hosts: ['api.stripe.com'],
                addresses: ['198.51.100.0/24'],
                ports: [{ number: 443, protocol: 'HTTPS' }],
              },
            ]),
          ],
        ]),
        resolved: new Map([['api.stripe.com', ['203.0.113.10', '2001:db8::10']]]),
      }),
    );
    assert.deepEqual(allowGroup(state, 'shop')!.entries, [
      {
        table: 'allow',
        cidr: '198.51.100.0/24',
        proto: 'tcp',
        port: 443,
        namespace: 'shop',
        label: entryLabel('shop', 'stripe'),
      },
      {
        table: 'allow',
        cidr: '203.0.113.10/32',
        proto: 'tcp',
        port: 443,
        namespace: 'shop',
        label: entryLabel('shop', 'stripe', 'api.stripe.com'),
      },
      {
        table: 'allow',
        cidr: '2001:db8::10/128',
        proto: 'tcp',
        port: 443,
        namespace: 'shop',
        label: entryLabel('shop', 'stripe', 'api.stripe.com'),
      },
    ]);
    assert.deepEqual(JSON.parse(entryLabel('shop', 'stripe', 'api.stripe.com')), {
      kind: 'entry',
      namespace: 'shop',
      name: 'stripe',
      host: 'api.stripe.com',
    });
  });

  test('a hostname not resolved (yet) allows nothing, and a namespace left with nothing has no group', () => {
    const allowlists = new Map([
      [
        'shop',
        allowlist('shop', [{ name: 'stripe', hosts: ['api.stripe.com'], ports: [{ number: 443, protocol: 'HTTPS' }] }]),
      ],
    ]);
    assert.equal(allowGroup(new PolicyCompiler().compile(input({ allowlists })), 'shop'), undefined);
    const empty = new PolicyCompiler().compile(input({ allowlists: new Map([['shop', []]]) }));
    assert.deepEqual(
      empty.policy.groups.map((g) => g.id),
      ['mesh'],
    );
  });

  test('the global allowlist is the namespace "" group, before the namespaces in name order', () => {
    const global = globalConfig({
      mesh_cidr_ranges: '10.0.0.0/8',
      outbound_ip_range_exclusion_list: '169.254.169.254',
      egress_allowlist: [{ name: 'g', addresses: ['192.0.2.1'], ports: [{ number: 53, protocol: 'UDP' }] }],
    });
    const entry = [{ name: 'a', addresses: ['192.0.2.1'], ports: [{ number: 443, protocol: 'TCP' }] }];
    const state = new PolicyCompiler().compile(
      input({
        global,
        allowlists: new Map([
          ['zoo', allowlist('zoo', entry)],
          ['apps', allowlist('apps', entry)],
        ]),
      }),
    );
    assert.deepEqual(
      state.policy.groups.map((g) => g.id),
      ['mesh', 'exclude', 'allow:', 'allow:apps', 'allow:zoo'],
    );
    assert.deepEqual(allowGroup(state, '')!.entries, [
      { table: 'allow', cidr: '192.0.2.1/32', proto: 'udp', port: 53, namespace: '', label: entryLabel('', 'g') },
    ]);
  });

  test('IPv6 mesh CIDRs, exclusions and allowlist entries are compiled like IPv4 ones', () => {
    const global = globalConfig({
      mesh_cidr_ranges: 'fd10::/64 10.0.0.0/8',
      outbound_ip_range_exclusion_list: 'fe80::/10',
      outbound_port_exclusion_list: '9090, 22',
    });
    const state = new PolicyCompiler().compile(
      input({
        global,
        allowlists: new Map([
          [
            'shop',
            allowlist('shop', [
              {
                name: 'v6',
                addresses: ['2001:db8::/48', '2001:DB8:1::1'],
                ports: [
                  { number: 53, protocol: 'udp' },
                  { number: 443, protocol: 'TLS' },
                ],
              },
            ]),
          ],
        ]),
      }),
    );
    assert.deepEqual(state.policy.groups.find((g) => g.id === 'mesh')!.entries, [
      { table: 'mesh', cidr: '10.0.0.0/8' },
      { table: 'mesh', cidr: 'fd10::/64' },
    ]);
    assert.deepEqual(state.policy.groups.find((g) => g.id === 'exclude')!.entries, [
      { table: 'exclude', cidr: 'fe80::/10' },
    ]);
    assert.deepEqual(
      allowGroup(state, 'shop')!.entries.map((e) => `${e.cidr} ${e.port}/${e.proto}`),
      ['2001:db8::/48 53/udp', '2001:db8::/48 443/tcp', '2001:db8:1::1/128 53/udp', '2001:db8:1::1/128 443/tcp'],
    );
    assert.deepEqual(state.policy.excludedPorts, [22, 9090]);
  });

  test('when two entries allow the same destination, the first by name is the one shown', () => {
    const port = [{ number: 443, protocol: 'HTTPS' }];
    const state = new PolicyCompiler().compile(
      input({
        allowlists: new Map([
          [
            'shop',
            allowlist('shop', [
              { name: 'zeta', addresses: ['203.0.113.10'], ports: port },
              { name: 'alpha', hosts: ['api.example.com'], ports: port },
            ]),
          ],
        ]),
        resolved: new Map([['api.example.com', ['203.0.113.10']]]),
      }),
    );
    assert.deepEqual(
      allowGroup(state, 'shop')!.entries.map((e) => e.label),
      [entryLabel('shop', 'alpha', 'api.example.com')],
    );
  });

  test('a meshed pod with its sidecar cgroup known maps both, and its sidecar is the proxy', () => {
    const state = new PolicyCompiler().compile(input({ pods: [pod('shop', 'web', 42, { proxy: 43 })] }));
    assert.deepEqual(state.cgroups, [
      { cgroupId: 42n, kind: 'pod', namespace: 'shop', label: 'shop/web', proxyCgroupKnown: true },
      { cgroupId: 43n, kind: 'proxy', namespace: 'shop', label: 'shop/web sidecar', proxyCgroupKnown: true },
    ]);
  });

  test('a meshed pod whose sidecar cgroup is unknown falls back to proxy_uid', () => {
    const state = new PolicyCompiler().compile(input({ pods: [pod('shop', 'web', 42)] }));
    assert.deepEqual(state.cgroups, [
      { cgroupId: 42n, kind: 'pod', namespace: 'shop', label: 'shop/web', proxyCgroupKnown: false },
    ]);
    assert.equal(state.policy.proxyUid, 1500);
  });

  test('a pod that is not meshed is marked unenforced, and its containers get no proxy identity', () => {
    const state = new PolicyCompiler().compile(
      input({ pods: [pod('shop', 'batch', 50, { meshed: false, proxy: 51 })] }),
    );
    assert.deepEqual(state.cgroups, [
      { cgroupId: 50n, kind: 'unenforced', namespace: 'shop', label: 'shop/batch', proxyCgroupKnown: false },
    ]);
  });

  test('pods are ordered by cgroup id', () => {
    const pods = [pod('a', 'x', 30), pod('b', 'y', 10, { meshed: false }), pod('c', 'z', 20, { proxy: 5 })];
    assert.deepEqual(
      new PolicyCompiler().compile(input({ pods })).cgroups.map((c) => c.cgroupId),
      [10n, 20n, 5n, 30n],
    );
  });

  test('the policy carries the global scalars; only denies and audits are emitted as events unless asked', () => {
    const global = globalConfig({
      egress: 'true',
      mesh_cidr_ranges: '10.0.0.0/8',
      proxy_outbound_port: '15006',
      proxy_uid: '1337',
      blocked_egress_action: 'redirect',
      unknown_pod_policy: 'deny-external',
    });
    const { policy } = new PolicyCompiler().compile(input({ global }));
    assert.deepEqual(
      { ...policy, groups: undefined },
      {
        egress: true,
        proxyPort: 15006,
        proxyUid: 1337,
        blockedAction: 'redirect',
        namespaceActions: [],
        unknownPodPolicy: 'deny-external',
        eventVerdicts: ['deny', 'audit'],
        groups: undefined,
        excludedPorts: [],
        dnsHosts: [],
      },
    );
    assert.deepEqual(
      new PolicyCompiler().compile(input({ eventVerdicts: ['deny', 'redirect'] })).policy.eventVerdicts,
      ['deny', 'redirect'],
    );
  });

  test("namespaces' own blocked actions are carried sorted by namespace; the global allowlist's namespace '' never has one", () => {
    const namespaceActions = new Map([
      ['shop', 'audit'],
      ['', 'redirect'],
      ['billing', 'deny'],
    ] as const);
    const { policy } = new PolicyCompiler().compile(
      input({ global: globalConfig({ blocked_egress_action: 'audit' }), namespaceActions }),
    );
    assert.equal(policy.blockedAction, 'audit');
    assert.deepEqual(policy.namespaceActions, [
      { namespace: 'billing', action: 'deny' },
      { namespace: 'shop', action: 'audit' },
    ]);
  });

  test('empty mesh CIDRs and exclusions give no group: empty means none', () => {
    const state = new PolicyCompiler().compile(input({ global: globalConfig({ egress: 'false' }) }));
    assert.deepEqual(state.policy.groups, []);
  });

  test('allowlistHosts lists every host of the global and namespace allowlists once, sorted', () => {
    const global = globalConfig({
      mesh_cidr_ranges: '10.0.0.0/8',
      egress_allowlist: [
        { name: 'g', hosts: ['z.example.com', 'a.example.com'], ports: [{ number: 443, protocol: 'TLS' }] },
      ],
    });
    const allowlists = new Map([
      [
        'shop',
        allowlist('shop', [
          { name: 's', hosts: ['a.example.com', 'm.example.com'], ports: [{ number: 443, protocol: 'TLS' }] },
        ]),
      ],
    ]);
    assert.deepEqual(allowlistHosts(global, allowlists), ['a.example.com', 'm.example.com', 'z.example.com']);
  });

  test("the agent's own resolver skips wildcard hosts: they are learned from pods' answers only", () => {
    const allowlists = new Map([
      [
        'shop',
        allowlist('shop', [
          { name: 's', hosts: ['*.cdn.example.com', 'api.example.com'], ports: [{ number: 443, protocol: 'TLS' }] },
        ]),
      ],
    ]);
    assert.deepEqual(allowlistHosts(globalConfig({ mesh_cidr_ranges: '10.0.0.0/8' }), allowlists), ['api.example.com']);
  });

  test("dnsHosts: every host per namespace with its entries' ports, the first entry by name labelling a port", () => {
    const global = globalConfig({
      mesh_cidr_ranges: '10.0.0.0/8',
      egress_allowlist: [{ name: 'g', hosts: ['api.example.com'], ports: [{ number: 53, protocol: 'UDP' }] }],
    });
    const allowlists = new Map([
      [
        'shop',
        allowlist('shop', [
          {
            name: 'b',
            hosts: ['*.cdn.example.com', 'api.example.com'],
            ports: [
              { number: 443, protocol: 'TLS' },
              { number: 80, protocol: 'HTTP' },
            ],
          },
          { name: 'a', hosts: ['api.example.com'], ports: [{ number: 443, protocol: 'HTTPS' }] },
        ]),
      ],
    ]);
    const compiler = new PolicyCompiler();
    const { policy } = compiler.compile(input({ global, allowlists }));
    assert.deepEqual(policy.dnsHosts, [
      {
        namespace: '',
        host: 'api.example.com',
        ports: [{ proto: 'udp', port: 53, label: entryLabel('', 'g', 'api.example.com') }],
      },
      {
        namespace: 'shop',
        host: '*.cdn.example.com',
        ports: [
          { proto: 'tcp', port: 80, label: entryLabel('shop', 'b', '*.cdn.example.com') },
          { proto: 'tcp', port: 443, label: entryLabel('shop', 'b', '*.cdn.example.com') },
        ],
      },
      {
        namespace: 'shop',
        host: 'api.example.com',
        ports: [
          { proto: 'tcp', port: 443, label: entryLabel('shop', 'a', 'api.example.com') },
          { proto: 'tcp', port: 80, label: entryLabel('shop', 'b', 'api.example.com') },
        ],
      },
    ]);
    assert.equal(
      compiler.compile(input({ global, allowlists })).policy.dnsHosts,
      policy.dnsHosts,
      'unchanged hosts are the same array, so apply skips them',
    );
  });
});
