// The bridge to the system's libbpf (libbpf.so.1) through koffi.
//
// Only this file knows C signatures. Every failure becomes a BpfError that
// carries the operation, the errno name and what libbpf printed while it
// failed (the verifier log, when a load fails).
import { constants as osConstants } from 'node:os';
import koffi from './koffi.js';
import { MeshgateError } from '../src/errors.js';
import { ENUMS } from '../src/datapath/abi.generated.js';

const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(osConstants.errno).map(([name, value]) => [value, name]),
);

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

export class BpfError extends MeshgateError {
  readonly op: string;
  readonly errno: number;
  readonly errnoName: string;
  readonly libbpfLog: string;

  constructor(op: string, errno: number, libbpfLog: string, options?: { cause?: unknown }) {
    const detail = libbpfLog.trim().split('\n').slice(-3).join(' | ');
    super('MG_BPF_CALL_FAILED', `${op} failed: ${errnoName(errno)} (${errno})${detail ? `: ${detail}` : ''}`, options);
    this.name = 'BpfError';
    this.op = op;
    this.errno = errno;
    this.errnoName = errnoName(errno);
    this.libbpfLog = libbpfLog;
  }

  /** The verifier's log, when the failed operation was a program load. */
  get verifierLog(): string | undefined {
    const start = this.libbpfLog.indexOf('-- BEGIN PROG LOAD LOG --');
    if (start < 0) return undefined;
    const end = this.libbpfLog.indexOf('-- END PROG LOAD LOG --', start);
    return this.libbpfLog.slice(start, end < 0 ? undefined : end + 23);
  }
}

/** errno value that libbpf uses for a missing key or the end of an iteration. */
export const ENOENT = osConstants.errno.ENOENT;

// RTLD_DEEPBIND: libbpf (and libelf, which it loads) resolve their imports in their own
// dependencies (libc, libelf, libz) first, not in the node binary. Node exports about 75,000
// symbols, including its own bundled zlib; libbpf binds every import at load (BIND_NOW), and
// looking each up in node's tables first touched 0.5 MB of them (the agent's idle RSS, SPEC §7).
const lib = koffi.load('libbpf.so.1', { deep: true });
const libc = koffi.load('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_map');
koffi.opaque('bpf_program');
koffi.opaque('bpf_link');
koffi.opaque('ring_buffer');
// struct bpf_test_run_opts (libbpf 1.x), for BPF_PROG_TEST_RUN.
const TestRunOpts = koffi.struct('mg_bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

const PrintFn = koffi.proto('int mg_libbpf_print_fn(int level, const char *fmt, void *args)');
export const RingBufferSampleFn = koffi.proto('int mg_ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

const vsnprintf = libc.func('int vsnprintf(_Out_ uint8_t *str, size_t size, const char *fmt, void *ap)');
const closeFd = libc.func('int close(int fd)');
const openPath = libc.func('int open(const char *path, int flags)');

// libbpf prints through one process-wide callback; collect what it says during a call.
let printed: string[] = [];
const printBuffer = Buffer.alloc(8192);
const printCallback = koffi.register((_level: number, fmt: string, args: unknown) => {
  const n = vsnprintf(printBuffer, printBuffer.length, fmt, args);
  if (n > 0) printed.push(printBuffer.toString('utf8', 0, Math.min(n, printBuffer.length - 1)));
  return 0;
}, koffi.pointer(PrintFn));
lib.func('void *libbpf_set_print(mg_libbpf_print_fn *fn)')(printCallback);

const c = {
  objectOpenFile: lib.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
  objectLoad: lib.func('int bpf_object__load(bpf_object *obj)'),
  objectClose: lib.func('void bpf_object__close(bpf_object *obj)'),
  findMap: lib.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
  findProgram: lib.func('bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
  mapSetPinPath: lib.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
  mapIsPinned: lib.func('bool bpf_map__is_pinned(bpf_map *map)'),
  mapSetMaxEntries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)'),
  mapFd: lib.func('int bpf_map__fd(bpf_map *map)'),
  mapKeySize: lib.func('uint32_t bpf_map__key_size(bpf_map *map)'),
  mapValueSize: lib.func('uint32_t bpf_map__value_size(bpf_map *map)'),
  mapMaxEntries: lib.func('uint32_t bpf_map__max_entries(bpf_map *map)'),
  programFd: lib.func('int bpf_program__fd(bpf_program *prog)'),
  attachCgroup: lib.func('bpf_link *bpf_program__attach_cgroup(bpf_program *prog, int cgroup_fd)'),
  linkPin: lib.func('int bpf_link__pin(bpf_link *link, const char *path)'),
  linkOpen: lib.func('bpf_link *bpf_link__open(const char *path)'),
  linkUpdateProgram: lib.func('int bpf_link__update_program(bpf_link *link, bpf_program *prog)'),
  linkFd: lib.func('int bpf_link__fd(bpf_link *link)'),
  linkDetach: lib.func('int bpf_link__detach(bpf_link *link)'),
  linkDestroy: lib.func('int bpf_link__destroy(bpf_link *link)'),
  mapUpdate: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  mapLookup: lib.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
  mapDelete: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  mapNextKey: lib.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
  mapUpdateBatch: lib.func(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, void *opts)',
  ),
  mapDeleteBatch: lib.func('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, void *opts)'),
  mapLookupBatch: lib.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, void *opts)',
  ),
  objGet: lib.func('int bpf_obj_get(const char *path)'),
  objGetInfo: lib.func('int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ uint32_t *len)'),
  progQuery: lib.func(
    'int bpf_prog_query(int target_fd, int type, uint32_t query_flags, _Out_ uint32_t *attach_flags, _Out_ uint32_t *prog_ids, _Inout_ uint32_t *prog_cnt)',
  ),
  progGetFdById: lib.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
  progDetach2: lib.func('int bpf_prog_detach2(int prog_fd, int attachable_fd, int type)'),
  linkGetFdById: lib.func('int bpf_link_get_fd_by_id(uint32_t id)'),
  numPossibleCpus: lib.func('int libbpf_num_possible_cpus()'),
  progTestRun: lib.func('int bpf_prog_test_run_opts(int prog_fd, _Inout_ mg_bpf_test_run_opts *opts)'),
  probeProgType: lib.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
  probeMapType: lib.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),
  ringBufferNew: lib.func(
    'ring_buffer *ring_buffer__new(int map_fd, mg_ring_buffer_sample_fn *cb, void *ctx, void *opts)',
  ),
  ringBufferConsume: lib.func('int ring_buffer__consume(ring_buffer *rb)'),
  ringBufferFree: lib.func('void ring_buffer__free(ring_buffer *rb)'),
};

/** Runs one libbpf call and turns a failure into a BpfError with what libbpf printed. */
function call<T = number>(op: string, fn: () => unknown, failed: (result: never) => boolean): T {
  printed = [];
  const result = fn();
  if (failed(result as never)) {
    const errno = koffi.errno();
    const log = printed.join('');
    printed = [];
    throw new BpfError(op, errno === 0 ? Math.abs(Number(result)) || osConstants.errno.EIO : errno, log);
  }
  printed = [];
  return result as T;
}

const isNull = (p: unknown): boolean => p === null;
const isNegative = (r: number): boolean => r < 0;

export type BpfObjectPtr = { readonly __brand: 'bpf_object' };
export type BpfMapPtr = { readonly __brand: 'bpf_map' };
export type BpfProgramPtr = { readonly __brand: 'bpf_program' };
export type BpfLinkPtr = { readonly __brand: 'bpf_link' };
export type RingBufferPtr = { readonly __brand: 'ring_buffer' };
/** A loaded program's file descriptor (bpf_program__fd). */
export type BpfProgramFd = number & { readonly __brand: 'bpf_program_fd' };

export interface TestRunResult {
  /** The program's return value. */
  readonly retval: number;
  /** Average run time per repetition, in nanoseconds, as the kernel measured it. */
  readonly durationNs: number;
}

export const libbpf = {
  openObject(path: string): BpfObjectPtr {
    return call<BpfObjectPtr>(`open BPF object ${path}`, () => c.objectOpenFile(path, null), isNull);
  },
  loadObject(obj: BpfObjectPtr, path: string): void {
    call(`load BPF object ${path}`, () => c.objectLoad(obj), isNegative);
  },
  closeObject(obj: BpfObjectPtr): void {
    c.objectClose(obj);
  },
  findMap(obj: BpfObjectPtr, name: string): BpfMapPtr {
    return call<BpfMapPtr>(`find map ${name}`, () => c.findMap(obj, name), isNull);
  },
  findProgram(obj: BpfObjectPtr, name: string): BpfProgramPtr {
    return call<BpfProgramPtr>(`find program ${name}`, () => c.findProgram(obj, name), isNull);
  },
  setMapPinPath(map: BpfMapPtr, path: string): void {
    call(`set pin path ${path}`, () => c.mapSetPinPath(map, path), isNegative);
  },
  mapIsPinned(map: BpfMapPtr): boolean {
    return c.mapIsPinned(map) as boolean;
  },
  mapFd(map: BpfMapPtr): number {
    return call('map fd', () => c.mapFd(map), isNegative);
  },
  mapKeySize(map: BpfMapPtr): number {
    return c.mapKeySize(map) as number;
  },
  mapValueSize(map: BpfMapPtr): number {
    return c.mapValueSize(map) as number;
  },
  /** Before load only: the size the map is created with (a pinned map of another size is not reused). */
  setMapMaxEntries(map: BpfMapPtr, maxEntries: number, what: string): void {
    call(`set max_entries of ${what} to ${maxEntries}`, () => c.mapSetMaxEntries(map, maxEntries), isNegative);
  },
  mapMaxEntries(map: BpfMapPtr): number {
    return c.mapMaxEntries(map) as number;
  },
  programFd(prog: BpfProgramPtr): number {
    return call('program fd', () => c.programFd(prog), isNegative);
  },
  /**
   * BPF_PROG_TEST_RUN: runs a loaded program `repeat` times on `data` (for
   * cgroup_skb and tc: an Ethernet frame) and returns what the last run gave.
   */
  testRun(progFd: BpfProgramFd, data: Buffer, repeat: number, what: string): TestRunResult {
    const opts = {
      sz: koffi.sizeof(TestRunOpts),
      data_in: data,
      data_out: null,
      data_size_in: data.length,
      data_size_out: 0,
      ctx_in: null,
      ctx_out: null,
      ctx_size_in: 0,
      ctx_size_out: 0,
      retval: 0,
      repeat,
      duration: 0,
      flags: 0,
      cpu: 0,
      batch_size: 0,
    };
    call(`test run of ${what}`, () => c.progTestRun(progFd, opts), isNegative);
    return { retval: opts.retval, durationNs: opts.duration };
  },
  attachCgroup(prog: BpfProgramPtr, cgroupFd: number, what: string): BpfLinkPtr {
    return call<BpfLinkPtr>(`attach ${what}`, () => c.attachCgroup(prog, cgroupFd), isNull);
  },
  pinLink(link: BpfLinkPtr, path: string): void {
    call(`pin link ${path}`, () => c.linkPin(link, path), isNegative);
  },
  openLink(path: string): BpfLinkPtr {
    return call<BpfLinkPtr>(`open pinned link ${path}`, () => c.linkOpen(path), isNull);
  },
  updateLinkProgram(link: BpfLinkPtr, prog: BpfProgramPtr, what: string): void {
    call(`BPF_LINK_UPDATE ${what}`, () => c.linkUpdateProgram(link, prog), isNegative);
  },
  linkFd(link: BpfLinkPtr): number {
    return c.linkFd(link) as number;
  },
  detachLink(link: BpfLinkPtr, what: string): void {
    call(`detach link ${what}`, () => c.linkDetach(link), isNegative);
  },
  /** Frees libbpf's handle. A pinned link stays attached: the pin holds it. */
  releaseLink(link: BpfLinkPtr): void {
    c.linkDestroy(link);
  },
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number, what: string): void {
    call(`update ${what}`, () => c.mapUpdate(fd, key, value, flags), isNegative);
  },
  /** Returns false when the key is absent. */
  mapLookup(fd: number, key: Buffer, value: Buffer, what: string): boolean {
    printed = [];
    const r = c.mapLookup(fd, key, value);
    if (r >= 0) return true;
    const errno = koffi.errno();
    if (errno === ENOENT) return false;
    throw new BpfError(`lookup ${what}`, errno, printed.join(''));
  },
  /** Returns false when the key was absent. */
  mapDelete(fd: number, key: Buffer, what: string): boolean {
    const r = c.mapDelete(fd, key);
    if (r >= 0) return true;
    const errno = koffi.errno();
    if (errno === ENOENT) return false;
    throw new BpfError(`delete ${what}`, errno, '');
  },
  /** Writes the key after `key` (null: the first key) into `next`; false at the end. */
  mapNextKey(fd: number, key: Buffer | null, next: Buffer, what: string): boolean {
    const r = c.mapNextKey(fd, key, next);
    if (r >= 0) return true;
    const errno = koffi.errno();
    if (errno === ENOENT) return false;
    throw new BpfError(`iterate ${what}`, errno, '');
  },
  /** Writes `count` entries in one call; when the kernel stops early, throws a BpfError that says how many it wrote. */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, what: string): void {
    const inout = [count];
    printed = [];
    const r = c.mapUpdateBatch(fd, keys, values, inout, null);
    if (r < 0) {
      throw new BpfError(`batch update ${what} (${inout[0]} of ${count} written)`, koffi.errno(), printed.join(''));
    }
  },
  /**
   * Counts a hash map's entries with BPF_MAP_LOOKUP_BATCH (5.6), `chunk` entries per call into
   * scratch buffers: a few dozen syscalls for 65,536 entries, where one lookup per key would be
   * 65,536. The map may change meanwhile: the count is a moment's, give or take.
   */
  mapCountBatch(fd: number, keySize: number, valueSize: number, chunk: number, what: string): number {
    const keys = Buffer.allocUnsafe(keySize * chunk);
    const values = Buffer.allocUnsafe(valueSize * chunk);
    // The batch token: a bucket index for hash maps (u32); sized like a key to be safe for any map.
    let inBatch: Buffer | null = null;
    let outBatch: Buffer = Buffer.alloc(Math.max(keySize, 8));
    let total = 0;
    for (;;) {
      const inout = [chunk];
      const r = c.mapLookupBatch(fd, inBatch, outBatch, keys, values, inout, null);
      const errno = r < 0 ? koffi.errno() : 0;
      if (r < 0 && errno !== ENOENT) throw new BpfError(`batch lookup ${what} (after ${total} entries)`, errno, '');
      total += inout[0]!;
      if (r < 0) return total; // ENOENT: the last bucket was read
      const next = inBatch ?? Buffer.alloc(outBatch.length);
      inBatch = outBatch;
      outBatch = next;
    }
  },
  mapDeleteBatch(fd: number, keys: Buffer, count: number, what: string): void {
    const inout = [count];
    const r = c.mapDeleteBatch(fd, keys, inout, null);
    if (r < 0) throw new BpfError(`batch delete ${what} (${inout[0]} of ${count} deleted)`, koffi.errno(), '');
  },
  objGet(path: string): number {
    return call(`open pin ${path}`, () => c.objGet(path), isNegative);
  },
  objGetInfo(fd: number, info: Buffer, what: string): void {
    const len = [info.length];
    call(`get info of ${what}`, () => c.objGetInfo(fd, info, len), isNegative);
  },
  /** Program ids attached to a cgroup for one attach type. */
  progQuery(targetFd: number, attachType: number, what: string): number[] {
    const ids = new Uint32Array(64);
    const count = [ids.length];
    const flags = [0];
    call(`query programs on ${what}`, () => c.progQuery(targetFd, attachType, 0, flags, ids, count), isNegative);
    return Array.from(ids.subarray(0, count[0]));
  },
  progGetFdById(id: number): number {
    return call(`open program id ${id}`, () => c.progGetFdById(id), isNegative);
  },
  linkGetFdById(id: number): number {
    return call(`open link id ${id}`, () => c.linkGetFdById(id), isNegative);
  },
  progDetach(progFd: number, cgroupFd: number, attachType: number, what: string): void {
    call(`detach program from ${what}`, () => c.progDetach2(progFd, cgroupFd, attachType), isNegative);
  },
  /** True when the kernel can load this program type, false when not; throws when the probe itself fails. */
  probeProgType(type: number, what: string): boolean {
    return call(`probe program type ${what}`, () => c.probeProgType(type, null), isNegative) === 1;
  },
  /** True when the kernel can create this map type, false when not; throws when the probe itself fails. */
  probeMapType(type: number, what: string): boolean {
    return call(`probe map type ${what}`, () => c.probeMapType(type, null), isNegative) === 1;
  },
  numPossibleCpus(): number {
    return call('count possible CPUs', () => c.numPossibleCpus(), isNegative);
  },
  ringBufferNew(mapFd: number, callback: unknown): RingBufferPtr {
    return call<RingBufferPtr>('open ring buffer', () => c.ringBufferNew(mapFd, callback, null, null), isNull);
  },
  /** Consumes what is ready without waiting; returns the number of records. */
  ringBufferConsume(rb: RingBufferPtr): number {
    return call('consume ring buffer', () => c.ringBufferConsume(rb), isNegative);
  },
  ringBufferFree(rb: RingBufferPtr): void {
    c.ringBufferFree(rb);
  },
  openDirectory(path: string): number {
    const O_RDONLY_DIRECTORY = 0o200000;
    return call(`open ${path}`, () => openPath(path, O_RDONLY_DIRECTORY), isNegative);
  },
  close(fd: number): void {
    closeFd(fd);
  },
};

/** Registers a JS function as a ring buffer sample callback (kept alive by the caller). */
export function registerSampleCallback(fn: (ctx: unknown, data: unknown, size: number) => number): unknown {
  return koffi.register(fn, koffi.pointer(RingBufferSampleFn));
}

export function unregisterCallback(cb: unknown): void {
  koffi.unregister(cb as never);
}

/** Copies `size` bytes at a C pointer into a new Buffer. */
export function copyFromPointer(ptr: unknown, size: number): Buffer {
  return Buffer.from(koffi.decode(ptr, koffi.array('uint8_t', size)) as Uint8Array);
}

const socketCall = libc.func('int socket(int domain, int type, int protocol)');
const getsockoptCall = libc.func(
  'int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *len)',
);
const setnsCall = libc.func('int setns(int fd, int nstype)');
const NETNS = ENUMS.mg_uapi_netns;
const O_RDONLY_CLOEXEC = 0o2000000; // O_RDONLY | O_CLOEXEC

/** The cookie of the netns this thread is in (SO_NETNS_COOKIE, 5.14), as bpf_get_netns_cookie names it. */
function currentNetnsCookie(): bigint {
  const fd = socketCall(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0);
  if (fd < 0) throw new BpfError('socket() for SO_NETNS_COOKIE', koffi.errno(), '');
  try {
    const value = Buffer.alloc(8);
    const len = [8];
    if (getsockoptCall(fd, NETNS.MG_UAPI_SOL_SOCKET, NETNS.MG_UAPI_SO_NETNS_COOKIE, value, len) < 0)
      throw new BpfError('getsockopt(SO_NETNS_COOKIE)', koffi.errno(), '');
    return value.readBigUInt64LE(0);
  } finally {
    closeFd(fd);
  }
}

/**
 * The cookie of a network namespace: this process's (no path), or the one a
 * netns file names (/proc/PID/ns/net, /run/netns/NAME), entered for the call
 * by this thread alone and left again.
 */
export function netnsCookie(netnsPath?: string): bigint {
  if (netnsPath === undefined) return currentNetnsCookie();
  const target = openPath(netnsPath, O_RDONLY_CLOEXEC);
  if (target < 0) throw new BpfError(`open netns ${netnsPath}`, koffi.errno(), '');
  const home = openPath('/proc/thread-self/ns/net', O_RDONLY_CLOEXEC);
  if (home < 0) {
    const errno = koffi.errno();
    closeFd(target);
    throw new BpfError('open /proc/thread-self/ns/net', errno, '');
  }
  try {
    if (setnsCall(target, NETNS.MG_UAPI_CLONE_NEWNET) < 0) throw new BpfError(`setns ${netnsPath}`, koffi.errno(), '');
    let cookie: bigint | Error;
    try {
      cookie = currentNetnsCookie();
    } catch (err) {
      cookie = err as Error;
    }
    // Never leave this thread (the JS thread) in another netns: that would be worse than any error.
    if (setnsCall(home, NETNS.MG_UAPI_CLONE_NEWNET) < 0)
      throw new BpfError('setns back to the thread netns', koffi.errno(), '');
    if (cookie instanceof Error) throw cookie;
    return cookie;
  } finally {
    closeFd(target);
    closeFd(home);
  }
}
