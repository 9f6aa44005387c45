// hostNetwork pods are never enforced (SPEC 1.3), not even before the agent maps them: under
// unknown_pod_policy deny-external, a socket of an unmapped cgroup passes when it is in the node's
// netns (mg_state.host_netns_cookie, the agent's own netns) and is denied anywhere else. The test
// creates both netns: in one pod the pod's netns plays the node's, in the other the far side's
// does. Proven on the far side: its server answers, and its sniffer sees (or never sees) the host.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { basePolicy, classify, mesh } from '../helpers/kernelFixture.js';
import { FAR, createFarSidePod, requireSideDoorTools, type FarSidePod } from '../helpers/farSide.js';
import { probe, requireRoot } from '../helpers/sandbox.js';
import { netnsCookie } from '../../native/libbpf.js';
import { decodeState, encodeU32 } from '../../src/datapath/codec.js';

const skip = requireRoot() ?? requireSideDoorTools();
if (skip) console.log(`# SKIP host-netns kernel tests: ${skip}`);

const MESH4 = '10.250.0.5';
const EPERM = 1;

async function farListeners(pod: FarSidePod): Promise<void> {
  pod.inFar('ip', ['addr', 'add', `${MESH4}/32`, 'dev', 'lo']);
  await pod.listenFar('tcp', 443);
  await pod.listenFar('udp', 53);
  // deny-external, no allowlist: every external destination of an unmapped cgroup is denied.
  pod.apply(basePolicy({ unknownPodPolicy: 'deny-external', groups: [mesh('10.0.0.0/8')] }), []);
}

describe('unknown_pod_policy deny-external spares the node netns (hostNetwork pods)', { skip: skip ?? false }, () => {
  let hostPod: FarSidePod;
  let otherPod: FarSidePod;
  before(async () => {
    hostPod = await createFarSidePod('hostns', { hostNetns: 'pod' });
    otherPod = await createFarSidePod('hostns-other', { hostNetns: 'far' });
    await farListeners(hostPod);
    await farListeners(otherPod);
  });
  after(() => {
    hostPod?.close();
    otherPod?.close();
  });
  const counter = (pod: FarSidePod, verdict: string, rule: string): bigint =>
    pod.dp.readCounters().find((c) => c.verdict === verdict && c.rule === rule)?.count ?? 0n;
  const attempts = (pod: FarSidePod) => {
    const client = (args: string[]) => classify(probe(pod.sb, args, { cgroup: pod.app }));
    return {
      tcp: client(['connect', '--family', '4', '--proto', 'tcp', '--addr', FAR.denied4, '--port', '443', '--read']),
      udpConnected: client([
        'connect',
        '--family',
        '4',
        '--proto',
        'udp',
        '--addr',
        FAR.denied4,
        '--port',
        '53',
        '--send',
        'x',
        '--read',
      ]),
      udpSendto: client(['sendto', '--family', '4', '--addr', FAR.denied4, '--port', '53', '--data', 'x', '--read']),
      tcp6mapped: client([
        'connect',
        '--family',
        'mapped',
        '--proto',
        'tcp',
        '--addr',
        FAR.denied4,
        '--port',
        '443',
        '--read',
      ]),
    };
  };

  test('an unmapped socket in the node netns passes: the far side answers TCP and UDP', async () => {
    const passedBefore = counter(hostPod, 'pass', 'unknown-pod');
    const cap = await hostPod.capture([FAR.denied4]);
    const r = attempts(hostPod);
    const seen = await cap.stop();
    for (const [what, v] of Object.entries(r)) {
      assert.equal(v.verdict, 'pass', `${what}: ${JSON.stringify(v.raw)}`);
      assert.match(v.raw.reply ?? '', /far:(443|53)/, `${what}: the far server answered`);
    }
    assert.ok((seen[FAR.denied4] ?? 0) > 0, `the far side saw the node netns' packets: ${JSON.stringify(seen)}`);
    assert.ok(counter(hostPod, 'pass', 'unknown-pod') > passedBefore, 'counted as unknown-pod passes');
  });

  test('an unmapped socket in another netns is denied: EPERM, and nothing reaches the far side', async () => {
    const deniedBefore = counter(otherPod, 'deny', 'unknown-pod');
    const cap = await otherPod.capture([FAR.denied4, MESH4]);
    const r = attempts(otherPod);
    // Control: in-mesh UDP passes (rule 4) and reaches the far side, so the sniffer sees this pod.
    const control = classify(
      probe(otherPod.sb, ['sendto', '--family', '4', '--addr', MESH4, '--port', '53', '--data', 'x', '--read'], {
        cgroup: otherPod.app,
      }),
    );
    const seen = await cap.stop();
    for (const [what, v] of Object.entries(r)) {
      assert.equal(v.verdict, 'deny', `${what}: ${JSON.stringify(v.raw)}`);
      assert.equal(v.raw.errno, EPERM, what);
    }
    assert.equal(control.verdict, 'pass', JSON.stringify(control.raw));
    assert.ok((seen[MESH4] ?? 0) > 0, `the control reached the far side: ${JSON.stringify(seen)}`);
    assert.equal(seen[FAR.denied4] ?? 0, 0, `nothing addressed to the denied host left: ${JSON.stringify(seen)}`);
    assert.ok(counter(otherPod, 'deny', 'unknown-pod') >= deniedBefore + 4n, 'counted as unknown-pod denies');
  });

  test('mg_state holds the netns cookie the loader was given (the agent gives its own)', () => {
    const cookie = (pod: FarSidePod) => decodeState(pod.dp.maps.mg_state.lookup(encodeU32(0))!).hostNetnsCookie;
    assert.equal(cookie(hostPod), netnsCookie(hostPod.sb.netnsPath));
    assert.equal(cookie(otherPod), netnsCookie(`/run/netns/${otherPod.farNetns}`));
    assert.notEqual(cookie(hostPod), netnsCookie(), "the test's own netns is not the pod's");
  });
});
