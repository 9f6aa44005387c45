// `meshgate preview FILE...`: which recent flows would change verdict if the candidate files
// were applied. Every recorded flow (mg_flows) is decided twice by the decision table that
// explain uses (DECISION_STEPS): over the live policy ("now") and over the live policy with
// the candidate compiled in ("after"), both held in memory. Nothing is written to the kernel.
import { CGROUP_KIND, VERDICT_NAMES, type KernelFlow, type VerdictName } from '../datapath/codec.js';
import { decide, type Decision } from '../explain/decisionTable.js';
import { entryLabelText, parseLabel } from '../datapath/labels.js';
import type { Pins } from '../datapath/pinned.js';
import { describeFlow, podText, readKernelFlows } from '../report/flows.js';
import { readCandidate, type Candidate, type CandidateIssue } from './candidate.js';
import { PolicyModel, compileCandidate, livePolicy, liveResolved, overlay } from './policyModel.js';

export interface VerdictView {
  readonly verdict: VerdictName;
  readonly rule: string;
  /** The allowlist entry that decides ("shop/stripe (api.stripe.com)"), or null. */
  readonly entry: string | null;
  readonly message: string;
}

export interface PreviewRow {
  readonly pod: string | null;
  readonly podCgroupId: string;
  readonly destination: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: string;
  readonly count: number;
  readonly lastSeen: string;
  readonly uid: number;
  /** What the kernel recorded for the flow last, under which generation. */
  readonly kernel: { readonly verdict: string; readonly rule: string; readonly generation: string };
  readonly now: VerdictView;
  readonly after: VerdictView;
  readonly changed: boolean;
}

export interface PreviewReport {
  readonly valid: boolean;
  readonly issues: readonly CandidateIssue[];
  /** The candidate's objects, and what they replace. */
  readonly objects: readonly string[];
  readonly replaces: { readonly global: boolean; readonly namespaces: readonly string[] };
  readonly generation: string;
  /** Flows whose verdict would change, and (with `all`) every flow. */
  readonly changes: readonly PreviewRow[];
  readonly rows: readonly PreviewRow[];
  readonly flows: number;
  /** Flows of pods that are no longer mapped: not decided. */
  readonly skipped: number;
  readonly notes: readonly string[];
}

export interface PreviewOptions {
  /** Namespace of allowlist files that name none (plain files), as the standalone agent's --namespace. */
  readonly namespace: string;
  /** Keep every row, not only the changes. */
  readonly all?: boolean;
  readonly now?: () => bigint;
}

function view(d: Decision, label: (id: number) => string | null): VerdictView {
  let entry: string | null = null;
  if (d.hit && ((d.hit.map === 'mg_policy_trie' && d.hit.table === 'allow') || d.hit.map === 'mg_learned')) {
    const text = label(d.hit.labelId);
    entry = entryLabelText(text ? parseLabel(text) : null);
  }
  return { verdict: d.verdict, rule: d.rule, entry, message: d.message };
}

/** Hosts the candidate names that the live maps hold no address for: preview cannot place them. */
function unresolvedHosts(candidate: Candidate, resolved: ReadonlyMap<string, readonly string[]>): string[] {
  const hosts = new Set<string>();
  for (const e of candidate.global?.globalAllowlist ?? []) for (const h of e.hosts) hosts.add(h);
  for (const ns of candidate.namespaces.values()) for (const e of ns.entries) for (const h of e.hosts) hosts.add(h);
  return [...hosts].filter((h) => !resolved.has(h)).sort();
}

/** Decides every recorded flow now and after; the candidate must be valid. */
export function previewFlows(pins: Pins, candidate: Candidate, opts: PreviewOptions): PreviewReport {
  const live = livePolicy(pins);
  const resolved = liveResolved(live);
  const after = overlay(live, candidate, compileCandidate(candidate, resolved));
  const nsName = (id: number) => pins.namespaceName(id);
  const nowNs = (opts.now ?? (() => process.hrtime.bigint()))();
  const nowModel = new PolicyModel(live, nsName, nowNs);
  const afterModel = new PolicyModel(after, nsName, nowNs);
  const state = pins.state();
  const walkStart = state?.cgroupWalkStart ?? 0;
  const notes: string[] = [];
  const missing = unresolvedHosts(candidate, resolved);
  if (missing.length) {
    notes.push(
      `the agent has resolved no address for these hosts yet: in "after" they allow only what pods already learned from DNS answers for them (once applied, the agent resolves them): ${missing.join(', ')}`,
    );
  }
  if (!(state?.recordFlows ?? true)) notes.push('the agent runs with --flows-max 0: no flows are recorded');

  const flows: KernelFlow[] = readKernelFlows(pins);
  const wall = Date.now();
  const rows: PreviewRow[] = [];
  let skipped = 0;
  for (const f of flows) {
    const cg = pins.cgroup(f.podCgroupId);
    if (!cg || cg.kind !== CGROUP_KIND.MG_CGROUP_POD) {
      skipped++;
      continue;
    }
    const input = {
      walk: [{ level: walkStart, cgroupId: f.podCgroupId, entry: cg }],
      uid: f.uid,
      address: f.address,
      port: f.port,
      proto: f.proto,
    };
    const now = view(decide({ ...input, config: nowModel.config, lookups: nowModel }), (id) => nowModel.label(id));
    const next = view(decide({ ...input, config: afterModel.config, lookups: afterModel }), (id) =>
      afterModel.label(id),
    );
    const shown = describeFlow(pins, f, nowNs, wall);
    rows.push({
      pod: shown.pod,
      podCgroupId: shown.podCgroupId,
      destination: shown.destination,
      address: shown.address,
      port: f.port,
      protocol: shown.protocol,
      count: shown.count,
      lastSeen: shown.lastSeen,
      uid: f.uid,
      kernel: {
        verdict: VERDICT_NAMES[f.verdict] ?? `verdict-${f.verdict}`,
        rule: shown.rule,
        generation: shown.generation,
      },
      now,
      after: next,
      changed: now.verdict !== next.verdict,
    });
  }
  rows.sort((a, b) =>
    podText(a) < podText(b)
      ? -1
      : podText(a) > podText(b)
        ? 1
        : a.destination.localeCompare(b.destination) || a.protocol.localeCompare(b.protocol),
  );
  if (skipped) notes.push(`${skipped} recorded flow(s) belong to pods that are no longer mapped and were not decided`);
  return {
    valid: true,
    issues: candidate.issues,
    objects: candidate.objects,
    replaces: { global: candidate.global !== null, namespaces: [...candidate.namespaces.keys()] },
    generation: (live.config?.generation ?? 0n).toString(),
    changes: rows.filter((r) => r.changed),
    rows: opts.all ? rows : [],
    flows: flows.length,
    skipped,
    notes,
  };
}

/** An invalid candidate's report: its issues, nothing decided. */
export function invalidReport(candidate: Candidate): PreviewReport {
  return {
    valid: false,
    issues: candidate.issues,
    objects: candidate.objects,
    replaces: { global: candidate.global !== null, namespaces: [...candidate.namespaces.keys()] },
    generation: '',
    changes: [],
    rows: [],
    flows: 0,
    skipped: 0,
    notes: [],
  };
}

/** Reads the files and previews them; an invalid candidate is reported without deciding anything. */
export function preview(pins: Pins, files: readonly string[], opts: PreviewOptions): PreviewReport {
  const candidate = readCandidate(files, opts.namespace);
  return candidate.valid ? previewFlows(pins, candidate, opts) : invalidReport(candidate);
}

const verdictText = (v: VerdictView): string => `${v.verdict} (${v.rule}${v.entry ? ` ${v.entry}` : ''})`;

export function formatPreview(r: PreviewReport): string {
  const lines = r.issues.map((i) => `${i.severity} ${i.code}: ${i.message}`);
  if (!r.valid) {
    lines.push(
      `invalid candidate: ${r.issues.filter((i) => i.severity === 'error').length} error(s); nothing was previewed`,
    );
    return lines.join('\n');
  }
  const shown = r.rows.length ? r.rows : r.changes;
  if (shown.length) lines.push(`${'POD'.padEnd(20)} ${'DESTINATION'.padEnd(24)} NOW -> AFTER`);
  for (const row of shown) {
    const mark = row.changed ? '' : '   (unchanged)';
    lines.push(
      `${podText(row).padEnd(20)} ${`${row.destination}/${row.protocol}`.padEnd(24)} ${verdictText(row.now)} -> ${verdictText(row.after)}${mark}`,
    );
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  const what =
    [
      r.replaces.global ? 'the global config' : '',
      r.replaces.namespaces.length ? `the allowlists of ${r.replaces.namespaces.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join(' and ') || 'nothing';
  const decided = r.flows - r.skipped;
  lines.push(
    `${r.changes.length} of ${decided} recent flow(s) would change verdict (candidate replaces ${what}; live generation ${r.generation})`,
  );
  return lines.join('\n');
}
