// The per-object last good decision, without root: what is in force when
// objects are valid, invalid, never valid, clash with each other, or come back
// from a previous agent's persisted state.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseGlobalConfig, type ObjectRef } from '../../../src/config/index.js';
import {
  LastGoodStore,
  allowlistObjectFromData,
  decodePersisted,
  encodePersisted,
  hashRaw,
  type ConfigObjectId,
  type PersistedObject,
  type RawContent,
} from '../../../src/agent/lastGood.js';

const parsers = {
  global: (raw: RawContent, ref: ObjectRef) => parseGlobalConfig('data' in raw ? raw.data : {}, ref),
  allowlist: (raw: RawContent, ref: ObjectRef) => allowlistObjectFromData('data' in raw ? raw.data : {}, ref),
};

const GLOBAL: ConfigObjectId = {
  key: 'ConfigMap osm-system/osm-config',
  kind: 'global',
  ref: { kind: 'ConfigMap', namespace: 'osm-system', name: 'osm-config' },
};
const cm = (namespace: string, name: string): ConfigObjectId => ({
  key: `ConfigMap ${namespace}/${name}`,
  kind: 'allowlist',
  namespace,
  ref: { kind: 'ConfigMap', namespace, name },
});
const A = cm('shop', 'a');
const B = cm('shop', 'b');
const C = cm('billing', 'c');
const entry = (name: string, address: string) => ({
  data: { egress: `- name: ${name}\n  addresses: [${address}]\n  ports: [{number: 443, protocol: TLS}]\n` },
});
const BAD = {
  data: { egress: '- name: broken\n  addresses: [10.0.0.1/33]\n  ports: [{number: 443, protocol: TLS}]\n' },
};
const globalData = (egress: string) => ({ data: { egress, mesh_cidr_ranges: '10.96.0.0/12' } });

const names = (store: LastGoodStore, ns: string, r = store.resolve()) =>
  (r.allowlists.get(ns) ?? []).map((e) => `${e.name}=${e.addresses.join(',')}`);

function started(): LastGoodStore {
  const store = new LastGoodStore(parsers);
  store.observe(GLOBAL, globalData('false'));
  store.observe(A, entry('payments', '198.51.100.0/24'));
  store.observe(B, entry('ext2', '203.0.113.9'));
  store.resolve();
  return store;
}

describe('LastGoodStore', () => {
  test("each allowlist object's content in force is given by its key, with its own ref and entries", () => {
    const store = started();
    store.observe(B, BAD);
    const r = store.resolve();
    assert.deepEqual([...r.allowlistObjects.keys()].sort(), [A.key, B.key]);
    assert.deepEqual(r.allowlistObjects.get(B.key)!.ref, B.ref);
    assert.deepEqual(
      r.allowlistObjects.get(B.key)!.entries.map((e) => e.name),
      ['ext2'],
      "the invalid object's last good entries",
    );
    assert.deepEqual(
      r.allowlistObjects.get(A.key)!.entries.map((e) => e.name),
      ['payments'],
    );
  });

  test('valid objects are in force as they are, and become last good (queued for persistence)', () => {
    const store = new LastGoodStore(parsers);
    store.observe(GLOBAL, globalData('false'));
    store.observe(A, entry('payments', '198.51.100.0/24'));
    const r = store.resolve();
    assert.equal(r.global?.egress, false);
    assert.deepEqual(names(store, 'shop', r), ['payments=198.51.100.0/24']);
    assert.deepEqual([...store.takePersistQueue().keys()].sort(), [GLOBAL.key, A.key].sort());
    assert.equal(r.invalid, 0);
  });

  test('only an object whose content changed is parsed again', () => {
    const store = started();
    const before = store.parses;
    store.observe(GLOBAL, globalData('false'), 'v2'); // same content, new version token
    store.observe(A, entry('payments', '198.51.100.0/24'));
    store.observe(B, entry('ext2', '203.0.113.10'));
    store.resolve();
    assert.equal(store.parses - before, 1, 'only B was parsed');
    store.observe(B, entry('ext2', '203.0.113.10'), 'v7');
    store.observe(B, entry('ext2', '203.0.113.10'), 'v7');
    assert.equal(store.parses - before, 1, 'an unchanged version token skips even the hash');
  });

  test('an invalid allowlist keeps its last good entries and holds back no other object', () => {
    const store = started();
    store.takePersistQueue();
    store.observe(B, BAD);
    store.observe(GLOBAL, globalData('true'));
    store.observe(A, entry('payments', '198.51.100.0/25'));
    const r = store.resolve();
    assert.equal(r.global?.egress, true, 'the global change is applied');
    assert.deepEqual(
      names(store, 'shop', r),
      ['payments=198.51.100.0/25', 'ext2=203.0.113.9/32'],
      "A's change applies; B keeps its last good entry",
    );
    const b = r.objects.find((o) => o.id.key === B.key)!;
    assert.equal(b.valid, false);
    assert.equal(b.inForce, 'last-good');
    assert.deepEqual(
      b.errors.map((e) => e.code),
      ['MG_CONFIG_PREFIX_OUT_OF_RANGE'],
    );
    assert.deepEqual(
      [...store.takePersistQueue().keys()].sort(),
      [GLOBAL.key, A.key].sort(),
      "B's invalid content is never persisted",
    );
  });

  test('an object that never was valid contributes nothing, and affects only itself', () => {
    const store = started();
    store.observe(C, BAD);
    store.observe(GLOBAL, globalData('true'));
    const r = store.resolve();
    assert.equal(r.global?.egress, true);
    assert.equal(r.allowlists.has('billing'), false);
    assert.deepEqual(names(store, 'shop', r), ['payments=198.51.100.0/24', 'ext2=203.0.113.9/32']);
    assert.equal(r.objects.find((o) => o.id.key === C.key)!.inForce, 'none');
  });

  test('a name used in two ConfigMaps of a namespace is an error on both; each keeps its last good content', () => {
    const store = started();
    store.takePersistQueue();
    store.observe(B, entry('payments', '203.0.113.9'));
    const r = store.resolve();
    assert.deepEqual(names(store, 'shop', r), ['payments=198.51.100.0/24', 'ext2=203.0.113.9/32']);
    for (const id of [A, B]) {
      const state = r.objects.find((o) => o.id.key === id.key)!;
      assert.equal(state.valid, false, `${id.key} is reported invalid`);
      assert.deepEqual(
        state.errors.map((e) => e.code),
        ['MG_ALLOWLIST_DUPLICATE_NAME'],
      );
      assert.match(
        state.errors[0]!.message,
        new RegExp(
          `^${id.key} key egress entry \\[0\\] "payments": name "payments" is also the name of an entry in ConfigMap shop/${id === A ? 'b' : 'a'}`,
        ),
      );
    }
    assert.deepEqual(r.changed.map((s) => s.id.key).sort(), [A.key, B.key], 'both are reported (Event, log, metric)');
    assert.equal(store.takePersistQueue().size, 0, 'nothing new is last good');
    assert.deepEqual(store.resolve().changed, [], 'reported once');
  });

  test('while B clashes, A can still change: B never holds A back', () => {
    const store = started();
    store.observe(B, entry('payments', '203.0.113.9'));
    store.resolve();
    store.observe(A, {
      data: {
        egress: `${entry('payments', '198.51.100.0/24').data.egress}- name: more\n  addresses: [192.0.2.1]\n  ports: [{number: 80, protocol: TCP}]\n`,
      },
    });
    const r = store.resolve();
    assert.deepEqual(names(store, 'shop', r), ['payments=198.51.100.0/24', 'more=192.0.2.1/32', 'ext2=203.0.113.9/32']);
    assert.equal(r.objects.find((o) => o.id.key === B.key)!.valid, false);
    store.observe(B, entry('ext3', '203.0.113.9'));
    assert.deepEqual(
      names(store, 'shop'),
      ['payments=198.51.100.0/24', 'more=192.0.2.1/32', 'ext3=203.0.113.9/32'],
      'fixed: B applies',
    );
  });

  test('a restarted store starts from the persisted last good: the clash and the never-valid object change nothing', () => {
    const first = started();
    const persisted = [...first.takePersistQueue().values()]
      .filter((p): p is PersistedObject => p !== null)
      .map((p) => decodePersisted(encodePersisted(p))!);
    const store = new LastGoodStore(parsers);
    for (const p of persisted) assert.deepEqual(store.restore(p), []);
    store.observe(GLOBAL, globalData('false'));
    store.observe(A, entry('payments', '198.51.100.0/24'));
    store.observe(B, entry('payments', '203.0.113.9'));
    store.observe(C, BAD);
    const r = store.resolve();
    assert.deepEqual(names(store, 'shop', r), ['payments=198.51.100.0/24', 'ext2=203.0.113.9/32']);
    assert.equal(r.global?.egress, false);
    assert.equal(r.invalid, 3);
  });

  test('a deleted allowlist leaves nothing and its persisted record goes; an absent global keeps its last good', () => {
    const store = started();
    store.takePersistQueue();
    store.remove(B.key);
    store.absent(GLOBAL.key);
    const r = store.resolve();
    assert.deepEqual(names(store, 'shop', r), ['payments=198.51.100.0/24']);
    assert.deepEqual(r.global?.meshCidrs, ['10.96.0.0/12']);
    assert.deepEqual([...store.takePersistQueue()], [[B.key, null]]);
  });

  test('two allowlists of a namespace setting different blocked_egress_action: the edit is rejected on both, the agreed action stays', () => {
    const store = started();
    store.observe(A, { data: { ...entry('payments', '198.51.100.0/24').data, blocked_egress_action: 'audit' } });
    assert.equal(store.resolve().actions.get('shop'), 'audit');
    store.observe(B, { data: { ...entry('ext2', '203.0.113.9').data, blocked_egress_action: 'deny' } });
    const r = store.resolve();
    assert.equal(r.actions.get('shop'), 'audit', 'the action in force stays');
    for (const id of [A, B])
      assert.deepEqual(
        r.objects.find((o) => o.id.key === id.key)!.errors.map((e) => e.code),
        ['MG_ALLOWLIST_ACTION_CONFLICT'],
        id.key,
      );
  });

  test('both allowlists of a namespace moving to a new blocked_egress_action at once are taken together, though each alone would clash', () => {
    const store = started();
    store.observe(A, { data: { ...entry('payments', '198.51.100.0/24').data, blocked_egress_action: 'audit' } });
    store.observe(B, { data: { ...entry('ext2', '203.0.113.9').data, blocked_egress_action: 'audit' } });
    assert.equal(store.resolve().actions.get('shop'), 'audit');
    store.observe(A, { data: { ...entry('payments', '198.51.100.0/24').data, blocked_egress_action: 'deny' } });
    store.observe(B, { data: { ...entry('ext2', '203.0.113.9').data, blocked_egress_action: 'deny' } });
    const r = store.resolve();
    assert.equal(r.actions.get('shop'), 'deny');
    assert.equal(r.invalid, 0);
    for (const id of [A, B]) assert.deepEqual(r.objects.find((o) => o.id.key === id.key)!.errors, [], id.key);
  });

  test('persisted content that is no longer valid is dropped (and its record deleted)', () => {
    const store = new LastGoodStore(parsers);
    const errors = store.restore({ id: B, hash: hashRaw(BAD), raw: BAD });
    assert.deepEqual(
      errors.map((e) => e.code),
      ['MG_CONFIG_PREFIX_OUT_OF_RANGE'],
    );
    assert.deepEqual([...store.takePersistQueue()], [[B.key, null]]);
    assert.equal(decodePersisted(Buffer.from('{"v":2}')), null);
    assert.equal(decodePersisted(Buffer.from('not json')), null);
  });
});
