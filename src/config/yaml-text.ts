// YAML text -> plain values, with the first syntax error located by line and column.
// Parsing is YAML 1.2 (so `yes` is a string, not a boolean) with duplicate keys refused.
import { type Document, type EmptyStream, LineCounter, parseAllDocuments, parseDocument } from 'yaml';
import { readSimpleMapping } from './yaml-simple.js';

export type YamlRead =
  | { readonly ok: true; readonly value: unknown; readonly empty: boolean; readonly line: number }
  | { readonly ok: false; readonly line: number; readonly column: number; readonly reason: string; readonly documentLine: number };

const OPTIONS = { prettyErrors: false, uniqueKeys: true, strict: true } as const;
// Bounds alias expansion ("billion laughs"): a config never needs more.
const MAX_ALIAS_COUNT = 100;

function toValue(doc: Document, lineCounter: LineCounter): YamlRead {
  const startPos = lineCounter.linePos(doc.range?.[0] ?? 0);
  const error = doc.errors[0];
  if (error !== undefined) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    return { ok: false, line, column: col, reason: error.message.replace(/\s+/g, ' ').trim(), documentLine: startPos.line };
  }
  try {
    const value: unknown = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    return { ok: true, value, empty: doc.contents === null || value === null, line: startPos.line };
  } catch (err) {
    // toJS reports unresolved or excessive aliases by throwing.
    const reason = err instanceof Error ? err.message : 'the document cannot be converted';
    return { ok: false, line: startPos.line, column: startPos.col, reason, documentLine: startPos.line };
  }
}

/** One YAML value (a ConfigMap data value). A stream of several documents is an error. */
export function parseYamlValue(text: string): YamlRead {
  const lineCounter = new LineCounter();
  return toValue(parseDocument(text, { ...OPTIONS, lineCounter }), lineCounter);
}

/** Every document of a file, in order (`---` separated). An empty file has none. */
export function parseYamlDocuments(text: string): YamlRead[] {
  // A flat map of quoted strings and literal blocks (an osm-config key/value file) is read without
  // the general parser; yaml-simple.ts says which texts, and they read the same either way.
  const simple = readSimpleMapping(text);
  if (simple !== undefined) return [{ ok: true, value: simple, empty: false, line: 1 }];
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { ...OPTIONS, lineCounter });
  if (docs.length === 0) {
    // An empty stream can still carry errors (e.g. a stray directive).
    const error = 'empty' in docs ? (docs as EmptyStream).errors[0] : undefined;
    if (error === undefined) return [];
    const { line, col } = lineCounter.linePos(error.pos[0]);
    return [{ ok: false, line, column: col, reason: error.message.replace(/\s+/g, ' ').trim(), documentLine: 1 }];
  }
  return docs.map((doc) => toValue(doc, lineCounter));
}
