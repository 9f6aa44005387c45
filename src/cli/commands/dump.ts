// `meshgate dump [--json] [MAP]`.
import type { Command } from 'commander';
import { Pins } from '../../datapath/pinned.js';
import { requireRoot } from '../requireRoot.js';
import { DUMP_SECTIONS, dumpMaps, formatDump, pickSections, sectionsFor } from '../../report/dump.js';
import { pinDirOption, type CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program
    .command('dump')
    .description('every pinned map decoded: config, mesh CIDRs, exclusions, allowlists, pods, counters')
    .argument('[map]', `one section (${Object.keys(DUMP_SECTIONS).join(', ')}) or a map name (mg_cgroups, ...)`)
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output (shape in docs/cli.md)')
    .action(function (this: Command, only: string | undefined, o: { pinDir: string; json?: boolean }) {
      const sections = only === undefined ? Object.keys(DUMP_SECTIONS) : sectionsFor(only);
      if (!sections && (only === 'flows' || only === 'mg_flows'))
        this.error('error: mg_flows is decoded by `meshgate flows` (filters by pod and verdict), not by dump', {
          exitCode: 2,
          code: 'meshgate.usage',
        });
      if (!sections) {
        this.error(
          `error: no section or map ${JSON.stringify(only)}: use one of ${Object.keys(DUMP_SECTIONS).join(', ')}, or a map name such as mg_cgroups`,
          { exitCode: 2, code: 'meshgate.usage' },
        );
      }
      requireRoot('dump');
      const pins = Pins.open(o.pinDir);
      try {
        const d = dumpMaps(pins.maps);
        process.stdout.write(
          o.json
            ? `${JSON.stringify(only ? pickSections(d, sections) : d, null, 2)}\n`
            : `${formatDump(d, sections)}\n`,
        );
      } finally {
        pins.close();
      }
    });
}
