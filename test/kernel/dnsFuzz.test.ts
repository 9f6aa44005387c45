// The DNS reader under BPF_PROG_TEST_RUN (test/helpers/dnstest.bpf.c: the production parser behind
// test entry points). Well-formed, solicited, trusted answers teach exactly their chain's addresses;
// every kind of bad input teaches nothing and is still delivered; and a fuzzer drives thousands of
// random and mutated packets through it, checking against a reference decoder (dns-packet) that
// nothing is ever learned that a well-formed, solicited, trusted answer for an allowlisted name
// did not hold. Replay a failure with MG_FUZZ_SEED=<seed>.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, encode, type Answer } from 'dns-packet';
import ipaddr from 'ipaddr.js';
import { DnsHarness, NAMESPACE_ID } from '../helpers/dnsHarness.js';
import { requireRoot } from '../helpers/sandbox.js';
import type { DesiredDnsHost } from '../../src/datapath/desired.js';
import { seededRandom } from '../helpers/seededRandom.js';
import { ENUMS } from '../../src/datapath/abi.generated.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP DNS reader fuzz tests: ${skip}`);

const HOSTS: DesiredDnsHost[] = [
  { namespace: 'shop', host: 'api.example.com', ports: [{ proto: 'tcp', port: 443, label: 'api' }] },
  { namespace: 'shop', host: '*.cdn.example.net', ports: [{ proto: 'tcp', port: 443, label: 'cdn' }] },
  { namespace: '', host: 'global.example.org', ports: [{ proto: 'tcp', port: 443, label: 'global' }] },
];

function allowlisted(name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  return HOSTS.some(({ host }) =>
    host.startsWith('*.') ? n.endsWith(host.slice(1)) && n.length > host.length - 1 : n === host,
  );
}

interface Query {
  id: number;
  name: string;
  type: 'A' | 'AAAA';
}

const query = (q: Query): Buffer =>
  encode({ type: 'query', id: q.id, flags: 0x0100, questions: [{ type: q.type, name: q.name }] });

function answer(q: Query, answers: Answer[], opts: { flags?: number; name?: string } = {}): Buffer {
  return encode({
    type: 'response',
    id: q.id,
    flags: opts.flags ?? 0x8180,
    questions: [{ type: q.type, name: opts.name ?? q.name }],
    answers,
  });
}

const A = (name: string, data: string, ttl = 60): Answer => ({ type: 'A', name, ttl, data });
const AAAA = (name: string, data: string, ttl = 60): Answer => ({ type: 'AAAA', name, ttl, data });
const CNAME = (name: string, data: string): Answer => ({ type: 'CNAME', name, ttl: 60, data });

/** What a well-formed, solicited answer for an allowlisted name may teach: its chain's addresses. */
function reference(q: Query, packet: Buffer): Set<string> {
  const none = new Set<string>();
  let d;
  try {
    d = decode(packet);
  } catch {
    return none;
  }
  const flags = d.flags ?? 0;
  if (
    d.type !== 'response' ||
    d.id !== q.id ||
    ((flags >> 11) & 0xf) !== 0 ||
    (flags & 0x200) !== 0 ||
    (flags & 0xf) !== 0
  )
    return none;
  if (d.questions?.length !== 1) return none;
  const question = d.questions[0]!;
  if (
    question.name.toLowerCase() !== q.name.toLowerCase() ||
    question.type !== q.type ||
    (question.class ?? 'IN') !== 'IN'
  )
    return none;
  if (!allowlisted(question.name)) return none;
  const chain = new Set([question.name.toLowerCase()]);
  const out = new Set<string>();
  for (const rr of d.answers ?? []) {
    if (((rr as { class?: string }).class ?? 'IN') !== 'IN') return none;
    const owner = rr.name.toLowerCase();
    if (rr.type === 'CNAME' && chain.has(owner)) chain.add(String(rr.data).toLowerCase());
    if ((rr.type === 'A' || rr.type === 'AAAA') && chain.has(owner)) out.add(canonical(String(rr.data)));
  }
  return out;
}

/** One text per address (dns-packet and meshgate compress IPv6 zeros differently); junk stays as it is. */
const canonical = (address: string): string =>
  ipaddr.isValid(address) ? ipaddr.parse(address).toNormalizedString() : address;

describe('the DNS reader under BPF_PROG_TEST_RUN', { skip: skip ?? false }, () => {
  let h: DnsHarness;
  let nextId = 1;
  const q = (name: string, type: 'A' | 'AAAA' = 'A'): Query => ({ id: nextId++ & 0xffff || 1, name, type });

  /** One exchange on a fresh socket with nothing learned: the query goes out, the answer comes in. */
  const exchange = (qq: Query | null, packet: Buffer, from?: string, sport?: number): string[] => {
    h.resetSocket();
    h.clearLearned();
    if (qq) h.sendQuery(query(qq));
    assert.equal(h.receive(packet, from, sport), 1, 'the answer is always delivered');
    return h
      .learned()
      .map((l) => l.address)
      .sort();
  };

  before(() => {
    h = new DnsHarness({ hosts: HOSTS });
  });
  after(() => h?.close());

  test("a well-formed, solicited, trusted answer teaches exactly its chain's addresses", () => {
    let x = q('api.example.com');
    assert.deepEqual(exchange(x, answer(x, [A(x.name, '203.0.113.1'), A(x.name, '203.0.113.2')])), [
      '203.0.113.1',
      '203.0.113.2',
    ]);
    x = q('api.example.com', 'AAAA');
    assert.deepEqual(exchange(x, answer(x, [AAAA(x.name, '2001:db8::1')])), ['2001:db8::1']);
    x = q('API.Example.COM');
    assert.deepEqual(
      exchange(x, answer(x, [A('api.example.com', '203.0.113.3')])),
      ['203.0.113.3'],
      'case does not matter (0x20 randomisation)',
    );
    x = q('a.b.cdn.example.net');
    assert.deepEqual(
      exchange(x, answer(x, [A(x.name, '198.51.100.9')])),
      ['198.51.100.9'],
      'a wildcard matches any depth',
    );
    x = q('api.example.com');
    assert.deepEqual(
      exchange(
        x,
        answer(x, [
          CNAME(x.name, 'edge.cdnprovider.test'),
          CNAME('edge.cdnprovider.test', 'e1.cdnprovider.test'),
          A('e1.cdnprovider.test', '192.0.2.44'),
          A('unrelated.test', '192.0.2.99'),
        ]),
      ),
      ['192.0.2.44'],
      'CNAME chain followed; records for other names ignored',
    );
    x = q('global.example.org');
    exchange(x, answer(x, [A(x.name, '192.0.2.7', 120)]));
    const [g] = h.learned();
    assert.deepEqual(
      [g?.address, g?.namespace, g?.host, g?.ttlS],
      ['192.0.2.7', '', 'global.example.org', 120],
      'a global host is learned for every namespace',
    );
    x = q('api.example.com');
    exchange(x, answer(x, [A(x.name, '203.0.113.1')]));
    assert.deepEqual(
      h.learned().map((l) => [l.namespace, l.host, l.name]),
      [['shop', 'api.example.com', 'api.example.com']],
    );
  });

  test('untrusted, unsolicited, unlisted and malformed answers teach nothing, and each is counted', () => {
    const before = h.stats();
    const x = q('api.example.com');
    const good = answer(x, [A(x.name, '203.0.113.1')]);
    assert.deepEqual(exchange(x, good, '10.96.0.11'), [], 'another address');
    assert.deepEqual(exchange(x, good, undefined, 5353), [], 'another port');
    assert.deepEqual(exchange(null, good), [], 'no query was sent');
    assert.deepEqual(exchange({ ...x, id: x.id + 1 }, good), [], 'another id');
    assert.deepEqual(exchange({ ...x, type: 'AAAA' }, good), [], 'another type');
    assert.deepEqual(
      exchange(
        { ...x, name: 'www.example.com' },
        answer({ ...x, name: 'www.example.com' }, [A('www.example.com', '203.0.113.1')]),
      ),
      [],
      'not allowlisted',
    );
    const bare = q('cdn.example.net');
    assert.deepEqual(
      exchange(bare, answer(bare, [A(bare.name, '203.0.113.1')])),
      [],
      '*.cdn.example.net does not match cdn.example.net',
    );
    // The same answer twice: the query is used up by the first.
    h.resetSocket();
    h.clearLearned();
    h.sendQuery(query(x));
    h.receive(good);
    h.clearLearned();
    h.receive(good);
    assert.deepEqual(h.learned(), [], 'a replayed answer');

    const malformed: Array<[string, Buffer]> = [
      ['truncated (TC)', answer(x, [A(x.name, '203.0.113.1')], { flags: 0x8380 })],
      ['NXDOMAIN', answer(x, [A(x.name, '203.0.113.1')], { flags: 0x8183 })],
      ['zero answers', answer(x, [])],
      ['cut short', good.subarray(0, good.length - 2)],
      ['absurd count', Buffer.concat([good.subarray(0, 6), Buffer.from([0xff, 0xff]), good.subarray(8)])],
      [
        'wrong class',
        Buffer.concat([good.subarray(0, good.length - 12), Buffer.from([0, 3]), good.subarray(good.length - 10)]),
      ],
      ['additional record missing', Buffer.concat([good.subarray(0, 10), Buffer.from([0, 1]), good.subarray(12)])],
      ['compression loop', withOwner(good, Buffer.from([0xc0, good.length - 16]))],
      ['pointer out of bounds', withOwner(good, Buffer.from([0xcf, 0xff]))],
      ['forward pointer', withOwner(good, Buffer.from([0xc0, 0xff]))],
      ['label over 63', withOwner(good, Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0])]))],
      [
        'name over 255',
        withOwner(
          good,
          Buffer.concat([
            ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x62)])),
            Buffer.from([0]),
          ]),
        ),
      ],
      ['A with 5 bytes', Buffer.concat([good.subarray(0, good.length - 6), Buffer.from([0, 5, 203, 0, 113, 1, 9])])],
    ];
    for (const [what, packet] of malformed) assert.deepEqual(exchange(x, packet), [], what);
    const after = h.stats();
    const grew = (k: string) => Number(after[k]! - before[k]!);
    assert.ok(grew('untrusted') >= 2, `untrusted ${grew('untrusted')}`);
    assert.ok(grew('unsolicited') >= 4, `unsolicited ${grew('unsolicited')}`);
    assert.ok(grew('not_allowlisted') >= 2, `not_allowlisted ${grew('not_allowlisted')}`);
    assert.ok(grew('malformed') >= malformed.length, `malformed ${grew('malformed')} of ${malformed.length}`);
  });

  test('random and mutated packets never teach what a well-formed, solicited, trusted answer did not hold', () => {
    const seed = Number(process.env.MG_FUZZ_SEED ?? Date.now() % 1_000_000);
    const rnd = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const names = [
      'api.example.com',
      'x.cdn.example.net',
      'a.b.c.cdn.example.net',
      'global.example.org',
      'www.example.com',
    ];
    let learnedSome = 0;
    const iterations = 2000;
    for (let i = 0; i < iterations; i++) {
      const x = q(pick(names), rnd() < 0.8 ? 'A' : 'AAAA');
      const rr =
        x.type === 'A'
          ? (n: string, k: number) => A(n, `203.0.113.${k}`)
          : (n: string, k: number) => AAAA(n, `2001:db8::${k}`);
      const base =
        rnd() < 0.5
          ? answer(x, [rr(x.name, 1 + Math.floor(rnd() * 200)), rr(x.name, 201 + Math.floor(rnd() * 50))])
          : answer(x, [CNAME(x.name, 'edge.test'), rr('edge.test', 1 + Math.floor(rnd() * 250))]);
      const packet = mutate(base, rnd);
      const learned = exchange(x, packet);
      const allowed = reference(x, packet);
      for (const a of learned.map(canonical)) {
        assert.ok(
          allowed.has(a),
          `seed ${seed} iteration ${i}: learned ${a} from ${packet.toString('hex')} (query ${JSON.stringify(x)}), reference allows ${JSON.stringify([...allowed])}`,
        );
      }
      if (learned.length) learnedSome++;
    }
    // The fuzzer must exercise the learning path too, not only the refusals.
    assert.ok(
      learnedSome > iterations / 20,
      `seed ${seed}: only ${learnedSome} of ${iterations} packets taught anything`,
    );
  });

  test('bounded: when mg_learned is full the oldest learned address goes first, and it is counted', () => {
    const small = new DnsHarness({ hosts: HOSTS, learnedMax: 16 });
    try {
      const evictedBefore = small.stats()['evicted']!;
      for (let k = 1; k <= 20; k++) {
        const x = q('api.example.com');
        small.resetSocket();
        small.sendQuery(query(x));
        small.receive(answer(x, [A(x.name, `198.51.100.${k}`)]));
      }
      const addresses = small.learned().map((l) => l.address);
      assert.equal(addresses.length, 16);
      assert.deepEqual(
        addresses.map((a) => Number(a.split('.')[3])).sort((a, b) => a - b),
        Array.from({ length: 16 }, (_, i) => i + 5),
        'the first four learned went first',
      );
      assert.equal(small.stats()['evicted']! - evictedBefore, 4n);
      assert.ok(small.learned().every((l) => l.namespace === 'shop' && !l.expired));
      void NAMESPACE_ID;
    } finally {
      small.close();
    }
  });

  test("answers as resolvers write them (compressed, mixed case, deep names) teach exactly the reference decoder's addresses", () => {
    const seed = Number(process.env.MG_FUZZ_SEED ?? Date.now() % 1_000_000);
    const rnd = seededRandom(seed);
    let taught = 0;
    const iterations = 300;
    for (let i = 0; i < iterations; i++) {
      const { question, packet } = resolverAnswer(rnd, (name, type) => q(name, type));
      const learned = exchange(question, packet).map(canonical).sort();
      // The reader keeps the first MG_DNS_MAX_LABELS labels' offsets (docs/decisions.md): a wildcard
      // suffix (*.cdn.example.net: the last 3 labels, the only deep names here) must start at one.
      const tooDeep = question.name.split('.').length - 3 >= ENUMS.mg_dns_limits.MG_DNS_MAX_LABELS;
      const expected = tooDeep ? [] : [...reference(question, packet)].sort();
      assert.deepEqual(
        learned,
        expected,
        `seed ${seed} iteration ${i}: ${packet.toString('hex')} (query ${JSON.stringify(question)})`,
      );
      if (expected.length) taught++;
    }
    assert.ok(taught > iterations / 4, `seed ${seed}: only ${taught} of ${iterations} answers taught anything`);
  });

  test('an answer for a host an address already serves refreshes its place; another host gets its own', () => {
    const hx = new DnsHarness({ hosts: HOSTS });
    try {
      const ask = (name: string, address: string, ttl: number) => {
        const x = q(name);
        hx.resetSocket();
        hx.sendQuery(query(x));
        hx.receive(answer(x, [A(x.name, address, ttl)]));
      };
      ask('api.example.com', '192.0.2.10', 60);
      ask('api.example.com', '192.0.2.10', 120);
      assert.deepEqual(
        hx.learned().map((l) => [l.address, l.host, l.ttlS]),
        [['192.0.2.10', 'api.example.com', 120]],
      );
      ask('x.cdn.example.net', '192.0.2.10', 30);
      assert.deepEqual(
        hx
          .learned()
          .map((l) => [l.address, l.host, l.ttlS])
          .sort(),
        [
          ['192.0.2.10', '*.cdn.example.net', 30],
          ['192.0.2.10', 'api.example.com', 120],
        ],
      );
      assert.equal(hx.stats()['addresses_learned'], 3n);
    } finally {
      hx.close();
    }
  });
});

/** Replaces the first answer record's owner name (right after the question) with `name`. */
function withOwner(packet: Buffer, name: Buffer): Buffer {
  let off = 12;
  while (packet[off] !== 0) off += 1 + packet[off]!;
  off += 5; // root byte, QTYPE, QCLASS
  const ownerLen =
    (packet[off]! & 0xc0) === 0xc0
      ? 2
      : (() => {
          let o = off;
          while (packet[o] !== 0) o += 1 + packet[o]!;
          return o + 1 - off;
        })();
  return Buffer.concat([packet.subarray(0, off), name, packet.subarray(off + ownerLen)]);
}

function mutate(packet: Buffer, rnd: () => number): Buffer {
  const p = Buffer.from(packet);
  const kind = Math.floor(rnd() * 7);
  const at = () => Math.floor(rnd() * p.length);
  switch (kind) {
    case 0:
      return p; // unchanged: the positive path
    case 1: {
      // flip bits
      for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) p[at()]! ^= 1 << Math.floor(rnd() * 8);
      return p;
    }
    case 2: {
      // set bytes to interesting values
      for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--)
        p[at()] = [0, 0xff, 0xc0, 0x3f, 0x40, 1, 12][Math.floor(rnd() * 7)]!;
      return p;
    }
    case 3:
      return p.subarray(0, Math.max(0, at())); // truncate
    case 4: {
      // insert random bytes
      const i = at();
      return Buffer.concat([
        p.subarray(0, i),
        Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => Math.floor(rnd() * 256))),
        p.subarray(i),
      ]);
    }
    case 5: {
      // keep the header, random rest
      for (let i = 12; i < p.length; i++) if (rnd() < 0.3) p[i] = Math.floor(rnd() * 256);
      return p;
    }
    default:
      return Buffer.from(Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))); // noise
  }
}

/**
 * A well-formed answer as a resolver writes it: names compressed against every name written before
 * (longest known suffix, most of the time), random case (0x20), wildcard questions up to 40 labels
 * deep, CNAME chains, addresses for the chain and for names outside it.
 */
function resolverAnswer(
  rnd: () => number,
  ask: (name: string, type: 'A' | 'AAAA') => Query,
): { question: Query; packet: Buffer } {
  const int = (n: number) => Math.floor(rnd() * n);
  const label = () =>
    Array.from({ length: 1 + int(6) }, () => 'abcdefghijklmnopqrstuvwxyz0123456789-'[int(37)]).join('');
  const mixCase = (name: string) => [...name].map((ch) => (rnd() < 0.3 ? ch.toUpperCase() : ch)).join('');
  const deep = (suffix: string) => {
    const labels: string[] = [];
    for (let n = 1 + int(40); n > 0 && [...labels, label(), suffix].join('.').length <= 253; n--) labels.push(label());
    return [...(labels.length ? labels : ['x']), suffix].join('.');
  };
  const base = [
    () => 'api.example.com',
    () => deep('cdn.example.net'),
    () => 'global.example.org',
    () => 'www.example.com',
    () => `${label()}.example.net`,
  ][int(5)]!();
  const question = ask(mixCase(base), rnd() < 0.8 ? 'A' : 'AAAA');

  const parts: Buffer[] = [];
  let size = 0;
  const put = (b: Buffer) => {
    parts.push(b);
    size += b.length;
  };
  const suffixes = new Map<string, number>(); // lower-case suffix -> its offset
  const name = (text: string, compress: boolean): Buffer => {
    const labels = text.split('.');
    const out: Buffer[] = [];
    let at = size;
    for (let k = 0; k < labels.length; k++) {
      const rest = labels.slice(k).join('.').toLowerCase();
      const known = suffixes.get(rest);
      if (compress && known !== undefined) {
        out.push(Buffer.from([0xc0 | (known >> 8), known & 0xff]));
        return Buffer.concat(out);
      }
      if (at < 0x3fff && !suffixes.has(rest)) suffixes.set(rest, at);
      const l = Buffer.from(labels[k]!);
      out.push(Buffer.from([l.length]), l);
      at += 1 + l.length;
    }
    out.push(Buffer.from([0]));
    return Buffer.concat(out);
  };
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const rr = (owner: string, type: number, rdata: () => Buffer) => {
    put(name(mixCase(owner), rnd() < 0.8));
    put(Buffer.concat([u16(type), u16(1), Buffer.from([0, 0, 0, 30 + int(200)])]));
    const lenAt = parts.length;
    put(u16(0));
    const before = size;
    put(rdata());
    parts[lenAt] = u16(size - before);
  };

  const records: Array<() => void> = [];
  const chain = [question.name];
  for (let n = int(4); n > 0; n--) {
    const from = chain[chain.length - 1]!;
    const to = rnd() < 0.5 ? `${label()}.provider.test` : `${label()}.${from.split('.').slice(1).join('.')}`;
    chain.push(to);
    records.push(() => rr(from, 5, () => name(mixCase(to), rnd() < 0.7)));
  }
  const address = (k: number) =>
    question.type === 'A'
      ? { type: 1, data: Buffer.from([198, 51, 100, k]) }
      : { type: 28, data: Buffer.concat([Buffer.from([0x20, 0x01, 0x0d, 0xb8]), Buffer.alloc(11), Buffer.from([k])]) };
  for (let n = 1 + int(6); n > 0; n--) {
    const owner = rnd() < 0.85 ? chain[int(chain.length)]! : `${label()}.elsewhere.test`;
    const a = address(1 + int(250));
    records.push(() => rr(owner, a.type, () => a.data));
  }

  put(Buffer.concat([u16(question.id), u16(0x8180), u16(1), u16(records.length), u16(0), u16(0)]));
  put(name(question.name, false));
  put(Buffer.concat([u16(question.type === 'A' ? 1 : 28), u16(1)]));
  for (const record of records) record();
  return { question, packet: Buffer.concat(parts) };
}
