// The libc calls meshgate makes: malloc_trim and mallopt. libbpf parses the
// kernel's BTF (several MB) while loading the object and frees it, but glibc
// keeps freed memory in its heap, in the agent's RSS, until asked to give it
// back. And glibc gives each thread that meets contention its own arena (up to
// 8 per core), each holding its own free memory: V8's helper threads allocate
// briefly during start-up and would keep about 3 MB of arenas the agent's idle
// RSS (SPEC §7: 60 MB) cannot afford (docs/decisions.md).
import koffi from './koffi.js';

type Libc = { trim: (pad: number) => number; mallopt: (param: number, value: number) => number };

/** glibc's <malloc.h>: the maximum number of malloc arenas. */
const M_ARENA_MAX = -8;

let libc: Libc | null | undefined;

function glibc(): Libc | null {
  if (libc === undefined) {
    try {
      const lib = koffi.load('libc.so.6');
      libc = {
        trim: lib.func('int malloc_trim(size_t pad)') as Libc['trim'],
        mallopt: lib.func('int mallopt(int param, int value)') as Libc['mallopt'],
      };
    } catch {
      libc = null;
    }
  }
  return libc;
}

/** Returns free glibc heap memory to the kernel; false when libc has no malloc_trim (musl). */
export function mallocTrim(): boolean {
  const c = glibc();
  if (!c) return false;
  c.trim(0);
  return true;
}

/**
 * One malloc arena for the whole process, set before the agent's start-up
 * allocates much: the agent's threads allocate little, and one arena's contention
 * costs nothing measurable. False when libc is not glibc.
 */
export function singleMallocArena(): boolean {
  const c = glibc();
  return c !== null && c.mallopt(M_ARENA_MAX, 1) === 1;
}
