// `meshgate explain` must agree with the kernel. Random configs x random
// destinations: each destination is tried for real from the test cgroup
// (sockprobe batch), the kernel's verdict and rule are read from what the
// socket saw and from the decision event, and explain (the same code the CLI
// runs, over the live pinned maps) must give the same verdict and rule.
// Reproduce a failure with MG_EXPLAIN_SEED=<seed printed in the failure>.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  EVENT_STAT,
  RULE_NAMES,
  VERDICT_NAMES,
  encodeTrace,
  encodeU32,
  protoName,
  type KernelEvent,
} from '../../src/datapath/codec.js';
import type { DesiredCgroup, DesiredPolicy, DesiredTrieEntry } from '../../src/datapath/desired.js';
import { EventReader } from '../../src/datapath/events.js';
import { Explainer, parseDestination, type CallerRef, type Explanation } from '../../src/explain/explain.js';
import { Pins } from '../../src/datapath/pinned.js';
import { cgroupId } from '../../src/node/cgroup.js';
import { PROXY_PORT, basePolicy, createPod, group, type PodFixture } from '../helpers/kernelFixture.js';
import { requireRoot } from '../helpers/sandbox.js';
import { netnsCookie } from '../../native/libbpf.js';
import { rng, runBatch, socketVerdict, type BatchResult, type Probe, type Rng } from '../helpers/probeBatch.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP explain agreement tests: ${skip}`);

const CONFIGS = 8;
const DESTINATIONS_PER_CONFIG = 75;
/** Every caller situation is covered; meshed pods (where most rules apply) most often. */
// 'unmapped-node': an unmapped cgroup whose sockets are in the node's netns (the probes' netns is
// recorded as the node's in mg_state), under deny-external: it passes, as hostNetwork pods do.
const CALLERS = [
  'known',
  'uid-fallback',
  'unmapped',
  'known',
  'proxy',
  'unmapped-node',
  'unenforced',
  'uid-fallback',
] as const;

// Destinations: local addresses of the sandbox (see kernelFixture), unroutable ones (ENETUNREACH),
// loopback and unspecified, multicast and broadcast, on both families.
const V4_DESTS = [
  '10.1.2.3',
  '10.1.9.9',
  '10.200.0.1',
  '203.0.113.10',
  '203.0.113.20',
  '203.0.113.77',
  '198.51.100.7',
  '198.51.100.200',
  '192.0.2.1',
  '192.0.2.99',
  '172.16.5.4',
  '8.8.8.8',
  '224.0.0.251',
  '239.1.2.3',
  '255.255.255.255',
  '127.0.0.1',
  '127.3.4.5',
  '0.0.0.0',
];
const V6_DESTS = [
  '2001:db8::10',
  '2001:db8::20',
  '2001:db8:1::5',
  'fd00::5',
  'fd00:1::9',
  '2606:4700::1111',
  '::1',
  '::',
  'ff05::1:3',
  'ff0e::1',
];
const CIDRS = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '10.1.2.3/32',
  '203.0.113.0/24',
  '203.0.113.10/32',
  '198.51.100.0/24',
  '192.0.2.0/25',
  '172.16.0.0/12',
  '0.0.0.0/0',
  '224.0.0.0/4',
  '2001:db8::/32',
  '2001:db8::10/128',
  'fd00::/8',
  '::/0',
  'ff00::/8',
];
const PORTS = [80, 443, 8080, 53, PROXY_PORT, 9000];

interface Scenario {
  readonly name: string;
  readonly policy: DesiredPolicy;
  readonly cgroups: DesiredCgroup[];
  readonly caller: 'app' | 'proxy';
  readonly uid: number;
  readonly byPod: boolean;
  /** mg_state.host_netns_cookie names the probes' netns (else the test's own). */
  readonly nodeNetns?: boolean;
}

/** Wide prefixes (which hold loopback, multicast and broadcast too) half of the time: that is where edge rules bite. */
const WIDE = ['0.0.0.0/0', '::/0', '224.0.0.0/4', 'ff00::/8'];
function randomEntries(r: Rng, table: 'mesh' | 'exclude', max: number): DesiredTrieEntry[] {
  return Array.from({ length: r.int(max + 1) }, () => ({ table, cidr: r.chance(0.4) ? r.pick(WIDE) : r.pick(CIDRS) }));
}

function randomAllow(r: Rng, namespace: string): DesiredTrieEntry[] {
  return Array.from({ length: r.int(5) }, (_, i) => ({
    table: 'allow' as const,
    cidr: r.pick(CIDRS),
    port: r.pick(PORTS),
    proto: r.chance(0.6) ? ('tcp' as const) : ('udp' as const),
    namespace,
    label: JSON.stringify({ kind: 'entry', namespace, name: `e${i}` }),
  }));
}

/** Config 0: a typical mesh, so every run sees all three verdicts (with the FIXED_PROBES below). */
const TYPICAL_GROUPS = [
  group('mesh', [
    { table: 'mesh', cidr: '10.0.0.0/8' },
    { table: 'mesh', cidr: 'fd00::/8' },
  ]),
  group('allow:shop', [
    {
      table: 'allow',
      cidr: '203.0.113.10/32',
      port: 443,
      proto: 'tcp',
      namespace: 'shop',
      label: JSON.stringify({ kind: 'entry', namespace: 'shop', name: 'api' }),
    },
  ]),
  group('allow:', [
    {
      table: 'allow',
      cidr: '192.0.2.1/32',
      port: 8080,
      proto: 'tcp',
      namespace: '',
      label: JSON.stringify({ kind: 'entry', namespace: '', name: 'metrics' }),
    },
  ]),
];

function randomScenario(r: Rng, pod: PodFixture, index: number): Scenario {
  const groups =
    index === 0
      ? TYPICAL_GROUPS
      : [
          group('mesh', r.chance(0.2) ? [] : randomEntries(r, 'mesh', 3)),
          group('exclude', randomEntries(r, 'exclude', 2)),
          group('allow:shop', randomAllow(r, 'shop')),
          group('allow:other', randomAllow(r, 'other')),
          group('allow:', randomAllow(r, '')),
        ].filter((g) => g.entries.length > 0);
  const policy = basePolicy({
    egress: index > 0 && r.chance(0.2),
    blockedAction: index > 0 ? r.pick(['deny', 'redirect', 'audit'] as const) : 'deny',
    // The pod's namespace may set its own action (rule 7), and another namespace's never applies.
    namespaceActions: [
      ...(index > 0 && r.chance(0.4)
        ? [{ namespace: 'other', action: r.pick(['deny', 'redirect', 'audit'] as const) }]
        : []),
      ...(index > 0 && r.chance(0.5)
        ? [{ namespace: 'shop', action: r.pick(['deny', 'redirect', 'audit'] as const) }]
        : []),
    ],
    unknownPodPolicy: r.chance(0.5) ? 'deny-external' : 'pass',
    excludedPorts: index === 0 ? [] : [...new Set(Array.from({ length: r.int(3) }, () => r.pick([53, 8080, 9000])))],
    groups,
  });
  const kind = CALLERS[index % CALLERS.length]!;
  const base = { policy, byPod: false, caller: 'app' as const, uid: 0 };
  switch (kind) {
    case 'known':
      return {
        ...base,
        name: `config ${index}: meshed pod, sidecar cgroup known`,
        cgroups: pod.cgroups(),
        uid: r.pick([0, 1500]),
        byPod: r.chance(0.5),
      };
    case 'uid-fallback':
      return {
        ...base,
        name: `config ${index}: meshed pod, sidecar cgroup unknown`,
        cgroups: pod.cgroups({ proxyCgroupKnown: false }),
        uid: r.pick([0, 1500]),
        byPod: r.chance(0.5),
      };
    case 'proxy':
      return { ...base, name: `config ${index}: the sidecar's own cgroup`, cgroups: pod.cgroups(), caller: 'proxy' };
    case 'unenforced':
      return {
        ...base,
        name: `config ${index}: a pod that is not meshed`,
        cgroups: pod.cgroups({ podKind: 'unenforced', proxyCgroupKnown: false }),
        byPod: r.chance(0.5),
      };
    case 'unmapped':
      return { ...base, name: `config ${index}: a cgroup the agent has not mapped`, cgroups: [] };
    case 'unmapped-node':
      return {
        ...base,
        name: `config ${index}: a cgroup the agent has not mapped, in the node's netns`,
        policy: { ...policy, unknownPodPolicy: 'deny-external' },
        cgroups: [],
        nodeNetns: true,
      };
  }
}

/** Redirect, deny and pass under config 0 (a meshed pod with a known sidecar cgroup). */
const FIXED_PROBES: readonly Probe[] = [
  { op: 'tcp', family: '4', addr: '10.1.2.3', port: 80 },
  { op: 'tcp', family: '4', addr: '8.8.8.8', port: 443 },
  { op: 'tcp', family: 'mapped', addr: '203.0.113.10', port: 443 },
];

function randomProbe(r: Rng): Probe {
  const v6 = r.chance(0.35);
  const addr = v6 ? r.pick(V6_DESTS) : r.pick(V4_DESTS);
  const unspecified = addr === '0.0.0.0' || addr === '::';
  // An unspecified destination connects to loopback: on the proxy port a pass would look like a redirect.
  const port = r.pick(PORTS.filter((p) => !unspecified || p !== PROXY_PORT));
  return {
    op: r.pick(['tcp', 'tcp', 'udp', 'sendto'] as const),
    family: v6 ? '6' : r.chance(0.4) ? 'mapped' : '4',
    addr,
    port,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('explain agrees with the kernel', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('explain');
  });
  after(() => pod?.close());

  test(`${CONFIGS} random configs x ${DESTINATIONS_PER_CONFIG} destinations: same verdict and rule as a real connect`, async () => {
    const seed = Number(process.env.MG_EXPLAIN_SEED ?? Date.now() % 1_000_000_007);
    const r = rng(seed);
    const mismatches: string[] = [];
    let compared = 0;
    let ruleCompared = 0;
    let totalDropped = 0n;
    const seenRules = new Set<string>();
    const seenVerdicts = new Set<string>();
    const maps = pod.dp.maps;
    for (let c = 0; c < CONFIGS; c++) {
      const s = randomScenario(r, pod, c);
      pod.dp.setHostNetnsCookie(s.nodeNetns ? netnsCookie(pod.sb.netnsPath) : netnsCookie());
      pod.apply(s.policy, s.cgroups);
      const caller = s.caller === 'app' ? pod.app : pod.proxy;
      const callerId = cgroupId(caller);
      const probes = Array.from({ length: DESTINATIONS_PER_CONFIG }, () => randomProbe(r));
      if (c === 0) probes.splice(0, FIXED_PROBES.length, ...FIXED_PROBES);

      // Ask the programs for every verdict, read the events of our caller.
      const events: KernelEvent[] = [];
      // (In the sidecar scenario the UDP listeners' replies come from the same cgroup: they match no probe.)
      const reader = new EventReader(
        maps.mg_events,
        (e) => {
          if (e.cgroupId === callerId) events.push(e);
        },
        10,
      );
      const dropsBefore = maps.mg_event_stats.sumPerCpuU64(encodeU32(EVENT_STAT.MG_EVENT_STAT_RATE_LIMITED));
      let kernel: BatchResult[];
      try {
        reader.poll();
        events.length = 0;
        maps.mg_trace.update(
          encodeU32(0),
          encodeTrace((1 << VERDICT_NAMES.length) - 1, process.hrtime.bigint() + 60_000_000_000n),
        );
        kernel = runBatch(pod, caller, s.uid, probes);
        await sleep(50);
        reader.poll();
      } finally {
        maps.mg_trace.update(encodeU32(0), encodeTrace(0, 0n));
        reader.close();
      }
      const dropped = maps.mg_event_stats.sumPerCpuU64(encodeU32(EVENT_STAT.MG_EVENT_STAT_RATE_LIMITED)) - dropsBefore;

      const pins = Pins.open(pod.sb.pinDir);
      try {
        const explainer = new Explainer(pins);
        const ref: CallerRef = s.byPod ? { pod: 'shop/web' } : { cgroupId: callerId };
        probes.forEach((p, i) => {
          const destText =
            p.family === '4'
              ? `${p.addr}:${p.port}`
              : `[${p.family === 'mapped' ? `::ffff:${p.addr}` : p.addr}]:${p.port}`;
          const x: Explanation = explainer.explain(ref, parseDestination(destText), {
            udp: p.op !== 'tcp',
            uid: s.uid,
            netns: pod.sb.netnsPath,
          });
          const seen = socketVerdict(p, kernel[i]!);
          const dest = parseDestination(destText).address;
          const ev = events.find(
            (e) =>
              e.port === p.port &&
              Buffer.from(e.address).equals(Buffer.from(dest)) &&
              protoName(e.proto) === (p.op === 'tcp' ? 'tcp' : 'udp'),
          );
          if (ev) events.splice(events.indexOf(ev), 1);
          else if (process.env.MG_DEBUG)
            console.log(
              `no event: ${s.name} ${p.op} ${p.family} ${destText} ${JSON.stringify(kernel[i])} dropped=${dropped}`,
            );
          compared++;
          seenVerdicts.add(x.verdict);
          seenRules.add(x.rule);
          const problems: string[] = [];
          // An audited call gets through untouched: the socket sees a pass.
          if (seen !== (x.verdict === 'audit' ? 'pass' : x.verdict))
            problems.push(`socket saw ${seen} (${JSON.stringify(kernel[i])})`);
          if (ev) {
            ruleCompared++;
            const kv = VERDICT_NAMES[ev.verdict];
            const kr = RULE_NAMES[ev.rule];
            if (kv !== x.verdict || kr !== x.rule) problems.push(`kernel event says ${kv}/${kr}`);
          }
          if (problems.length) {
            mismatches.push(
              `${s.name} (uid ${s.uid}, ${s.byPod ? 'by pod' : `cgroup ${callerId}`}): ${p.op} ${p.family} ${destText}: ` +
                `explain says ${x.verdict}/${x.rule} but ${problems.join('; ')}\n    policy ${JSON.stringify(s.policy)}`,
            );
          }
        });
      } finally {
        pins.close();
      }
      totalDropped += dropped;
      await sleep(2000); // the event token bucket (burst 200, 100/s) refills before the next config
    }
    assert.deepEqual(mismatches.slice(0, 10), [], `seed ${seed}: ${mismatches.length} of ${compared} cases disagree`);
    assert.equal(compared, CONFIGS * DESTINATIONS_PER_CONFIG);
    assert.ok(
      ruleCompared >= compared * 0.95,
      `seed ${seed}: only ${ruleCompared} of ${compared} cases had a kernel event to compare the rule with (${totalDropped} rate-limited)`,
    );
    assert.ok(seenVerdicts.size >= 3, `seed ${seed}: the cases covered only ${[...seenVerdicts].join(', ')}`);
    console.log(
      `# seed ${seed}: ${compared} cases, ${ruleCompared} with the kernel's rule; verdicts seen: ${[...seenVerdicts].sort().join(' ')}; rules seen: ${[...seenRules].sort().join(' ')}`,
    );
  });
});
