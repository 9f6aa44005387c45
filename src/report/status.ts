// `meshgate status`: what is pinned and attached, the policy in force, the
// agent's last reconcile, and what is wrong, read without loading anything.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { MAPS } from '../datapath/abi.generated.js';
import { EVENT_STAT, decodeAgentStatus, encodeU32 } from '../datapath/codec.js';
import {
  ABI_HASH,
  HOOK_PROGRAMS,
  RETIRED_PROGRAMS,
  hookPrograms,
  listPinnedLinks,
  pinLayout,
} from '../datapath/loader.js';
import type { DatapathVariant } from '../datapath/variant.js';
import { Pins, attachedPrograms, pinsProblem } from '../datapath/pinned.js';
import { CgroupTree } from '../node/cgroupTree.js';
import { MeshgateError } from '../errors.js';

export interface HookStatus {
  readonly hook: string;
  readonly program: string;
  readonly pin: string;
  readonly pinned: boolean;
  readonly linkId: number | null;
  readonly programId: number | null;
  readonly cgroupId: string | null;
  /** The link's program is in the cgroup's attached list for this hook. */
  readonly attached: boolean;
}

export interface StatusReport {
  readonly pinDir: string;
  readonly abi: string;
  readonly mapsDir: string;
  readonly attachCgroup: { readonly id: string; readonly path: string | null; readonly level: number | null } | null;
  /** The build of the programs the agent recorded loading (null: none recorded). */
  readonly datapathVariant: DatapathVariant | null;
  readonly hooks: readonly HookStatus[];
  readonly policy: { readonly loaded: boolean; readonly generation: string; readonly slot: number } | null;
  readonly agent: {
    readonly mode: string;
    readonly pid: number;
    readonly running: boolean;
    readonly lastApply: string | null;
    readonly lastReconcile: string | null;
    readonly objectsTotal: number;
    readonly objectsInvalid: number;
    readonly configValid: boolean;
  } | null;
  readonly events: { readonly emitted: number; readonly rateLimited: number; readonly ringFull: number } | null;
  readonly problems: readonly string[];
}

function processRunning(pid: number): boolean {
  if (!pid) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /meshgate|node/.test(cmdline);
  } catch {
    return false;
  }
}

const iso = (ms: number): string | null => (ms > 0 ? new Date(ms).toISOString() : null);

export function readStatus(pinDir: string, tree = new CgroupTree()): StatusReport {
  const layout = pinLayout(pinDir);
  const problems: string[] = [];
  if (!existsSync(pinDir)) throw new MeshgateError('MG_PINS_NOT_FOUND', pinsProblem(pinDir)!);

  // Pins that are not meshgate's, or not this version's.
  for (const name of readdirSync(pinDir)) {
    // state/ holds the last good configuration (lastGoodPins.ts), which outlives the agent.
    if (name !== 'maps' && name !== 'links' && name !== 'state')
      problems.push(`unknown pin ${path.join(pinDir, name)}: not created by meshgate; cleanup leaves it`);
  }
  if (existsSync(layout.mapsRoot)) {
    for (const abi of readdirSync(layout.mapsRoot)) {
      if (abi === ABI_HASH) continue;
      problems.push(
        `orphaned maps under ${path.join(layout.mapsRoot, abi)} (another ABI than ${ABI_HASH}): left by an older or newer meshgate; ` +
          'an agent of this version removes them after it attaches, or run `meshgate cleanup`',
      );
    }
  }
  const linked = listPinnedLinks(pinDir);
  for (const l of linked) {
    if (RETIRED_PROGRAMS.includes(l.program))
      problems.push(
        `link pin ${l.pin} of ${l.program}, a program an older meshgate had: an agent of this version detaches it after it attaches`,
      );
    else if (!HOOK_PROGRAMS.some((h) => h.program === l.program))
      problems.push(`unknown link pin ${l.pin}: not one of meshgate's hooks`);
  }

  // Links, per hook.
  const cgroupIds = new Set(linked.filter((l) => l.info && l.info.cgroupId !== 0n).map((l) => l.info!.cgroupId));
  if (cgroupIds.size > 1)
    problems.push(`links are attached to ${cgroupIds.size} different cgroups (${[...cgroupIds].join(', ')})`);
  const attachId = [...cgroupIds][0] ?? null;
  const attachNode = attachId !== null ? tree.find(attachId) : null;
  const datapathVariant = recordedVariant(pinDir);
  const hooks: HookStatus[] = hookPrograms(datapathVariant ?? 'kern-ctx').map((h) => {
    const l = linked.find((x) => x.program === h.program);
    const pin = path.join(layout.linksDir, h.program);
    if (!l) {
      problems.push(`${h.hook}: no link pinned at ${pin}: this hook decides nothing`);
      return {
        hook: h.hook,
        program: h.program,
        pin,
        pinned: false,
        linkId: null,
        programId: null,
        cgroupId: null,
        attached: false,
      };
    }
    if (!l.info) {
      problems.push(`${h.hook}: ${pin} cannot be read as a link: ${l.error}`);
      return {
        hook: h.hook,
        program: h.program,
        pin,
        pinned: true,
        linkId: null,
        programId: null,
        cgroupId: null,
        attached: false,
      };
    }
    const progs = attachNode ? attachedPrograms(attachNode.path, h.attachType) : null;
    const attached = l.info.cgroupId !== 0n && (progs === null || progs.includes(l.info.progId));
    if (!attached)
      problems.push(
        `${h.hook}: link ${l.info.id} is pinned at ${pin} but not attached to any cgroup (run the agent, or \`meshgate cleanup\`)`,
      );
    return {
      hook: h.hook,
      program: h.program,
      pin,
      pinned: true,
      linkId: l.info.id,
      programId: l.info.progId,
      cgroupId: l.info.cgroupId.toString(),
      attached,
    };
  });
  if (attachId !== null && !attachNode)
    problems.push(`the links' cgroup ${attachId} no longer exists under ${tree.mount}`);

  // Maps: the policy in force, the agent's last reconcile, event counters.
  let policy: StatusReport['policy'] = null;
  let agent: StatusReport['agent'] = null;
  let events: StatusReport['events'] = null;
  const mapsProblem = pinsProblem(pinDir);
  if (mapsProblem) {
    problems.push(mapsProblem);
  } else {
    const pins = Pins.open(pinDir);
    try {
      const missing = Object.keys(MAPS).filter((m) => !existsSync(path.join(layout.mapsDir, m)));
      if (missing.length) problems.push(`maps missing under ${layout.mapsDir}: ${missing.join(', ')}`);
      const state = pins.state();
      const slot = (state?.activeSlot ?? 0) & 1;
      const cfg = pins.config(slot);
      policy = { loaded: cfg !== null, generation: (cfg?.generation ?? 0n).toString(), slot };
      if (!cfg) problems.push('no complete policy is loaded: every decision passes (rule no-policy)');
      const raw = pins.maps.mg_agent_status.lookup(encodeU32(0));
      const a = raw ? decodeAgentStatus(raw) : null;
      if (a && (a.lastReconcileUnixMs > 0 || a.lastApplyUnixMs > 0)) {
        const running = processRunning(a.agentPid);
        agent = {
          mode: a.mode,
          pid: a.agentPid,
          running,
          lastApply: iso(a.lastApplyUnixMs),
          lastReconcile: iso(a.lastReconcileUnixMs),
          objectsTotal: a.objectsTotal,
          objectsInvalid: a.objectsInvalid,
          configValid: a.objectsInvalid === 0,
        };
        if (a.objectsInvalid > 0)
          problems.push(
            `${a.objectsInvalid} of ${a.objectsTotal} config objects are invalid: their last good state stays in force (see the agent's log and events)`,
          );
        if (!running)
          problems.push(
            `the agent (pid ${a.agentPid}) is not running here: enforcement continues at generation ${policy.generation}, nothing follows config changes`,
          );
      } else {
        problems.push('no agent has recorded a reconcile in mg_agent_status');
      }
      const stat = (i: number) => Number(pins.maps.mg_event_stats.sumPerCpuU64(encodeU32(i)));
      events = {
        emitted: stat(EVENT_STAT.MG_EVENT_STAT_EMITTED),
        rateLimited: stat(EVENT_STAT.MG_EVENT_STAT_RATE_LIMITED),
        ringFull: stat(EVENT_STAT.MG_EVENT_STAT_RINGBUF_FULL),
      };
    } finally {
      pins.close();
    }
  }
  return {
    pinDir,
    abi: ABI_HASH,
    mapsDir: layout.mapsDir,
    datapathVariant,
    attachCgroup:
      attachId === null
        ? null
        : { id: attachId.toString(), path: attachNode?.path ?? null, level: attachNode?.level ?? null },
    hooks,
    policy,
    agent,
    events,
    problems,
  };
}

/** The variant the agent recorded in mg_agent_status, or null (no maps, or no agent recorded one). */
function recordedVariant(pinDir: string): DatapathVariant | null {
  if (pinsProblem(pinDir)) return null;
  const pins = Pins.open(pinDir);
  try {
    const raw = pins.maps.mg_agent_status.lookup(encodeU32(0));
    return raw ? (decodeAgentStatus(raw).datapathVariant ?? null) : null;
  } finally {
    pins.close();
  }
}

function ago(isoTime: string | null, now: number): string {
  if (!isoTime) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(isoTime)) / 1000));
  const text =
    s < 120
      ? `${s} s`
      : s < 7200
        ? `${Math.round(s / 60)} min`
        : s < 172800
          ? `${Math.round(s / 3600)} h`
          : `${Math.round(s / 86400)} d`;
  return `${isoTime.replace('T', ' ').slice(0, 19)}Z (${text} ago)`;
}

export function formatStatus(r: StatusReport, now = Date.now()): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(13)}${v}`);
  row('pin dir', `${r.pinDir} (maps ABI ${r.abi})`);
  row(
    'attached to',
    r.attachCgroup
      ? `${r.attachCgroup.path ?? '(cgroup not found)'} (cgroup ${r.attachCgroup.id}${r.attachCgroup.level !== null ? `, level ${r.attachCgroup.level}` : ''})`
      : 'nothing',
  );
  row(
    'datapath',
    r.datapathVariant === 'compat'
      ? 'compat (socket hooks decide as the calling task; docs/decisions.md)'
      : (r.datapathVariant ?? 'not recorded'),
  );
  lines.push('hooks:');
  for (const h of r.hooks) {
    const state = !h.pinned ? 'NOT PINNED' : h.attached ? 'attached' : 'NOT ATTACHED';
    lines.push(
      `  ${h.hook.padEnd(19)} link ${String(h.linkId ?? '-').padEnd(6)} prog ${String(h.programId ?? '-').padEnd(6)} ${state}`,
    );
  }
  if (r.policy)
    row('policy', r.policy.loaded ? `generation ${r.policy.generation} (slot ${r.policy.slot})` : 'none loaded');
  if (r.agent) {
    row(
      'config',
      r.agent.configValid
        ? `valid (${r.agent.objectsTotal} objects)`
        : `${r.agent.objectsInvalid} of ${r.agent.objectsTotal} objects INVALID (last good kept)`,
    );
    row('last apply', ago(r.agent.lastApply, now));
    row('last sync', ago(r.agent.lastReconcile, now));
    row('agent', `pid ${r.agent.pid}, ${r.agent.mode} mode, ${r.agent.running ? 'running' : 'NOT RUNNING'}`);
  }
  if (r.events)
    row('events', `${r.events.emitted} emitted, ${r.events.rateLimited} rate-limited, ${r.events.ringFull} ring full`);
  if (r.problems.length) {
    lines.push('problems:');
    for (const p of r.problems) lines.push(...wrapIndented(`- ${p}`));
  } else {
    lines.push('problems:    none');
  }
  return lines.join('\n');
}

function wrapIndented(text: string): string[] {
  const out: string[] = [];
  let line = ' ';
  for (const word of text.split(' ')) {
    if (line.length + word.length + 1 > 80 && line.trim()) {
      out.push(line);
      line = '   ';
    }
    line += ` ${word}`;
  }
  out.push(line);
  return out;
}
