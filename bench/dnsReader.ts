// The DNS reader's cost (bpf/dns.bpf.c): per packet, from BPF_PROG_TEST_RUN's
// own timing (the kernel runs the program N times on one frame and reports the
// mean), and per stream, as receive throughput into a socket of a cgroup with
// and without mg_dns_ingress attached (bench/streamrate.c).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { encode } from 'dns-packet';
import { encodeU32 } from '../src/datapath/codec.js';
import { UnpinnedObject } from '../src/datapath/unpinnedObject.js';
import { DnsHarness, INGRESS, RESOLVER, tcpFrame, udpFrame } from '../test/helpers/dnsHarness.js';
import { summarize, type Summary } from './stats.js';
import { REPO_ROOT, type BenchSandbox } from './sandbox.js';

export const STREAMRATE = path.join(REPO_ROOT, 'build/streamrate');

export interface DnsPacketRow {
  readonly id: string;
  readonly what: string;
  /** ns per run, one sample per batch */
  readonly ns: Summary;
}

export interface DnsStreamRow {
  readonly mode: 'tcp' | 'udp';
  /** MB/s (tcp) or datagrams/s (udp), one sample per round */
  readonly without: Summary;
  readonly with: Summary;
  /** 1 - with/without of the medians, in % */
  readonly lossPct: number;
}

export interface DnsReaderResult {
  readonly packets: readonly DnsPacketRow[];
  readonly streams: readonly DnsStreamRow[];
}

export interface DnsReaderOptions {
  readonly batches: number;
  readonly repeat: number;
  readonly rounds: number;
  readonly streamMs: number;
  readonly cpuRecv: number | null;
  readonly cpuSend: number | null;
  readonly log: (line: string) => void;
}

function timeRuns(obj: UnpinnedObject, program: string, frame: Buffer, o: DnsReaderOptions): Summary {
  const samples: number[] = [];
  obj.testRun(program, frame, 1000); // warm
  for (let b = 0; b < o.batches; b++) samples.push(obj.testRun(program, frame, o.repeat).durationNs);
  return summarize(samples);
}

/** The production object, unpinned, with port 53 marked as a resolver's. */
function productionObject(): UnpinnedObject {
  const obj = UnpinnedObject.load(path.join(REPO_ROOT, 'build/meshgate.bpf.o'));
  obj.map('mg_dns_resolver_ports').update(encodeU32(53), Buffer.from([1]));
  return obj;
}

function stream(sb: BenchSandbox, netns: string, cgroup: string, mode: 'tcp' | 'udp', o: DnsReaderOptions): number {
  const args = ['--netns', netns, '--cgroup', cgroup, '--mode', mode, '--ms', String(o.streamMs)];
  if (o.cpuRecv !== null) args.push('--cpu-recv', String(o.cpuRecv));
  if (o.cpuSend !== null) args.push('--cpu-send', String(o.cpuSend));
  const r = JSON.parse(execFileSync(STREAMRATE, args, { encoding: 'utf8', timeout: o.streamMs + 10_000 }).trim()) as {
    bytes: number;
    packets: number;
    seconds: number;
  };
  void sb;
  return mode === 'tcp' ? r.bytes / 1e6 / r.seconds : r.packets / r.seconds;
}

export function benchDnsReader(sb: BenchSandbox, o: DnsReaderOptions): DnsReaderResult {
  const packets: DnsPacketRow[] = [];
  const prod = productionObject();
  try {
    o.log('DNS reader: per-packet cost (BPF_PROG_TEST_RUN)');
    packets.push({
      id: 'tcp',
      what: 'mg_dns_ingress, a TCP segment (protocol check only)',
      ns: timeRuns(prod, 'mg_dns_ingress', tcpFrame('203.0.113.10', '10.0.0.5'), o),
    });
    packets.push({
      id: 'udp',
      what: 'mg_dns_ingress, a UDP datagram not from a resolver port (one port check)',
      ns: timeRuns(prod, 'mg_dns_ingress', udpFrame('203.0.113.10', 8125, '10.0.0.5', 40000, Buffer.alloc(64)), o),
    });

    const h = new DnsHarness({
      hosts: [
        { namespace: 'shop', host: 'api.example.com', ports: [{ proto: 'tcp', port: 443, label: 'api' }] },
        { namespace: 'shop', host: '*.cdn.example.net', ports: [{ proto: 'tcp', port: 443, label: 'cdn' }] },
      ],
    });
    try {
      const answer = (name: string, answers: object[]) => {
        const q = { type: 'query' as const, id: 4242, flags: 0x0100, questions: [{ type: 'A' as const, name }] };
        h.resetSocket();
        h.sendQuery(encode(q));
        h.rearm(true);
        return udpFrame(
          RESOLVER,
          53,
          '10.0.0.5',
          40000,
          encode({ type: 'response', id: 4242, flags: 0x8180, questions: q.questions, answers } as never),
        );
      };
      const a = (name: string, data: string) => ({ type: 'A', name, ttl: 60, class: 'IN', data });
      let frame = answer('api.example.com', [a('api.example.com', '203.0.113.1'), a('api.example.com', '203.0.113.2')]);
      packets.push({
        id: 'answer',
        what: 'a DNS answer learned: api.example.com, 2 A records',
        ns: timeRuns(h.obj, INGRESS, frame, o),
      });
      frame = answer('a.b.cdn.example.net', [
        { type: 'CNAME', name: 'a.b.cdn.example.net', ttl: 60, class: 'IN', data: 'edge.provider.test' },
        { type: 'CNAME', name: 'edge.provider.test', ttl: 60, class: 'IN', data: 'e7.provider.test' },
        ...[1, 2, 3, 4].map((k) => a('e7.provider.test', `198.51.100.${k}`)),
      ]);
      packets.push({
        id: 'answer-cname',
        what: 'a DNS answer learned: wildcard *.cdn.example.net, 2 CNAMEs, 4 A records',
        ns: timeRuns(h.obj, INGRESS, frame, o),
      });
      frame = answer('www.example.org', [a('www.example.org', '203.0.113.9')]);
      packets.push({
        id: 'answer-unlisted',
        what: 'a DNS answer for a name no allowlist has (parsed, nothing learned)',
        ns: timeRuns(h.obj, INGRESS, frame, o),
      });
    } finally {
      h.close();
    }

    o.log('DNS reader: receive throughput with and without mg_dns_ingress');
    const ns = sb.netns('dnsrate');
    const cg = sb.cgroup('dnsrate');
    const streams: DnsStreamRow[] = [];
    for (const mode of ['tcp', 'udp'] as const) {
      const without: number[] = [];
      const withProg: number[] = [];
      const withReader = () => {
        const detach = prod.attachToCgroup('mg_dns_ingress', cg);
        try {
          withProg.push(stream(sb, ns.path, cg, mode, o));
        } finally {
          detach();
        }
      };
      // Each setting goes first in half the rounds, so a drift over the run (the machine warming
      // up, another tenant) does not always fall on the same side.
      for (let r = 0; r < o.rounds; r++) {
        if (r % 2) withReader();
        without.push(stream(sb, ns.path, cg, mode, o));
        if (!(r % 2)) withReader();
      }
      const w = summarize(without);
      const p = summarize(withProg);
      streams.push({ mode, without: w, with: p, lossPct: (1 - p.median / w.median) * 100 });
    }
    return { packets, streams };
  } finally {
    prod.close();
  }
}
