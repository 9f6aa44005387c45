// The DNS reader's core driven by BPF_PROG_TEST_RUN (build/dnstest.bpf.o): no
// cgroup, no socket, no pins. A query goes through the egress entry point and
// an answer through the ingress one, as IPv4/UDP frames; what was learned is
// read back from the object's own mg_learned. Used by the fuzz test and the bench.
import path from 'node:path';
import { UnpinnedObject } from '../../src/datapath/unpinnedObject.js';
import { encodeState, encodeU32 } from '../../src/datapath/codec.js';
import { encodeDnsConfig, encodeResolverKey } from '../../src/datapath/dnsCodec.js';
import { readDnsStats, readLearned, type LearnedView } from '../../src/datapath/dnsLearned.js';
import { wantedDnsSlot, writeDnsSlot } from '../../src/datapath/dnsTables.js';
import type { DesiredDnsHost } from '../../src/datapath/desired.js';
import type { MapHandle } from '../../src/datapath/maps.js';
import type { MapName } from '../../src/datapath/abi.generated.js';
import { REPO_ROOT } from './sandbox.js';

export const RESOLVER = '10.96.0.10';
export const POD = '10.0.0.5';
export const POD_PORT = 40000;
export const NAMESPACE_ID = 7;

export interface HarnessOptions {
  readonly hosts: readonly DesiredDnsHost[];
  /** mg_learned's capacity in this object */
  readonly learnedMax?: number;
  readonly ttlFloorS?: number;
  readonly ttlCeilingS?: number;
  readonly graceS?: number;
}

/** An Ethernet + IPv4 + UDP frame around a DNS payload (checksums are not read by the program). */
export function udpFrame(src: string, sport: number, dst: string, dport: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payload.length);
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f[ip] = 0x45;
  f.writeUInt16BE(20 + 8 + payload.length, ip + 2);
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(f, ip + 12);
  Buffer.from(dst.split('.').map(Number)).copy(f, ip + 16);
  const udp = ip + 20;
  f.writeUInt16BE(sport, udp);
  f.writeUInt16BE(dport, udp + 2);
  f.writeUInt16BE(8 + payload.length, udp + 4);
  payload.copy(f, udp + 8);
  return f;
}

/** A TCP segment (no payload): what the ingress program sees for ordinary traffic. */
export function tcpFrame(src: string, dst: string): Buffer {
  const f = Buffer.alloc(14 + 20 + 20);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40, 16);
  f[14 + 8] = 64;
  f[14 + 9] = 6;
  Buffer.from(src.split('.').map(Number)).copy(f, 14 + 12);
  Buffer.from(dst.split('.').map(Number)).copy(f, 14 + 16);
  f.writeUInt16BE(443, 34);
  f.writeUInt16BE(40000, 36);
  f[34 + 12] = 0x50;
  return f;
}

export const EGRESS = 'mg_test_dns_egress';
export const INGRESS = 'mg_test_dns_ingress';

export class DnsHarness {
  readonly obj: UnpinnedObject;
  private readonly maps: Record<string, MapHandle>;

  constructor(opts: HarnessOptions) {
    const learnedMax = opts.learnedMax ?? 1024;
    const obj = UnpinnedObject.load(path.join(REPO_ROOT, 'build/dnstest.bpf.o'), {
      mg_learned: learnedMax,
      mg_learned_ring: learnedMax,
    });
    this.obj = obj;
    try {
      this.maps = Object.fromEntries(
        (
          [
            'mg_state',
            'mg_dns_config',
            'mg_dns_resolvers',
            'mg_dns_hosts',
            'mg_dns_ports',
            'mg_learned',
            'mg_labels',
            'mg_dns_names',
            'mg_dns_stats',
          ] as MapName[]
        ).map((n) => [n, obj.map(n)]),
      );
      this.maps['mg_state']!.update(
        encodeU32(0),
        encodeState({ activeSlot: 0, cgroupWalkStart: 1, eventsPerSec: 0, eventsBurst: 0 }),
      );
      this.maps['mg_dns_config']!.update(
        encodeU32(0),
        encodeDnsConfig({
          ttlFloorNs: BigInt((opts.ttlFloorS ?? 5) * 1e9),
          ttlCeilingNs: BigInt((opts.ttlCeilingS ?? 300) * 1e9),
          graceNs: BigInt((opts.graceS ?? 0) * 1e9),
          learnedMax,
        }),
      );
      this.maps['mg_dns_resolvers']!.update(encodeResolverKey(RESOLVER, 53), Buffer.from([1]));
      const labels = new Map<string, number>();
      const labelId = (text: string) => {
        if (!labels.has(text)) labels.set(text, labels.size + 100);
        return labels.get(text)!;
      };
      writeDnsSlot(
        this.maps as never,
        new Map(),
        wantedDnsSlot(opts.hosts, 0, () => NAMESPACE_ID, labelId),
      );
      for (const [text, id] of labels) {
        const b = Buffer.alloc(512);
        b.write(text);
        this.maps['mg_labels']!.update(encodeU32(id), b);
      }
      this.resetSocket();
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** A socket of namespace NAMESPACE_ID with no outstanding query. */
  resetSocket(): void {
    const v = Buffer.alloc(72);
    v.writeUInt32LE(NAMESPACE_ID, 64);
    this.obj.rawUpdate('mg_test_socket', encodeU32(0), v);
  }

  /** Keeps socket [0] as it is now, and restores it before every answer (benchmarks). */
  rearm(on: boolean): void {
    if (on) {
      const v = Buffer.alloc(72);
      this.obj.rawLookup('mg_test_socket', encodeU32(0), v);
      this.obj.rawUpdate('mg_test_socket', encodeU32(1), v);
    }
    this.obj.rawUpdate('mg_test_rearm', encodeU32(0), encodeU32(on ? 1 : 0));
  }

  /** The pod sends a query (DNS payload) to the resolver. */
  sendQuery(payload: Buffer, to = RESOLVER): void {
    this.obj.testRun(EGRESS, udpFrame(POD, POD_PORT, to, 53, payload));
  }

  /** An answer (DNS payload) arrives from `from`:53. Returns the program's return value (1: delivered). */
  receive(payload: Buffer, from = RESOLVER, sport = 53): number {
    return this.obj.testRun(INGRESS, udpFrame(from, sport, POD, POD_PORT, payload)).retval;
  }

  learned(): LearnedView[] {
    return readLearned(this.maps as never);
  }

  clearLearned(): void {
    for (const key of this.maps['mg_learned']!.keys()) this.maps['mg_learned']!.delete(key);
  }

  stats(): Record<string, bigint> {
    return readDnsStats(this.maps['mg_dns_stats']!);
  }

  close(): void {
    this.obj.close();
  }
}
