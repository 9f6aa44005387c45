// blocked_egress_action audit, with real sockets in a real test cgroup: an audited connect or
// datagram gets through untouched, and the kernel counts it and traces it as `audit`; a
// namespace's own action overrides the global one, in every combination.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { parseGlobalConfig, type BlockedEgressAction } from '../../src/config/index.js';
import {
  RULE_NAMES,
  VERDICT_NAMES,
  encodeTrace,
  encodeU32,
  formatAddress,
  type KernelEvent,
} from '../../src/datapath/codec.js';
import { readVerdictCounters } from '../../src/datapath/counters.js';
import { EventReader } from '../../src/datapath/events.js';
import { Explainer, parseDestination } from '../../src/explain/explain.js';
import { Pins } from '../../src/datapath/pinned.js';
import { PolicyCompiler } from '../../src/policy/compile.js';
import { cgroupId } from '../../src/node/cgroup.js';
import { createPod, type PodFixture } from '../helpers/kernelFixture.js';
import { requireRoot } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP audit kernel tests: ${skip}`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('blocked_egress_action audit in the kernel', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('audit');
  });
  after(() => pod?.close());

  /** Compiles a config the way the agent does (defaults included: event verdicts) and applies it. */
  function applyConfig(global: BlockedEgressAction, shop: BlockedEgressAction | null): void {
    const parsed = parseGlobalConfig(
      { mesh_cidr_ranges: '10.0.0.0/8', blocked_egress_action: global },
      { kind: 'ConfigMap', namespace: 'osm-system', name: 'osm-config' },
    );
    assert.ok(parsed.ok);
    const state = new PolicyCompiler().compile({
      global: parsed.value,
      allowlists: new Map(),
      namespaceActions: new Map(shop ? [['shop', shop]] : []),
      resolved: new Map(),
      pods: [],
    });
    pod.apply(state.policy);
  }

  const auditCount = (): bigint =>
    readVerdictCounters(pod.dp.maps.mg_counters).find((c) => c.verdict === 'audit' && c.rule === 'blocked')?.count ??
    0n;

  test("an audit namespace's TCP connect and UDP datagram get through untouched, are counted as audit/blocked, and traced by default", async () => {
    applyConfig('deny', 'audit');
    const callerId = cgroupId(pod.app);
    const events: KernelEvent[] = [];
    const reader = new EventReader(
      pod.dp.maps.mg_events,
      (e) => {
        if (e.cgroupId === callerId) events.push(e);
      },
      10,
    );
    try {
      reader.poll();
      events.length = 0;
      const before = auditCount();
      const tcp = pod.connect('198.51.100.7', 443);
      assert.equal(tcp.verdict, 'pass', 'the real destination answered: not denied, not redirected');
      assert.equal(tcp.origdst, null);
      assert.match(tcp.raw.peer ?? '', /^198\.51\.100\.7:443$/);
      const udp = pod.connect('198.51.100.7', 443, { proto: 'udp' });
      assert.equal(udp.verdict, 'pass');
      assert.equal(udp.raw.ok, true);
      const v6 = pod.connect('2001:db8::20', 80);
      assert.equal(v6.verdict, 'pass');
      assert.equal(auditCount() - before, 3n);
      await sleep(30);
      reader.poll();
    } finally {
      reader.close();
    }
    const audits = events.filter((e) => VERDICT_NAMES[e.verdict] === 'audit');
    assert.deepEqual(
      audits.map((e) => `${formatAddress(e.address)}:${e.port}/${e.proto}/${RULE_NAMES[e.rule]}`).sort(),
      ['198.51.100.7:443/17/blocked', '198.51.100.7:443/6/blocked', '2001:db8::20:80/6/blocked'],
    );
  });

  test('meshgate_verdicts_total has the audit/blocked series read from the kernel', async () => {
    applyConfig('audit', null);
    pod.connect('198.51.100.7', 443);
    const metrics = new AgentMetrics(
      () => pod.dp,
      () => new Map(),
    );
    const text = await metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith('meshgate_verdicts_total{verdict="audit",rule="blocked"}'));
    assert.ok(line, text);
    assert.ok(Number(line.split(' ').pop()) >= 1);
  });

  test('explain says the connect is let through and would be denied by rule 7, naming whose action it is', () => {
    applyConfig('deny', 'audit');
    const pins = Pins.open(pod.sb.pinDir);
    try {
      const x = new Explainer(pins).explain({ pod: 'shop/web' }, parseDestination('198.51.100.7:443'));
      assert.equal(x.verdict, 'audit');
      assert.equal(x.rule, 'blocked');
      assert.match(x.message, /^audit: would be denied by rule 7: .*namespace shop's blocked_egress_action is audit/);
    } finally {
      pins.close();
    }
  });

  // Documented in docs/decisions.md: the namespace's own action wins; UDP is never redirected.
  const expected = (action: BlockedEgressAction, proto: 'tcp' | 'udp'): 'pass' | 'redirect' | 'deny' =>
    action === 'audit' ? 'pass' : action === 'redirect' && proto === 'tcp' ? 'redirect' : 'deny';
  const ACTIONS: readonly BlockedEgressAction[] = ['deny', 'redirect', 'audit'];

  test('global action x namespace override: the namespace wins, an unset namespace follows the global action', () => {
    const seen: string[] = [];
    const want: string[] = [];
    for (const global of ACTIONS) {
      for (const shop of [null, ...ACTIONS]) {
        applyConfig(global, shop);
        for (const proto of ['tcp', 'udp'] as const) {
          const before = readVerdictCounters(pod.dp.maps.mg_counters);
          const v = pod.connect('198.51.100.7', 443, { proto });
          const after = readVerdictCounters(pod.dp.maps.mg_counters);
          // (The UDP listener's reply, from the sidecar's cgroup, is counted as pass/proxy-cgroup: not ours.)
          const grew = after.filter(
            (c) =>
              c.rule === 'blocked' &&
              c.count > (before.find((b) => b.verdict === c.verdict && b.rule === c.rule)?.count ?? 0n),
          );
          const effective = shop ?? global;
          const name = `global ${global}, shop ${shop ?? 'unset'}, ${proto}`;
          seen.push(`${name}: ${v.verdict} counted ${grew.map((c) => `${c.verdict}/${c.rule}`).join(',')}`);
          const kernelVerdict = effective === 'audit' ? 'audit' : expected(effective, proto);
          want.push(`${name}: ${expected(effective, proto)} counted ${kernelVerdict}/blocked`);
        }
      }
    }
    assert.deepEqual(seen, want);
  });

  test('the global action audit reaches every namespace without an override, and the override deny still denies', async () => {
    applyConfig('audit', 'deny');
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    applyConfig('audit', null);
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'pass');
    // mg_trace asks for nothing extra here: audits are in the policy's own event mask.
    pod.dp.maps.mg_trace.update(encodeU32(0), encodeTrace(0, 0n));
  });
});
