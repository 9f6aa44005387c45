// The DNS reader's policy tables (mg_dns_hosts, mg_dns_ports), per generation
// slot like the trie: Datapath.apply writes them into the inactive slot with
// the rest of the policy, and the slot switch moves both at once.
import type { DesiredDnsHost } from './desired.js';
import { protoNumber } from './codec.js';
import { dnsHostKeySlot, decodeDnsPortKey, encodeDnsHost, encodeDnsPortKey, hostLabel } from './dnsCodec.js';
import type { MapHandle } from './maps.js';

export type DnsMapName = 'mg_dns_hosts' | 'mg_dns_ports';

/** What one slot holds: "map|key hex" -> value hex. */
export type DnsSlotShadow = Map<string, string>;

const id = (map: DnsMapName, key: Buffer): string => `${map}|${key.toString('hex')}`;

/** The entries a slot must hold for `hosts`. labelId gives (and reserves) the id of a label text. */
export function wantedDnsSlot(
  hosts: readonly DesiredDnsHost[],
  slot: number,
  namespaceId: (ns: string) => number,
  labelId: (text: string) => number,
): DnsSlotShadow {
  const out: DnsSlotShadow = new Map();
  for (const h of hosts) {
    const hostId = labelId(hostLabel(h.namespace, h.host));
    const { key, value } = encodeDnsHost(h.host, h.namespace ? namespaceId(h.namespace) : 0, slot, hostId);
    out.set(id('mg_dns_hosts', key), value.toString('hex'));
    const four = Buffer.alloc(4);
    for (const p of h.ports) {
      four.writeUInt32LE(labelId(p.label));
      out.set(id('mg_dns_ports', encodeDnsPortKey(hostId, p.port, protoNumber(p.proto), slot)), four.toString('hex'));
    }
  }
  return out;
}

/** Makes the kernel's slot hold `want` (deletes first: no key is ever in two states). */
export function writeDnsSlot(maps: Record<DnsMapName, MapHandle>, have: DnsSlotShadow, want: DnsSlotShadow): number {
  let writes = 0;
  for (const [k] of have) {
    if (want.has(k)) continue;
    const [map, hex] = k.split('|') as [DnsMapName, string];
    maps[map].delete(Buffer.from(hex, 'hex'));
    writes++;
  }
  for (const [k, v] of want) {
    if (have.get(k) === v) continue;
    const [map, hex] = k.split('|') as [DnsMapName, string];
    maps[map].update(Buffer.from(hex, 'hex'), Buffer.from(v, 'hex'));
    writes++;
  }
  return writes;
}

/** Both slots as the kernel holds them (after a restart, or a failed write). */
export function readDnsSlots(maps: Record<DnsMapName, MapHandle>): [DnsSlotShadow, DnsSlotShadow] {
  const slots: [DnsSlotShadow, DnsSlotShadow] = [new Map(), new Map()];
  for (const [key, value] of maps.mg_dns_hosts.entries())
    slots[dnsHostKeySlot(key) & 1]!.set(id('mg_dns_hosts', key), value.toString('hex'));
  for (const [key, value] of maps.mg_dns_ports.entries())
    slots[decodeDnsPortKey(key).slot & 1]!.set(id('mg_dns_ports', key), value.toString('hex'));
  return slots;
}

/** Label ids a slot refers to (host ids and entry labels), so they are never collected while in use. */
export function dnsSlotLabels(shadow: DnsSlotShadow, into: Set<number>): void {
  for (const [k, v] of shadow) {
    const value = Buffer.from(v, 'hex');
    into.add(value.readUInt32LE(0)); // mg_dns_host.host_id and the ports' label both come first
    if (k.startsWith('mg_dns_ports|')) into.add(decodeDnsPortKey(Buffer.from(k.slice(13), 'hex')).hostId);
  }
}
