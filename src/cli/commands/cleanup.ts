// `meshgate cleanup`: detach and unpin exactly what meshgate owns under the pin
// directory: links/mg_* (BPF_LINK_DETACH, so the programs leave the cgroup
// even while another process holds the link) and maps/<abi hash>/mg_*.
// Anything else found there is left in place and listed; programs that other
// tools attached to the same cgroup are never touched.
import { cleanupPins } from '../../datapath/loader.js';
import { requireRoot } from '../requireRoot.js';
import { pinDirOption, type CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program
    .command('cleanup')
    .description(
      'detach and unpin everything meshgate owns under the pin directory, and nothing else (enforcement stops)',
    )
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExit status: 0 done (also when nothing was pinned), 1 something could not be\n' +
        'removed, or not root. Pins under the pin directory that meshgate did not create\nare left in place and listed.\n',
    )
    .action((o: { pinDir: string; json?: boolean }) => {
      requireRoot('cleanup');
      const r = cleanupPins(o.pinDir);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } else if (r.unpinned.length === 0 && r.left.length === 0 && r.errors.length === 0) {
        process.stdout.write(`nothing pinned under ${o.pinDir}\n`);
      } else {
        process.stdout.write(
          `detached ${r.detached.length} link(s), unpinned ${r.unpinned.length} pin(s) under ${o.pinDir}\n`,
        );
        for (const p of r.left) process.stdout.write(`left ${p}: not meshgate's\n`);
        for (const e of r.errors) process.stdout.write(`error: ${e}\n`);
      }
      ctx.exitCode = r.errors.length ? 1 : 0;
    });
}
