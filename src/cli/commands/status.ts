// `meshgate status`.
import { listPinnedLinks } from '../../datapath/loader.js';
import { openPinnedMaps } from '../../datapath/pinned.js';
import { dumpMaps } from '../dump.js';
import { pinDirOption, type CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program.command('status')
    .description('attached programs and links, pin directory, generation')
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { pinDir: string; json?: boolean }) => {
      const links = listPinnedLinks(o.pinDir);
      const pinned = openPinnedMaps(o.pinDir);
      try {
        const d = dumpMaps(pinned.maps);
        const status = { pinDir: o.pinDir, generation: d.generation, activeSlot: d.activeSlot, links: links.map((l) => ({ hook: l.hook, linkId: l.info?.id ?? null, programId: l.info?.progId ?? null, cgroupId: l.info?.cgroupId.toString() ?? null, error: l.error })) };
        if (o.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        else {
          process.stdout.write(`pin dir     ${o.pinDir}\ngeneration  ${d.generation} (slot ${d.activeSlot})\nlinks:\n`);
          for (const l of status.links) process.stdout.write(`  ${l.hook.padEnd(18)} link ${l.linkId ?? '-'} prog ${l.programId ?? '-'} cgroup ${l.cgroupId ?? '-'}${l.error ? `  PROBLEM: ${l.error}` : ''}\n`);
          if (links.length === 0) process.stdout.write('  (none: maps are pinned but no hook is attached)\n');
        }
        ctx.exitCode = links.length === 6 && links.every((l) => !l.error) ? 0 : 1;
      } finally {
        pinned.close();
      }
    });
}
