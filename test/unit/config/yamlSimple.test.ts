// The simple-mapping reader agrees with the general YAML parser on every text it accepts, and
// accepts the osm-config key/value shape.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseYamlDocuments } from '../../../src/config/yamlText.js';
import { readSimpleMapping } from '../../../src/config/yamlSimple.js';
import { parseAllDocuments } from 'yaml';

/** What the general parser alone makes of the text (the reference). */
function general(text: string): unknown {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, prettyErrors: false });
  if (!Array.isArray(docs) || docs.length !== 1 || docs[0]!.errors.length) return 'not one valid document';
  return docs[0]!.toJS();
}

const char = fc.constantFrom(
  'a',
  'Z',
  '0',
  ' ',
  '"',
  '\\',
  ':',
  '#',
  '-',
  ',',
  '/',
  '.',
  '|',
  '\t',
  "'",
  '[',
  '{',
  '&',
  '*',
  '!',
  '%',
  '\u00e9',
);
const cleanChar = fc.constantFrom(
  'a',
  'Z',
  '0',
  '9',
  ' ',
  ':',
  '-',
  ',',
  '/',
  '.',
  '[',
  ']',
  '{',
  '}',
  '#',
  "'",
  '|',
  '>',
);
// Mostly texts inside the simple subset (so the comparison has something to check), some not.
const word = fc.oneof(
  { weight: 3, arbitrary: fc.stringOf(cleanChar, { maxLength: 12 }) },
  { weight: 1, arbitrary: fc.stringOf(char, { maxLength: 12 }) },
);
const key = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('egress', 'mesh_cidr_ranges', 'egress_allowlist', 'a', '_x1', 'True', 'null'),
  },
  { weight: 1, arbitrary: word },
);
const blockLine = fc.oneof(
  fc.constant(''),
  fc.tuple(fc.integer({ min: 0, max: 4 }), word).map(([n, w]) => ' '.repeat(n) + w),
);
const value = fc.oneof(
  { weight: 3, arbitrary: word.map((w) => `"${w}"`) },
  {
    weight: 3,
    arbitrary: fc
      .array(blockLine, { minLength: 1, maxLength: 5 })
      .map((ls) => `|\n${ls.map((l) => `  ${l}`).join('\n')}`),
  },
  { weight: 1, arbitrary: word },
  { weight: 1, arbitrary: fc.constantFrom('|', '"', '""', "'x'", '|-', '>') },
);
const doc = fc
  .array(fc.tuple(key, value, fc.constantFrom('', '\n')), { minLength: 1, maxLength: 5 })
  .map((pairs) => pairs.map(([k, v, gap]) => `${k}: ${v}\n${gap}`).join(''));

test('every text the simple reader accepts reads the same with the general parser', () => {
  let accepted = 0;
  fc.assert(
    fc.property(doc, (text) => {
      const simple = readSimpleMapping(text);
      if (simple === undefined) return;
      accepted++;
      assert.deepEqual(simple, general(text), JSON.stringify(text));
      assert.deepEqual(parseYamlDocuments(text), [{ ok: true, value: simple, empty: false, line: 1 }]);
    }),
    { numRuns: 4000 },
  );
  assert.ok(accepted > 150, `only ${accepted} texts took the simple path: the test checks too little`);
});

test('an osm-config key/value file takes the simple path', () => {
  const text =
    'egress: "false"\nmesh_cidr_ranges: "10.0.0.0/8,10.1.0.0/16"\negress_allowlist: |\n  - name: web\n    addresses: [203.0.113.10]\n    ports: [{number: 80, protocol: TCP}]\n';
  assert.deepEqual(readSimpleMapping(text), {
    egress: 'false',
    mesh_cidr_ranges: '10.0.0.0/8,10.1.0.0/16',
    egress_allowlist: '- name: web\n  addresses: [203.0.113.10]\n  ports: [{number: 80, protocol: TCP}]\n',
  });
  for (const other of [
    'egress: false\n',
    'a: "x" # c\n',
    'a: "x"\na: "y"\n',
    '---\na: "x"\n',
    'a: "\\t"\n',
    'a:\n  b: "c"\n',
  ])
    assert.equal(readSimpleMapping(other), undefined, other);
});
