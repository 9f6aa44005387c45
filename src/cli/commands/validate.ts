// `meshgate validate`: offline validation for CI pipelines. Files are read by the agent's
// own reader (src/agent/fileSources.ts), so every message is the one the agent would log.
// Exit codes: 0 valid (warnings allowed), 1 invalid or unreadable, 2 usage.
import {
  readAllowlistFile,
  readFileObjects,
  readGlobalFile,
  type FileObject,
  type FileReading,
} from '../../agent/fileSources.js';
import type { ConfigIssue } from '../../config/index.js';
import { collect, type CliContext } from './context.js';

/** How a file was read: by its shape, or in the role a standalone agent flag gives it. */
type FileRole = 'auto' | 'config-file' | 'allowlist-file';

export type ReportedIssue = ConfigIssue & { readonly file: string };

export interface FileReport {
  readonly file: string;
  readonly role: FileRole;
  readonly valid: boolean;
  /** The objects read, each with its verdict. None when the file itself is unusable. */
  readonly objects: ReadonlyArray<{
    readonly object: string;
    readonly kind: 'global' | 'allowlist';
    readonly valid: boolean;
  }>;
}

export interface ValidationReport {
  readonly valid: boolean;
  readonly objects: number;
  readonly files: readonly FileReport[];
  readonly issues: readonly ReportedIssue[];
}

const withFile = (file: string, issues: readonly ConfigIssue[]): ReportedIssue[] => issues.map((i) => ({ ...i, file }));

function byShape(file: string): { report: FileReport; issues: ReportedIssue[] } {
  const read = readFileObjects(file);
  const issues = withFile(file, read.errors);
  const objects = read.objects.map((o: FileObject) => {
    issues.push(...withFile(file, o.result.warnings));
    if (!o.result.ok) issues.push(...withFile(file, o.result.errors));
    return { object: o.object, kind: o.kind, valid: o.result.ok };
  });
  const valid = read.errors.length === 0 && objects.every((o) => o.valid);
  return { report: { file, role: 'auto', valid, objects }, issues };
}

/** Exactly what the standalone agent reads from the file given to that flag. */
function inRole(file: string, role: 'config-file' | 'allowlist-file'): { report: FileReport; issues: ReportedIssue[] } {
  const { result }: FileReading<unknown> = role === 'config-file' ? readGlobalFile(file) : readAllowlistFile(file);
  const issues = withFile(file, [...result.warnings, ...(result.ok ? [] : result.errors)]);
  const kind = role === 'config-file' ? 'global' : 'allowlist';
  return {
    report: { file, role, valid: result.ok, objects: [{ object: `file ${file}`, kind, valid: result.ok }] },
    issues,
  };
}

export function validateFiles(
  files: readonly string[],
  configFiles: readonly string[] = [],
  allowlistFiles: readonly string[] = [],
): ValidationReport {
  const reads = [
    ...files.map(byShape),
    ...configFiles.map((f) => inRole(f, 'config-file')),
    ...allowlistFiles.map((f) => inRole(f, 'allowlist-file')),
  ];
  const issues = reads.flatMap((r) => r.issues);
  return {
    valid: reads.every((r) => r.report.valid),
    objects: reads.reduce((n, r) => n + r.report.objects.length, 0),
    files: reads.map((r) => r.report),
    issues,
  };
}

function formatReport(report: ValidationReport): string {
  const lines = report.issues.map((i) => `${i.severity} ${i.code}: ${i.message}`);
  const errors = report.issues.filter((i) => i.severity === 'error').length;
  const fileCount = report.files.length;
  lines.push(
    report.valid
      ? `ok: ${report.objects} object(s) in ${fileCount} file(s) are valid`
      : `${errors} error(s) in ${report.files.filter((f) => !f.valid).length} of ${fileCount} file(s)`,
  );
  return `${lines.join('\n')}\n`;
}

export function register(ctx: CliContext): void {
  ctx.program
    .command('validate')
    .description('validate ConfigMap or allowlist YAML files offline, with the errors the agent would report')
    .argument(
      '[files...]',
      'files read by their shape: ConfigMap manifests (allowlists by their label), key/value maps, or lists of allowlist entries',
    )
    .option(
      '--config-file <file>',
      'read the file exactly as `agent --config-file` does: one global config (repeatable)',
      collect,
      [],
    )
    .option(
      '--allowlist-file <file>',
      'read the file exactly as `agent --allowlist-file` does: every document an allowlist (repeatable)',
      collect,
      [],
    )
    .option('--json', 'machine-readable output: {valid, objects, files, issues}')
    .addHelpText(
      'after',
      '\nExit codes: 0 valid (warnings allowed), 1 invalid or unreadable,\n2 usage (e.g. no file given).',
    )
    .action((files: string[], o: { json?: boolean; configFile: string[]; allowlistFile: string[] }) => {
      if (files.length + o.configFile.length + o.allowlistFile.length === 0) {
        process.stderr.write('meshgate validate: no file given (see meshgate validate --help)\n');
        ctx.exitCode = 2;
        return;
      }
      const report = validateFiles(files, o.configFile, o.allowlistFile);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      ctx.exitCode = report.valid ? 0 : 1;
    });
}
