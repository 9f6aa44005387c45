// Real sockets in a real test cgroup: the verdict the kernel gives for each rule of SPEC §2.
import assert from 'node:assert/strict';
import { release } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { parseKernelRelease } from '../../src/agent/preflight.js';
import { probeKernCtx } from '../../src/datapath/variant.js';
import { expectedVariant } from '../helpers/variant.js';
import { allow, basePolicy, createPod, group, mesh, type PodFixture } from '../helpers/kernelFixture.js';
import { requireRoot } from '../helpers/sandbox.js';

const skip = requireRoot();
if (skip) console.log(`# SKIP kernel verdict tests: ${skip}`);

describe('kernel verdicts', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('verdicts');
  });
  after(() => pod?.close());

  const shopAllowlist = () =>
    group('allow:shop', [allow('shop', '203.0.113.10/32', 443), allow('shop', '2001:db8::10/128', 443)]);
  const otherAllowlist = () => group('allow:other', [allow('other', '203.0.113.20/32', 443)]);
  const globalAllowlist = () => group('allow:', [allow('', '192.0.2.1/32', 8080, 'tcp', 'global/metrics')]);
  const standard = (overrides = {}) =>
    basePolicy({
      groups: [mesh('10.0.0.0/8', 'fd00::/8'), shopAllowlist(), otherAllowlist(), globalAllowlist()],
      ...overrides,
    });

  test('the datapath runs the forced variant, else kern-ctx wherever the kfunc probe loads (it must from 6.12)', () => {
    assert.equal(pod.dp.object.variant, expectedVariant());
    const [major, minor] = parseKernelRelease(release()) ?? [0, 0];
    if (major > 6 || (major === 6 && minor >= 12)) assert.equal(probeKernCtx(), null, 'the kern-ctx probe loads here');
  });

  test('TCP to a mesh CIDR lands on the proxy port with the IPv4 original destination', () => {
    pod.apply(standard());
    const v = pod.connect('10.1.2.3', 80);
    assert.equal(v.verdict, 'redirect');
    assert.equal(v.origdst, '10.1.2.3:80');
  });

  test('TCP to an IPv6 mesh CIDR lands on [::1] with the IPv6 original destination', () => {
    pod.apply(standard());
    const v = pod.connect('fd00::5', 8080);
    assert.equal(v.verdict, 'redirect');
    assert.equal(v.origdst, '[fd00::5]:8080');
    assert.match(v.raw.peer ?? '', /^\[::1\]:15001$/);
  });

  test('the proxy container cgroup passes to a mesh CIDR', () => {
    pod.apply(standard());
    assert.equal(pod.connect('10.1.2.3', 80, { cgroup: pod.proxy }).verdict, 'pass');
  });

  test('a process with the proxy uid in the app container is still redirected when the proxy cgroup is known', () => {
    pod.apply(standard());
    const v = pod.connect('10.1.2.3', 80, { uid: 1500 });
    assert.equal(v.verdict, 'redirect');
  });

  test('proxy_uid is the fallback identity when the proxy cgroup is unknown', () => {
    pod.apply(standard(), pod.cgroups({ proxyCgroupKnown: false }));
    assert.equal(pod.connect('10.1.2.3', 80, { uid: 1500 }).verdict, 'pass');
    assert.equal(pod.connect('10.1.2.3', 80, { uid: 1501 }).verdict, 'redirect');
  });

  test('an allowlisted address, port and protocol passes; another port is denied', () => {
    pod.apply(standard());
    assert.equal(pod.connect('203.0.113.10', 443).verdict, 'pass');
    assert.equal(pod.connect('2001:db8::10', 443).verdict, 'pass');
    assert.equal(pod.connect('203.0.113.10', 80).verdict, 'deny');
    assert.equal(pod.connect('203.0.113.10', 443, { proto: 'udp' }).verdict, 'deny');
  });

  test("another namespace's allowlist does not apply", () => {
    pod.apply(standard());
    assert.equal(pod.connect('203.0.113.20', 443).verdict, 'deny');
  });

  test('the global allowlist applies to every namespace', () => {
    pod.apply(standard());
    assert.equal(pod.connect('192.0.2.1', 8080).verdict, 'pass');
    assert.equal(pod.connect('192.0.2.1', 80).verdict, 'deny');
  });

  test('a denied connect fails with EPERM', () => {
    pod.apply(standard());
    const v = pod.connect('198.51.100.7', 443);
    assert.equal(v.raw.errno, 1);
    assert.equal(v.raw.error, 'EPERM');
  });

  test('egress "true" passes external traffic and still redirects the mesh', () => {
    pod.apply(standard({ egress: true }));
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'pass');
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'redirect');
  });

  test('blocked_egress_action redirect sends TCP to the proxy and denies UDP', () => {
    pod.apply(standard({ blockedAction: 'redirect' }));
    const v = pod.connect('198.51.100.7', 443);
    assert.equal(v.verdict, 'redirect');
    assert.equal(v.origdst, '198.51.100.7:443');
    assert.equal(pod.connect('198.51.100.7', 443, { proto: 'udp' }).verdict, 'deny');
  });

  test('UDP to a mesh CIDR passes', () => {
    pod.apply(standard());
    assert.equal(pod.connect('10.1.2.3', 80, { proto: 'udp' }).verdict, 'pass');
  });

  test('loopback and the unspecified address pass', () => {
    pod.apply(standard({ groups: [mesh('0.0.0.0/0', '::/0')] }));
    assert.equal(pod.connect('127.0.0.1', 80).verdict, 'pass');
    assert.equal(pod.connect('::1', 80).verdict, 'pass');
    assert.equal(pod.connect('127.0.0.1', 80, { family: 'mapped' }).verdict, 'pass');
  });

  test('an excluded CIDR and an excluded port pass, even inside the mesh', () => {
    pod.apply(
      standard({
        groups: [mesh('10.0.0.0/8'), group('exclude', [{ table: 'exclude', cidr: '10.1.0.0/16' }])],
        excludedPorts: [8080],
      }),
    );
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'pass');
    assert.equal(pod.connect('198.51.100.7', 8080).verdict, 'pass');
    assert.equal(pod.connect('198.51.100.7', 80).verdict, 'deny');
  });

  test('multicast is never redirected, even inside a mesh CIDR', () => {
    pod.apply(standard({ groups: [mesh('0.0.0.0/0')] }));
    assert.equal(pod.connect('239.1.2.3', 80, { proto: 'udp', sendto: true }).verdict, 'deny');
  });

  test('without mesh CIDRs and egress off, TCP is redirected and UDP passes', () => {
    pod.apply(standard({ groups: [shopAllowlist()] }));
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'redirect');
    assert.equal(pod.connect('203.0.113.10', 443).verdict, 'pass');
    assert.equal(pod.connect('198.51.100.7', 80, { proto: 'udp' }).verdict, 'pass');
  });

  test('a known pod that is not meshed is not enforced', () => {
    pod.apply(standard(), pod.cgroups({ podKind: 'unenforced', proxyCgroupKnown: false }));
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'pass');
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'pass');
  });

  test('an unmapped cgroup gets unknown_pod_policy: pass, or deny-external without redirects', () => {
    pod.apply(standard(), []);
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'pass');
    pod.apply(standard({ unknownPodPolicy: 'deny-external' }), []);
    assert.equal(pod.connect('198.51.100.7', 443).verdict, 'deny');
    assert.equal(pod.connect('10.1.2.3', 80).verdict, 'pass');
    assert.equal(pod.connect('192.0.2.1', 8080).verdict, 'pass');
    assert.equal(pod.connect('203.0.113.10', 443).verdict, 'deny', 'a namespace allowlist needs a known namespace');
  });
});

describe('kernel side doors', { skip: skip ?? false }, () => {
  let pod: PodFixture;
  before(async () => {
    pod = await createPod('sidedoor');
    pod.apply(
      basePolicy({
        groups: [
          mesh('10.0.0.0/8'),
          group('allow:shop', [
            allow('shop', '203.0.113.10/32', 443, 'tcp'),
            allow('shop', '203.0.113.10/32', 80, 'udp'),
          ]),
        ],
      }),
    );
  });
  after(() => pod?.close());

  for (const v6only of ['0', '1']) {
    test(`::ffff:a.b.c.d on an AF_INET6 socket is decided as IPv4 (IPV6_V6ONLY=${v6only})`, () => {
      const extra = ['--v6only', v6only];
      assert.equal(pod.connect('198.51.100.7', 443, { family: 'mapped', extra }).verdict, 'deny');
      assert.equal(pod.connect('198.51.100.7', 443, { family: 'mapped', proto: 'udp', extra }).verdict, 'deny');
      const datagram = pod.connect('198.51.100.7', 443, { family: 'mapped', proto: 'udp', sendto: true, extra });
      if (v6only === '1') {
        // The kernel refuses a v4-mapped datagram on a v6-only socket before any hook: nothing leaves.
        assert.equal(datagram.raw.error, 'ENETUNREACH');
        assert.equal(datagram.raw.reply, null);
      } else {
        assert.equal(datagram.verdict, 'deny');
      }
      if (v6only === '0') {
        const r = pod.connect('10.1.2.3', 80, { family: 'mapped', extra });
        assert.equal(r.verdict, 'redirect');
        assert.equal(r.origdst, '10.1.2.3:80');
        assert.equal(pod.connect('203.0.113.10', 443, { family: 'mapped', extra }).verdict, 'pass');
        assert.equal(
          pod.connect('203.0.113.10', 80, { family: 'mapped', proto: 'udp', sendto: true, extra }).verdict,
          'pass',
        );
      }
    });
  }

  test('unconnected UDP sendto is decided per datagram, IPv4 and IPv6', () => {
    assert.equal(pod.connect('198.51.100.7', 80, { sendto: true }).verdict, 'deny');
    assert.equal(pod.connect('2001:db8::20', 80, { sendto: true }).verdict, 'deny');
    assert.equal(pod.connect('203.0.113.10', 80, { sendto: true }).verdict, 'pass');
  });

  test('TCP Fast Open sendto(MSG_FASTOPEN) gets the verdict of connect', () => {
    const extra = ['--tfo', '--send', 'hello'];
    assert.equal(pod.connect('198.51.100.7', 443, { extra }).verdict, 'deny');
    const r = pod.connect('10.1.2.3', 80, { extra });
    assert.equal(r.verdict, 'redirect');
    assert.equal(r.origdst, '10.1.2.3:80');
    assert.equal(pod.connect('203.0.113.10', 443, { extra }).verdict, 'pass');
  });

  test('connect through io_uring gets the verdict of connect', () => {
    const extra = ['--io-uring'];
    assert.equal(pod.connect('198.51.100.7', 443, { extra }).verdict, 'deny');
    assert.equal(pod.connect('10.1.2.3', 80, { extra }).verdict, 'redirect');
    assert.equal(pod.connect('203.0.113.10', 443, { extra }).verdict, 'pass');
  });
});
