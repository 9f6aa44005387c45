// Runs a node script of this checkout as the unprivileged user nobody (for tests
// of what an operator without root sees), wherever the checkout lives. Under a
// directory nobody cannot traverse (a clone in /root, mode 0700), the checkout
// is bind-mounted onto a world-traversable temporary directory inside a private
// mount namespace of the child alone: nothing is mounted for anyone else, and
// the mount goes with the child.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdtempSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// As in sandbox.ts, without importing it: unit tests use this helper too, and need no libbpf.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export const NOBODY = 65534;
let reachable: boolean | undefined;

/** True when nobody can read the checkout where it is. */
export function checkoutReadableByNobody(): boolean {
  reachable ??=
    spawnSync('test', ['-r', path.join(REPO_ROOT, 'bin/meshgate.js')], { uid: NOBODY, gid: NOBODY }).status === 0;
  return reachable;
}

/** `node ARGS` as nobody; arguments naming files of the checkout are rewritten to the mounted view. */
export function nodeAsNobody(args: readonly string[], opts: { timeout?: number } = {}): SpawnSyncReturns<string> {
  const common = { encoding: 'utf8' as const, timeout: opts.timeout ?? 30_000 };
  if (checkoutReadableByNobody()) return spawnSync(process.execPath, args, { ...common, uid: NOBODY, gid: NOBODY });
  const view = mkdtempSync('/tmp/mgtest-nobody-');
  try {
    chmodSync(view, 0o755);
    const mapped = args.map((a) =>
      a === REPO_ROOT || a.startsWith(`${REPO_ROOT}/`) ? view + a.slice(REPO_ROOT.length) : a,
    );
    const script =
      'mount --bind "$1" "$2" && shift 2 && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"';
    return spawnSync(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        script,
        'sh',
        REPO_ROOT,
        view,
        process.execPath,
        ...mapped,
      ],
      common,
    );
  } finally {
    rmdirSync(view);
  }
}
