// The standalone file reader (src/agent/fileSources.ts), which `meshgate validate` shares: a file
// that sets nothing is refused (SPEC §1.4), and the documents of one allowlist file get the
// cluster agent's checks across objects.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { allowlistFromText, globalFromText } from '../../../src/agent/fileSources.js';
import { LastGoodStore } from '../../../src/agent/lastGood.js';
import type { ConfigIssue, ParseResult } from '../../../src/config/index.js';

const codes = (r: ParseResult<unknown>): string[] => (r.ok ? [] : r.errors.map((e: ConfigIssue) => e.code));
const ENTRY = (name: string, address: string) =>
  `- name: ${name}\n  addresses: [${address}]\n  ports: [{number: 443, protocol: TLS}]\n`;
// What `> file`, an editor's truncate-then-write, or a file of comments leaves.
const NOTHING = ['', '\n', '# the allowlist of shop\n', '---\n---\n', '  \n# a\n---\n'];

test('an allowlist file that holds no document is refused with MG_CONFIG_NO_MESHGATE_KEY, naming the file', () => {
  for (const text of NOTHING) {
    const r = allowlistFromText(text, 'shop.yaml');
    assert.deepEqual(codes(r), ['MG_CONFIG_NO_MESHGATE_KEY'], JSON.stringify(text));
    assert.match(!r.ok ? r.errors[0]!.message : '', /^file shop\.yaml: holds no YAML document/);
  }
});

test('a global config file that holds no document is refused with MG_CONFIG_NO_MESHGATE_KEY too', () => {
  for (const text of NOTHING) assert.deepEqual(codes(globalFromText(text, 'osm.yaml')), ['MG_CONFIG_NO_MESHGATE_KEY']);
});

test('"no entries" is said explicitly, and accepted: an empty list, or egress: ""', () => {
  for (const text of ['[]\n', 'egress: ""\n', '# none yet\negress: []\n']) {
    const r = allowlistFromText(text, 'shop.yaml');
    assert.ok(r.ok, JSON.stringify(text));
    assert.deepEqual(r.value.entries, []);
  }
});

test('two documents of one allowlist file that share an entry name are refused, as two ConfigMaps of a namespace are', () => {
  const r = allowlistFromText(`${ENTRY('a', '192.0.2.1')}---\n${ENTRY('a', '192.0.2.2')}`, 'shop.yaml');
  assert.deepEqual(codes(r), ['MG_ALLOWLIST_DUPLICATE_NAME']);
  assert.match(
    !r.ok ? r.errors[0]!.message : '',
    /entry \[0\] "a": name "a" is also the name of an entry in file shop\.yaml/,
  );
  // Distinct names in two documents merge.
  const ok = allowlistFromText(`${ENTRY('a', '192.0.2.1')}---\n${ENTRY('b', '192.0.2.2')}`, 'shop.yaml');
  assert.deepEqual(ok.ok ? ok.value.entries.map((e) => e.name) : codes(ok), ['a', 'b']);
});

test("standalone's store keeps an allowlist file's last good entries when the file is truncated", () => {
  const store = new LastGoodStore({
    global: (raw, ref) => globalFromText('text' in raw ? raw.text : '', ref.name),
    allowlist: (raw, ref) => allowlistFromText('text' in raw ? raw.text : '', ref.name),
  });
  const ref = { kind: 'File' as const, name: 'shop.yaml', path: 'shop.yaml' };
  const id = { key: 'file shop.yaml', kind: 'allowlist' as const, ref, namespace: 'shop' };
  store.observe(
    { key: 'file osm.yaml', kind: 'global', ref: { ...ref, name: 'osm.yaml' } },
    { text: 'egress: "false"\n' },
  );
  store.observe(id, { text: ENTRY('partner', '198.51.100.7') });
  assert.deepEqual(
    store
      .resolve()
      .allowlists.get('shop')
      ?.map((e) => e.name),
    ['partner'],
  );
  store.observe(id, { text: '' });
  const after = store.resolve();
  assert.deepEqual(
    after.allowlists.get('shop')?.map((e) => e.name),
    ['partner'],
  );
  const state = after.objects.find((o) => o.id.key === id.key)!;
  assert.equal(state.inForce, 'last-good');
  assert.deepEqual(
    state.errors.map((e) => e.code),
    ['MG_CONFIG_NO_MESHGATE_KEY'],
  );
});
