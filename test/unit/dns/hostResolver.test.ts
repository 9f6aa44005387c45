import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { HostResolver, type HostResolverOptions, type LoggerLike } from '../../../src/dns/hostResolver.js';
import { FakeClock, ScriptedDns, flush, recordingLogger } from './support.js';

const HOST = 'api.stripe.com';

function setup(options: Partial<HostResolverOptions> = {}) {
  const clock = new FakeClock();
  const dns = new ScriptedDns();
  const logger = recordingLogger();
  const resolver = new HostResolver({
    floorMs: 5_000,
    ceilingMs: 300_000,
    graceMs: 600_000,
    retryMs: 5_000,
    clock,
    logger,
    resolve: dns.resolve,
    ...options,
  });
  const changes: string[][] = [];
  resolver.onChange((hosts) => changes.push([...hosts]));
  const view = (host = HOST) => resolver.snapshot().get(host);
  return { clock, dns, logger, resolver, changes, view };
}

describe('HostResolver', () => {
  it('resolves A and AAAA into one sorted list, IPv4 first, and settles', async () => {
    const { dns, resolver, changes, view } = setup();
    dns.set(
      HOST,
      [
        { address: '203.0.113.20', ttl: 60 },
        { address: '203.0.113.3', ttl: 60 },
        { address: '203.0.113.3', ttl: 60 },
      ],
      [
        { address: '2001:DB8::10', ttl: 60 },
        { address: '2001:db8::9', ttl: 60 },
      ],
    );
    resolver.setHosts([HOST]);
    assert.equal(view()?.state, 'pending');
    await resolver.whenSettled();

    const host = view();
    assert.deepEqual(host?.addresses, ['203.0.113.3', '203.0.113.20', '2001:db8::9', '2001:db8::10']);
    assert.equal(host?.state, 'fresh');
    assert.equal(host?.lastError, null);
    assert.equal(host?.consecutiveFailures, 0);
    assert.deepEqual(changes, [[HOST]]);
    assert.deepEqual(dns.calls.map((c) => c.family).sort(), [4, 6]);
    resolver.close();
  });

  it('clamps a TTL below the floor up to the floor', async () => {
    const { clock, dns, resolver, view } = setup({ floorMs: 5_000 });
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 1 }]);
    resolver.setHosts([HOST]);
    await flush();
    assert.equal(view()?.nextRefreshAt, clock.now() + 5_000);
    await clock.advance(4_999);
    assert.equal(dns.callsFor(HOST), 2);
    await clock.advance(1);
    assert.equal(dns.callsFor(HOST), 4);
    resolver.close();
  });

  it('clamps a TTL above the ceiling down to the ceiling', async () => {
    const { clock, dns, resolver, view } = setup({ ceilingMs: 300_000 });
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 86_400 }]);
    resolver.setHosts([HOST]);
    await flush();
    assert.equal(view()?.nextRefreshAt, clock.now() + 300_000);
    await clock.advance(300_000);
    assert.equal(dns.callsFor(HOST), 4);
    resolver.close();
  });

  it('refreshes a TTL of zero at the floor', async () => {
    const { clock, dns, resolver, view } = setup({ floorMs: 7_000 });
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 0 }]);
    resolver.setHosts([HOST]);
    await flush();
    assert.equal(view()?.nextRefreshAt, clock.now() + 7_000);
    resolver.close();
  });

  it('refreshes at the smallest TTL over both families', async () => {
    const { clock, dns, resolver, view } = setup();
    dns.set(
      HOST,
      [
        { address: '192.0.2.1', ttl: 120 },
        { address: '192.0.2.2', ttl: 90 },
      ],
      [{ address: '2001:db8::1', ttl: 30 }],
    );
    resolver.setHosts([HOST]);
    await flush();
    assert.equal(view()?.nextRefreshAt, clock.now() + 30_000);
    resolver.close();
  });

  it('fires onChange when a refresh returns a different address set', async () => {
    const { clock, dns, resolver, changes, view } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    dns.set(HOST, [{ address: '192.0.2.2', ttl: 10 }]);
    await clock.advance(10_000);
    assert.deepEqual(view()?.addresses, ['192.0.2.2']);
    assert.deepEqual(changes, [[HOST], [HOST]]);
    resolver.close();
  });

  it('does not fire onChange on an identical refresh, but records it', async () => {
    const { clock, dns, resolver, changes, view } = setup();
    dns.set(HOST, [
      { address: '192.0.2.1', ttl: 10 },
      { address: '192.0.2.2', ttl: 10 },
    ]);
    resolver.setHosts([HOST]);
    await flush();
    const first = view();
    dns.set(HOST, [
      { address: '192.0.2.2', ttl: 10 },
      { address: '192.0.2.1', ttl: 10 },
    ]); // order differs only
    await clock.advance(10_000);
    assert.deepEqual(changes, [[HOST]]);
    assert.equal(dns.callsFor(HOST), 4);
    assert.equal(view()?.resolvedAt, (first?.resolvedAt ?? 0) + 10_000);
    resolver.close();
  });

  it('treats a host with only A records as resolved (AAAA ENODATA or ENOTFOUND)', async () => {
    for (const aaaa of ['ENODATA', 'ENOTFOUND']) {
      const { dns, resolver, view } = setup();
      dns.set(HOST, [{ address: '192.0.2.1', ttl: 60 }], aaaa);
      resolver.setHosts([HOST]);
      await resolver.whenSettled();
      assert.equal(view()?.state, 'fresh', aaaa);
      assert.deepEqual(view()?.addresses, ['192.0.2.1']);
      assert.equal(view()?.lastError, null);
      resolver.close();
    }
  });

  it('treats "no data" on both families as a successful empty answer', async () => {
    const { dns, resolver, view } = setup();
    dns.set(HOST, 'ENODATA', 'ENODATA');
    resolver.setHosts([HOST]);
    await resolver.whenSettled();
    assert.equal(view()?.state, 'fresh');
    assert.deepEqual(view()?.addresses, []);
    resolver.close();
  });

  it('marks a host that never resolved as failed, warns, and retries after retryMs', async () => {
    const { clock, dns, logger, resolver, changes, view } = setup({ retryMs: 8_000 });
    dns.set(HOST, 'ENOTFOUND', 'ENOTFOUND');
    resolver.setHosts([HOST]);
    await resolver.whenSettled();
    assert.equal(view()?.state, 'failed');
    assert.deepEqual(view()?.addresses, []);
    assert.equal(view()?.lastError, `ENOTFOUND ${HOST}`);
    assert.equal(view()?.consecutiveFailures, 1);
    assert.equal(view()?.resolvedAt, null);
    assert.deepEqual(changes, [[HOST]]);
    assert.equal(logger.lines.filter((l) => l.level === 'warn' && l.fields.host === HOST).length, 1);

    await clock.advance(8_000);
    assert.equal(dns.callsFor(HOST), 4);
    assert.equal(view()?.consecutiveFailures, 2);
    assert.deepEqual(changes, [[HOST]], 'a repeated failure is not a change');
    assert.equal(logger.lines.filter((l) => l.level === 'warn').length, 1, 'warned once, not on every retry');

    dns.set(HOST, [{ address: '192.0.2.1', ttl: 60 }]);
    await clock.advance(8_000);
    assert.equal(view()?.state, 'fresh');
    assert.equal(view()?.consecutiveFailures, 0);
    resolver.close();
  });

  it('keeps the last addresses within the grace period, then drops them', async () => {
    const { clock, dns, logger, resolver, changes, view } = setup({ graceMs: 12_000, retryMs: 5_000 });
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }], [{ address: '2001:db8::1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    const resolvedAt = view()?.resolvedAt;

    dns.set(HOST, 'ESERVFAIL', 'ESERVFAIL');
    await clock.advance(10_000); // first failure: grace starts now
    assert.equal(view()?.state, 'stale');
    assert.deepEqual(view()?.addresses, ['192.0.2.1', '2001:db8::1']);
    assert.equal(view()?.lastError, `ESERVFAIL ${HOST}`);
    assert.equal(view()?.resolvedAt, resolvedAt);
    const warning = logger.lines.find((l) => l.msg === 'hostname refresh failed, keeping last addresses');
    assert.deepEqual(warning?.fields, { module: 'dns', host: HOST, err: `ESERVFAIL ${HOST}`, graceLeftMs: 12_000 });
    assert.equal(changes.length, 2);

    await clock.advance(10_000); // retries at +5 s and +10 s, still within grace
    assert.equal(view()?.state, 'stale');
    assert.equal(view()?.consecutiveFailures, 3);
    assert.equal(changes.length, 2, 'a still-stale host is not a change');

    await clock.advance(2_000); // the retry is pulled in to the exact end of grace
    assert.equal(view()?.state, 'failed');
    assert.deepEqual(view()?.addresses, []);
    assert.equal(changes.length, 3);
    const dropped = logger.lines.filter((l) => l.msg === 'hostname grace period over, addresses dropped');
    assert.equal(dropped.length, 2, 'one line per family');
    assert.ok(dropped.every((l) => l.level === 'error' && l.fields.host === HOST));

    dns.set(HOST, [{ address: '192.0.2.9', ttl: 10 }]);
    await clock.advance(5_000);
    assert.equal(view()?.state, 'fresh');
    assert.deepEqual(view()?.addresses, ['192.0.2.9']);
    resolver.close();
  });

  it('starts a new grace period for each failure streak', async () => {
    const { clock, dns, resolver, view } = setup({ graceMs: 12_000, retryMs: 5_000 });
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 5 }]);
    resolver.setHosts([HOST]);
    await flush();
    dns.set(HOST, 'ETIMEOUT', 'ETIMEOUT');
    await clock.advance(10_000); // failures at +5 s, +10 s
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 5 }]);
    await clock.advance(5_000); // recovered
    dns.set(HOST, 'ETIMEOUT', 'ETIMEOUT');
    await clock.advance(10_000); // 10 s into a new streak, 25 s after the first failure
    assert.equal(view()?.state, 'stale');
    resolver.close();
  });

  it("keeps one family's addresses when only that family fails, within grace", async () => {
    const { clock, dns, logger, resolver, changes, view } = setup({ graceMs: 20_000, retryMs: 5_000 });
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 60 }], [{ address: '2001:db8::1', ttl: 60 }]);
    resolver.setHosts([HOST]);
    await flush();

    dns.set(HOST, [{ address: '192.0.2.1', ttl: 60 }], 'ETIMEOUT');
    await clock.advance(60_000);
    assert.equal(view()?.state, 'fresh');
    assert.deepEqual(view()?.addresses, ['192.0.2.1', '2001:db8::1']);
    assert.equal(view()?.lastError, `ETIMEOUT ${HOST}`);
    assert.equal(view()?.nextRefreshAt, clock.now() + 5_000, 'retried sooner than the TTL');
    assert.ok(
      logger.lines.some((l) => l.level === 'warn' && l.fields.host === HOST && l.fields.graceLeftMs === 20_000),
    );
    assert.equal(changes.length, 1);

    await clock.advance(20_000);
    assert.equal(view()?.state, 'fresh');
    assert.deepEqual(view()?.addresses, ['192.0.2.1']);
    assert.equal(changes.length, 2);
    resolver.close();
  });

  it('stops refreshing removed hosts and cancels their timers', async () => {
    const { clock, dns, resolver, view } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    dns.set('other.example', [{ address: '192.0.2.2', ttl: 10 }]);
    resolver.setHosts([HOST, 'other.example']);
    await flush();
    assert.equal(clock.pendingTimers(), 2);

    resolver.setHosts(['other.example']);
    assert.equal(clock.pendingTimers(), 1);
    assert.equal(view(), undefined);
    await clock.advance(60_000);
    assert.equal(dns.callsFor(HOST), 2);
    assert.ok(dns.callsFor('other.example') > 2);
    resolver.close();
  });

  it('ignores an answer that arrives after its host was removed', async () => {
    const clock = new FakeClock();
    const dns = new ScriptedDns();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const resolver = new HostResolver({
      clock,
      resolve: async (host, family) => {
        await gate;
        return dns.resolve(host, family);
      },
    });
    const changes: string[][] = [];
    resolver.onChange((hosts) => changes.push([...hosts]));
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    resolver.setHosts([]);
    release();
    await flush();
    assert.deepEqual(changes, []);
    assert.equal(resolver.snapshot().size, 0);
    assert.equal(clock.pendingTimers(), 0);
    resolver.close();
  });

  it('resolves a host again when it is re-added', async () => {
    const { dns, resolver, view } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    resolver.setHosts([]);
    resolver.setHosts([HOST]);
    assert.equal(view()?.state, 'pending');
    await resolver.whenSettled();
    assert.equal(view()?.state, 'fresh');
    assert.equal(dns.callsFor(HOST), 4);
    resolver.close();
  });

  it('stops everything on close: no timers, no queries, no callbacks, idempotent', async () => {
    const { clock, dns, resolver, changes } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    resolver.setHosts([HOST, 'late.example']); // a query in flight at close
    resolver.close();
    resolver.close();
    assert.equal(clock.pendingTimers(), 0);
    const callsAtClose = dns.calls.length;
    await clock.advance(600_000);
    assert.equal(dns.calls.length, callsAtClose);
    assert.deepEqual(changes, [[HOST]]);
    resolver.setHosts(['after-close.example']);
    assert.equal(dns.calls.length, callsAtClose);
    await resolver.whenSettled(); // never hangs after close
  });

  it('compares hosts case-insensitively and ignores a trailing dot', async () => {
    const { dns, resolver } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts(['API.Stripe.COM', 'api.stripe.com.', HOST]);
    await resolver.whenSettled();
    assert.deepEqual([...resolver.snapshot().keys()], [HOST]);
    assert.equal(dns.callsFor(HOST), 2);
    resolver.close();
  });

  it('never queries names that are not host names (wildcards, address literals)', async () => {
    const { dns, resolver, logger } = setup();
    resolver.setHosts(['*.example.com', '203.0.113.5', '2001:db8::1', 'bad..name']);
    await resolver.whenSettled();
    assert.equal(dns.calls.length, 0);
    for (const view of resolver.snapshot().values()) {
      assert.equal(view.state, 'failed');
      assert.deepEqual(view.addresses, []);
      assert.match(view.lastError ?? '', /^EBADNAME /);
    }
    assert.equal(logger.lines.filter((l) => l.level === 'warn').length, 4);
    resolver.close();
  });

  it('waits in whenSettled until every tracked host has an answer or a failure', async () => {
    const dns = new ScriptedDns();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const resolver = new HostResolver({
      clock: new FakeClock(),
      resolve: async (host, family) => {
        if (host === 'slow.example') await gate;
        return dns.resolve(host, family);
      },
    });
    dns.set('fast.example', [{ address: '192.0.2.1', ttl: 10 }]);
    dns.set('slow.example', [{ address: '192.0.2.2', ttl: 10 }]);
    resolver.setHosts(['fast.example', 'slow.example']);
    let settled = false;
    const done = resolver.whenSettled().then(() => (settled = true));
    await flush();
    assert.equal(settled, false);
    assert.equal(resolver.snapshot().get('fast.example')?.state, 'fresh');
    release();
    await done;
    assert.equal(resolver.snapshot().get('slow.example')?.state, 'fresh');
    resolver.close();
  });

  it('returns frozen snapshot values that later refreshes do not mutate', async () => {
    const { clock, dns, resolver, view } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    const before = view();
    assert.ok(before !== undefined && Object.isFrozen(before) && Object.isFrozen(before.addresses));
    dns.set(HOST, [{ address: '192.0.2.2', ttl: 10 }]);
    await clock.advance(10_000);
    assert.deepEqual(before.addresses, ['192.0.2.1']);
    resolver.close();
  });

  it('keeps notifying other listeners when one throws, and honours unsubscribe', async () => {
    const { dns, resolver, logger } = setup();
    const seen: string[] = [];
    resolver.onChange(() => {
      throw new Error('listener bug');
    });
    const unsubscribe = resolver.onChange(() => seen.push('removed'));
    resolver.onChange((hosts) => seen.push(...hosts));
    unsubscribe();
    unsubscribe();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    assert.deepEqual(seen, [HOST]);
    assert.ok(logger.lines.some((l) => l.level === 'error' && l.msg === 'hostname change listener threw'));
    resolver.close();
  });

  it('turns a resolve that throws synchronously or rejects with a non-error into a failure', async () => {
    const clock = new FakeClock();
    const bad = new HostResolver({
      clock,
      resolve: (_host, family) => {
        if (family === 4) throw new Error('sync boom');
        return Promise.reject('not an error');
      },
    });
    bad.setHosts([HOST]);
    await bad.whenSettled();
    assert.equal(bad.snapshot().get(HOST)?.state, 'failed');
    assert.equal(bad.snapshot().get(HOST)?.lastError, 'sync boom');
    assert.equal(clock.pendingTimers(), 1, 'a retry is scheduled');
    bad.close();
  });

  it('drops malformed addresses from an answer and says so', async () => {
    const { dns, resolver, logger, view } = setup();
    dns.set(HOST, [
      { address: '192.0.2.1', ttl: 10 },
      { address: '2001:db8::1', ttl: 10 },
      { address: 'nonsense', ttl: 10 },
    ]);
    resolver.setHosts([HOST]);
    await flush();
    assert.deepEqual(view()?.addresses, ['192.0.2.1']);
    assert.equal(logger.lines.filter((l) => l.msg === 'resolver returned a malformed address, ignored').length, 2);
    resolver.close();
  });

  it('logs through logger.child({ module: "dns" }) and accepts a pino logger', async () => {
    const { dns, resolver, logger } = setup();
    dns.set(HOST, [{ address: '192.0.2.1', ttl: 10 }]);
    resolver.setHosts([HOST]);
    await flush();
    assert.ok(logger.lines.length > 0);
    assert.ok(logger.lines.every((l) => l.fields.module === 'dns'));
    resolver.close();

    const pinoLogger: LoggerLike = pino({ enabled: false });
    new HostResolver({ logger: pinoLogger, resolve: dns.resolve, clock: new FakeClock() }).close();
  });

  it('rejects inconsistent options with a coded error', () => {
    const cases: HostResolverOptions[] = [
      { floorMs: 10_000, ceilingMs: 5_000 },
      { floorMs: 0 },
      { graceMs: -1 },
      { retryMs: Number.NaN },
      { tries: 1.5 },
      { servers: ['127.0.0.1:53'], resolve: async () => [] },
      { servers: ['not an address'] },
    ];
    for (const options of cases) {
      assert.throws(() => new HostResolver(options), { code: 'MG_DNS_RESOLVER_OPTIONS' }, JSON.stringify(options));
    }
  });

  it('clamps retryMs into [floorMs, ceilingMs]', async () => {
    const { clock, dns, resolver, view } = setup({ floorMs: 5_000, ceilingMs: 60_000, retryMs: 1_000 });
    dns.set(HOST, 'ESERVFAIL', 'ESERVFAIL');
    resolver.setHosts([HOST]);
    await flush();
    assert.equal(view()?.nextRefreshAt, clock.now() + 5_000);
    resolver.close();
  });
});
