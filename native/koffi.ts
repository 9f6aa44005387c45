// koffi's native module, loaded without koffi's index.js. That index bundles
// koffi's own build tool, whose top-level requires bring node:https, node:zlib
// and node:crypto into the process: about 4 MB of RSS that the agent, with a
// 60 MB idle budget (SPEC §7), would spend on a downloader it never runs. The
// index only picks the prebuilt binary for this platform and checks its
// version, so this does the same; anything unexpected falls back to the index
// (docs/decisions.md).
import { createRequire } from 'node:module';
import type Koffi from 'koffi';

const load = createRequire(import.meta.url);

/** koffi's names for process.arch, where they differ. */
const ARCH: Readonly<Record<string, string>> = { arm: 'armhf', riscv64: 'riscv64d' };

function nativeKoffi(): typeof Koffi {
  const { version } = load('koffi/package.json') as { version: string };
  const arch = ARCH[process.arch] ?? process.arch;
  const triplets = [`${process.platform}_${arch}`, ...(process.platform === 'linux' ? [`musl_${arch}`] : [])];
  for (const triplet of triplets) {
    try {
      const native = load(`koffi/build/koffi/${triplet}/koffi.node`) as typeof Koffi & { version?: string };
      if (native.version === version) return native;
    } catch {
      // Not this platform's binary (or not there): try the next, then koffi's own loader.
    }
  }
  return load('koffi') as typeof Koffi;
}

const koffi: typeof Koffi = nativeKoffi();
export default koffi;
