// `meshgate explain`: the verdict the kernel would give a connect() from a pod
// or cgroup to DEST:PORT, the rule and the map entry that decide it, read from
// the live pinned maps with the kernel's own LPM lookups (DECISION_STEPS).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import {
  CGROUP_FLAG,
  IPPROTO_TCP,
  IPPROTO_UDP,
  decodeTrieKey,
  decodeTrieValue,
  formatAddress,
  formatPrefix,
  protoName,
  trieLookupKey,
  decodeNamespace,
  encodeNamespaceKey,
  encodePortKey,
  type TableName,
  type VerdictName,
} from '../datapath/codec.js';
import { ENUMS } from '../datapath/abi.generated.js';
import { listPinnedLinks } from '../datapath/loader.js';
import { learnedLookup } from '../datapath/dnsLearned.js';
import { livePeerSockets } from '../datapath/replies.js';
import { CgroupTree, type CgroupNode } from '../node/cgroupTree.js';
import { decide, isV4, type MapHit, type PolicyLookups, type WalkStep } from './decisionTable.js';
import type { Pins } from '../datapath/pinned.js';
import { MeshgateError } from '../errors.js';
import { hostNetnsCookie } from '../datapath/hostNetns.js';

/** MG_MAX_CGROUP_WALK (meshgate_abi.h, used by bpf/decide.bpf.h): levels looked at from mg_state.cgroup_walk_start down. */
export const MAX_CGROUP_WALK = ENUMS.mg_walk_limits.MG_MAX_CGROUP_WALK;

/** explain's exit status per verdict; 1 and 2 stay "error" and "usage". */
export const VERDICT_EXIT_CODES: Readonly<Record<VerdictName, number>> = Object.freeze({
  pass: 0,
  redirect: 3,
  deny: 4,
  audit: 5,
});

export interface Destination {
  readonly address: Uint8Array;
  readonly port: number;
  readonly text: string;
}

/** "198.51.100.7:443", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:80"; throws one line on anything else. */
/** Command-line input as messages echo it: quoted, control characters escaped, at most 64 characters. */
export function quoteInput(text: string, max = 64): string {
  return (
    JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text).replace(
      /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    ) + (text.length > max ? ` (${text.length} characters)` : '')
  );
}

export function parseDestination(text: string): Destination {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) {
    throw new MeshgateError(
      'MG_EXPLAIN_BAD_DESTINATION',
      text.split(':').length > 2
        ? `destination ${quoteInput(text)}: write an IPv6 destination as [ADDRESS]:PORT, e.g. [2001:db8::1]:443`
        : `destination ${quoteInput(text)} is not ADDRESS:PORT, e.g. 198.51.100.7:443`,
    );
  }
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new MeshgateError(
      'MG_EXPLAIN_BAD_DESTINATION',
      `destination ${quoteInput(text)}: port ${m[2]!.length > 12 ? `${m[2]!.slice(0, 12)}…` : m[2]} is not in 1..65535`,
    );
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(m[1]!);
  } catch {
    throw new MeshgateError(
      'MG_EXPLAIN_BAD_DESTINATION',
      `destination ${quoteInput(text)}: ${quoteInput(m[1]!)} is not an IP address (explain takes addresses, not hostnames)`,
    );
  }
  if (m[0].startsWith('[') !== (addr.kind() === 'ipv6'))
    throw new MeshgateError(
      'MG_EXPLAIN_BAD_DESTINATION',
      `destination ${quoteInput(text)}: brackets are for IPv6 addresses only`,
    );
  const bytes = new Uint8Array(16);
  if (addr.kind() === 'ipv4') {
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    bytes.set(addr.toByteArray(), 12);
  } else {
    bytes.set(addr.toByteArray());
  }
  return { address: bytes, port, text };
}

/** Who connects: a pod by name, or a cgroup id. */
export type CallerRef = { readonly pod: string } | { readonly cgroupId: bigint };

export interface CallerView {
  readonly cgroupId: bigint;
  readonly path: string | null;
  readonly walk: readonly WalkStep[];
  readonly notes: readonly string[];
}

/** Entry details for --json and the "entry" line. */
export interface EntryView {
  readonly map: MapHit['map'];
  readonly table: TableName | null;
  readonly cidr: string | null;
  readonly port: number | null;
  readonly protocol: string | null;
  readonly namespace: string | null;
  readonly name: string | null;
  readonly host: string | null;
  /** mg_learned: the pod's DNS answer it came from */
  readonly learned?: {
    readonly name: string | null;
    readonly ttlS: number;
    readonly ageMs: number;
    readonly expiresInMs: number;
  };
}

export interface Explanation {
  readonly verdict: VerdictName;
  readonly rule: string;
  readonly ruleId: number;
  readonly spec: string;
  readonly message: string;
  readonly destination: {
    readonly address: string;
    readonly port: number;
    readonly protocol: string;
    readonly v4Mapped: boolean;
  };
  readonly caller: {
    readonly cgroupId: string;
    readonly path: string | null;
    readonly pod: string | null;
    readonly namespace: string | null;
    readonly kind: string;
    readonly proxyCgroupKnown: boolean | null;
    readonly uid: number | null;
  };
  readonly entry: EntryView | null;
  readonly redirectTo: string | null;
  readonly generation: string;
  readonly slot: number;
  readonly checked: readonly string[];
  readonly notes: readonly string[];
}

/** One explain session: the pins, the cgroup tree and the attach point, reused over many questions. */
export class Explainer {
  private readonly pins: Pins;
  private readonly tree: CgroupTree;
  private attach: CgroupNode | null | undefined;

  constructor(pins: Pins, tree = new CgroupTree()) {
    this.pins = pins;
    this.tree = tree;
  }

  private attachCgroup(): CgroupNode | null {
    if (this.attach === undefined) {
      const link = listPinnedLinks(this.pins.pinDir).find((l) => l.info && l.info.cgroupId !== 0n);
      this.attach = link?.info ? this.tree.find(link.info.cgroupId) : null;
    }
    return this.attach;
  }

  /** The cgroups decide() would look at for a process in this cgroup, from cgroup_walk_start down. */
  resolveCaller(ref: CallerRef, walkStart: number): CallerView {
    const notes: string[] = [];
    const id = 'pod' in ref ? this.pins.findPod(ref.pod).cgroupId : ref.cgroupId;
    const node = this.tree.find(id);
    if (!node) {
      if (!('pod' in ref))
        throw new MeshgateError('MG_CGROUP_NOT_FOUND', `no cgroup with id ${id} under ${this.tree.mount}`);
      // The pod is mapped but its directory is gone (or elsewhere): decide as if it were the caller's pod.
      notes.push(
        `the directory of cgroup ${id} was not found under ${this.tree.mount}; decided as if it were the caller's pod cgroup`,
      );
      return {
        cgroupId: id,
        path: null,
        walk: [{ level: walkStart, cgroupId: id, entry: this.pins.cgroup(id) }],
        notes,
      };
    }
    const attach = this.attachCgroup();
    if (attach && !CgroupTree.isUnder(node, attach)) {
      throw new MeshgateError(
        'MG_CGROUP_OUTSIDE_ATTACH',
        `cgroup ${id} (${node.path}) is not below the attach cgroup ${attach.path}: meshgate's hooks never see its connects`,
      );
    }
    if (!attach)
      notes.push('no pinned link is attached: the kernel decides nothing right now; this is what it would decide');
    const walk: WalkStep[] = [];
    for (let i = 0; i < MAX_CGROUP_WALK; i++) {
      const ancestor = this.tree.ancestorAt(node, walkStart + i);
      if (!ancestor) break;
      walk.push({ level: ancestor.level, cgroupId: ancestor.id, entry: this.pins.cgroup(ancestor.id) });
    }
    if (node.level >= walkStart + MAX_CGROUP_WALK)
      notes.push(
        `the caller is more than ${MAX_CGROUP_WALK} levels below the attach point; deeper cgroups are not looked at`,
      );
    return { cgroupId: id, path: node.path, walk, notes };
  }

  private lookups(slot: number): PolicyLookups {
    const { maps } = this.pins;
    return {
      trie: (table, proto, port, namespaceId, address) => {
        const raw = maps.mg_policy_trie.lookup(trieLookupKey({ slot, table, proto, port, namespaceId }, address));
        return raw ? { map: 'mg_policy_trie', table, labelId: decodeTrieValue(raw).labelId } : null;
      },
      excludedPort: (port) => maps.mg_excluded_ports.lookup(encodePortKey(slot, port)) !== null,
      namespaceAction: (namespaceId) => {
        const raw = maps.mg_namespaces.lookup(encodeNamespaceKey(slot, namespaceId));
        return raw ? decodeNamespace(raw).blockedAction : null;
      },
      namespaceName: (id) => this.pins.namespaceName(id),
      learned: (namespaceId, proto, port, address) => learnedLookup(maps, slot, namespaceId, proto, port, address),
    };
  }

  /** The trie entry a hit came from: the longest stored prefix with that header that holds the address (display only). */
  private matchedPrefix(
    slot: number,
    hit: MapHit,
    proto: number,
    port: number,
    namespaceId: number,
    address: Uint8Array,
  ): string | null {
    let best: { bits: number; text: string } | null = null;
    for (const kb of this.pins.maps.mg_policy_trie.keys()) {
      const k = decodeTrieKey(kb);
      if (
        k.slot !== slot ||
        k.table !== hit.table ||
        k.proto !== proto ||
        k.port !== port ||
        k.namespaceId !== namespaceId
      )
        continue;
      if (!prefixHolds(k.prefix.bytes, k.prefix.bits, address) || (best && best.bits >= k.prefix.bits)) continue;
      best = { bits: k.prefix.bits, text: formatPrefix(k.prefix.bytes, k.prefix.bits) };
    }
    return best?.text ?? null;
  }

  explain(
    ref: CallerRef,
    dest: Destination,
    opts: { udp?: boolean; uid?: number | null; netns?: string } = {},
  ): Explanation {
    const state = this.pins.state();
    const slot = (state?.activeSlot ?? 0) & 1;
    const config = state ? this.pins.config(slot) : null;
    const caller = this.resolveCaller(ref, state?.cgroupWalkStart ?? 0);
    const proto = opts.udp ? IPPROTO_UDP : IPPROTO_TCP;
    const netnsView =
      config?.unknownPodPolicy === 1 && !caller.walk.some((s) => s.entry)
        ? inHostNetns(caller, state?.hostNetnsCookie ?? 0n, opts.netns)
        : { hostNetns: false, note: null };
    const hostNetns = netnsView.hostNetns;
    const d = decide({
      config,
      walk: caller.walk,
      hostNetns,
      uid: opts.uid ?? null,
      address: dest.address,
      port: dest.port,
      proto,
      lookups: this.lookups(slot),
    });
    const ctx = d.context;
    const notes = [...caller.notes];
    if (netnsView.note) notes.push(netnsView.note);
    const podEntry = ctx.pod?.entry ? this.pins.describeCgroup(ctx.pod.cgroupId, ctx.pod.entry) : null;
    const own = this.pins.cgroup(caller.cgroupId);
    const ownView = own ? this.pins.describeCgroup(caller.cgroupId, own) : null;
    const proxyKnown = ctx.pod?.entry ? Boolean(ctx.pod.entry.flags & CGROUP_FLAG.MG_POD_PROXY_CGROUP_KNOWN) : null;
    if (config && opts.uid == null && proxyKnown === false && ctx.pod?.entry?.kind === 1 && d.rule !== 'proxy-uid') {
      notes.push(
        `the pod's sidecar cgroup is unknown: a process running as proxy_uid ${config.proxyUid} would pass (rule 1 fallback); see --uid`,
      );
    }
    if (proto === IPPROTO_UDP && d.rule === 'blocked' && d.verdict !== 'redirect' && ctx.pod) {
      // A reply is decided per socket (bpf/reply.bpf.h): explain decides a new flow, and says when a socket may answer.
      const live = livePeerSockets(this.pins.maps, ctx.pod.cgroupId, dest.address, dest.port);
      notes.push(
        live.sockets > 0
          ? `${live.sockets} UDP socket(s) of this pod heard from this peer: their replies to it pass (rule reply) for ${(live.expiresInMs / 1000).toFixed(1)}s more`
          : 'a UDP socket of this pod that receives a datagram from this peer may reply to it (rule reply)',
      );
    }
    const mapped = isV4(dest.address) && dest.text.startsWith('[');
    if (mapped) notes.push(`a v4-mapped destination is decided as the IPv4 address ${formatAddress(dest.address)}`);

    let entry: EntryView | null = null;
    if (d.hit?.learned) {
      const label = this.pins.label(d.hit.labelId);
      entry = {
        map: d.hit.map,
        table: 'allow',
        cidr: `${formatAddress(dest.address)}/${isV4(dest.address) ? 32 : 128}`,
        port: dest.port,
        protocol: protoName(proto),
        namespace: d.hit.learned.namespaceId ? this.pins.namespaceName(d.hit.learned.namespaceId) : '',
        name: label?.name ?? null,
        host: d.hit.learned.host,
        learned: {
          name: d.hit.learned.name,
          ttlS: d.hit.learned.ttlS,
          ageMs: d.hit.learned.ageMs,
          expiresInMs: d.hit.learned.expiresInMs,
        },
      };
    } else if (d.hit) {
      const allow = d.hit.table === 'allow';
      const namespaceId = d.rule === 'allow-namespace' ? ctx.namespaceId : 0;
      const label = this.pins.label(d.hit.labelId);
      entry = {
        map: d.hit.map,
        table: d.hit.table ?? null,
        cidr:
          d.hit.map === 'mg_policy_trie'
            ? this.matchedPrefix(slot, d.hit, allow ? proto : 0, allow ? dest.port : 0, namespaceId, dest.address)
            : null,
        port: allow || d.hit.map === 'mg_excluded_ports' ? dest.port : null,
        protocol: allow ? protoName(proto) : null,
        namespace: allow ? (namespaceId ? this.pins.namespaceName(namespaceId) : '') : null,
        name: label?.name ?? null,
        host: label?.host ?? null,
      };
    }
    const proxyPort = config?.proxyPort ?? 0;
    return {
      verdict: d.verdict,
      rule: d.rule,
      ruleId: d.ruleId,
      spec: d.spec,
      message: d.message,
      destination: {
        address: formatAddress(dest.address),
        port: dest.port,
        protocol: protoName(proto),
        v4Mapped: mapped,
      },
      caller: {
        cgroupId: caller.cgroupId.toString(),
        path: caller.path,
        pod: podEntry?.pod ?? ownView?.pod ?? null,
        namespace: podEntry?.namespace ?? ownView?.namespace ?? null,
        kind: ctx.proxyCgroup ? 'proxy' : (podEntry?.kindName ?? 'unmapped'),
        proxyCgroupKnown: proxyKnown,
        uid: opts.uid ?? null,
      },
      entry,
      redirectTo:
        d.verdict === 'redirect' ? (isV4(dest.address) ? `127.0.0.1:${proxyPort}` : `[::1]:${proxyPort}`) : null,
      generation: (config?.generation ?? 0n).toString(),
      slot,
      checked: d.checked,
      notes,
    };
  }
}

function prefixHolds(prefix: Uint8Array, bits: number, address: Uint8Array): boolean {
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((prefix[i]! & mask) !== (address[i]! & mask)) return false;
  }
  return true;
}

/** Wraps text at `width` columns, continuation lines indented. */
export function wrap(text: string, width = 80, indent = '  '): string[] {
  const out: string[] = [];
  const lead = /^ */.exec(text)![0];
  let line = lead;
  for (const word of text.slice(lead.length).split(/(?<=\S) (?=\S)/)) {
    const next = line.trim() ? `${line} ${word}` : `${line}${word}`;
    if (next.length > width && line.trim()) {
      out.push(line);
      line = `${indent}${word}`;
    } else {
      line = next;
    }
  }
  if (line.trim()) out.push(line);
  return out;
}

const KIND_TEXT: Record<string, string> = {
  pod: 'meshed pod',
  unenforced: 'pod, not meshed',
  proxy: 'sidecar cgroup',
  unmapped: 'not mapped by the agent',
};

export function formatEntry(e: EntryView): string {
  if (e.map === 'mg_excluded_ports') return `mg_excluded_ports: port ${e.port}`;
  const where =
    e.table === 'allow'
      ? `allowlist ${e.namespace ? e.namespace : '(global)'}${e.name ? `/${e.name}` : ''}`
      : e.table === 'mesh'
        ? 'mesh_cidr_ranges'
        : 'outbound_ip_range_exclusion_list';
  const dest = `${e.cidr ?? '?'}${e.port !== null ? ` ${e.port}/${e.protocol}` : ''}`;
  if (e.learned) return `${where}: ${dest}, learned from the DNS answer for ${e.learned.name ?? e.host} (${e.host})`;
  return `${where}: ${dest}${e.host ? ` (from ${e.host})` : ''}`;
}

export function formatExplanation(x: Explanation): string {
  const lines = wrap(x.message);
  const row = (k: string, v: string) => lines.push(...wrap(`  ${k.padEnd(12)}${v}`, 80, ' '.repeat(14)));
  const who = x.caller.pod
    ? `${x.caller.pod} (cgroup ${x.caller.cgroupId}, ${KIND_TEXT[x.caller.kind] ?? x.caller.kind})`
    : `cgroup ${x.caller.cgroupId} (${KIND_TEXT[x.caller.kind] ?? x.caller.kind})`;
  row('caller', who + (x.caller.uid !== null ? `, uid ${x.caller.uid}` : ''));
  const d = x.destination;
  row('destination', `${d.address.includes(':') ? `[${d.address}]` : d.address}:${d.port}/${d.protocol}`);
  row('rule', `${x.rule} (${x.spec})`);
  if (x.entry) row('entry', formatEntry(x.entry));
  if (x.redirectTo) row('redirect to', x.redirectTo);
  row('policy', `generation ${x.generation} (slot ${x.slot})`);
  for (const n of x.notes) row('note', n);
  return lines.join('\n');
}

/**
 * Whether the caller's sockets are in the node's netns (mg_state.host_netns_cookie, what the
 * kernel compares for an unmapped cgroup): the netns file given (--netns), else the first process
 * of the caller's cgroup; without either, not, and a note says so.
 */
function inHostNetns(
  caller: CallerView,
  hostCookie: bigint,
  netns: string | undefined,
): { hostNetns: boolean; note: string | null } {
  if (hostCookie === 0n) return { hostNetns: false, note: null };
  let file = netns;
  if (file === undefined && caller.path) {
    let procs = '';
    try {
      procs = readFileSync(path.join(caller.path, 'cgroup.procs'), 'utf8');
    } catch {
      // A cgroup that is gone has no process: decided as outside, as below.
    }
    const pid = procs.split('\n')[0];
    if (pid) file = `/proc/${pid}/ns/net`;
  }
  if (file === undefined)
    return {
      hostNetns: false,
      note: "no process is in this cgroup to tell its network namespace: decided as outside the node's (a socket in the node's netns, a hostNetwork pod's, passes); see --netns",
    };
  try {
    const host = hostNetnsCookie(file) === hostCookie;
    return { hostNetns: host, note: host ? null : `${file} is not the node's network namespace` };
  } catch (err) {
    return {
      hostNetns: false,
      note: `the network namespace ${file} could not be read (${(err as Error).message}): decided as outside the node's`,
    };
  }
}
