// `meshgate flows`: the recent flows the kernel decided (mg_flows, an LRU written by
// every decision of an enforced pod), with pod names and the entry that decided.
import {
  CGROUP_KIND,
  HOOK,
  RULE_NAMES,
  VERDICT_NAMES,
  decodeFlow,
  formatAddress,
  protoName,
  type KernelFlow,
  type VerdictName,
} from '../datapath/codec.js';
import { entryLabelText } from '../datapath/labels.js';
import type { Pins } from '../datapath/pinned.js';
import { formatDestination } from '../explain/decisionTable.js';

const HOOK_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(HOOK).map(([k, v]) => [v, k.replace('MG_HOOK_', '').toLowerCase()]),
);

export interface FlowView {
  /** "namespace/name" of the pod; null when its cgroup is no longer mapped (the pod is gone). */
  readonly pod: string | null;
  readonly podCgroupId: string;
  readonly namespace: string | null;
  /** "198.51.100.7:443", "[2001:db8::20]:443" */
  readonly destination: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: string;
  readonly verdict: VerdictName | string;
  readonly rule: string;
  /** The allowlist entry that decided ("shop/stripe (api.stripe.com)"), when one did. */
  readonly entry: string | null;
  readonly count: number;
  /** Wall clock of the last decision (ISO 8601), and how long ago it was. */
  readonly lastSeen: string;
  readonly ageMs: number;
  /** The policy generation that made the last decision. */
  readonly generation: string;
  readonly uid: number;
  readonly hook: string;
}

export interface FlowFilter {
  readonly pod?: string;
  readonly verdicts?: readonly string[];
}

export interface FlowsReport {
  readonly flows: readonly FlowView[];
  /** Flows in the map before filtering, and the map's capacity (--flows-max). */
  readonly total: number;
  readonly capacity: number;
  /** The flows are being recorded (mg_state; --flows-max 0 turns it off). */
  readonly recording: boolean;
}

/** Every entry of mg_flows, decoded. The LRU may change while it is read; each entry is one decision's. */
export function readKernelFlows(pins: Pins): KernelFlow[] {
  return pins.maps.mg_flows.entries().map(([k, v]) => decodeFlow(k, v));
}

/** An allowlist entry's label as trace shows it. */
export function entryText(pins: Pins, labelId: number): string | null {
  return entryLabelText(labelId ? pins.label(labelId) : null);
}

/** The pod a flow belongs to, by its mapped pod cgroup. */
export function flowPod(pins: Pins, podCgroupId: bigint): { pod: string; namespace: string } | null {
  const c = pins.cgroup(podCgroupId);
  if (!c || c.kind === CGROUP_KIND.MG_CGROUP_PROXY) return null;
  const d = pins.describeCgroup(podCgroupId, c);
  return { pod: d.pod, namespace: d.namespace };
}

export function describeFlow(pins: Pins, f: KernelFlow, nowNs: bigint, wallNowMs: number): FlowView {
  const owner = flowPod(pins, f.podCgroupId);
  const address = formatAddress(f.address);
  const ageMs = Math.max(0, Number((nowNs - f.lastSeenNs) / 1_000_000n));
  return {
    pod: owner?.pod ?? null,
    podCgroupId: f.podCgroupId.toString(),
    namespace: owner?.namespace ?? null,
    destination: formatDestination(f.address, f.port, f.proto).replace(/\/[a-z0-9-]+$/, ''),
    address,
    port: f.port,
    protocol: protoName(f.proto),
    verdict: VERDICT_NAMES[f.verdict] ?? `verdict-${f.verdict}`,
    rule: RULE_NAMES[f.rule] ?? `rule-${f.rule}`,
    entry: entryText(pins, f.labelId),
    count: Number(f.count),
    lastSeen: new Date(wallNowMs - ageMs).toISOString(),
    ageMs,
    generation: f.generation.toString(),
    uid: f.uid,
    hook: HOOK_NAMES.get(f.hook) ?? `hook-${f.hook}`,
  };
}

/** The flows, most recent first, filtered by pod ("namespace/name") and verdicts. */
export function readFlows(
  pins: Pins,
  filter: FlowFilter = {},
  now: () => bigint = () => process.hrtime.bigint(),
): FlowsReport {
  const raw = readKernelFlows(pins);
  const nowNs = now();
  const wall = Date.now();
  const flows = raw
    .map((f) => describeFlow(pins, f, nowNs, wall))
    .filter((f) => filter.pod === undefined || f.pod === filter.pod)
    .filter((f) => filter.verdicts === undefined || filter.verdicts.includes(f.verdict))
    .sort(
      (a, b) =>
        a.ageMs - b.ageMs || (a.pod ?? '').localeCompare(b.pod ?? '') || a.destination.localeCompare(b.destination),
    );
  return { flows, total: raw.length, capacity: pins.flowsCapacity(), recording: pins.state()?.recordFlows ?? false };
}

/** Pod name, or the cgroup id of a pod that is gone. */
export const podText = (f: { pod: string | null; podCgroupId: string }): string =>
  f.pod ?? `cgroup:${f.podCgroupId} (gone)`;

export function formatFlows(r: FlowsReport): string {
  const lines = [
    `${'LAST SEEN'.padEnd(12)} ${'COUNT'.padStart(6)} ${'VERDICT'.padEnd(8)} ${'POD'.padEnd(20)} ${'DESTINATION'.padEnd(24)} RULE`,
  ];
  for (const f of r.flows) {
    const rule = f.verdict === 'audit' ? `${f.rule} (would deny)` : f.rule;
    lines.push(
      `${f.lastSeen.slice(11, 23)} ${String(f.count).padStart(6)} ${f.verdict.padEnd(8)} ${podText(f).padEnd(20)} ` +
        `${`${f.destination}/${f.protocol}`.padEnd(24)} ${rule}${f.entry ? ` ${f.entry}` : ''}`,
    );
  }
  const shown = r.flows.length === r.total ? `${r.total}` : `${r.flows.length} of ${r.total}`;
  lines.push(
    `${shown} flow(s); the kernel keeps the ${r.capacity} most recent${r.recording ? '' : ' (recording is off: --flows-max 0)'}`,
  );
  return lines.join('\n');
}
