// The built-in resolver path (Node's c-ares Resolver) against a real DNS server on 127.0.0.1.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { HostResolver } from '../../../src/dns/hostResolver.js';
import { startDnsServer, type DnsTestRecords } from '../../helpers/dnsServer.js';
import { recordingLogger, waitForHost } from './support.js';

const HOST = 'api.stripe.test';
const TEST_TIMEOUT = { timeout: 5_000 };

const BOTH_FAMILIES: DnsTestRecords = {
  [HOST]: {
    a: [
      { address: '203.0.113.20', ttl: 1 },
      { address: '203.0.113.3', ttl: 1 },
    ],
    aaaa: [
      { address: '2001:db8::10', ttl: 1 },
      { address: '2001:db8::9', ttl: 1 },
    ],
  },
};

/** A server plus a resolver pointed at it, both torn down when the test ends. */
async function setup(t: TestContext, records: DnsTestRecords) {
  const server = await startDnsServer(records);
  const logger = recordingLogger();
  const resolver = new HostResolver({
    servers: [`127.0.0.1:${server.port}`],
    floorMs: 50,
    ceilingMs: 200, // 1 s TTLs clamp down to this
    graceMs: 400,
    retryMs: 50,
    timeoutMs: 100,
    tries: 1,
    logger,
  });
  t.after(async () => {
    resolver.close();
    await server.stop();
  });
  return { server, resolver, logger };
}

describe('HostResolver against a DNS server', () => {
  it('resolves A and AAAA records into sorted addresses', TEST_TIMEOUT, async (t) => {
    const { server, resolver } = await setup(t, BOTH_FAMILIES);
    resolver.setHosts([HOST.toUpperCase()]);
    await resolver.whenSettled();
    const view = resolver.snapshot().get(HOST);
    assert.equal(view?.state, 'fresh');
    assert.deepEqual(view?.addresses, ['203.0.113.3', '203.0.113.20', '2001:db8::9', '2001:db8::10']);
    assert.equal((view?.nextRefreshAt ?? 0) - (view?.resolvedAt ?? 0), 200, 'TTL 1 s clamped to the ceiling');
    assert.ok(server.queries() >= 2);
  });

  it('accepts a host with only A records', TEST_TIMEOUT, async (t) => {
    const { resolver } = await setup(t, { [HOST]: { a: [{ address: '192.0.2.1', ttl: 60 }] } });
    resolver.setHosts([HOST]);
    await resolver.whenSettled();
    assert.equal(resolver.snapshot().get(HOST)?.state, 'fresh');
    assert.deepEqual(resolver.snapshot().get(HOST)?.addresses, ['192.0.2.1']);
  });

  it('marks a name that does not exist as failed', TEST_TIMEOUT, async (t) => {
    const { resolver } = await setup(t, {});
    resolver.setHosts([HOST]);
    await resolver.whenSettled();
    const view = resolver.snapshot().get(HOST);
    assert.equal(view?.state, 'failed');
    assert.equal(view?.lastError, `ENOTFOUND ${HOST}`);
  });

  it('re-queries when the TTL expires and reports a changed answer', TEST_TIMEOUT, async (t) => {
    const { server, resolver } = await setup(t, BOTH_FAMILIES);
    resolver.setHosts([HOST]);
    await resolver.whenSettled();
    const queriesBefore = server.queries();
    const changes: string[][] = [];
    resolver.onChange((hosts) => changes.push([...hosts]));

    server.setRecords({ [HOST]: { a: [{ address: '198.51.100.7', ttl: 1 }] } });
    const view = await waitForHost(resolver, HOST, (v) => v.addresses.includes('198.51.100.7'));
    assert.deepEqual(view.addresses, ['198.51.100.7']);
    assert.equal(view.state, 'fresh');
    assert.ok(server.queries() > queriesBefore);
    assert.deepEqual(changes[0], [HOST]);
  });

  for (const fail of ['SERVFAIL', 'DROP'] as const) {
    it(`keeps the last addresses on ${fail} within grace, then drops them`, TEST_TIMEOUT, async (t) => {
      const { server, resolver, logger } = await setup(t, BOTH_FAMILIES);
      resolver.setHosts([HOST]);
      await resolver.whenSettled();
      const good = resolver.snapshot().get(HOST)?.addresses;

      server.setRecords({ [HOST]: { fail } });
      const stale = await waitForHost(resolver, HOST, (v) => v.state !== 'fresh');
      assert.equal(stale.state, 'stale');
      assert.deepEqual(stale.addresses, good);
      assert.equal(stale.lastError, `${fail === 'DROP' ? 'ETIMEOUT' : 'ESERVFAIL'} ${HOST}`);
      assert.ok(
        logger.lines.some((l) => l.level === 'warn' && l.msg === 'hostname refresh failed, keeping last addresses'),
      );

      const failed = await waitForHost(resolver, HOST, (v) => v.state === 'failed');
      assert.deepEqual(failed.addresses, []);
      assert.ok(
        logger.lines.some((l) => l.level === 'error' && l.msg === 'hostname grace period over, addresses dropped'),
      );
    });
  }
});
