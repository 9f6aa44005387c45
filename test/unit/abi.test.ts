// The kernel/user ABI cannot drift: the generated layouts match the compiled
// object's BTF, every encoder writes exactly the struct's size, and a map with
// other sizes than the encoders expect is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { MAPS, STRUCTS } from '../../src/datapath/abi.generated.js';
import * as codec from '../../src/datapath/codec.js';
import { MapHandle } from '../../src/datapath/maps.js';
import { REPO_ROOT } from '../helpers/sandbox.js';

test('abi.generated.ts is what the compiled objects BTF says', () => {
  const regenerated = execFileSync('node', [path.join(REPO_ROOT, 'scripts/gen-abi.mjs'), path.join(REPO_ROOT, 'build/meshgate.bpf.o'), path.join(REPO_ROOT, 'build/abi.bpf.o')], { encoding: 'utf8' });
  assert.equal(regenerated, readFileSync(path.join(REPO_ROOT, 'src/datapath/abi.generated.ts'), 'utf8'));
});

test('every encoder writes exactly the size of its struct', () => {
  const prefix = codec.parsePrefix('10.0.0.0/8');
  assert.equal(codec.encodeTrieKey({ slot: 1, table: 'allow', proto: 6, port: 443, namespaceId: 7, prefix }).length, STRUCTS.mg_lpm_key.size);
  assert.equal(codec.encodeTrieValue(3).length, STRUCTS.mg_lpm_value.size);
  assert.equal(codec.encodePortKey(1, 53).length, STRUCTS.mg_port_key.size);
  assert.equal(codec.encodeConfig({ flags: 1, proxyPort: 15001, blockedAction: 0, unknownPodPolicy: 0, proxyUid: 1500, eventMask: 4, generation: 9n }).length, STRUCTS.mg_config.size);
  assert.equal(codec.encodeState({ activeSlot: 1, cgroupWalkStart: 2, eventsPerSec: 100, eventsBurst: 200 }).length, STRUCTS.mg_state.size);
  assert.equal(codec.encodeCgroup({ kind: 1, namespaceId: 2, flags: 1, labelId: 3 }).length, STRUCTS.mg_cgroup.size);
  assert.equal(codec.encodeTrace(4, 1n).length, STRUCTS.mg_trace.size);
  assert.equal(codec.encodeLabel('shop/web').length, STRUCTS.mg_label.size);
});

test('every map key and value size matches the struct its encoder writes', () => {
  for (const [name, map] of Object.entries(MAPS)) {
    for (const [type, size] of [[map.keyType, map.keySize], [map.valueType, map.valueSize]] as const) {
      if (type && type in STRUCTS) assert.equal(size, STRUCTS[type as keyof typeof STRUCTS].size, `${name} ${type}`);
    }
  }
});

test('trie keys round-trip through decode, for IPv4 and IPv6', () => {
  for (const cidr of ['10.0.0.0/8', '203.0.113.7/32', '0.0.0.0/0', '2001:db8::/32', '::/0', 'fd00::1/128']) {
    const key = codec.encodeTrieKey({ slot: 1, table: 'mesh', proto: 0, port: 0, namespaceId: 0, prefix: codec.parsePrefix(cidr) });
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
