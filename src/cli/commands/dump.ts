// `meshgate dump`.
import { openPinnedMaps } from '../../datapath/pinned.js';
import { dumpMaps, formatDump } from '../dump.js';
import { pinDirOption, type CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program.command('dump')
    .description('every pinned map decoded: config, mesh CIDRs, exclusions, allowlists, pods, counters')
    .argument('[map]', 'one section: config, mesh, exclusions, allowlists, pods, counters')
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .action((only: string | undefined, o: { pinDir: string; json?: boolean }) => {
      const pinned = openPinnedMaps(o.pinDir);
      try {
        const d = dumpMaps(pinned.maps);
        process.stdout.write(o.json ? `${JSON.stringify(only ? { [only]: (d as Record<string, unknown>)[only] } : d, null, 2)}\n` : `${formatDump(d, only)}\n`);
      } finally {
        pinned.close();
      }
    });
}
