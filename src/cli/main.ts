// The meshgate command line. Exit codes: 0 ok, 1 failure or invalid input, 2 usage
// (explain adds its verdict codes). Each command lives in ./commands/<name>.ts.
import { Command, CommanderError } from 'commander';
import type { CliContext } from './commands/context.js';
import { isMeshgateError } from '../errors.js';

type CommandModule = { register(ctx: CliContext): void };

// Each command's module is imported only when it is the one run (or for help): the agent, a
// long-running process with a memory budget, does not carry the other commands' code.
const COMMANDS: ReadonlyArray<readonly [string, () => Promise<CommandModule>]> = [
  ['agent', () => import('./commands/agent.js')],
  ['validate', () => import('./commands/validate.js')],
  ['cleanup', () => import('./commands/cleanup.js')],
  ['status', () => import('./commands/status.js')],
  ['dump', () => import('./commands/dump.js')],
  ['explain', () => import('./commands/explain.js')],
  ['trace', () => import('./commands/trace.js')],
  ['flows', () => import('./commands/flows.js')],
  ['preview', () => import('./commands/preview.js')],
  ['demo', () => import('./commands/demo.js')],
];

function fail(message: string): number {
  process.stderr.write(`meshgate: ${message}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('meshgate')
    .description(
      'Kubernetes service-mesh egress enforced in the kernel: eBPF cgroup hooks decide redirect, pass or deny on every connect()',
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const ctx: CliContext = { program, exitCode: 0 };
  const named = argv.find((arg) => !arg.startsWith('-'));
  const only = COMMANDS.some(([name]) => name === named) ? named : undefined;
  for (const [name, load] of COMMANDS) if (only === undefined || name === only) (await load()).register(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    // A flag's value the command cannot use is a usage error, in commander's format.
    if (isMeshgateError(err, 'MG_CLI_BAD_FLAG')) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
    return fail((err as Error).message);
  }
  return ctx.exitCode;
}
