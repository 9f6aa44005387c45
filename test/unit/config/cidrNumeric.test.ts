// The numeric CIDR reader and the radix-sorted normaliser agree with the ipaddr.js path on
// every input: same canonical text, host-bit flag, family, issues and order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  normaliseCidrList,
  normaliseCidrTexts,
  parseCidr,
  parseCidrSlowly,
  type CidrListIssue,
} from '../../../src/config/cidr.js';
import { FALLBACK, newCidrBytes, parseCidrBytes } from '../../../src/config/cidrNumeric.js';

const hex = (n: number, upper: boolean, pad: boolean) => {
  const t = n.toString(16).padStart(pad ? 4 : 1, '0');
  return upper ? t.toUpperCase() : t;
};
const octet = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.constantFrom('0', '00', '01', '256', '999', '1000', ''),
);
const ipv4 = fc.array(octet, { minLength: 3, maxLength: 5 }).map((o) => o.join('.'));
const group = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
);
const ipv6 = fc
  .record({
    groups: fc.array(group, { minLength: 0, maxLength: 9 }),
    gapAt: fc.option(fc.nat(9)),
    upper: fc.boolean(),
    pad: fc.boolean(),
    mapped: fc.boolean(),
    tail: fc.option(ipv4),
  })
  .map(({ groups, gapAt, upper, pad, mapped, tail }) => {
    const parts = groups.map((g) => hex(g, upper, pad));
    if (mapped) parts.splice(0, parts.length, '', '', 'ffff', ...parts.slice(0, 2));
    let text = parts.join(':');
    if (gapAt !== null) {
      const at = Math.min(gapAt, parts.length);
      text = `${parts.slice(0, at).join(':')}::${parts.slice(at).join(':')}`;
    }
    return tail ? `${text}:${tail}` : text;
  });
const prefix = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 0, max: 140 }).map((p) => `/${p}`),
  fc.constantFrom('/', '/08', '/008', '/0', '/-1', '/1a', '/32/1'),
);
const junk = fc.constantFrom('', ' ', '%eth0', 'x', '::', ':');
// IPv4 written both ways, so that duplicates across the forms are common.
const dual = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.boolean())
  .map(([a, b, mapped]) => (mapped ? `::ffff:a0${a}:${b}00/${104 + b}` : `10.${a}.${b}.0/${8 + b}`));
const cidrText = fc
  .tuple(fc.oneof(ipv4, ipv6, fc.string({ maxLength: 12 })), prefix, junk)
  .map(([a, p, j]) => (j === ' ' ? ` ${a}${p}` : `${a}${p}${j}`));

test('parseCidr (numeric first) equals the ipaddr.js path on any text', () => {
  fc.assert(
    fc.property(cidrText, (text) => {
      assert.deepEqual(parseCidr(text), parseCidrSlowly(text), text);
    }),
    { numRuns: 5_000 },
  );
});

test('the numeric reader handles the common forms itself (no fallback)', () => {
  const r = newCidrBytes();
  for (const text of [
    '10.0.0.0/8',
    '10.1.2.3',
    '0.0.0.0/0',
    '2001:db8::/32',
    '::/0',
    '::1',
    'FD00::1/8',
    '1:2:3:4:5:6:7:8/128',
    '::ffff:a00:0/104',
  ]) {
    assert.notEqual(parseCidrBytes(text, r), FALLBACK, text);
  }
  for (const text of ['010.0.0.1', '10.1', '::ffff:1.2.3.4', 'fe80::1%eth0', '10.0.0.0/0008'])
    assert.equal(parseCidrBytes(text, r), FALLBACK, text);
});

test("normaliseCidrTexts gives normaliseCidrList's texts, order and issues", () => {
  const item = fc.oneof(
    { weight: 8, arbitrary: cidrText },
    { weight: 4, arbitrary: dual },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null)) },
  );
  fc.assert(
    fc.property(fc.array(item, { maxLength: 60 }), fc.array(fc.nat(59), { maxLength: 10 }), (items, dupes) => {
      const list: unknown[] = [...items];
      for (const d of dupes) if (list.length) list.push(list[d % list.length]); // exact duplicates too
      const slowIssues: CidrListIssue[] = [];
      const fastIssues: CidrListIssue[] = [];
      const slow = normaliseCidrList(list, (i) => slowIssues.push(i)).map((c) => c.text);
      const fast = normaliseCidrTexts(list, (i) => fastIssues.push(i));
      assert.deepEqual(fast, slow);
      assert.deepEqual(fastIssues, slowIssues);
    }),
    { numRuns: 1_000 },
  );
});

test('normaliseCidrTexts agrees on lists either side of its radix threshold (1,024 items of a family)', () => {
  // Short ranges are sorted by comparison, long ones by radix passes; lists of 900 to 2,600 items
  // put each family's range on either side, with the duplicates merged in both.
  const item = fc.oneof({ weight: 8, arbitrary: cidrText }, { weight: 4, arbitrary: dual });
  fc.assert(
    fc.property(fc.array(item, { minLength: 900, maxLength: 2_600 }), (items) => {
      const list = [...items, ...items.slice(0, 50)];
      const slowIssues: CidrListIssue[] = [];
      const fastIssues: CidrListIssue[] = [];
      const slow = normaliseCidrList(list, (i) => slowIssues.push(i)).map((c) => c.text);
      assert.deepEqual(
        normaliseCidrTexts(list, (i) => fastIssues.push(i)),
        slow,
      );
      assert.deepEqual(fastIssues, slowIssues);
    }),
    { numRuns: 25 },
  );
});

test('a 100,000-item list is sorted as compareCidrs sorts it, duplicates merged', () => {
  const items: string[] = [];
  for (let i = 0; i < 100_000; i++)
    items.push(
      i % 7 === 0
        ? `fd00:${(i * 7919) % 65536}::/${32 + (i % 90)}`
        : `10.${(i * 31) % 256}.${(i * 17) % 256}.0/${16 + (i % 17)}`,
    );
  const fast = normaliseCidrTexts(items, () => undefined);
  const slow = normaliseCidrList(items, () => undefined).map((c) => c.text);
  assert.deepEqual(fast, slow);
});
