// The persisted last good configuration in its pinned BPF map: records of any
// size up to an object's limit come back after a reopen (a restarted agent),
// a write interrupted half-way leaves the previous record, and cleanup removes it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { libbpf } from '../../native/libbpf.js';
import { cleanupPins } from '../../src/datapath/loader.js';
import { LastGoodPins, lastGoodPinPath } from '../../src/datapath/lastGoodPins.js';
import { MAX_OBJECT_BYTES } from '../../src/config/index.js';
import { createSandbox, ensureBpffs, requireRoot, type Sandbox } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# skipping last good pin tests: ${skip}`);

function chunkCount(pinDir: string): number {
  const fd = libbpf.objGet(lastGoodPinPath(pinDir));
  try {
    let n = 0;
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(8);
      if (!libbpf.mapNextKey(fd, prev, next, 'mg_last_good')) return n;
      n++;
      prev = next;
    }
  } finally {
    libbpf.close(fd);
  }
}

describe('last good records pinned on bpffs', { skip: skip ?? false }, () => {
  let sb: Sandbox;
  before(() => {
    ensureBpffs();
    sb = createSandbox('lastgood');
  });
  after(() => sb?.cleanup());

  test('records of every size, up to a 1 MiB object, survive a reopen byte for byte', () => {
    const big = Buffer.alloc(MAX_OBJECT_BYTES + 5000, 'x');
    const pins = LastGoodPins.open(sb.pinDir);
    assert.equal(pins.created, true);
    pins.write('ConfigMap shop/a', Buffer.from('{"small":true}'));
    pins.write('ConfigMap shop/big', big);
    pins.write('file /etc/ünïcode.yaml', Buffer.from(''));
    pins.close();
    const again = LastGoodPins.open(sb.pinDir);
    try {
      assert.equal(again.created, false);
      const all = again.readAll();
      assert.deepEqual([...all.keys()].sort(), ['ConfigMap shop/a', 'ConfigMap shop/big', 'file /etc/ünïcode.yaml']);
      assert.equal(all.get('ConfigMap shop/a')!.toString(), '{"small":true}');
      assert.ok(all.get('ConfigMap shop/big')!.equals(big));
      assert.equal(all.get('file /etc/ünïcode.yaml')!.length, 0);
    } finally {
      again.close();
    }
  });

  test('a new version replaces the old one, and a delete leaves no chunk behind', () => {
    const pins = LastGoodPins.open(sb.pinDir);
    try {
      pins.readAll();
      const before = chunkCount(sb.pinDir);
      pins.write('ConfigMap shop/a', Buffer.alloc(10_000, 'y'));
      assert.equal(chunkCount(sb.pinDir), before + 2, 'three chunks replace one');
      pins.delete('ConfigMap shop/big');
      pins.delete('ConfigMap shop/a');
      pins.delete('file /etc/ünïcode.yaml');
      assert.equal(chunkCount(sb.pinDir), 0);
    } finally {
      pins.close();
    }
  });

  test('a write cut off before its head chunk leaves the previous record, and the torn chunks are removed', () => {
    const pins = LastGoodPins.open(sb.pinDir);
    pins.readAll();
    pins.write('ConfigMap shop/a', Buffer.from('old'));
    const fd = libbpf.objGet(lastGoodPinPath(sb.pinDir));
    try {
      // What a crash in the middle of writing a three-chunk version leaves: chunks 2 and 1, no head.
      for (const chunk of [2n, 1n]) {
        const key = Buffer.alloc(8);
        key.writeBigUInt64LE((0xabcdefn << 16n) | chunk);
        libbpf.mapUpdate(fd, key, Buffer.alloc(4096, 1), 0, 'mg_last_good');
      }
    } finally {
      libbpf.close(fd);
      pins.close();
    }
    const again = LastGoodPins.open(sb.pinDir);
    try {
      assert.equal(again.readAll().get('ConfigMap shop/a')!.toString(), 'old');
      assert.equal(chunkCount(sb.pinDir), 1, 'the torn chunks are gone');
    } finally {
      again.close();
    }
  });

  test('cleanup unpins the last good map with the rest', () => {
    const r = cleanupPins(sb.pinDir);
    assert.ok(r.unpinned.includes(lastGoodPinPath(sb.pinDir)), JSON.stringify(r));
    assert.equal(existsSync(lastGoodPinPath(sb.pinDir)), false);
  });
});
