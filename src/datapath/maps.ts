// Typed handles on the pinned maps. A handle refuses to exist when the kernel's
// key or value size differs from what the ABI (and so every encoder) expects.
import { libbpf } from '../../native/libbpf.js';
import { MAPS, type MapName } from './abi.generated.js';
import { MeshgateError } from '../errors.js';

const PERCPU_TYPES: ReadonlySet<string> = new Set(['percpu_array', 'percpu_hash']);

export class MapHandle {
  readonly name: MapName;
  readonly fd: number;
  readonly keySize: number;
  readonly valueSize: number;
  /** Bytes a lookup returns: for per-CPU maps, one 8-byte-aligned value per possible CPU. */
  readonly lookupSize: number;
  readonly cpus: number;

  constructor(name: MapName, fd: number, actual: { keySize: number; valueSize: number }) {
    const expected = MAPS[name];
    if (actual.keySize !== expected.keySize || actual.valueSize !== expected.valueSize) {
      throw new MeshgateError(
        'MG_MAP_LAYOUT_MISMATCH',
        `map ${name} has key/value sizes ${actual.keySize}/${actual.valueSize} in the kernel but the encoders expect ` +
          `${expected.keySize}/${expected.valueSize}: refusing to write to it (run \`meshgate cleanup\` or upgrade)`,
      );
    }
    this.name = name;
    this.fd = fd;
    this.keySize = actual.keySize;
    this.valueSize = actual.valueSize;
    this.cpus = PERCPU_TYPES.has(expected.type) ? libbpf.numPossibleCpus() : 1;
    this.lookupSize =
      this.cpus > 1 || PERCPU_TYPES.has(expected.type) ? Math.ceil(this.valueSize / 8) * 8 * this.cpus : this.valueSize;
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.keySize)
      throw new MeshgateError(
        'MG_VALUE_OUT_OF_RANGE',
        `${this.name}: key is ${key.length} bytes, map wants ${this.keySize}`,
      );
  }

  lookup(key: Buffer): Buffer | null {
    this.checkKey(key);
    const value = Buffer.alloc(this.lookupSize);
    return libbpf.mapLookup(this.fd, key, value, this.name) ? value : null;
  }

  update(key: Buffer, value: Buffer, flags = 0): void {
    this.checkKey(key);
    if (value.length !== this.valueSize)
      throw new MeshgateError(
        'MG_VALUE_OUT_OF_RANGE',
        `${this.name}: value is ${value.length} bytes, map wants ${this.valueSize}`,
      );
    libbpf.mapUpdate(this.fd, key, value, flags, this.name);
  }

  delete(key: Buffer): boolean {
    this.checkKey(key);
    return libbpf.mapDelete(this.fd, key, this.name);
  }

  /** The number of entries (hash and LRU maps), read in batches of keys and values, not key by key. */
  count(): number {
    return libbpf.mapCountBatch(this.fd, this.keySize, this.valueSize, 1024, this.name);
  }

  /** Every key, as separate buffers. The map may change underneath; callers re-read when it matters. */
  keys(): Buffer[] {
    const keys: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      if (!libbpf.mapNextKey(this.fd, prev, next, this.name)) return keys;
      keys.push(next);
      prev = next;
    }
  }

  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) out.push([key, value]);
    }
    return out;
  }

  /** `keys` and `values` hold `count` records back to back. */
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    if (count === 0) return;
    if (keys.length !== count * this.keySize || values.length !== count * this.valueSize) {
      throw new MeshgateError(
        'MG_VALUE_OUT_OF_RANGE',
        `${this.name}: batch of ${count} has ${keys.length}/${values.length} bytes`,
      );
    }
    libbpf.mapUpdateBatch(this.fd, keys, values, count, this.name);
  }

  deleteBatch(keys: Buffer, count: number): void {
    if (count === 0) return;
    if (keys.length !== count * this.keySize)
      throw new MeshgateError('MG_VALUE_OUT_OF_RANGE', `${this.name}: batch of ${count} has ${keys.length} key bytes`);
    libbpf.mapDeleteBatch(this.fd, keys, count, this.name);
  }

  /** Sums a per-CPU u64 value at `key` over every CPU. */
  sumPerCpuU64(key: Buffer): bigint {
    const value = this.lookup(key);
    if (!value) return 0n;
    let total = 0n;
    for (let cpu = 0; cpu < this.cpus; cpu++) total += value.readBigUInt64LE(cpu * Math.ceil(this.valueSize / 8) * 8);
    return total;
  }
}
