// `meshgate validate`: offline validation for CI pipelines. Files are read by the agent's
// own reader (src/agent/fileSources.ts), so every message is the one the agent would log.
// Exit codes: 0 valid (warnings allowed), 1 invalid or unreadable, 2 usage.
import {
  readAllowlistFile,
  readFileObjects,
  readGlobalFile,
  type AllowlistFile,
  type FileObject,
  type FileReading,
} from '../../agent/fileSources.js';
import type { ConfigIssue, GlobalConfig, ObjectRef } from '../../config/index.js';
import { crossObjectIssues, type AllowlistObject, type NamespacePart } from '../../agent/lastGood.js';
import type { Command } from 'commander';
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

/** A file as read, before the checks across objects: its report (still mutable), issues, and allowlists. */
interface Read {
  readonly report: FileReport & { valid: boolean; objects: Array<FileReport['objects'][number]> };
  readonly issues: ReportedIssue[];
  /** Its valid allowlist objects, each with the namespace whose other objects it is checked with. */
  readonly allowlists: Array<{
    readonly namespace: string;
    readonly object: number;
    readonly ref: ObjectRef;
    readonly part: AllowlistObject;
  }>;
}

// Allowlist files given to --allowlist-file all belong to the standalone agent's --namespace.
const STANDALONE_NAMESPACE = '\0--allowlist-file';

function byShape(file: string): Read {
  const read = readFileObjects(file);
  const issues = withFile(file, read.errors);
  const allowlists: Read['allowlists'] = [];
  const objects = read.objects.map((o: FileObject, object) => {
    issues.push(...withFile(file, o.result.warnings));
    if (!o.result.ok) issues.push(...withFile(file, o.result.errors));
    else if (o.kind === 'allowlist') {
      // A manifest without a namespace, and a plain file, are judged with the others that name none.
      const entries = o.result.value as AllowlistObject['entries'];
      allowlists.push({ namespace: o.ref.namespace ?? '', object, ref: o.ref, part: { entries, action: o.action } });
    }
    return { object: o.object, kind: o.kind, valid: o.result.ok };
  });
  const valid = read.errors.length === 0 && objects.every((o) => o.valid);
  return { report: { file, role: 'auto', valid, objects }, issues, allowlists };
}

/** Exactly what the standalone agent reads from the file given to that flag. */
function inRole(file: string, role: 'config-file' | 'allowlist-file'): Read {
  const { result }: FileReading<GlobalConfig | AllowlistFile> =
    role === 'config-file' ? readGlobalFile(file) : readAllowlistFile(file);
  const issues = withFile(file, [...result.warnings, ...(result.ok ? [] : result.errors)]);
  const kind = role === 'config-file' ? 'global' : 'allowlist';
  const allowlists: Read['allowlists'] =
    result.ok && role === 'allowlist-file'
      ? [
          {
            namespace: STANDALONE_NAMESPACE,
            object: 0,
            ref: { kind: 'File', name: file, path: file },
            part: result.value as AllowlistFile,
          },
        ]
      : [];
  return {
    report: { file, role, valid: result.ok, objects: [{ object: `file ${file}`, kind, valid: result.ok }] },
    issues,
    allowlists,
  };
}

/**
 * The cluster agent's checks across the allowlists of one namespace (a name in two objects,
 * blocked_egress_action values that disagree), on every namespace of the files given: each
 * object involved is invalid and gets the error, as each ConfigMap would get its Event.
 */
function checkAcrossObjects(reads: readonly Read[]): void {
  const byNamespace = new Map<string, Array<NamespacePart & { readonly read: Read; readonly object: number }>>();
  reads.forEach((read, r) => {
    for (const { namespace, object, ref, part } of read.allowlists) {
      const list = byNamespace.get(namespace) ?? byNamespace.set(namespace, []).get(namespace)!;
      list.push({ ...part, key: `${r}\0${object}`, ref, read, object });
    }
  });
  for (const [namespace, parts] of byNamespace) {
    const byKey = new Map(parts.map((p) => [p.key, p]));
    for (const { key, issue } of crossObjectIssues(namespace, parts)) {
      const { read, object } = byKey.get(key)!;
      read.issues.push(...withFile(read.report.file, [issue]));
      read.report.objects[object] = { ...read.report.objects[object]!, valid: false };
      read.report.valid = false;
    }
  }
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
  checkAcrossObjects(reads);
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
    .action(function (
      this: Command,
      files: string[],
      o: { json?: boolean; configFile: string[]; allowlistFile: string[] },
    ) {
      if (files.length + o.configFile.length + o.allowlistFile.length === 0)
        this.error('error: no file given (see meshgate validate --help)', { exitCode: 2, code: 'meshgate.usage' });
      const report = validateFiles(files, o.configFile, o.allowlistFile);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      ctx.exitCode = report.valid ? 0 : 1;
    });
}
