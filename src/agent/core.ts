// What both agent modes share: the datapath, the compiler, the hostname
// resolver, the metrics and the health server, the debounce, and the apply
// step (compile, apply atomically, attach once, record the status with the
// pins). A mode supplies where the configuration and the pods come from.
import { REPLY_DEFAULTS, type ReplySettings } from '../datapath/replies.js';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  describeObject,
  overlapWarnings,
  type AllowlistEntry,
  type BlockedEgressAction,
  type ConfigIssue,
  type GlobalConfig,
} from '../config/index.js';
import type { AgentStatus } from '../datapath/codec.js';
import { Datapath, type ApplyResult } from '../datapath/datapath.js';
import type { DesiredCgroup } from '../datapath/desired.js';
import { pinLayout } from '../datapath/loader.js';
import { hostNetnsCookie } from '../datapath/hostNetns.js';
import { HostResolver, type HostResolverOptions } from '../dns/hostResolver.js';
import { DNS_DEFAULTS, trustedResolvers } from '../dns/trustedResolvers.js';
import { PolicyCompiler, allowlistHosts, type PodInput } from '../policy/compile.js';
import { heldBackMessage, type HeldBack, type PolicyCapacity } from '../policy/capacity.js';
import { collectGarbage } from './heap.js';
import type { AllowlistObjectInForce, ObjectState } from './lastGood.js';
import { AgentMetrics } from './metrics.js';
import { DEFAULT_RECONCILE_BACKOFF, ReconcileRetry, type BackoffOptions } from './retry.js';
import { startServer } from './server.js';
import type { Clock } from '../dns/clock.js';

/** Trie writes from which an apply is followed by a full garbage collection. */
const LARGE_APPLY = 10_000;

export interface CoreOptions {
  readonly pinDir: string;
  readonly listen: string;
  readonly debounceMs: number;
  readonly objectPath?: string;
  readonly dns?: Pick<HostResolverOptions, 'servers' | 'floorMs' | 'ceilingMs' | 'graceMs'> & {
    /** Capacity of the kernel's learned-address map (--dns-learned-max). */
    readonly learnedMax?: number;
  };
  readonly mode: 'standalone' | 'cluster';
  /** UDP replies' peer lifetimes (--udp-reply-timeout, --udp-reply-stream-timeout). */
  readonly replies?: ReplySettings;
  /** mg_flows' size; 0: flows are not recorded (--flows-max). */
  readonly flowsMax?: number;
  /** Backoff of a failed reconcile's retries (tests shorten it). */
  readonly retryBackoff?: BackoffOptions;
  /** Tests only: the retry timer's clock. */
  readonly clock?: Clock;
  /** Tests only: called before each group of kernel writes (Datapath's fault injection). */
  readonly beforeWrite?: (step: string) => void;
  /** Tests only: the netns file taken as the node's (default: the agent's own netns, as hostNetwork). */
  readonly hostNetnsPath?: string;
  /** Tests only: what one policy may hold (default: the kernel maps' capacity, src/policy/capacity.ts). */
  readonly policyCapacity?: PolicyCapacity;
}

/** One reconcile's input, as the mode has read it. */
export interface ReconcileInput {
  /** The global config in force: the last good one. */
  readonly global: GlobalConfig;
  /** The allowlist entries in force per namespace (the last good ones). */
  readonly allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>;
  /** blocked_egress_action of the namespaces whose allowlists set one (their last good). */
  readonly namespaceActions?: ReadonlyMap<string, BlockedEgressAction>;
  readonly pods: readonly PodInput[];
  /** Config objects read, and how many of them were rejected. */
  readonly objectsTotal: number;
  readonly objectsInvalid: number;
  /** Told when the allowlists held back for capacity change (src/policy/capacity.ts): report them on their objects. */
  readonly onHeldBack?: (heldBack: readonly HeldBack[]) => void;
}

/**
 * The objects behind each held-back allowlist (a namespace's allowlist objects; the global
 * object for the global allowlist), each with the error to report on it (log, metric, Event).
 */
export function heldBackIssues(
  heldBack: readonly HeldBack[],
  objects: readonly ObjectState[],
): Array<{ state: ObjectState; issue: ConfigIssue }> {
  const out: Array<{ state: ObjectState; issue: ConfigIssue }> = [];
  for (const h of heldBack) {
    for (const state of objects) {
      const global = state.id.kind === 'global';
      if (global ? h.namespace !== '' : (state.id.namespace ?? '') !== h.namespace || h.namespace === '') continue;
      const object = describeObject(state.id.ref);
      const key = global ? 'egress_allowlist' : 'egress';
      out.push({
        state,
        issue: {
          code: 'MG_POLICY_CAPACITY_EXCEEDED',
          severity: 'error',
          object,
          key,
          message: `${object} key ${key}: ${heldBackMessage(h)}`,
        },
      });
    }
  }
  return out;
}

export class AgentCore {
  readonly opts: CoreOptions;
  readonly log: Logger;
  readonly compiler: PolicyCompiler;
  readonly resolver: HostResolver;
  readonly metrics: AgentMetrics;
  datapath: Datapath | null = null;
  private server: Server | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reasons = new Set<string>();
  private running: Promise<void> | null = null;
  private lastRunStart = -Infinity;
  private rerun = false;
  private reconciler: ((reasons: string[]) => Promise<void>) | null = null;
  private attachedTo: string | null = null;
  private appliedOnce = false;
  private stopped = false;
  private overlapText = '';
  private overlapInput: { global: GlobalConfig; objects: ReadonlyMap<string, AllowlistObjectInForce> } | null = null;
  /** Whether the last apply had egress off and no mesh CIDRs: warned once per change, not per reconcile. */
  private meshUndecidable = false;
  /** When a policy was last applied, by this agent or (read once at open) the one before it. */
  private lastApplyUnixMs = 0;
  private readonly retry: ReconcileRetry;

  constructor(opts: CoreOptions, log: Logger) {
    this.opts = opts;
    this.compiler = new PolicyCompiler(opts.policyCapacity);
    this.log = log.child({ module: 'agent' });
    this.retry = new ReconcileRetry(
      () => this.schedule('retry', 0),
      opts.retryBackoff ?? DEFAULT_RECONCILE_BACKOFF,
      opts.clock,
    );
    this.resolver = new HostResolver({ ...opts.dns, logger: log });
    this.metrics = new AgentMetrics(
      () => this.datapath,
      () => this.resolver.snapshot(),
    );
    this.resolver.onChange((hosts) => {
      for (const host of hosts) {
        const state = this.resolver.snapshot().get(host)?.state;
        if (state === 'stale' || state === 'failed') this.metrics.dnsRefreshFailures.inc();
      }
      this.schedule('dns');
    });
  }

  /** Opens (or adopts) the pinned datapath and starts serving /healthz, /readyz and /metrics. */
  async open(cgroupWalkStart: number, reconciler: (reasons: string[]) => Promise<void>): Promise<void> {
    this.reconciler = reconciler;
    this.datapath = Datapath.open({
      pinDir: this.opts.pinDir,
      objectPath: this.opts.objectPath,
      cgroupWalkStart,
      beforeWrite: this.opts.beforeWrite,
      // hostNetwork pods are never enforced (SPEC 1.3): sockets in the agent's netns are the node's.
      hostNetnsCookie: hostNetnsCookie(this.opts.hostNetnsPath),
      flowsMax: this.opts.flowsMax,
      learnedMax: this.opts.dns?.learnedMax,
    });
    const resolvers = trustedResolvers(this.opts.dns?.servers);
    this.datapath.configureDns({
      resolvers,
      ttlFloorMs: this.opts.dns?.floorMs ?? DNS_DEFAULTS.floorMs,
      ttlCeilingMs: this.opts.dns?.ceilingMs ?? DNS_DEFAULTS.ceilingMs,
      graceMs: this.opts.dns?.graceMs ?? DNS_DEFAULTS.graceMs,
    });
    this.datapath.configureReplies(this.opts.replies ?? REPLY_DEFAULTS);
    this.log.info(
      { resolvers: resolvers.map((r) => `${r.address}:${r.port}`), learnedMax: this.datapath.object.learnedMax },
      'reading pod DNS answers from trusted resolvers',
    );
    this.lastApplyUnixMs = this.datapath.readAgentStatus()?.lastApplyUnixMs ?? 0;
    this.log.info(
      {
        pinDir: this.opts.pinDir,
        adopted: this.datapath.object.adoptedMaps,
        generation: String(this.datapath.currentGeneration),
        variant: this.datapath.object.variant,
        variantReason: this.datapath.object.variantReason,
      },
      'datapath opened',
    );
    this.server = await startServer(this.opts.listen, this, this.metrics);
    const bound = this.server.address();
    this.log.info(
      { address: this.opts.listen, port: typeof bound === 'object' && bound ? bound.port : null },
      'serving /healthz /readyz /metrics',
    );
  }

  /** Debounced: a burst of changes becomes one reconcile. Reconciles never overlap. `leading`: see below. */
  schedule(reason: string, delayMs = this.opts.debounceMs, leading = false): void {
    if (this.stopped) return;
    this.reasons.add(reason);
    // An informer event (a whole object, never half-written) after a quiet period runs at once;
    // what follows within the debounce joins the next run. Files keep the trailing debounce: an
    // editor may still be writing.
    const quiet = !this.timer && !this.running && performance.now() - this.lastRunStart >= delayMs;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.runNow();
      },
      leading && quiet ? 0 : delayMs,
    );
  }

  /** Runs the reconciler now (or right after the one in progress). */
  async runNow(): Promise<void> {
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    this.lastRunStart = performance.now();
    const reasons = [...this.reasons];
    this.reasons.clear();
    this.retry.cancel(); // this run is the retry, or makes it moot
    this.running = (async () => {
      try {
        await this.reconciler?.(reasons.length ? reasons : ['start']);
        if (this.retry.consecutiveFailures > 0)
          this.log.info({ failures: this.retry.consecutiveFailures, reasons }, 'reconcile succeeded after failures');
        this.retry.succeeded();
      } catch (err) {
        this.metrics.applyFailures.inc();
        if (this.stopped) {
          this.log.error({ err, reasons }, 'reconcile failed, keeping the policy in force');
        } else {
          const { attempt, delayMs } = this.retry.failed();
          this.metrics.reconcileRetries.inc();
          this.log.error(
            { err, reasons, attempt, retryInMs: delayMs },
            'reconcile failed, keeping the policy in force; retrying',
          );
        }
      } finally {
        this.running = null;
      }
    })();
    await this.running;
    if (this.rerun && !this.stopped) {
      this.rerun = false;
      await this.runNow();
    }
  }

  /** Reports one object's validation, three ways: log lines and the config_valid metric (the cluster mode adds an Event). */
  report(
    object: string,
    ok: boolean,
    errors: readonly ConfigIssue[],
    warnings: readonly ConfigIssue[],
    fields: Record<string, unknown> = {},
  ): void {
    for (const w of warnings) this.log.warn({ ...fields, code: w.code, key: w.key, entry: w.entryName }, w.message);
    this.metrics.configValid.set({ configmap: object }, ok ? 1 : 0);
    for (const e of errors) {
      this.log.error(
        { ...fields, code: e.code, key: e.key, entry: e.entryName, value: e.value },
        `config rejected, keeping its last good state: ${e.message}`,
      );
    }
  }

  /**
   * Allowlist entries inside mesh CIDRs (mesh wins): said once per change, not on every pod event.
   * `objects`: each allowlist object's content in force, by its key, so a warning names the real
   * ConfigMap or file and the entry's index within it.
   */
  warnOverlaps(global: GlobalConfig, objects: ReadonlyMap<string, AllowlistObjectInForce>): void {
    // The same parsed objects as last time (a pod event, a DNS refresh): nothing to say again, nothing to compute.
    const same =
      this.overlapInput?.global === global &&
      this.overlapInput.objects.size === objects.size &&
      [...objects].every(([key, o]) => this.overlapInput!.objects.get(key)?.entries === o.entries);
    if (same) return;
    this.overlapInput = { global, objects: new Map(objects) };
    const warnings = overlapWarnings(global, objects);
    const text = warnings.map((w) => w.message).join('\n');
    if (text === this.overlapText) return;
    this.overlapText = text;
    for (const w of warnings)
      this.log.warn({ code: w.code, object: w.object, key: w.key, entry: w.entryName }, w.message);
  }

  /** The hostnames' current addresses, after telling the resolver which names to track. */
  private resolvedHosts(
    global: GlobalConfig,
    allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>,
  ): Map<string, readonly string[]> {
    this.resolver.setHosts(allowlistHosts(global, allowlists));
    return new Map([...this.resolver.snapshot()].map(([host, r]) => [host, r.addresses]));
  }

  /** Compiles and applies one complete desired state, then attaches (once) to attachTo. */
  apply(input: ReconcileInput, attachTo: string, started = performance.now()): ApplyResult {
    const dp = this.datapath!;
    const meshUndecidable = !input.global.meshCidrs.length && !input.global.egress;
    if (meshUndecidable !== this.meshUndecidable) {
      this.meshUndecidable = meshUndecidable;
      if (meshUndecidable)
        this.log.warn(
          {},
          'mesh_cidr_ranges is empty with egress off: every TCP destination not allowlisted is redirected to the proxy and UDP passes, because in-mesh and external cannot be told apart',
        );
    }
    const state = this.compiler.compile({
      global: input.global,
      allowlists: input.allowlists,
      namespaceActions: input.namespaceActions,
      resolved: this.resolvedHosts(input.global, input.allowlists),
      pods: input.pods,
    });
    this.reportHeldBack(this.compiler.heldBack, input);
    let result: ApplyResult;
    try {
      result = dp.apply(state);
    } catch (err) {
      this.mapPodsAfterFailedApply(state.cgroups, attachTo);
      throw err;
    }
    this.attach(attachTo);
    // The first apply and large ones leave the parse's garbage behind: return it now (src/agent/heap.ts).
    if (!this.appliedOnce || result.trieUpserts + result.trieDeletes >= LARGE_APPLY) collectGarbage();
    this.appliedOnce = true;
    this.recordStatus(input, result.generation, true);
    this.metrics.generation.set(Number(result.generation));
    this.metrics.podsEnforced.set(state.cgroups.filter((c) => c.kind === 'pod').length);
    this.metrics.syncDuration.observe((performance.now() - started) / 1000);
    this.log.info(
      {
        generation: String(result.generation),
        switched: result.switched,
        trieUpserts: result.trieUpserts,
        trieDeletes: result.trieDeletes,
        cgroups: state.cgroups.length,
        ms: Math.round(result.durationMs * 10) / 10,
        inForceMs: Math.round(result.inForceMs * 10) / 10,
      },
      'policy applied',
    );
    return result;
  }

  /** Allowlists held back for capacity: logged (code, namespace, sizes) and counted once per change. */
  private heldBackText = '[]';
  private reportHeldBack(heldBack: readonly HeldBack[], input: ReconcileInput): void {
    const text = JSON.stringify(heldBack);
    if (text === this.heldBackText) return;
    this.heldBackText = text;
    this.metrics.policyHeldBack.reset();
    for (const h of heldBack) {
      this.metrics.policyHeldBack.set({ namespace: h.namespace }, h.entries);
      this.log.error(
        {
          code: 'MG_POLICY_CAPACITY_EXCEEDED',
          namespace: h.namespace,
          entries: h.entries,
          labels: h.labels,
          room: h.room,
          kept: h.kept,
        },
        heldBackMessage(h),
      );
    }
    if (heldBack.length === 0) this.log.info({}, 'every allowlist fits the policy maps again');
    input.onHeldBack?.(heldBack);
  }

  /**
   * A policy the kernel refused must not leave new pods unmapped (they would get
   * unknown_pod_policy): they are mapped to the policy in force, and the
   * reconcile is still retried.
   */
  private mapPodsAfterFailedApply(cgroups: readonly DesiredCgroup[], attachTo: string): void {
    const dp = this.datapath!;
    if (!dp.hasPolicy()) return;
    try {
      const writes = dp.applyCgroups(cgroups);
      this.attach(attachTo);
      this.metrics.podsEnforced.set(cgroups.filter((c) => c.kind === 'pod').length);
      this.log.warn({ cgroups: cgroups.length, writes }, 'policy apply failed: pods mapped to the policy in force');
    } catch (err) {
      this.log.error({ err }, 'policy apply failed, and mapping the pods to the policy in force failed too');
    }
  }

  /**
   * Updates only the pods, leaving the policy in the kernel as it is. For an
   * agent that has no global config (none valid, none persisted): the kernel's
   * policy is the only one known.
   */
  applyPodsOnly(
    input: Omit<ReconcileInput, 'global' | 'allowlists'>,
    attachTo: string,
    started = performance.now(),
  ): void {
    const dp = this.datapath!;
    const cgroups = this.compiler.compileCgroups(input.pods);
    dp.applyCgroups(cgroups);
    this.attach(attachTo);
    this.appliedOnce = true;
    this.recordStatus({ ...input }, dp.currentGeneration, true);
    this.metrics.podsEnforced.set(cgroups.filter((c: DesiredCgroup) => c.kind === 'pod').length);
    this.metrics.syncDuration.observe((performance.now() - started) / 1000);
    this.log.warn(
      { cgroups: cgroups.length, generation: String(dp.currentGeneration) },
      'pods applied; the policy stays as the kernel has it until the global config is valid',
    );
  }

  /** True when the kernel holds a complete policy (applied by this agent or a previous one). */
  kernelHasPolicy(): boolean {
    return this.datapath?.hasPolicy() ?? false;
  }

  private attach(cgroup: string): void {
    if (this.attachedTo === cgroup) return;
    const report = this.datapath!.attach(cgroup);
    this.attachedTo = cgroup;
    this.log.info({ cgroup, ...report }, 'hooks attached');
  }

  recordStatus(input: { objectsTotal: number; objectsInvalid: number }, generation: bigint, applied: boolean): void {
    const now = Date.now();
    if (applied) this.lastApplyUnixMs = now;
    const status: AgentStatus = {
      lastApplyUnixMs: this.lastApplyUnixMs,
      lastReconcileUnixMs: now,
      generation,
      agentPid: process.pid,
      mode: this.opts.mode,
      objectsTotal: input.objectsTotal,
      objectsInvalid: input.objectsInvalid,
    };
    try {
      this.datapath!.writeAgentStatus(status);
    } catch (err) {
      this.log.warn({ err }, 'could not record the agent status with the pins');
    }
  }

  healthProblem(): string | null {
    const { linksDir, mapsDir } = pinLayout(this.opts.pinDir);
    if (!existsSync(path.join(mapsDir, 'mg_state'))) return `pinned maps are gone from ${mapsDir}\n`;
    if (this.attachedTo && !existsSync(path.join(linksDir, 'mg_connect4')))
      return `pinned links are gone from ${linksDir}\n`;
    return null;
  }

  ready(): boolean {
    return this.appliedOnce;
  }

  /** Stops the timers, the resolver and the server. Pins, and so enforcement, stay. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.retry.cancel();
    if (this.running) await this.running;
    this.resolver.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections?.();
    this.datapath?.close();
    this.datapath = null;
  }
}
