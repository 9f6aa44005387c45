// `meshgate demo`.
import { runDemo } from '../demo.js';
import type { CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program
    .command('demo')
    .description(
      'a safe, self-contained show: sandbox cgroup and netns, standalone agent, redirect / pass / deny, a live config edit, then dump',
    )
    .action(async () => {
      ctx.exitCode = await runDemo();
    });
}
