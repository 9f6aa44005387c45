import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalAddress, orderAddresses } from '../../../src/dns/addressOrder.js';
import { isQueryableHostname, normalizeHost } from '../../../src/dns/hostname.js';

describe('orderAddresses', () => {
  it('puts IPv4 first and sorts each family numerically, not as text', () => {
    assert.deepEqual(
      orderAddresses(['10.0.0.10', '9.255.0.1', '10.0.0.9'], ['2001:db8::a', '2001:db8::9', '::1', 'fe80::1']),
      ['9.255.0.1', '10.0.0.9', '10.0.0.10', '::1', '2001:db8::9', '2001:db8::a', 'fe80::1'],
    );
  });

  it('orders IPv6 with an embedded IPv4 tail by its numeric value', () => {
    assert.deepEqual(orderAddresses([], ['::ffff:10.0.0.2', '::ffff:9.0.0.1', '::1']), [
      '::1',
      '::ffff:9.0.0.1',
      '::ffff:10.0.0.2',
    ]);
  });

  it('removes duplicates', () => {
    assert.deepEqual(orderAddresses(['192.0.2.1', '192.0.2.1'], ['2001:db8::1', '2001:db8::1']), [
      '192.0.2.1',
      '2001:db8::1',
    ]);
  });
});

describe('canonicalAddress', () => {
  it('canonicalises IPv6 text so that spellings of one address compare equal', () => {
    assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1', 6), '2001:db8::1');
  });

  it('refuses the wrong family, scoped addresses and garbage', () => {
    assert.equal(canonicalAddress('2001:db8::1', 4), null);
    assert.equal(canonicalAddress('192.0.2.1', 6), null);
    assert.equal(canonicalAddress('fe80::1%eth0', 6), null);
    assert.equal(canonicalAddress('nonsense', 4), null);
  });
});

describe('host names', () => {
  it('normalises case, surrounding space and the root dot', () => {
    assert.equal(normalizeHost(' API.Stripe.com. '), 'api.stripe.com');
  });

  it('accepts ordinary names and refuses wildcards, literals and malformed labels', () => {
    for (const ok of ['api.stripe.com', 'localhost', '_srv.example.com', 'a-b.example', 'xn--bcher-kva.example']) {
      assert.equal(isQueryableHostname(ok), true, ok);
    }
    const tooLong = `${`${'a'.repeat(63)}.`.repeat(4)}example`;
    for (const bad of [
      '',
      '*.example.com',
      '203.0.113.5',
      '2001:db8::1',
      'a..b',
      '-a.example',
      'a-.example',
      tooLong,
    ]) {
      assert.equal(isQueryableHostname(bad), false, bad);
    }
  });
});
