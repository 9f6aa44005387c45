// `meshgate status`.
import { requireRoot } from '../requireRoot.js';
import { formatStatus, readStatus } from '../../report/status.js';
import { pinDirOption, type CliContext } from './context.js';

/** status exits 3 when it found something wrong (listed under "problems"). */
export const STATUS_PROBLEMS_EXIT_CODE = 3;

export function register(ctx: CliContext): void {
  ctx.program
    .command('status')
    .description(
      'hooks and links attached, attach cgroup, pin dir, generation, last apply, config validity, and what is wrong',
    )
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExit status: 0 all sound, 3 problems found (listed), 1 no pins or not root.\n')
    .action((o: { pinDir: string; json?: boolean }) => {
      requireRoot('status');
      const report = readStatus(o.pinDir);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
      ctx.exitCode = report.problems.length ? STATUS_PROBLEMS_EXIT_CODE : 0;
    });
}
