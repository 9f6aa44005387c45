// Deterministic policies of any size, the same prefixes for meshgate, iptables
// and ipset. Prefix lengths are mixed (/16 to /32), as real CIDR lists are:
// that costs hash:net one probe per distinct length, and gives the LPM trie
// a realistic depth.
import type { DesiredState, DesiredTrieEntry } from '../src/datapath/desired.js';
import { seededRandom } from './stats.js';
import { PROXY_PORT, TARGETS } from './sandbox.js';

const MESH_LENGTHS = [16, 20, 24, 24, 28, 32, 32, 32];
const ALLOW_LENGTHS = [24, 28, 32, 32];

const ipv4 = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/**
 * `count` distinct prefixes inside base/baseLen, none covering `avoid`
 * (a /16 kept free for the benchmark's targets), then `last` as the final
 * entry: the one the target matches, so a linear scan reads every rule.
 */
function prefixes(
  count: number,
  seed: number,
  base: number,
  baseLen: number,
  lengths: readonly number[],
  avoid: number,
  last: string,
): string[] {
  const random = seededRandom(seed);
  const seen = new Set<string>([last]);
  if (count <= 0) return [];
  const out: string[] = [];
  const span = 2 ** (32 - baseLen);
  while (out.length < count - 1) {
    const len = lengths[Math.floor(random() * lengths.length)]!;
    const addr = (base + Math.floor(random() * span)) >>> 0;
    const net = len === 0 ? 0 : (addr & (0xffffffff << (32 - len))) >>> 0;
    if (len <= 16 ? (avoid & (0xffffffff << (32 - len))) >>> 0 === net : net >>> 16 === avoid >>> 16) continue;
    const cidr = `${ipv4(net)}/${len}`;
    if (seen.has(cidr)) continue;
    seen.add(cidr);
    out.push(cidr);
  }
  out.push(last);
  return out.slice(-count);
}

/** Mesh CIDRs inside 10.0.0.0/8; the last one, 10.1.2.0/24, holds TARGETS.redirect. */
export function meshCidrs(count: number): string[] {
  return prefixes(count, 0x6d657368, 0x0a000000, 8, MESH_LENGTHS, 0x0a010000, '10.1.2.0/24');
}

/** Allowlisted CIDRs inside 100.64.0.0/10; the last one, 203.0.113.0/24, holds TARGETS.pass. */
export function allowCidrs(count: number): string[] {
  return prefixes(count, 0x616c6c6f, 0x64400000, 10, ALLOW_LENGTHS, 0x64400000, '203.0.113.0/24');
}

/** meshgate's policy of `total` trie entries: half mesh CIDRs, half allowlisted CIDRs (tcp/80, global allowlist). */
export function desiredPolicy(total: number, cgroups: DesiredState['cgroups']): DesiredState {
  const mesh = meshCidrs(Math.ceil(total / 2)).map((cidr): DesiredTrieEntry => ({ table: 'mesh', cidr }));
  const allow = allowCidrs(Math.floor(total / 2)).map(
    (cidr): DesiredTrieEntry => ({
      table: 'allow',
      cidr,
      proto: 'tcp',
      port: TARGETS.pass.port,
      namespace: '',
      label: JSON.stringify({ kind: 'entry', namespace: '', name: 'bench' }),
    }),
  );
  return {
    policy: {
      egress: false,
      proxyPort: PROXY_PORT,
      proxyUid: 1500,
      blockedAction: 'deny',
      unknownPodPolicy: 'pass',
      eventVerdicts: [],
      excludedPorts: [],
      groups: [{ id: 'mesh', entries: mesh }, ...(allow.length ? [{ id: 'allow:', entries: allow }] : [])],
    },
    cgroups,
  };
}

/** An osm-config file (key/value YAML) whose mesh_cidr_ranges holds `count` CIDRs; `variant` swaps one entry. */
export function osmConfigText(count: number, variant = 0, allowDenyTarget = false): string {
  const cidrs = meshCidrs(count);
  // 10.1.100.0-10.1.163.255 is never generated (10.1/16 is kept free), so the swap is always a real change.
  if (variant) cidrs[0] = `10.1.${100 + ((variant >> 8) & 63)}.${variant & 255}/32`;
  const allow = [
    `  - name: web`,
    `    addresses: [${TARGETS.pass.addr}]`,
    `    ports: [{number: ${TARGETS.pass.port}, protocol: TCP}]`,
  ];
  if (allowDenyTarget)
    allow.push(
      `  - name: flip`,
      `    addresses: [${TARGETS.deny.addr}]`,
      `    ports: [{number: ${TARGETS.deny.port}, protocol: TCP}]`,
    );
  return ['egress: "false"', `mesh_cidr_ranges: "${cidrs.join(',')}"`, 'egress_allowlist: |', ...allow, ''].join('\n');
}

/**
 * Mesh CIDRs one global object holds in the bench's large policies: 50,000
 * CIDRs are about 800 KB, inside the 1 MiB a ConfigMap (and meshgate, per
 * object) allows. A larger policy puts the rest in allowlist objects.
 */
export const MESH_PER_OBJECT = 50_000;
/** Addresses per allowlist object (about 430 KB of YAML), and per entry of it. */
export const ALLOW_PER_OBJECT = 25_000;
const ALLOW_PER_ENTRY = 1000;

/**
 * A policy of `total` trie entries as config objects, each under 1 MiB: the
 * global osm-config (up to MESH_PER_OBJECT mesh CIDRs; `variant` swaps one)
 * and allowlist lists (bare YAML lists, for files or an allowlist
 * ConfigMap's `egress` key) allowing the rest of the addresses on tcp/80.
 */
export function policyObjects(
  total: number,
  variant = 0,
  allowDenyTarget = false,
): { globalText: string; allowlists: string[] } {
  const mesh = Math.min(total, MESH_PER_OBJECT);
  const rest = total - mesh;
  const allow = allowCidrs(rest + 1).slice(0, rest); // the last one (203.0.113.0/24) is the global allowlist's own
  const allowlists: string[] = [];
  for (let o = 0; o < allow.length; o += ALLOW_PER_OBJECT) {
    const lines: string[] = [];
    const part = allow.slice(o, o + ALLOW_PER_OBJECT);
    for (let e = 0; e < part.length; e += ALLOW_PER_ENTRY) {
      lines.push(
        `- name: bulk-${o + e}`,
        `  addresses: [${part.slice(e, e + ALLOW_PER_ENTRY).join(', ')}]`,
        `  ports: [{number: ${TARGETS.pass.port}, protocol: TCP}]`,
      );
    }
    allowlists.push(`${lines.join('\n')}\n`);
  }
  return { globalText: osmConfigText(mesh, variant, allowDenyTarget), allowlists };
}

/** iptables-restore input: the nat OUTPUT chain an init container writes, one REDIRECT rule per CIDR. */
export function iptablesRestoreText(cidrs: readonly string[]): string {
  const lines = ['*nat', ':MESH_OUTPUT - [0:0]', '-A OUTPUT -p tcp -j MESH_OUTPUT'];
  for (const cidr of cidrs) lines.push(`-A MESH_OUTPUT -d ${cidr} -p tcp -j REDIRECT --to-ports ${PROXY_PORT}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** ipset-restore input plus the one iptables rule that uses the set. */
export function ipsetRestoreText(name: string, cidrs: readonly string[]): string {
  const maxelem = Math.max(65536, 2 ** Math.ceil(Math.log2(cidrs.length + 1)));
  return [
    `create ${name} hash:net family inet hashsize 4096 maxelem ${maxelem}`,
    ...cidrs.map((c) => `add ${name} ${c}`),
    '',
  ].join('\n');
}

export function ipsetIptablesText(name: string): string {
  return [
    '*nat',
    `-A OUTPUT -p tcp -m set --match-set ${name} dst -j REDIRECT --to-ports ${PROXY_PORT}`,
    'COMMIT',
    '',
  ].join('\n');
}
