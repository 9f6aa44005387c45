// The one libc call meshgate makes: malloc_trim. libbpf parses the kernel's
// BTF (several MB) while loading the object and frees it, but glibc keeps
// freed memory in its heap, in the agent's RSS, until asked to give it back.
import koffi from 'koffi';

let trim: ((pad: number) => number) | null | undefined;

/** Returns free glibc heap memory to the kernel; false when libc has no malloc_trim (musl). */
export function mallocTrim(): boolean {
  if (trim === undefined) {
    try {
      trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    } catch {
      trim = null;
    }
  }
  if (!trim) return false;
  trim(0);
  return true;
}
