// Replies are not egress: a pod serving UDP or TCP answers clients outside its
// allowlist (bpf/reply.bpf.h for UDP; an accepted TCP socket's peer is its own),
// and the way replies are recognised opens no side door. The client lives in
// the far netns behind a veth (FAR_CLIENT4/6 are its addresses, outside the mesh
// CIDR and every allowlist); a sniffer on the far end counts what got out.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { IPPROTO_UDP, RULE_NAMES, decodeFlow, formatAddress } from '../../src/datapath/codec.js';
import { Pins } from '../../src/datapath/pinned.js';
import { REPLY_DEFAULTS, decodeReplyPeer, readReplyPeers } from '../../src/datapath/replies.js';
import { Explainer, parseDestination } from '../../src/explain/explain.js';
import { dumpMaps, formatDump } from '../../src/report/dump.js';
import { FAR, SIDEDOOR, createFarSidePod, requireSideDoorTools, type FarSidePod } from '../helpers/farSide.js';
import { allow, basePolicy, classify, group, mesh } from '../helpers/kernelFixture.js';
import { SOCKPROBE, listen, probe, requireRoot, until } from '../helpers/sandbox.js';

const skip = requireRoot() ?? requireSideDoorTools();
if (skip) console.log(`# SKIP reply kernel tests: ${skip}`);

const FAR_CLIENT4 = '192.168.77.2';
const FAR_CLIENT6 = 'fd77::2';
const EPERM = 1;

interface Step {
  readonly ok: boolean;
  readonly errno: number;
  readonly stage: string;
  readonly peer?: string;
}

/** A `sidedoor udp-serve` in the pod, read line by line. */
interface Server {
  /** Resolves with the first `n` step lines (the ready line excluded). */
  steps(n: number): Promise<Step[]>;
}

describe('replies are not egress', { skip: skip ?? false }, () => {
  let pod: FarSidePod;
  const children: ChildProcess[] = [];
  const counter = (verdict: string, rule: string): bigint =>
    pod.dp.readCounters().find((c) => c.verdict === verdict && c.rule === rule)?.count ?? 0n;

  async function serve(family: '4' | '6', port: number, steps: string[]): Promise<Server> {
    const child = spawn(
      SIDEDOOR,
      ['--cgroup', pod.app, '--netns', pod.sb.netnsPath, 'udp-serve', family, String(port), ...steps],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    const lines: Step[] = [];
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Step);
        buf = buf.slice(nl + 1);
      }
    });
    await until('the pod server to bind', () => lines.length > 0, 5000);
    assert.equal((lines.shift() as unknown as { ready?: boolean }).ready, true, 'udp-serve bound its port');
    return {
      steps: async (n) => {
        await until(`${n} server steps`, () => lines.length >= n, 10_000);
        return lines.slice(0, n);
      },
    };
  }

  /** One datagram from the far side, from a fixed source port; true when the pod answered. */
  const farSend = (family: '4' | '6', sport: number, port: number, waitMs = 1500): boolean => {
    const addr = family === '4' ? FAR.podAddr4 : FAR.podAddr6;
    const r = spawnSync(
      'ip',
      ['netns', 'exec', pod.farNetns, SIDEDOOR, 'udp-from', family, String(sport), addr, String(port), String(waitMs)],
      { encoding: 'utf8', timeout: 10_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const step = JSON.parse(r.stdout.trim()) as Step;
    assert.equal(step.ok, true, `far client: ${r.stdout}`);
    return step.stage === 'answered';
  };

  const policy = (...meshCidrs: string[]) =>
    basePolicy({
      groups: [mesh(...meshCidrs), group('allow:shop', [allow('shop', `${FAR.allowed4}/32`, 53, 'udp')])],
    });

  before(async () => {
    pod = await createFarSidePod('replies');
    pod.apply(policy('10.0.0.0/8'));
  });
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    pod?.close();
  });

  test('the far client is outside the policy: the pod cannot send to it first', () => {
    for (const addr of [FAR_CLIENT4, FAR_CLIENT6]) {
      const family = addr.includes(':') ? '6' : '4';
      const r = classify(
        probe(pod.sb, ['sendto', '--family', family, '--addr', addr, '--port', '5399', '--data', 'x'], {
          cgroup: pod.app,
        }),
      );
      assert.equal(r.verdict, 'deny', `sendto ${addr}`);
    }
  });

  test('a UDP server in the pod answers a client outside its allowlist (IPv4, IPv6, v4 on a dual-stack socket)', async () => {
    const replies = counter('pass', 'reply');
    const cap = await pod.capture([FAR_CLIENT4, FAR_CLIENT6]);
    const v4 = await serve('4', 5300, ['recv', 'a']);
    assert.equal(farSend('4', 41000, 5300), true, 'the IPv4 client got its answer');
    assert.deepEqual(
      (await v4.steps(2)).map((s) => [s.stage, s.ok]),
      [
        ['recv', true],
        ['a', true],
      ],
    );
    const v6 = await serve('6', 5301, ['recv', 'a', 'recv', 'a']);
    assert.equal(farSend('6', 41001, 5301), true, 'the IPv6 client got its answer');
    assert.equal(farSend('4', 41002, 5301), true, 'the IPv4 client of a dual-stack socket got its answer');
    const steps = await v6.steps(4);
    assert.deepEqual(
      steps.map((s) => [s.stage, s.ok]),
      [
        ['recv', true],
        ['a', true],
        ['recv', true],
        ['a', true],
      ],
    );
    assert.equal(steps[2]!.peer, `::ffff:${FAR_CLIENT4}`);
    const seen = await cap.stop();
    assert.equal(seen[FAR_CLIENT4], 2, 'two answers to the IPv4 client crossed the veth');
    // (IPv6 may add a unicast neighbour probe to the client: at least the answer.)
    assert.ok(seen[FAR_CLIENT6]! >= 1, 'the answer to the IPv6 client crossed the veth');
    assert.equal(counter('pass', 'reply') - replies, 3n, 'each answer counted as pass/reply');
    // The flow is filed with its rule, for `meshgate flows` and `preview`.
    const flows = pod.dp.maps.mg_flows.entries().map(([k, v]) => decodeFlow(k, v));
    const flow = flows.find(
      (f) => formatAddress(f.address) === FAR_CLIENT6 && f.port === 41001 && f.proto === IPPROTO_UDP,
    );
    assert.equal(flow && RULE_NAMES[flow.rule], 'reply');
    // The kernel's peer entries: marked replied, owned by the pod.
    const peers = readReplyPeers(pod.dp.maps).filter((p) => p.peer === FAR_CLIENT6);
    assert.equal(peers.length, 1);
    assert.equal(peers[0]!.assured, true);
    // dump replies lists it, with its pod.
    const dump = dumpMaps(pod.dp.maps);
    assert.ok(
      dump.replies.peers.some((p) => p.pod === 'shop/web' && p.peer === FAR_CLIENT6 && p.port === 41001 && p.replied),
      JSON.stringify(dump.replies),
    );
    assert.match(formatDump(dump, 'replies'), /shop\/web +\[fd77::2\]:41001 +socket \d+ +replied/);
    // explain decides a destination (rule 7 for a new flow) and names the sockets that may answer it.
    const pins = Pins.open(pod.sb.pinDir);
    try {
      const x = new Explainer(pins).explain({ pod: 'shop/web' }, parseDestination(`[${FAR_CLIENT6}]:41001`), {
        udp: true,
      });
      assert.deepEqual([x.verdict, x.rule], ['deny', 'blocked']);
      assert.ok(
        x.notes.some((n) => n.startsWith('1 UDP socket(s) of this pod heard from this peer')),
        x.notes.join('; '),
      );
    } finally {
      pins.close();
    }
  });

  test('a TCP server in the pod: an accepted connection from outside the allowlist gets its data back', async () => {
    const denies = counter('deny', 'egress-backstop') + counter('deny', 'blocked');
    const cap = await pod.capture([FAR_CLIENT4, FAR_CLIENT6]);
    for (const [family, bind] of [
      ['4', '0.0.0.0'],
      ['6', '::'],
    ] as const) {
      const port = family === '4' ? '7070' : '7071';
      children.push(
        await listen(
          pod.sb,
          ['--family', family, '--proto', 'tcp', '--addr', bind, '--port', port, '--banner', `pod:${port}`],
          {
            cgroup: pod.app,
          },
        ),
      );
      const r = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          pod.farNetns,
          SOCKPROBE,
          'connect',
          '--family',
          family,
          '--proto',
          'tcp',
          '--addr',
          family === '4' ? FAR.podAddr4 : FAR.podAddr6,
          '--port',
          port,
          '--read',
        ],
        { encoding: 'utf8', timeout: 10_000 },
      );
      const result = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { reply?: string };
      assert.equal(result.reply?.includes(`pod:${port}`), true, `the far client read the pod's data: ${r.stdout}`);
    }
    const seen = await cap.stop();
    assert.ok(seen[FAR_CLIENT4]! >= 3 && seen[FAR_CLIENT6]! >= 3, `SYN-ACK, data, FIN: ${JSON.stringify(seen)}`);
    assert.equal(counter('deny', 'egress-backstop') + counter('deny', 'blocked'), denies, 'nothing was denied');
  });

  test('no side door: sending first, another port, another socket of the pod', async () => {
    const denied = counter('deny', 'blocked');
    const cap = await pod.capture([FAR_CLIENT4]);
    const server = await serve('4', 5302, [`a-to:${FAR_CLIENT4},41003`, 'recv', `a-to:${FAR_CLIENT4},5399`, 'b', 'a']);
    await server.steps(1);
    assert.equal(farSend('4', 41003, 5302), true);
    const steps = await server.steps(5);
    assert.deepEqual(
      steps.map((s) => [s.stage, s.ok, s.errno]),
      [
        ['a-to', false, EPERM], // before the client spoke: egress, denied
        ['recv', true, 0],
        ['a-to', false, EPERM], // the client's address on another port is no peer
        ['b', false, EPERM], // socket B never heard from the client
        ['a', true, 0],
      ],
    );
    const seen = await cap.stop();
    assert.equal(seen[FAR_CLIENT4], 1, 'only socket A answer crossed the veth');
    assert.equal(counter('deny', 'blocked') - denied, 3n);
  });

  test('no side door: a datagram the pod spoofs to itself over loopback makes no peer', async () => {
    const cap = await pod.capture([FAR.denied4]);
    const server = await serve('4', 5303, [`spoof:${FAR.denied4},4000,127.0.0.1`, 'recv', 'a']);
    const steps = await server.steps(3);
    assert.deepEqual(
      steps.map((s) => [s.stage, s.ok, s.errno]),
      [
        ['spoof', true, 0],
        ['recv', true, 0],
        ['a', false, EPERM],
      ],
    );
    assert.equal(steps[1]!.peer, FAR.denied4, 'the spoofed datagram did reach socket A');
    const seen = await cap.stop();
    assert.equal(seen[FAR.denied4], 0);
  });

  test('a client inside the mesh CIDRs files no peer: rule 4 passes its answers, and the map stays for external ones', async () => {
    pod.apply(policy('10.0.0.0/8', '192.168.77.0/30'));
    try {
      const server = await serve('4', 5305, ['recv', 'a']);
      assert.equal(farSend('4', 41005, 5305), true);
      assert.deepEqual(
        (await server.steps(2)).map((s) => [s.stage, s.ok]),
        [
          ['recv', true],
          ['a', true],
        ],
      );
      assert.deepEqual(
        readReplyPeers(pod.dp.maps).filter((p) => p.port === 41005),
        [],
      );
    } finally {
      pod.apply(policy('10.0.0.0/8'));
    }
    // The control: the same client outside the mesh is filed.
    const server = await serve('4', 5306, ['recv', 'a']);
    assert.equal(farSend('4', 41006, 5306), true);
    await server.steps(2);
    assert.equal(readReplyPeers(pod.dp.maps).filter((p) => p.port === 41006).length, 1);
  });

  test('a peer expires: unreplied after --udp-reply-timeout, replied after --udp-reply-stream-timeout', async () => {
    pod.dp.configureReplies({ unrepliedMs: 300, assuredMs: 5000 });
    try {
      const cap = await pod.capture([FAR_CLIENT4]);
      const server = await serve('4', 5304, ['recv', 'sleep:700', 'a', 'recv', 'a', 'recv', 'sleep:700', 'a']);
      assert.equal(farSend('4', 41004, 5304, 0), false);
      await server.steps(3); // expired before the answer
      assert.equal(farSend('4', 41004, 5304), true); // the same client again: a fresh peer
      await server.steps(5);
      assert.equal(farSend('4', 41004, 5304, 1500), true); // answered after 700 ms: replied peers live longer
      const steps = await server.steps(8);
      assert.deepEqual(
        steps.map((s) => [s.stage, s.ok, s.errno]),
        [
          ['recv', true, 0],
          ['sleep', true, 0],
          ['a', false, EPERM],
          ['recv', true, 0],
          ['a', true, 0],
          ['recv', true, 0],
          ['sleep', true, 0],
          ['a', true, 0],
        ],
      );
      const seen = await cap.stop();
      assert.equal(seen[FAR_CLIENT4], 2);
    } finally {
      pod.dp.configureReplies(REPLY_DEFAULTS);
    }
  });

  // The fast path (bpf/reply.bpf.h): the socket's storage keeps its last peer
  // filed, whose datagrams within 1/8 of the lifetime of that write leave
  // mg_reply_peers alone. With the defaults that window is 3.75 s: the steps
  // below take a fraction of it.
  test('the last peer filed is not written again within 1/8 of its lifetime; another peer is, and a first reply is', async () => {
    const entries = (port: number) =>
      pod.dp.maps.mg_reply_peers.entries().filter(([k, v]) => decodeReplyPeer(k, v).port === port);
    const cap = await pod.capture([FAR_CLIENT4]);
    const server = await serve('4', 5307, ['recv', 'recv', 'recv', 'recv', 'a', 'recv']);
    farSend('4', 41007, 5307, 0);
    await server.steps(1);
    const [filed] = entries(41007);
    assert.ok(filed, 'the first datagram filed its peer');
    pod.dp.maps.mg_reply_peers.delete(filed[0]);
    farSend('4', 41007, 5307, 0);
    await server.steps(2);
    assert.deepEqual(entries(41007), [], 'the same peer a moment later: no lookup, no write (the entry stays gone)');
    farSend('4', 41008, 5307, 0);
    await server.steps(3);
    assert.equal(entries(41008).length, 1, 'another peer interleaved is filed');
    farSend('4', 41007, 5307, 0);
    await server.steps(5); // the answer to 41007: its first reply makes it replied
    assert.equal(entries(41007).length, 1, 'the first peer again, no longer the last one filed: filed again');
    farSend('4', 41007, 5307, 0);
    const steps = await server.steps(6);
    assert.deepEqual(
      steps.map((s) => [s.stage, s.ok, s.errno]),
      [
        ['recv', true, 0],
        ['recv', true, 0],
        ['recv', true, 0],
        ['recv', true, 0],
        ['a', true, 0],
        ['recv', true, 0],
      ],
    );
    const peer = decodeReplyPeer(...entries(41007)[0]!);
    assert.equal(peer.assured, true);
    assert.equal(
      peer.expiresNs - peer.lastInNs,
      BigInt(REPLY_DEFAULTS.assuredMs) * 1_000_000n,
      'the datagram after the first reply wrote the replied lifetime at once',
    );
    assert.equal((await cap.stop())[FAR_CLIENT4], 1);
  });

  test('a burst from one peer keeps it alive past its lifetime; silence longer than the lifetime ends it', async () => {
    // lifetime 800 ms: a write at most every 100 ms; a datagram every 75 ms for 1.7 s
    pod.dp.configureReplies({ unrepliedMs: 800, assuredMs: 800 });
    try {
      const cap = await pod.capture([FAR_CLIENT4]);
      const burst = 24;
      const server = await serve('4', 5308, [...Array<string>(burst).fill('recv'), 'a', 'sleep:1200', 'a']);
      const start = Date.now();
      for (let i = 0; i < burst; i++) {
        await new Promise((r) => setTimeout(r, Math.max(0, start + i * 75 - Date.now())));
        farSend('4', 41009, 5308, 0);
      }
      assert.ok(Date.now() - start >= 1600, 'the burst lasted twice the lifetime');
      const steps = await server.steps(burst + 3);
      assert.deepEqual(
        steps.slice(burst).map((s) => [s.stage, s.ok, s.errno]),
        [
          ['a', true, 0], // the first datagram was 1.7 s ago: the burst kept the peer
          ['sleep', true, 0],
          ['a', false, EPERM], // 1.2 s of silence: gone
        ],
      );
      assert.ok(
        steps.slice(0, burst).every((s) => s.stage === 'recv' && s.ok),
        'every datagram of the burst arrived',
      );
      assert.equal((await cap.stop())[FAR_CLIENT4], 1);
    } finally {
      pod.dp.configureReplies(REPLY_DEFAULTS);
    }
  });
});
