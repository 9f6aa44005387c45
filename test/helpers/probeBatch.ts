// Real connects and datagrams in a batch (sockprobe batch), what each socket saw, and a
// replayable random source: shared by the kernel agreement tests (explain, preview).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import ipaddr from 'ipaddr.js';
import type { PodFixture } from './kernelFixture.js';
import { SOCKPROBE } from './sandbox.js';
import { seededRandom } from './seededRandom.js';

/** A seeded random source (seededRandom.ts), so a failing case can be replayed. */
export function rng(seed: number) {
  const next = seededRandom(seed);
  const int = (n: number): number => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number): boolean => next() < p };
}
export type Rng = ReturnType<typeof rng>;

export interface Probe {
  readonly op: 'tcp' | 'udp' | 'sendto';
  readonly family: '4' | '6' | 'mapped';
  readonly addr: string;
  readonly port: number;
}

/** Address (v4-mapped shown as IPv4) and port of "a.b.c.d:p" / "[v6]:p". */
export function endpoint(text: string): { addr: ipaddr.IPv4 | ipaddr.IPv6; port: number } {
  const m = /^\[?(.+?)\]?:(\d+)$/.exec(text)!;
  return { addr: ipaddr.process(m[1]!), port: Number(m[2]) };
}

export interface BatchResult {
  i: number;
  ok: boolean;
  error: string | null;
  peer: string | null;
}

/** What the socket saw: EPERM is a deny; a connected peer other than the destination is a redirect. */
export function socketVerdict(p: Probe, r: BatchResult): 'pass' | 'redirect' | 'deny' {
  if (!r.ok && r.error === 'EPERM') return 'deny';
  if (p.op === 'sendto' || !r.ok || !r.peer) return 'pass';
  const peer = endpoint(r.peer);
  const wanted = endpoint(p.family === '4' ? `${p.addr}:${p.port}` : `[${p.addr}]:${p.port}`);
  if (peer.port !== wanted.port) return 'redirect';
  // connect() to the unspecified address reaches loopback (never on the proxy port: see randomProbe).
  if (wanted.addr.range() === 'unspecified') return peer.addr.range() === 'loopback' ? 'pass' : 'redirect';
  return peer.addr.toString() === wanted.addr.toString() ? 'pass' : 'redirect';
}

export function runBatch(pod: PodFixture, cgroup: string, uid: number, probes: readonly Probe[]): BatchResult[] {
  const input = probes.map((p) => `${p.op} ${p.family} ${p.addr} ${p.port}\n`).join('');
  const args = [
    '--netns',
    pod.sb.netnsPath,
    '--cgroup',
    cgroup,
    ...(uid ? ['--uid', String(uid)] : []),
    'batch',
    '--timeout-ms',
    '1000',
  ];
  const r = spawnSync(SOCKPROBE, args, { input, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `sockprobe batch failed: ${r.stderr}`);
  const out = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as BatchResult);
  assert.equal(out.length, probes.length);
  return out;
}
