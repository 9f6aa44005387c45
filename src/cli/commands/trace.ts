// `meshgate trace [--verdict deny|redirect|pass] [--pod NS/NAME] [--json]`.
import type { Command } from 'commander';
import { VERDICT_NAMES, type VerdictName } from '../../datapath/codec.js';
import { Pins } from '../../datapath/pinned.js';
import { requireRoot } from '../requireRoot.js';
import {
  TraceStream,
  formatTraceDrops,
  formatTraceEvent,
  type TraceDrops,
  type TraceEvent,
} from '../../report/trace.js';
import { pinDirOption, type CliContext } from './context.js';
import { TIMER_MAX_MS, parseNumberFlag } from '../numberFlag.js';

interface TraceFlags {
  pinDir: string;
  verdict?: string[];
  pod?: string;
  json?: boolean;
  count?: string;
  duration?: string;
  backlog?: boolean;
}

function parseVerdicts(cmd: Command, values: string[]): VerdictName[] {
  const out = new Set<VerdictName>();
  for (const v of values
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (v === 'all') for (const n of VERDICT_NAMES) out.add(n);
    else if ((VERDICT_NAMES as readonly string[]).includes(v)) out.add(v as VerdictName);
    else
      cmd.error(`error: --verdict ${JSON.stringify(v)} is not deny, audit, redirect, pass or all`, {
        exitCode: 2,
        code: 'meshgate.usage',
      });
  }
  return out.size ? [...out] : ['deny', 'audit'];
}

export function register(ctx: CliContext): void {
  ctx.program
    .command('trace')
    .description('stream decision events from the kernel live: time, pod, destination, protocol, verdict, rule')
    .option(
      '--verdict <verdicts>',
      'deny, audit, redirect, pass or all; repeatable or\ncomma-separated (default: deny,audit)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--pod <[namespace/]name>',
      "only this pod's events (its sidecar's too; a bare name when it is unambiguous on the node)",
    )
    .option('--json', 'one JSON object per line')
    .option('--count <n>', 'exit after n events')
    .option('--duration <seconds>', 'exit after this long')
    .option('--backlog', 'also show events queued before trace started')
    .addOption(pinDirOption())
    .addHelpText(
      'after',
      '\nStops on Ctrl-C (exit 0). Events are rate-limited in the kernel; drops are\n' +
        'reported as they happen. Asking for redirect or pass events lasts while trace\nruns, and lapses 10 s after it stops.\n',
    )
    .action(async function (this: Command, o: TraceFlags) {
      const verdicts = parseVerdicts(this, o.verdict ?? []);
      const count =
        o.count === undefined
          ? undefined
          : parseNumberFlag('--count', o.count, { min: 1, max: 2 ** 32, integer: true });
      // A timer's delay: at most what Node's timers take.
      const duration =
        o.duration === undefined
          ? undefined
          : parseNumberFlag('--duration', o.duration, {
              min: 0.001,
              max: Math.floor(TIMER_MAX_MS / 1000),
              unit: 'seconds',
            });
      if (o.pod !== undefined && !/^([^/\s]+\/)?[^/\s]+$/.test(o.pod))
        this.error(`error: --pod ${JSON.stringify(o.pod.slice(0, 200))} is not NAMESPACE/NAME or NAME`, {
          exitCode: 2,
          code: 'meshgate.usage',
        });
      requireRoot('trace');
      const pins = Pins.open(o.pinDir);
      // "no such pod" now, not silence forever; a bare name becomes its NAMESPACE/NAME.
      const pod = o.pod === undefined ? undefined : pins.findPod(o.pod).pod;
      let seen = 0;
      await new Promise<void>((resolve) => {
        let stream: TraceStream | null = null;
        let timer: NodeJS.Timeout | null = null;
        const finish = () => {
          if (!stream) return;
          stream.stop();
          stream = null;
          if (timer) clearTimeout(timer);
          process.off('SIGINT', finish);
          process.off('SIGTERM', finish);
          pins.close();
          resolve();
        };
        const write = (line: string) => process.stdout.write(`${line}\n`);
        stream = new TraceStream(pins, {
          verdicts,
          pod,
          backlog: o.backlog,
          onEvent: (e: TraceEvent) => {
            if (!stream) return;
            write(o.json ? JSON.stringify(e) : formatTraceEvent(e));
            if (count !== undefined && ++seen >= count) setImmediate(finish);
          },
          onDrops: (d: TraceDrops) => write(o.json ? JSON.stringify(d) : formatTraceDrops(d)),
        });
        process.once('SIGINT', finish);
        process.once('SIGTERM', finish);
        if (!o.json) {
          process.stderr.write(
            `tracing ${verdicts.join(', ')} events${pod ? ` of ${pod}` : ''} from ${o.pinDir} (Ctrl-C to stop)\n`,
          );
          write(`${'TIME'.padEnd(12)} ${'VERDICT'.padEnd(8)} ${'POD'.padEnd(20)} ${'DESTINATION'.padEnd(24)} RULE`);
        }
        stream.start();
        if (duration !== undefined) timer = setTimeout(finish, duration * 1000);
      });
    });
}
