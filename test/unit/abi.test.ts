// The kernel/user ABI cannot drift: the generated layouts match the compiled
// object's BTF, every codec field sits at the BTF's offset with the BTF's width,
// and a map with other sizes than the encoders expect is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ENUMS, MAPS, STRUCTS } from '../../src/datapath/abi.generated.js';
import * as codec from '../../src/datapath/codec.js';
import { MapHandle } from '../../src/datapath/maps.js';
import { REPO_ROOT } from '../helpers/sandbox.js';

test('abi.generated.ts is what the compiled objects BTF says', () => {
  const regenerated = execFileSync(
    'node',
    [
      path.join(REPO_ROOT, 'scripts/gen-abi.mjs'),
      path.join(REPO_ROOT, 'build/meshgate.bpf.o'),
      path.join(REPO_ROOT, 'build/abi.bpf.o'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(regenerated, readFileSync(path.join(REPO_ROOT, 'src/datapath/abi.generated.ts'), 'utf8'));
});

test('the compat variant has the same maps and layouts as the kern-ctx object (one ABI, one pin directory)', () => {
  const generate = (object: string) =>
    execFileSync(
      'node',
      [
        path.join(REPO_ROOT, 'scripts/gen-abi.mjs'),
        path.join(REPO_ROOT, object),
        path.join(REPO_ROOT, 'build/abi.bpf.o'),
      ],
      { encoding: 'utf8' },
    );
  assert.equal(generate('build/meshgate-compat.bpf.o'), generate('build/meshgate.bpf.o'));
});

type Expected = Record<string, bigint | Uint8Array>;

/** Fails unless every field of the struct holds what is expected at the BTF's offset and width, and padding is zero. */
function assertLayout(struct: keyof typeof STRUCTS, bytes: Buffer, expected: Expected): void {
  const layout = STRUCTS[struct];
  assert.equal(bytes.length, layout.size, `${struct}: encoded size`);
  for (const [name, f] of Object.entries(layout.fields as Record<string, { offset: number; size: number }>)) {
    const at = bytes.subarray(f.offset, f.offset + f.size);
    const want = expected[name];
    if (want === undefined) {
      assert.ok(/^pad\d*$/.test(name), `${struct}.${name} is not covered by this test: add it`);
      assert.ok(
        at.every((b) => b === 0),
        `${struct}.${name} (padding) is not zero`,
      );
    } else if (want instanceof Uint8Array) {
      assert.deepEqual(Uint8Array.from(at), want, `${struct}.${name}`);
    } else {
      let v = 0n;
      for (let i = f.size - 1; i >= 0; i--) v = (v << 8n) | BigInt(at[i]!);
      assert.equal(v, want, `${struct}.${name} at ${f.offset}, ${f.size} bytes`);
    }
  }
}

/** A struct laid out from the BTF alone, for the decoders. */
function buildLayout(struct: keyof typeof STRUCTS, values: Expected): Buffer {
  const layout = STRUCTS[struct];
  const b = Buffer.alloc(layout.size);
  for (const [name, f] of Object.entries(layout.fields as Record<string, { offset: number; size: number }>)) {
    const v = values[name];
    if (v instanceof Uint8Array) b.set(v, f.offset);
    else if (v !== undefined) for (let i = 0, x = v; i < f.size; i++, x >>= 8n) b[f.offset + i] = Number(x & 0xffn);
  }
  return b;
}

// Values that fill their field's whole width, each different: a codec that reads or writes
// a field with another width or at another offset than the BTF's gets a different number.
const U8 = 0xa7;
const U16 = 0xb2c3;
const U32 = 0xd4e5f607;
const U64 = 0x8899aabbccddeeffn;
const ADDR = codec.parsePrefix('2001:db8:1:2:3:4:5:6/128');

test('every encoder writes each field at its BTF offset and width, and zero padding', () => {
  const key = { slot: 1, table: 'allow' as const, proto: U8, port: U16, namespaceId: U32, prefix: ADDR };
  assertLayout('mg_lpm_key', codec.encodeTrieKey(key), {
    prefixlen: BigInt(codec.LPM_HEADER_BITS + 128),
    slot: 1n,
    table: BigInt(codec.TABLE.MG_TABLE_ALLOW),
    proto: BigInt(U8),
    port: BigInt(U16),
    namespace_id: BigInt(U32),
    addr: ADDR.bytes,
  });
  assertLayout('mg_lpm_value', codec.encodeTrieValue(U32), { label_id: BigInt(U32) });
  assertLayout('mg_port_key', codec.encodePortKey(1, U16), { port: BigInt(U16), slot: 1n });
  const config = {
    flags: U32,
    proxyPort: U16,
    blockedAction: U8,
    unknownPodPolicy: U8 - 1,
    proxyUid: U32 - 1,
    eventMask: U32 - 2,
    generation: U64,
  };
  assertLayout('mg_config', codec.encodeConfig(config), {
    flags: BigInt(U32),
    proxy_port: BigInt(U16),
    blocked_action: BigInt(U8),
    unknown_pod_policy: BigInt(U8 - 1),
    proxy_uid: BigInt(U32 - 1),
    event_mask: BigInt(U32 - 2),
    generation: U64,
  });
  assertLayout(
    'mg_state',
    codec.encodeState({
      activeSlot: 1,
      cgroupWalkStart: U32,
      eventsPerSec: U32 - 1,
      eventsBurst: U32 - 2,
      hostNetnsCookie: U64 - 1n,
    }),
    {
      active_slot: 1n,
      cgroup_walk_start: BigInt(U32),
      events_per_sec: BigInt(U32 - 1),
      events_burst: BigInt(U32 - 2),
      flags: BigInt(codec.STATE_FLAG.MG_STATE_RECORD_FLOWS),
      host_netns_cookie: U64 - 1n,
    },
  );
  assertLayout('mg_cgroup', codec.encodeCgroup({ kind: U32, namespaceId: U32 - 1, flags: U32 - 2, labelId: U32 - 3 }), {
    kind: BigInt(U32),
    namespace_id: BigInt(U32 - 1),
    flags: BigInt(U32 - 2),
    label_id: BigInt(U32 - 3),
  });
  assertLayout('mg_trace', codec.encodeTrace(U32, U64), { event_mask: BigInt(U32), until_ns: U64 });
  const text = Buffer.alloc(STRUCTS.mg_label.size);
  text.write('shop/web');
  assertLayout('mg_label', codec.encodeLabel('shop/web'), { text: Uint8Array.from(text) });
  const status = {
    lastApplyUnixMs: 2 ** 52 + 1,
    lastReconcileUnixMs: 2 ** 52 + 3,
    generation: U64,
    agentPid: U32,
    mode: 'cluster' as const,
    objectsTotal: U32 - 1,
    objectsInvalid: U32 - 2,
    datapathVariant: 'compat' as const,
  };
  assertLayout('mg_agent_status', codec.encodeAgentStatus(status), {
    last_apply_unix_ms: 2n ** 52n + 1n,
    last_reconcile_unix_ms: 2n ** 52n + 3n,
    generation: U64,
    agent_pid: BigInt(U32),
    mode: BigInt(
      codec.decodeAgentStatus(codec.encodeAgentStatus(status)).mode === 'cluster'
        ? ENUMS.mg_agent_mode.MG_AGENT_CLUSTER
        : -1,
    ),
    objects_total: BigInt(U32 - 1),
    objects_invalid: BigInt(U32 - 2),
    datapath_variant: BigInt(ENUMS.mg_datapath_variant.MG_VARIANT_COMPAT),
  });
  assert.equal(codec.decodeAgentStatus(codec.encodeAgentStatus(status)).datapathVariant, 'compat');
  assertLayout('mg_namespace_key', codec.encodeNamespaceKey(1, U32), { namespace_id: BigInt(U32), slot: 1n });
  assertLayout('mg_namespace', codec.encodeNamespace(U8), { blocked_action: BigInt(U8) });
});

test('every decoder reads each field at its BTF offset and width', () => {
  assert.deepEqual(
    codec.decodeTrieKey(
      codec.encodeTrieKey({ slot: 1, table: 'exclude', proto: U8, port: U16, namespaceId: U32, prefix: ADDR }),
    ),
    { slot: 1, table: 'exclude', proto: U8, port: U16, namespaceId: U32, prefix: { bytes: ADDR.bytes, bits: 128 } },
  );
  const config = {
    flags: U32,
    proxyPort: U16,
    blockedAction: U8,
    unknownPodPolicy: U8 - 1,
    proxyUid: U32 - 1,
    eventMask: U32 - 2,
    generation: U64,
  };
  assert.deepEqual(codec.decodeConfig(codec.encodeConfig(config)), config);
  const flowKey = buildLayout('mg_flow_key', {
    pod_cgroup_id: U64,
    addr: ADDR.bytes,
    port: BigInt(U16),
    proto: BigInt(U8),
  });
  const flow = buildLayout('mg_flow', {
    last_seen_ns: U64,
    count: U64 - 1n,
    generation: U64 - 2n,
    label_id: BigInt(U32),
    uid: BigInt(U32 - 1),
    verdict: BigInt(U8),
    rule: BigInt(U8 - 1),
    hook: BigInt(U8 - 2),
  });
  assert.deepEqual(codec.decodeFlow(flowKey, flow), {
    podCgroupId: U64,
    address: ADDR.bytes,
    port: U16,
    proto: U8,
    lastSeenNs: U64,
    count: U64 - 1n,
    generation: U64 - 2n,
    labelId: U32,
    uid: U32 - 1,
    verdict: U8,
    rule: U8 - 1,
    hook: U8 - 2,
  });
  const event = buildLayout('mg_event', {
    ts_ns: U64,
    cgroup_id: U64 - 1n,
    pod_cgroup_id: U64 - 2n,
    addr: ADDR.bytes,
    port: BigInt(U16),
    proto: BigInt(U8),
    verdict: BigInt(U8 - 1),
    rule: BigInt(U8 - 2),
    hook: BigInt(U8 - 3),
    label_id: BigInt(U32),
    pid: BigInt(U32 - 1),
    uid: BigInt(U32 - 2),
  });
  assert.deepEqual(codec.decodeEvent(event), {
    tsNs: U64,
    cgroupId: U64 - 1n,
    podCgroupId: U64 - 2n,
    address: ADDR.bytes,
    port: U16,
    proto: U8,
    verdict: U8 - 1,
    rule: U8 - 2,
    hook: U8 - 3,
    labelId: U32,
    pid: U32 - 1,
    uid: U32 - 2,
  });
  assert.deepEqual(codec.decodeNamespaceKey(codec.encodeNamespaceKey(1, U32)), { slot: 1, namespaceId: U32 });
});

test('every map key and value size matches the struct its encoder writes', () => {
  for (const [name, map] of Object.entries(MAPS)) {
    for (const [type, size] of [
      [map.keyType, map.keySize],
      [map.valueType, map.valueSize],
    ] as const) {
      if (type && type in STRUCTS) assert.equal(size, STRUCTS[type as keyof typeof STRUCTS].size, `${name} ${type}`);
    }
  }
});

test('trie keys round-trip through decode, for IPv4 and IPv6', () => {
  for (const cidr of ['10.0.0.0/8', '203.0.113.7/32', '0.0.0.0/0', '2001:db8::/32', '::/0', 'fd00::1/128']) {
    const key = codec.encodeTrieKey({
      slot: 1,
      table: 'mesh',
      proto: 0,
      port: 0,
      namespaceId: 0,
      prefix: codec.parsePrefix(cidr),
    });
    const back = codec.decodeTrieKey(key);
    assert.equal(codec.formatPrefix(back.prefix.bytes, back.prefix.bits), cidr);
    assert.equal(back.slot, 1);
  }
});

test('host bits are masked and out-of-range prefixes are refused', () => {
  const p = codec.parsePrefix('10.1.2.3/8');
  assert.equal(codec.formatPrefix(p.bytes, p.bits), '10.0.0.0/8');
  assert.throws(() => codec.parsePrefix('10.0.0.0/33'), { code: 'MG_VALUE_OUT_OF_RANGE' });
  assert.throws(() => codec.parsePrefix('::/129'), { code: 'MG_VALUE_OUT_OF_RANGE' });
});

test('a map whose key or value size differs from the encoder is refused before any write', () => {
  assert.throws(
    () => new MapHandle('mg_config', -1, { keySize: 4, valueSize: STRUCTS.mg_config.size + 8 }),
    (err: Error & { code?: string }) => err.code === 'MG_MAP_LAYOUT_MISMATCH' && /mg_config/.test(err.message),
  );
});

test('rule names follow the ABI enum order', () => {
  assert.equal(codec.RULE_NAMES.length, codec.RULE.MG_RULE_COUNT);
  assert.equal(codec.RULE_NAMES[codec.RULE.MG_RULE_MESH_CIDR], 'mesh-cidr');
});
