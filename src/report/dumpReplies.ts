// `meshgate dump replies`: the UDP peers pods' sockets may answer right now
// (mg_reply_peers, filed by the kernel from datagrams that came in) and the
// lifetimes the agent set (mg_reply_config).
import type { Maps } from '../datapath/loader.js';
import { REPLY_DEFAULTS, decodeReplyConfig, readReplyPeers } from '../datapath/replies.js';
import { encodeU32 } from '../datapath/codec.js';

export interface ReplyPeerDump {
  pod: string;
  /** the receiving socket's cookie */
  socket: string;
  peer: string;
  port: number;
  /** the socket has answered this peer */
  replied: boolean;
  lastInAgoMs: number;
  expiresInMs: number;
}

export interface RepliesDump {
  /** --udp-reply-timeout and --udp-reply-stream-timeout in force */
  unrepliedMs: number;
  assuredMs: number;
  /** live peers only, by pod, peer and port */
  peers: ReplyPeerDump[];
}

const SHOWN_MAX = 50;
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function dumpReplies(
  maps: Maps,
  podName: (cgroupId: bigint) => string,
  nowNs: bigint = process.hrtime.bigint(),
): { replies: RepliesDump } {
  const raw = maps.mg_reply_config.lookup(encodeU32(0));
  const set = raw ? decodeReplyConfig(raw) : { unrepliedMs: 0, assuredMs: 0 };
  const peers = readReplyPeers(maps)
    .filter((p) => p.expiresNs > nowNs)
    .map((p) => ({
      pod: podName(p.podCgroupId),
      socket: p.sockCookie.toString(),
      peer: p.peer,
      port: p.port,
      replied: p.assured,
      lastInAgoMs: Number((nowNs - p.lastInNs) / 1_000_000n),
      expiresInMs: Number((p.expiresNs - nowNs) / 1_000_000n),
    }))
    .sort((a, b) => byText(a.pod, b.pod) || byText(a.peer, b.peer) || a.port - b.port);
  return {
    replies: {
      unrepliedMs: set.unrepliedMs || REPLY_DEFAULTS.unrepliedMs,
      assuredMs: set.assuredMs || REPLY_DEFAULTS.assuredMs,
      peers,
    },
  };
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;

export function formatReplies(r: RepliesDump): string[] {
  const lines = r.peers
    .slice(0, SHOWN_MAX)
    .map(
      (p) =>
        `${p.pod.padEnd(24)} ${`${p.peer.includes(':') ? `[${p.peer}]` : p.peer}:${p.port}`.padEnd(28)} socket ${p.socket.padEnd(8)} ${p.replied ? 'replied' : 'unreplied'}, ${seconds(p.lastInAgoMs)} ago, ${seconds(p.expiresInMs)} left`,
    );
  if (r.peers.length > SHOWN_MAX) lines.push(`... ${r.peers.length - SHOWN_MAX} more (--json lists them all)`);
  lines.push(`lifetimes: ${seconds(r.unrepliedMs)} unreplied, ${seconds(r.assuredMs)} once replied`);
  return lines;
}
