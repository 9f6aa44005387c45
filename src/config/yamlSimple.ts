// A fast reader for the simplest YAML files meshgate reads: a flat map of
// `key: "double-quoted"` and `key: |` literal blocks, as an osm-config
// key/value file is written. A 50,000-CIDR mesh_cidr_ranges is 800 KB on one
// line, which the general parser reads character by character into a
// document tree; this reads it with indexOf. Anything outside this subset
// (comments, other scalar styles, flow collections, tabs, CR, odd
// characters, duplicate keys, indicators) returns undefined, and the caller
// uses the general parser: the two agree on every text this accepts (a
// property test checks it).

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Keys the core schema reads as booleans or null. */
const SPECIAL_KEY = /^(true|false|null)$/i;
/** Printable ASCII without the double quote and the backslash. */
const QUOTED_SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/** A literal block's line: printable ASCII, not ending in a space. */
const BLOCK_LINE_SAFE = /^[\x20-\x7e]*[\x21-\x7e]$/;

/** The map a flat simple document holds, or undefined when the text is not in the subset. */
export function readSimpleMapping(text: string): Record<string, string> | undefined {
  if (!text.endsWith('\n') || text.includes('\r') || text.includes('\t')) return undefined;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const out: Record<string, string> = {};
  let i = 0;
  if (lines.length === 0 || lines[0] === '') return undefined;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line === '') {
      i++;
      continue;
    }
    const colon = line.indexOf(': ');
    if (colon <= 0) return undefined;
    const key = line.slice(0, colon);
    if (!KEY.test(key) || SPECIAL_KEY.test(key) || Object.hasOwn(out, key)) return undefined;
    const rest = line.slice(colon + 2);
    if (rest === '|') {
      // A literal block, clip chomping: content lines share the first one's indentation.
      i++;
      const content: string[] = [];
      let indent = -1;
      while (i < lines.length) {
        const l = lines[i]!;
        if (l === '') {
          content.push('');
          i++;
          continue;
        }
        const spaces = l.length - l.trimStart().length;
        if (indent < 0) {
          if (spaces === 0) break;
          indent = spaces;
        }
        if (spaces === 0) break;
        if (spaces < indent || !BLOCK_LINE_SAFE.test(l)) return undefined;
        content.push(l.slice(indent));
        i++;
      }
      while (content.length && content.at(-1) === '') content.pop();
      if (content.length === 0) return undefined;
      out[key] = `${content.join('\n')}\n`;
      continue;
    }
    if (rest.length < 2 || rest[0] !== '"' || rest.at(-1) !== '"') return undefined;
    const value = rest.slice(1, -1);
    if (!QUOTED_SAFE.test(value)) return undefined;
    out[key] = value;
    i++;
  }
  return Object.keys(out).length ? out : undefined;
}
