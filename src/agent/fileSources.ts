// Standalone mode's configuration: one global config file and allowlist files.
// Each object is validated alone; an invalid one is rejected whole and its last
// good content stays (SPEC §1.4).
import { readFileSync } from 'node:fs';
import {
  DEFAULT_LIMITS, type ConfigDocument, parseAllowlist, parseGlobalConfig, readConfigDocuments,
  type AllowlistEntry, type ConfigIssue, type GlobalConfig, type ParseResult,
} from '../config/index.js';

export interface FileReading<T> {
  readonly path: string;
  readonly result: ParseResult<T>;
}

function fileError(path: string, err: unknown): ParseResult<never> {
  const message = `file ${path}: cannot be read: ${(err as Error).message}`;
  return { ok: false, errors: [{ code: 'MG_CONFIG_FILE_UNREADABLE', severity: 'error', object: `file ${path}`, key: '', message }], warnings: [] };
}

function documents(path: string, kind: 'global' | 'allowlist'): ParseResult<ConfigDocument[]> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return fileError(path, err);
  }
  const { documents: docs, errors } = readConfigDocuments(text, path);
  if (errors.length) return { ok: false, errors, warnings: [] };
  // A file given as an allowlist is one, whatever its shape says.
  const wanted = kind === 'global' ? docs.filter((d) => d.kind === 'global') : docs;
  if (kind === 'global' && wanted.length !== 1) {
    const message = `file ${path}: holds ${wanted.length} global configs (egress, mesh_cidr_ranges, ...); exactly one is needed`;
    return { ok: false, errors: [{ code: 'MG_CONFIG_FILE_SHAPE', severity: 'error', object: `file ${path}`, key: '', message }], warnings: [] };
  }
  return { ok: true, value: wanted, warnings: [] };
}

export function readGlobalFile(path: string): FileReading<GlobalConfig> {
  const docs = documents(path, 'global');
  if (!docs.ok) return { path, result: docs };
  // A ConfigMap manifest keeps its own name in every message.
  const doc = docs.value[0]!;
  return { path, result: parseGlobalConfig(doc.data, doc.ref, DEFAULT_LIMITS) };
}

export function readAllowlistFile(path: string): FileReading<readonly AllowlistEntry[]> {
  const docs = documents(path, 'allowlist');
  if (!docs.ok) return { path, result: docs };
  const entries: AllowlistEntry[] = [];
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  for (const { data, ref } of docs.value) {
    const r = parseAllowlist('egress' in data ? data : { egress: data }, ref, DEFAULT_LIMITS);
    warnings.push(...r.warnings);
    if (r.ok) entries.push(...r.value);
    else errors.push(...r.errors);
  }
  return { path, result: errors.length ? { ok: false, errors, warnings } : { ok: true, value: entries, warnings } };
}
