// `meshgate preview FILE... [--namespace NS] [--all] [--json]`: the recent flows whose verdict
// the candidate files would change. Exit codes: 0 no change, 1 changes, 2 invalid input (or
// usage), 3 error (no pins, not root).
import type { Command } from 'commander';
import { Pins } from '../../datapath/pinned.js';
import { requireRoot } from '../requireRoot.js';
import { readCandidate } from '../../preview/candidate.js';
import { formatPreview, invalidReport, previewFlows, type PreviewReport } from '../../preview/preview.js';
import { pinDirOption, type CliContext } from './context.js';

interface PreviewFlags {
  pinDir: string;
  namespace: string;
  all?: boolean;
  json?: boolean;
}

export const PREVIEW_EXIT = Object.freeze({ unchanged: 0, changes: 1, invalid: 2, error: 3 });

export function register(ctx: CliContext): void {
  ctx.program
    .command('preview')
    .description(
      'compile candidate config files without applying them, and list every recent flow whose verdict would change',
    )
    .argument('[files...]', 'osm-config and/or allowlist files, read as `meshgate validate` reads them')
    .option('--namespace <name>', 'namespace of allowlist files that name none (plain files)', 'default')
    .option('--all', 'list every recent flow, changed or not')
    .option('--json', 'machine-readable output: {valid, issues, changes, rows, flows, ...}')
    .addOption(pinDirOption())
    .addHelpText(
      'after',
      '\nA global config replaces the live one; the allowlists of a namespace replace\n' +
        "that namespace's allowlists as a whole (give all of them, e.g. `kubectl get cm\n-n NS -l meshgate.io/egress-allowlist=true -o yaml`). The flows are the\n" +
        "kernel's recent ones (meshgate flows). Nothing is applied.\n" +
        'Exit status: 0 no flow would change, 1 some would, 2 invalid input or usage,\n3 error (no pins, not root).\n',
    )
    .action(function (this: Command, files: string[], o: PreviewFlags) {
      if (files.length === 0)
        this.error('error: no file given (see meshgate preview --help)', {
          exitCode: PREVIEW_EXIT.invalid,
          code: 'meshgate.usage',
        });
      const write = (report: PreviewReport) =>
        process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatPreview(report)}\n`);
      // Invalid input is reported first, without root or pins (as `validate` would).
      const candidate = readCandidate(files, o.namespace);
      if (!candidate.valid) {
        write(invalidReport(candidate));
        ctx.exitCode = PREVIEW_EXIT.invalid;
        return;
      }
      let pins: Pins | null = null;
      try {
        requireRoot('preview');
        pins = Pins.open(o.pinDir);
        const report = previewFlows(pins, candidate, { namespace: o.namespace, all: o.all });
        write(report);
        ctx.exitCode = report.changes.length ? PREVIEW_EXIT.changes : PREVIEW_EXIT.unchanged;
      } catch (err) {
        process.stderr.write(`meshgate: ${(err as Error).message}\n`);
        ctx.exitCode = PREVIEW_EXIT.error;
      } finally {
        pins?.close();
      }
    });
}
