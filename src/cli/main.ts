// The meshgate command line. Exit codes: 0 ok, 1 failure or invalid input, 2 usage
// (explain adds its verdict codes). Each command lives in ./commands/<name>.ts.
import { Command, CommanderError } from 'commander';
import type { CliContext } from './commands/context.js';
import * as agent from './commands/agent.js';
import * as cleanup from './commands/cleanup.js';
import * as demo from './commands/demo.js';
import * as dump from './commands/dump.js';
import * as explain from './commands/explain.js';
import * as flows from './commands/flows.js';
import * as preview from './commands/preview.js';
import * as status from './commands/status.js';
import * as trace from './commands/trace.js';
import * as validate from './commands/validate.js';

const COMMANDS: ReadonlyArray<{ register(ctx: CliContext): void }> = [agent, validate, cleanup, status, dump, explain, trace, flows, preview, demo];

function fail(message: string): number {
  process.stderr.write(`meshgate: ${message}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('meshgate')
    .description('Kubernetes service-mesh egress enforced in the kernel: eBPF cgroup hooks decide redirect, pass or deny on every connect()')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const ctx: CliContext = { program, exitCode: 0 };
  for (const command of COMMANDS) command.register(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    return fail((err as Error).message);
  }
  return ctx.exitCode;
}
