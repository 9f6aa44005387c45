// Standalone mode's configuration: one global config file and allowlist files.
// Each object is validated alone; an invalid one is rejected whole and its last
// good content stays (SPEC §1.4). `meshgate validate` reads files with these same
// functions, so it reports exactly what the agent would.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import {
  DEFAULT_LIMITS,
  MAX_OBJECT_BYTES,
  type ConfigDocument,
  allowlistAction,
  checkNamespaceObjects,
  describeObject,
  parseAllowlist,
  parseGlobalConfig,
  readConfigDocuments,
  type AllowlistEntry,
  type BlockedEgressAction,
  type ConfigIssue,
  type GlobalConfig,
  type ObjectRef,
  type ParseResult,
} from '../config/index.js';
import type { CidrListMemo } from '../config/cidrListMemo.js';
import { capIssues, makeIssue } from '../config/issues.js';
import { crossObjectIssues, type NamespacePart } from './lastGood.js';

export interface FileReading<T> {
  readonly path: string;
  readonly result: ParseResult<T>;
}

/** An allowlist file as standalone mode reads it: its entries, and the blocked_egress_action it sets (or null). */
export interface AllowlistFile {
  readonly entries: readonly AllowlistEntry[];
  readonly action: BlockedEgressAction | null;
}

/** One configuration object of a file, judged on its own. */
export interface FileObject {
  readonly kind: ConfigDocument['kind'];
  readonly ref: ObjectRef;
  /** An allowlist's own blocked_egress_action (null: none, or a global config). */
  readonly action: BlockedEgressAction | null;
  /** 'ConfigMap osm-system/osm-config (file ./a.yaml)' or 'file ./a.yaml', as in its messages. */
  readonly object: string;
  readonly result: ParseResult<GlobalConfig | readonly AllowlistEntry[]>;
}

export interface FileObjects {
  readonly path: string;
  /** Problems with the file itself: unreadable, invalid YAML, a document that is no configuration. */
  readonly errors: readonly ConfigIssue[];
  readonly objects: readonly FileObject[];
}

const fileRef = (path: string): ObjectRef => ({ kind: 'File', name: path, path });

function fileError(path: string, err: unknown): ParseResult<never> {
  return {
    ok: false,
    errors: [
      makeIssue(
        'MG_CONFIG_FILE_UNREADABLE',
        { ref: fileRef(path), key: '' },
        { reason: `cannot be read: ${(err as Error).message}` },
      ),
    ],
    warnings: [],
  };
}

function tooLarge(path: string, reason: string): ParseResult<never> {
  return {
    ok: false,
    errors: [makeIssue('MG_CONFIG_TOO_LARGE', { ref: fileRef(path), key: '' }, { reason })],
    warnings: [],
  };
}

/**
 * A config file's text, refused before it is read when it is not a regular file
 * (a FIFO or a device would block or never end) or larger than MAX_OBJECT_BYTES.
 */
export function readConfigText(path: string): ParseResult<string> {
  let fd: number;
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    return fileError(path, err);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return fileError(path, new Error('EISDIR: it is a directory'));
    if (!stat.isFile())
      return fileError(path, new Error('it is not a regular file (a FIFO or a device is never read)'));
    if (stat.size > MAX_OBJECT_BYTES) {
      return tooLarge(
        path,
        `is ${stat.size} bytes, more than the limit of ${MAX_OBJECT_BYTES} bytes per object (a ConfigMap cannot exceed 1 MiB); not read`,
      );
    }
    // Read at most one byte past the limit: the file may grow between the stat and the read.
    const buffer = Buffer.alloc(Math.min(stat.size, MAX_OBJECT_BYTES) + 1);
    let length = 0;
    for (let n = 1; n > 0 && length < buffer.length; length += n)
      n = readSync(fd, buffer, length, buffer.length - length, null);
    if (length > MAX_OBJECT_BYTES)
      return tooLarge(path, `grew past the limit of ${MAX_OBJECT_BYTES} bytes per object while being read; not read`);
    return { ok: true, value: buffer.subarray(0, length).toString('utf8'), warnings: [] };
  } catch (err) {
    return fileError(path, err);
  } finally {
    closeSync(fd);
  }
}

/**
 * The text's documents, or why there are none to use (a partly broken file is refused whole).
 * A file without any document (empty, comments only, `---` alone) sets nothing: it is refused
 * like an empty ConfigMap (SPEC §1.4), so an editor's truncate-then-write, or `> file`, never
 * replaces the last good content with "nothing". `[]` or `egress: ""` says "no entries".
 */
function textDocuments(text: string, path: string): ParseResult<ConfigDocument[]> {
  const { documents: docs, errors } = readConfigDocuments(text, path);
  if (errors.length) return { ok: false, errors: capIssues(errors, fileRef(path)), warnings: [] };
  if (docs.length === 0) {
    const reason =
      "holds no YAML document (it is empty, or only comments and '---'): it sets none of meshgate's keys, and an object that sets nothing is refused, not taken as all defaults or no entries (write [] or egress: \"\" for an empty allowlist)";
    return {
      ok: false,
      errors: [makeIssue('MG_CONFIG_NO_MESHGATE_KEY', { ref: fileRef(path), key: '' }, { reason })],
      warnings: [],
    };
  }
  return { ok: true, value: docs, warnings: [] };
}

function fileDocuments(path: string): ParseResult<ConfigDocument[]> {
  const text = readConfigText(path);
  return text.ok ? textDocuments(text.value, path) : text;
}

function globalDocument(path: string, docs: readonly ConfigDocument[]): ParseResult<ConfigDocument> {
  const wanted = docs.filter((d) => d.kind === 'global');
  if (wanted.length !== 1) {
    const reason = `holds ${wanted.length} global configs (egress, mesh_cidr_ranges, ...); exactly one is needed`;
    return {
      ok: false,
      errors: [makeIssue('MG_CONFIG_FILE_SHAPE', { ref: fileRef(path), key: '' }, { reason })],
      warnings: [],
    };
  }
  return { ok: true, value: wanted[0]!, warnings: [] };
}

const parseGlobalDocument = (doc: ConfigDocument, memo?: CidrListMemo): ParseResult<GlobalConfig> =>
  parseGlobalConfig(doc.data, doc.ref, DEFAULT_LIMITS, memo);

// A document read as an allowlist whose data has neither `egress` nor `blocked_egress_action` is taken as the list itself.
const allowlistData = (data: ConfigDocument['data']): ConfigDocument['data'] =>
  'egress' in data || 'blocked_egress_action' in data ? data : { egress: data };
const parseAllowlistDocument = ({ data, ref }: ConfigDocument): ParseResult<readonly AllowlistEntry[]> =>
  parseAllowlist(allowlistData(data), ref, DEFAULT_LIMITS);

/** The global config of a --config-file's text (with the agent's memo, long CIDR lists are re-read only where they changed). */
export function globalFromText(text: string, path: string, memo?: CidrListMemo): ParseResult<GlobalConfig> {
  const docs = textDocuments(text, path);
  if (!docs.ok) return docs;
  const doc = globalDocument(path, docs.value);
  // A ConfigMap manifest keeps its own name in every message.
  return doc.ok ? parseGlobalDocument(doc.value, memo) : doc;
}

/** The entries (and blocked_egress_action) of an --allowlist-file's text. */
export function allowlistFromText(text: string, path: string): ParseResult<AllowlistFile> {
  const docs = textDocuments(text, path);
  if (!docs.ok) return docs;
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const parts: NamespacePart[] = [];
  // A file given as an allowlist is one, whatever its shape says.
  docs.value.forEach((doc, index) => {
    const r = parseAllowlistDocument(doc);
    warnings.push(...r.warnings);
    if (r.ok)
      parts.push({
        key: String(index),
        ref: doc.ref,
        entries: r.value,
        action: allowlistAction(allowlistData(doc.data)),
      });
    else errors.push(...r.errors);
  });
  // Documents of one file are objects of one namespace: the cluster agent's checks across
  // objects apply to them (entry names unique, one blocked_egress_action).
  // (Two documents of one file have one name in messages: a pair's two errors may read alike.)
  const reported = new Set<string>();
  for (const { issue } of crossObjectIssues('', parts))
    if (!reported.has(issue.message)) reported.add(issue.message) && errors.push(issue);
  const entries = parts.flatMap((part) => part.entries);
  const action = checkNamespaceObjects(parts).action;
  // Each document's issues are capped; the documents of a file together are one object's too.
  const capped = capIssues(warnings, fileRef(path));
  return errors.length
    ? { ok: false, errors: capIssues(errors, fileRef(path)), warnings: capped }
    : { ok: true, value: { entries, action }, warnings: capped };
}

export function readGlobalFile(path: string): FileReading<GlobalConfig> {
  const text = readConfigText(path);
  return { path, result: text.ok ? globalFromText(text.value, path) : text };
}

export function readAllowlistFile(path: string): FileReading<AllowlistFile> {
  const text = readConfigText(path);
  return { path, result: text.ok ? allowlistFromText(text.value, path) : text };
}

/**
 * Every object of a file, each judged alone by its shape (a global config or an allowlist), as
 * the cluster agent parses each ConfigMap: for `meshgate validate` of files whose role is not
 * given (it then runs the checks across the allowlists of each namespace: crossObjectIssues).
 */
export function readFileObjects(path: string): FileObjects {
  const docs = fileDocuments(path);
  if (!docs.ok) return { path, errors: docs.errors, objects: [] };
  const objects = docs.value.map(
    (doc): FileObject => ({
      kind: doc.kind,
      ref: doc.ref,
      action: doc.kind === 'allowlist' ? allowlistAction(allowlistData(doc.data)) : null,
      object: describeObject(doc.ref),
      result: doc.kind === 'global' ? parseGlobalDocument(doc) : parseAllowlistDocument(doc),
    }),
  );
  return { path, errors: [], objects };
}
