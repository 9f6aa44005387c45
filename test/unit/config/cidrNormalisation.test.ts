import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseGlobalConfig } from '../../../src/config/index.js';
import { GLOBAL_REF, allIssues, assertOk, codesOf } from './issueAssertions.js';

function meshCidrs(text: string): { cidrs: readonly string[]; warnings: string[] } {
  const result = parseGlobalConfig({ mesh_cidr_ranges: text }, GLOBAL_REF);
  return { cidrs: assertOk(result).meshCidrs, warnings: codesOf(result.warnings) };
}

const NORMALISED: ReadonlyArray<{ behaviour: string; input: string; cidrs: string[]; warnings?: string[] }> = [
  { behaviour: 'a bare IPv4 address becomes a /32', input: '203.0.113.9', cidrs: ['203.0.113.9/32'] },
  { behaviour: 'a bare IPv6 address becomes a /128', input: '2001:DB8::1', cidrs: ['2001:db8::1/128'] },
  {
    behaviour: 'IPv6 is written in RFC 5952 form',
    input: '2001:0db8:0000:0000:0000:0000:0000:0000/32',
    cidrs: ['2001:db8::/32'],
  },
  {
    behaviour: 'host bits are cleared, with a warning',
    input: '10.0.0.1/8',
    cidrs: ['10.0.0.0/8'],
    warnings: ['MG_WARN_HOST_BITS'],
  },
  {
    behaviour: 'IPv6 host bits are cleared, with a warning',
    input: 'fd00::1/8',
    cidrs: ['fd00::/8'],
    warnings: ['MG_WARN_HOST_BITS'],
  },
  { behaviour: 'a /0 is a valid (if wide) prefix', input: '0.0.0.0/0 ::/0', cidrs: ['0.0.0.0/0', '::/0'] },
  {
    behaviour: 'duplicates after normalisation are merged, with a warning',
    input: '10.0.0.0/8 10.1.2.3/8',
    cidrs: ['10.0.0.0/8'],
    warnings: ['MG_WARN_HOST_BITS', 'MG_WARN_DUPLICATE'],
  },
  {
    behaviour: 'IPv4-mapped IPv6 becomes IPv4 (the datapath decides it as IPv4)',
    input: '::ffff:10.0.0.0/104',
    cidrs: ['10.0.0.0/8'],
  },
  { behaviour: 'an IPv4-mapped address in hex becomes IPv4', input: '::ffff:a00:1', cidrs: ['10.0.0.1/32'] },
  {
    behaviour: 'an IPv4-mapped duplicate of an IPv4 CIDR is merged',
    input: '10.0.0.0/8 ::ffff:10.0.0.0/104',
    cidrs: ['10.0.0.0/8'],
    warnings: ['MG_WARN_DUPLICATE'],
  },
  { behaviour: 'a prefix shorter than /96 covering the mapped range stays IPv6', input: '::/80', cidrs: ['::/80'] },
  {
    behaviour: 'overlapping but different CIDRs are both kept',
    input: '10.0.0.0/8 10.1.0.0/16',
    cidrs: ['10.0.0.0/8', '10.1.0.0/16'],
  },
];

for (const { behaviour, input, cidrs, warnings = [] } of NORMALISED) {
  test(`normalise: ${behaviour}`, () => {
    assert.deepEqual(meshCidrs(input), { cidrs, warnings });
  });
}

const REFUSED: ReadonlyArray<{ input: string; code: string; reason: RegExp }> = [
  { input: '10.0.0.0/33', code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE', reason: /outside 0\.\.32 for IPv4/ },
  { input: '2001:db8::/129', code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE', reason: /outside 0\.\.128 for IPv6/ },
  { input: '10.0.0.0/-1', code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE', reason: /prefix length \/-1/ },
  { input: '10.0.0.0/4294967328', code: 'MG_CONFIG_PREFIX_OUT_OF_RANGE', reason: /outside/ },
  { input: '10.0.0.0/', code: 'MG_CONFIG_BAD_CIDR', reason: /not a number/ },
  { input: '10.0.0.0/8a', code: 'MG_CONFIG_BAD_CIDR', reason: /not a number/ },
  { input: '10.0.0.0/8/8', code: 'MG_CONFIG_BAD_CIDR', reason: /not an IPv4 or IPv6/ },
  { input: '10.0.0.256', code: 'MG_CONFIG_BAD_CIDR', reason: /not an IPv4 or IPv6/ },
  { input: '10.1/16', code: 'MG_CONFIG_BAD_CIDR', reason: /four decimal octets/ },
  { input: '010.0.0.1', code: 'MG_CONFIG_BAD_CIDR', reason: /leading zeros/ },
  { input: '0x0a.0.0.1', code: 'MG_CONFIG_BAD_CIDR', reason: /four decimal octets/ },
  { input: '167772161', code: 'MG_CONFIG_BAD_CIDR', reason: /four decimal octets/ },
  { input: 'fe80::1%eth0', code: 'MG_CONFIG_BAD_CIDR', reason: /zone/ },
  { input: '::10.0.0.1', code: 'MG_CONFIG_BAD_CIDR', reason: /deprecated IPv4-compatible/ },
  { input: '1.2.3.4:80', code: 'MG_CONFIG_BAD_CIDR', reason: /not an IPv4 or IPv6/ },
  { input: '2001:db8::1::2', code: 'MG_CONFIG_BAD_CIDR', reason: /not an IPv4 or IPv6/ },
  { input: 'example.com', code: 'MG_CONFIG_BAD_CIDR', reason: /not an IPv4 or IPv6/ },
  { input: `${'1'.repeat(100000)}/8`, code: 'MG_CONFIG_BAD_CIDR', reason: /not an IPv4 or IPv6/ },
];

for (const { input, code, reason } of REFUSED) {
  test(`refuse: ${input.slice(0, 40)} is ${code}`, () => {
    const issues = allIssues(parseGlobalConfig({ mesh_cidr_ranges: input }, GLOBAL_REF));
    assert.deepEqual(codesOf(issues), [code]);
    assert.match(issues[0]?.message ?? '', reason);
  });
}

test('normalised output parses again to itself without warnings', () => {
  const first = meshCidrs('10.0.0.1/8 ::ffff:192.168.0.0/112 2001:DB8:0::1/48 203.0.113.7');
  const second = meshCidrs(first.cidrs.join(','));
  assert.deepEqual(second, { cidrs: first.cidrs, warnings: [] });
});
