// Replies seen from user space (bpf/reply.bpf.h): how long a UDP peer stays a
// peer (written once per agent start), and the peers the kernel holds (dump).
// The peers themselves are written only by the kernel, from datagrams that
// came in; the agent never adds to them.
import { ENUMS, STRUCTS } from './abi.generated.js';
import { fieldOffset } from './abiFields.js';
import { encodeU32, formatAddress } from './codec.js';
import type { MapHandle } from './maps.js';

export const REPLY_LIMITS = ENUMS.mg_reply_limits;
const ASSURED = ENUMS.mg_reply_flags.MG_REPLY_ASSURED;

export interface ReplySettings {
  /** A peer's lifetime after its last datagram, before the socket replied (--udp-reply-timeout). */
  readonly unrepliedMs: number;
  /** The same once the socket has replied (--udp-reply-stream-timeout). */
  readonly assuredMs: number;
}

export const REPLY_DEFAULTS: ReplySettings = Object.freeze({
  unrepliedMs: REPLY_LIMITS.MG_REPLY_UNREPLIED_MS,
  assuredMs: REPLY_LIMITS.MG_REPLY_ASSURED_MS,
});

const CONFIG = {
  unreplied: fieldOffset('mg_reply_config', 'unreplied_ns', 8),
  assured: fieldOffset('mg_reply_config', 'assured_ns', 8),
};
const KEY = {
  cookie: fieldOffset('mg_reply_key', 'sock_cookie', 8),
  addr: fieldOffset('mg_reply_key', 'addr', 16),
  port: fieldOffset('mg_reply_key', 'port', 2),
};
const VALUE = {
  expires: fieldOffset('mg_reply', 'expires_ns', 8),
  lastIn: fieldOffset('mg_reply', 'last_in_ns', 8),
  pod: fieldOffset('mg_reply', 'pod_cgroup_id', 8),
  flags: fieldOffset('mg_reply', 'flags', 4),
};

const ns = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

export function encodeReplyConfig(s: ReplySettings): Buffer {
  const b = Buffer.alloc(STRUCTS.mg_reply_config.size);
  b.writeBigUInt64LE(ns(s.unrepliedMs), CONFIG.unreplied);
  b.writeBigUInt64LE(ns(s.assuredMs), CONFIG.assured);
  return b;
}

export function decodeReplyConfig(b: Buffer): ReplySettings {
  const ms = (at: number): number => Number(b.readBigUInt64LE(at) / 1000000n);
  return { unrepliedMs: ms(CONFIG.unreplied), assuredMs: ms(CONFIG.assured) };
}

export function writeReplySettings(maps: Record<'mg_reply_config', MapHandle>, s: ReplySettings): void {
  maps.mg_reply_config.update(encodeU32(0), encodeReplyConfig(s));
}

export interface ReplyPeer {
  readonly sockCookie: bigint;
  readonly podCgroupId: bigint;
  readonly peer: string;
  readonly port: number;
  /** The socket has replied to this peer. */
  readonly assured: boolean;
  /** CLOCK_MONOTONIC ns */
  readonly expiresNs: bigint;
  readonly lastInNs: bigint;
}

export function decodeReplyPeer(key: Buffer, value: Buffer): ReplyPeer {
  return {
    sockCookie: key.readBigUInt64LE(KEY.cookie),
    peer: formatAddress(key.subarray(KEY.addr, KEY.addr + 16)),
    port: key.readUInt16BE(KEY.port),
    podCgroupId: value.readBigUInt64LE(VALUE.pod),
    assured: (value.readUInt32LE(VALUE.flags) & ASSURED) !== 0,
    expiresNs: value.readBigUInt64LE(VALUE.expires),
    lastInNs: value.readBigUInt64LE(VALUE.lastIn),
  };
}

/** Every peer the kernel holds, live or expired (the LRU drops expired ones only when it needs room). */
export function readReplyPeers(maps: Record<'mg_reply_peers', MapHandle>): ReplyPeer[] {
  return maps.mg_reply_peers.entries().map(([k, v]) => decodeReplyPeer(k, v));
}

/**
 * The sockets of a pod that may reply to address:port now (explain): the live
 * entries of mg_reply_peers for that peer, and the longest time one has left.
 */
export function livePeerSockets(
  maps: Record<'mg_reply_peers', MapHandle>,
  podCgroupId: bigint,
  address: Uint8Array,
  port: number,
  nowNs: bigint = process.hrtime.bigint(),
): { sockets: number; expiresInMs: number } {
  let sockets = 0;
  let left = 0n;
  for (const [k, v] of maps.mg_reply_peers.entries()) {
    if (k.readUInt16BE(KEY.port) !== port || !Buffer.from(address).equals(k.subarray(KEY.addr, KEY.addr + 16)))
      continue;
    const expires = v.readBigUInt64LE(VALUE.expires);
    if (v.readBigUInt64LE(VALUE.pod) !== podCgroupId || expires <= nowNs) continue;
    sockets++;
    if (expires - nowNs > left) left = expires - nowNs;
  }
  return { sockets, expiresInMs: Number(left / 1_000_000n) };
}
