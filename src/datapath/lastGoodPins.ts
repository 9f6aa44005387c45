// The agent's per-object last good configuration, persisted next to the pins
// so that a restarted agent starts from it (SPEC §1.4). One BPF hash map that
// no program reads (bpf/laststate.bpf.c), pinned at <pin dir>/state/mg_last_good,
// outside the ABI-hashed maps directory: a datapath layout change keeps it.
//
// A record (one object's key and payload) is split into value-sized chunks.
// Map key: the first 48 bits of sha256(object key, sequence number), then the
// chunk index in the low 16 bits. A new version is written under fresh keys
// before the old one is deleted, so a crash mid-write leaves the old version
// complete; on reading, the newest complete version of each object wins and
// the rest is deleted.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { libbpf, type BpfObjectPtr } from '../../native/libbpf.js';
import { MeshgateError } from '../errors.js';

export const LAST_GOOD_MAP = 'mg_last_good';
const MAGIC = 0x474c474d; // "MGLG"
const FORMAT = 1;
const HEADER = 56; // magic u32, format u32, seq u64, key length u32, payload length u32, sha256 of key and payload
const MAX_CHUNKS = 0xffff;

export function lastGoodPinPath(pinDir: string): string {
  return path.join(pinDir, 'state', LAST_GOOD_MAP);
}

export function lastGoodObjectPath(): string {
  return path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../build/laststate.bpf.o');
}

interface Version {
  readonly id: bigint;
  readonly seq: bigint;
  readonly chunks: number;
}

const digest = (key: Buffer, payload: Buffer): Buffer => createHash('sha256').update(key).update(payload).digest();

function versionId(key: string, seq: bigint): bigint {
  const h = createHash('sha256').update(key).update('\0').update(seq.toString()).digest();
  return h.readBigUInt64BE(0) >> 16n;
}

function mapKey(id: bigint, chunk: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE((id << 16n) | BigInt(chunk));
  return b;
}

export class LastGoodPins {
  /** True when this open created the map: no agent persisted anything here before. */
  readonly created: boolean;
  private obj: BpfObjectPtr | null;
  private readonly fd: number;
  private readonly valueSize: number;
  private readonly versions = new Map<string, Version>();
  private seq = 0n;

  private constructor(obj: BpfObjectPtr, fd: number, valueSize: number, created: boolean) {
    this.obj = obj;
    this.fd = fd;
    this.valueSize = valueSize;
    this.created = created;
  }

  /** Opens (or creates and pins) the map under pinDir, which must already be on bpffs. */
  static open(pinDir: string, objectPath = lastGoodObjectPath()): LastGoodPins {
    const pin = lastGoodPinPath(pinDir);
    mkdirSync(path.dirname(pin), { recursive: true });
    const created = !existsSync(pin);
    const obj = libbpf.openObject(objectPath);
    try {
      const map = libbpf.findMap(obj, LAST_GOOD_MAP);
      libbpf.setMapPinPath(map, pin);
      libbpf.loadObject(obj, objectPath);
      if (libbpf.mapKeySize(map) !== 8)
        throw new MeshgateError('MG_MAP_LAYOUT_MISMATCH', `${pin} has ${libbpf.mapKeySize(map)}-byte keys, not 8`);
      return new LastGoodPins(obj, libbpf.mapFd(map), libbpf.mapValueSize(map), created);
    } catch (err) {
      libbpf.closeObject(obj);
      throw err;
    }
  }

  /** The largest payload one record can hold with this map's chunk size. */
  get maxPayload(): number {
    return MAX_CHUNKS * this.valueSize - HEADER - 4096;
  }

  /**
   * Every object's newest complete record: object key -> payload. Incomplete
   * or superseded versions (a crash mid-write) are deleted.
   */
  readAll(): Map<string, Buffer> {
    const groups = new Map<bigint, Map<number, Buffer>>();
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(8);
      if (!libbpf.mapNextKey(this.fd, prev, next, LAST_GOOD_MAP)) break;
      prev = next;
      const raw = next.readBigUInt64LE(0);
      const id = raw >> 16n;
      (groups.get(id) ?? groups.set(id, new Map()).get(id)!).set(Number(raw & 0xffffn), next);
    }
    const best = new Map<string, { version: Version; payload: Buffer }>();
    const discard: Version[] = [];
    for (const [id, chunks] of groups) {
      const record = this.assemble(id, chunks);
      if (!record) {
        for (const chunk of chunks.keys()) this.deleteKey(mapKey(id, chunk));
        continue;
      }
      const kept = best.get(record.key);
      if (kept && kept.version.seq > record.version.seq) discard.push(record.version);
      else {
        if (kept) discard.push(kept.version);
        best.set(record.key, record);
      }
    }
    for (const v of discard) this.deleteVersion(v);
    const out = new Map<string, Buffer>();
    for (const [key, { version, payload }] of best) {
      this.versions.set(key, version);
      if (version.seq > this.seq) this.seq = version.seq;
      out.set(key, payload);
    }
    return out;
  }

  private assemble(id: bigint, chunks: Map<number, Buffer>): { key: string; version: Version; payload: Buffer } | null {
    const first = chunks.get(0);
    if (!first) return null;
    const head = this.lookup(first);
    if (!head || head.readUInt32LE(0) !== MAGIC || head.readUInt32LE(4) !== FORMAT) return null;
    const seq = head.readBigUInt64LE(8);
    const keyLength = head.readUInt32LE(16);
    const payloadLength = head.readUInt32LE(20);
    const total = HEADER + keyLength + payloadLength;
    const count = Math.ceil(total / this.valueSize);
    if (count > MAX_CHUNKS || chunks.size !== count) return null;
    const parts: Buffer[] = [head];
    for (let i = 1; i < count; i++) {
      const k = chunks.get(i);
      const v = k ? this.lookup(k) : null;
      if (!v) return null;
      parts.push(v);
    }
    const bytes = Buffer.concat(parts).subarray(0, total);
    const key = bytes.subarray(HEADER, HEADER + keyLength);
    const payload = Buffer.from(bytes.subarray(HEADER + keyLength));
    if (!digest(key, payload).equals(bytes.subarray(24, 56))) return null;
    return { key: key.toString('utf8'), version: { id, seq, chunks: count }, payload };
  }

  /** Persists one object's record, replacing its previous one only once the new one is complete. */
  write(key: string, payload: Buffer): void {
    const keyBytes = Buffer.from(key, 'utf8');
    if (payload.length > this.maxPayload)
      throw new MeshgateError(
        'MG_VALUE_OUT_OF_RANGE',
        `last good record of ${key} is ${payload.length} bytes, more than ${this.maxPayload}`,
      );
    const seq = ++this.seq;
    const head = Buffer.alloc(HEADER);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(FORMAT, 4);
    head.writeBigUInt64LE(seq, 8);
    head.writeUInt32LE(keyBytes.length, 16);
    head.writeUInt32LE(payload.length, 20);
    digest(keyBytes, payload).copy(head, 24);
    const bytes = Buffer.concat([head, keyBytes, payload]);
    const count = Math.ceil(bytes.length / this.valueSize);
    const version: Version = { id: versionId(key, seq), seq, chunks: count };
    let written = 0;
    try {
      // The head chunk last: a version without all its chunks is never complete.
      for (let i = count - 1; i >= 0; i--) {
        const value = Buffer.alloc(this.valueSize);
        bytes.copy(value, 0, i * this.valueSize, Math.min(bytes.length, (i + 1) * this.valueSize));
        libbpf.mapUpdate(this.fd, mapKey(version.id, i), value, 0, LAST_GOOD_MAP);
        written++;
      }
    } catch (err) {
      for (let i = count - 1; i >= count - written; i--) this.deleteKey(mapKey(version.id, i));
      throw err;
    }
    const old = this.versions.get(key);
    this.versions.set(key, version);
    if (old) this.deleteVersion(old);
  }

  /** Forgets an object (a deleted ConfigMap). */
  delete(key: string): void {
    const old = this.versions.get(key);
    if (!old) return;
    this.versions.delete(key);
    this.deleteVersion(old);
  }

  /** Object keys with a record. */
  keys(): string[] {
    return [...this.versions.keys()];
  }

  private deleteVersion(v: Version): void {
    for (let i = 0; i < v.chunks; i++) this.deleteKey(mapKey(v.id, i));
  }

  private deleteKey(key: Buffer): void {
    libbpf.mapDelete(this.fd, key, LAST_GOOD_MAP);
  }

  private lookup(key: Buffer): Buffer | null {
    const value = Buffer.alloc(this.valueSize);
    return libbpf.mapLookup(this.fd, key, value, LAST_GOOD_MAP) ? value : null;
  }

  close(): void {
    if (this.obj) libbpf.closeObject(this.obj);
    this.obj = null;
  }
}
