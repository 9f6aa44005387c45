// `meshgate cleanup`.
import { existsSync } from 'node:fs';
import { cleanupPins } from '../../datapath/loader.js';
import { pinDirOption, type CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program.command('cleanup')
    .description('detach and unpin everything meshgate pinned under the pin directory, and nothing else')
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { pinDir: string; json?: boolean }) => {
      if (!existsSync(o.pinDir)) {
        process.stdout.write(o.json ? '{"detached":[],"unpinned":[],"errors":[]}\n' : `nothing pinned under ${o.pinDir}\n`);
        return;
      }
      const r = cleanupPins(o.pinDir);
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`detached ${r.detached.length} link(s), unpinned ${r.unpinned.length} object(s) under ${o.pinDir}\n${r.errors.map((e) => `error: ${e}\n`).join('')}`);
      ctx.exitCode = r.errors.length ? 1 : 0;
    });
}
