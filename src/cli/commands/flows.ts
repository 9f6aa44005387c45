// `meshgate flows [--pod NAMESPACE/NAME] [--verdict V] [--json]`: the recent flows the kernel decided.
import type { Command } from 'commander';
import { VERDICT_NAMES } from '../../datapath/codec.js';
import { formatFlows, readFlows } from '../../report/flows.js';
import { Pins } from '../../datapath/pinned.js';
import { requireRoot } from '../requireRoot.js';
import { pinDirOption, type CliContext } from './context.js';

interface FlowsFlags {
  pinDir: string;
  verdict?: string[];
  pod?: string;
  json?: boolean;
}

function usage(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: 2, code: 'meshgate.usage' });
}

export function register(ctx: CliContext): void {
  ctx.program
    .command('flows')
    .description(
      'the recent flows the kernel decided for enforced pods: pod, destination, last verdict and rule, count, last seen',
    )
    .option('--pod <[namespace/]name>', "only this pod's flows (a bare name when it is unambiguous on the node)")
    .option(
      '--verdict <verdicts>',
      `${VERDICT_NAMES.join(', ')}; repeatable or comma-separated (default: all)`,
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--json', 'machine-readable output: {flows, total, capacity, recording}')
    .addOption(pinDirOption())
    .addHelpText(
      'after',
      '\nThe kernel keeps the most recent flows in an LRU map (agent --flows-max,\n' +
        'default 16384); the least recently decided make room. Most recent first.\nExit status: 0 ok; 1 error (no pins, not root, no such pod), 2 usage.\n',
    )
    .action(function (this: Command, o: FlowsFlags) {
      const verdicts = (o.verdict ?? [])
        .flatMap((s) => s.split(','))
        .map((s) => s.trim())
        .filter(Boolean);
      for (const v of verdicts)
        if (!(VERDICT_NAMES as readonly string[]).includes(v))
          usage(this, `--verdict ${JSON.stringify(v)} is not one of ${VERDICT_NAMES.join(', ')}`);
      if (o.pod !== undefined && !/^([^/\s]+\/)?[^/\s]+$/.test(o.pod))
        usage(this, `--pod ${JSON.stringify(o.pod.slice(0, 200))} is not NAMESPACE/NAME or NAME`);
      requireRoot('flows');
      const pins = Pins.open(o.pinDir);
      try {
        // "no such pod", not an empty list; a bare name becomes its NAMESPACE/NAME.
        const pod = o.pod === undefined ? undefined : pins.findPod(o.pod).pod;
        const report = readFlows(pins, { pod, verdicts: verdicts.length ? verdicts : undefined });
        process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatFlows(report)}\n`);
      } finally {
        pins.close();
      }
    });
}
