// Returning a large parse's garbage (and libbpf's freed load-time memory) right away. A 100,000-entry policy is read
// through YAML and validated in a few hundred milliseconds, leaving tens of MB
// of garbage in V8's old space; V8 collects it only when it next needs room,
// or after many seconds of idleness, and the RSS (what the DaemonSet's memory
// limit sees) stays high meanwhile. After the first apply and after large
// ones the agent asks for one full collection, which also lets V8 shrink the
// heap, then has glibc return its free memory (native/libc.ts) (docs/decisions.md).
import v8 from 'node:v8';
import { mallocTrim } from '../../native/libc.js';

let collect: (() => void) | null | undefined;

/** A full garbage collection (when V8 lets us ask for one), then glibc's free memory back to the kernel. */
export function collectGarbage(): boolean {
  if (collect === undefined) {
    // V8's own %CollectGarbage, compiled once with natives syntax allowed for just this function.
    // `--expose-gc` set now would add gc() only to a new context (node:vm), and making one cost
    // the idle agent about 0.5 MB of RSS.
    try {
      v8.setFlagsFromString('--allow-natives-syntax');
      collect = new Function('%CollectGarbage(null)') as () => void;
    } catch {
      collect = null;
    } finally {
      v8.setFlagsFromString('--no-allow-natives-syntax');
    }
  }
  collect?.();
  mallocTrim();
  return collect !== null;
}
