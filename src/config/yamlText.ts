// YAML text -> plain values, with the first syntax error located by line and column.
// Parsing is YAML 1.2 (so `yes` is a string, not a boolean) with duplicate keys refused.
import { type Document, type EmptyStream, LineCounter, parseAllDocuments, parseDocument } from 'yaml';
import { readSimpleMapping } from './yamlSimple.js';

export type YamlRead =
  | { readonly ok: true; readonly value: unknown; readonly empty: boolean; readonly line: number }
  | {
      readonly ok: false;
      readonly line: number;
      readonly column: number;
      readonly reason: string;
      readonly documentLine: number;
    };

const OPTIONS = { prettyErrors: false, uniqueKeys: true, strict: true } as const;
// Bounds alias expansion ("billion laughs"): a config never needs more.
const MAX_ALIAS_COUNT = 100;

// Deeper flow nesting ([[[[…) is refused before parsing: a config never needs it, and the parser
// would spend its whole stack on it.
export const MAX_NESTING = 64;

/** The first place where flow collections nest deeper than MAX_NESTING (quoted text skipped), or null. */
export function tooDeep(text: string): { offset: number } | null {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      else if (c === '\n' && quote === "'") quote = ''; // a stray quote: stop skipping at the line's end
    } else if (c === '"' || c === "'") {
      const prev = text[i - 1];
      if (prev === undefined || /[\s:,[{]/.test(prev)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '[' || c === '{') {
      if (++depth > MAX_NESTING) return { offset: i };
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    }
  }
  return null;
}

/** The key text at a duplicate-key error's position (the parser names none). */
function keyAt(text: string, offset: number): string {
  const rest = text.slice(offset, offset + 200).split('\n')[0] ?? '';
  const quoted = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')/.exec(rest);
  const key = quoted ? quoted[1]! : rest.split(/:(?:\s|$)/)[0]!.trim();
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
}

/** The parser's error as one sentence; the ones it words for itself get their key or limit named. */
function reasonOf(error: Document['errors'][number], text: string): string {
  if (error.code === 'DUPLICATE_KEY')
    return `duplicate key ${keyAt(text, error.pos[0])}: a key may appear only once in a map`;
  if (error.code === 'RESOURCE_EXHAUSTION')
    return `nesting too deep to read (a config needs at most ${MAX_NESTING} levels)`;
  return error.message.replace(/\s+/g, ' ').trim();
}

function toValue(doc: Document, lineCounter: LineCounter, text: string): YamlRead {
  const startPos = lineCounter.linePos(doc.range?.[0] ?? 0);
  const error = doc.errors[0];
  if (error !== undefined) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    return { ok: false, line, column: col, reason: reasonOf(error, text), documentLine: startPos.line };
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

function nestingError(text: string, offset: number): YamlRead {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return {
    ok: false,
    line,
    column: offset - lineStart + 1,
    reason: `flow collections ([ or {) nest deeper than ${MAX_NESTING} levels; a config never needs that many`,
    documentLine: 1,
  };
}

/** One YAML value (a ConfigMap data value). A stream of several documents is an error. */
export function parseYamlValue(text: string): YamlRead {
  const deep = tooDeep(text);
  if (deep) return nestingError(text, deep.offset);
  const lineCounter = new LineCounter();
  return toValue(parseDocument(text, { ...OPTIONS, lineCounter }), lineCounter, text);
}

/** Every document of a file, in order (`---` separated). An empty file has none. */
export function parseYamlDocuments(text: string): YamlRead[] {
  // A flat map of quoted strings and literal blocks (an osm-config key/value file) is read without
  // the general parser; yamlSimple.ts says which texts, and they read the same either way.
  const simple = readSimpleMapping(text);
  if (simple !== undefined) return [{ ok: true, value: simple, empty: false, line: 1 }];
  const deep = tooDeep(text);
  if (deep) return [nestingError(text, deep.offset)];
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { ...OPTIONS, lineCounter });
  if (docs.length === 0) {
    // An empty stream can still carry errors (e.g. a stray directive).
    const error = 'empty' in docs ? (docs as EmptyStream).errors[0] : undefined;
    if (error === undefined) return [];
    const { line, col } = lineCounter.linePos(error.pos[0]);
    return [{ ok: false, line, column: col, reason: error.message.replace(/\s+/g, ' ').trim(), documentLine: 1 }];
  }
  return docs.map((doc) => toValue(doc, lineCounter, text));
}
