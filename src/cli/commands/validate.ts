// `meshgate validate`.
import { readFileSync } from 'node:fs';
import {
  parseAllowlist, parseGlobalConfig, readConfigDocuments, type ConfigIssue,
} from '../../config/index.js';
import type { CliContext } from './context.js';

function validateFiles(files: string[]): { issues: Array<ConfigIssue & { file: string }>; objects: number } {
  const issues: Array<ConfigIssue & { file: string }> = [];
  let objects = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      issues.push({ file, code: 'MG_CONFIG_FILE_UNREADABLE', severity: 'error', object: `file ${file}`, key: '', message: `file ${file}: cannot be read: ${(err as Error).message}` });
      continue;
    }
    const { documents, errors } = readConfigDocuments(text, file);
    issues.push(...errors.map((e) => ({ ...e, file })));
    for (const doc of documents) {
      objects++;
      const r = doc.kind === 'global' ? parseGlobalConfig(doc.data, doc.ref) : parseAllowlist(doc.data, doc.ref);
      issues.push(...r.warnings.map((w) => ({ ...w, file })));
      if (!r.ok) issues.push(...r.errors.map((e) => ({ ...e, file })));
    }
  }
  return { issues, objects };
}

export function register(ctx: CliContext): void {
  ctx.program.command('validate')
    .description('validate ConfigMap or allowlist YAML files offline, with the errors the agent would report')
    .argument('<files...>')
    .option('--json', 'machine-readable output')
    .action((files: string[], o: { json?: boolean }) => {
      const { issues, objects } = validateFiles(files);
      const errors = issues.filter((i) => i.severity === 'error');
      if (o.json) process.stdout.write(`${JSON.stringify({ valid: errors.length === 0, objects, issues }, null, 2)}\n`);
      else {
        for (const i of issues) process.stdout.write(`${i.severity} ${i.code}: ${i.message}\n`);
        process.stdout.write(errors.length ? `${errors.length} error(s) in ${files.length} file(s)\n` : `ok: ${objects} object(s) in ${files.length} file(s) are valid\n`);
      }
      ctx.exitCode = errors.length ? 1 : 0;
    });
}
