// `meshgate cleanup`: detach and unpin exactly what meshgate owns under the pin
// directory: links/mg_* (BPF_LINK_DETACH, so the programs leave the cgroup
// even while another process holds the link) and maps/<abi hash>/mg_*.
// Anything else found there is left in place and listed; programs that other
// tools attached to the same cgroup are never touched.
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { libbpf } from '../../../native/libbpf.js';
import { pinLayout } from '../../datapath/loader.js';
import { requireRoot } from '../../explain/pins.js';
import { pinDirOption, type CliContext } from './context.js';

export interface CleanupResult {
  /** link pins detached from their cgroup */
  readonly detached: string[];
  /** pins removed (links and maps) */
  readonly unpinned: string[];
  /** entries under the pin dir that are not meshgate's, left in place */
  readonly left: string[];
  readonly errors: string[];
}

const OWNED_NAME = /^mg_[a-z0-9_]+$/;
const ABI_DIR = /^[0-9a-f]{12}$/;

function removeDirIfEmpty(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
}

export function cleanupOwned(pinDir: string): CleanupResult {
  const r: CleanupResult = { detached: [], unpinned: [], left: [], errors: [] };
  if (!existsSync(pinDir)) return r;
  const { linksDir, mapsRoot } = pinLayout(pinDir);
  for (const name of readdirSync(pinDir)) {
    const p = path.join(pinDir, name);
    if (p !== linksDir && p !== mapsRoot) r.left.push(p);
  }
  if (existsSync(linksDir)) {
    for (const name of readdirSync(linksDir)) {
      const pin = path.join(linksDir, name);
      if (!OWNED_NAME.test(name)) {
        r.left.push(pin);
        continue;
      }
      let link;
      try {
        link = libbpf.openLink(pin);
      } catch (err) {
        r.left.push(pin);
        r.errors.push(`${pin} is not a BPF link, left in place: ${(err as Error).message}`);
        continue;
      }
      try {
        libbpf.detachLink(link, pin);
        r.detached.push(name);
      } catch {
        /* already detached (its cgroup is gone): unpinning is still right */
      } finally {
        libbpf.releaseLink(link);
      }
      unlinkSync(pin);
      r.unpinned.push(pin);
    }
    removeDirIfEmpty(linksDir);
  }
  if (existsSync(mapsRoot)) {
    for (const abi of readdirSync(mapsRoot)) {
      const dir = path.join(mapsRoot, abi);
      if (!ABI_DIR.test(abi)) {
        r.left.push(dir);
        continue;
      }
      for (const name of readdirSync(dir)) {
        const pin = path.join(dir, name);
        if (!OWNED_NAME.test(name)) {
          r.left.push(pin);
          continue;
        }
        unlinkSync(pin);
        r.unpinned.push(pin);
      }
      removeDirIfEmpty(dir);
    }
    removeDirIfEmpty(mapsRoot);
  }
  removeDirIfEmpty(pinDir);
  return r;
}

export function register(ctx: CliContext): void {
  ctx.program.command('cleanup')
    .description("detach and unpin everything meshgate owns under the pin directory, and nothing else (enforcement stops)")
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExit status: 0 done (also when nothing was pinned), 1 something could not be\n' +
      'removed, or not root. Pins under the pin directory that meshgate did not create\nare left in place and listed.\n')
    .action((o: { pinDir: string; json?: boolean }) => {
      requireRoot('cleanup');
      const r = cleanupOwned(o.pinDir);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } else if (r.unpinned.length === 0 && r.left.length === 0 && r.errors.length === 0) {
        process.stdout.write(`nothing pinned under ${o.pinDir}\n`);
      } else {
        process.stdout.write(`detached ${r.detached.length} link(s), unpinned ${r.unpinned.length} pin(s) under ${o.pinDir}\n`);
        for (const p of r.left) process.stdout.write(`left ${p}: not meshgate's\n`);
        for (const e of r.errors) process.stdout.write(`error: ${e}\n`);
      }
      ctx.exitCode = r.errors.length ? 1 : 0;
    });
}
