// The datapath as user space sees it: open (or adopt) the pinned maps, apply a
// desired state atomically, attach the hooks.
//
// Atomicity: every policy map is keyed by a generation slot (0 or 1), and each
// decision reads mg_state.active_slot once. apply() writes the whole new policy
// into the inactive slot, then switches active_slot with one map update. Before
// it writes into a slot again it waits for an RCU grace period (an update of
// the map-in-map mg_rcu_barrier makes the kernel wait for every running
// program), so no decision that still reads the old slot sees it change.
import {
  BLOCKED_ACTION_IDS,
  CGROUP_FLAG,
  CGROUP_KIND,
  CONFIG_FLAG,
  VERDICT_NAMES,
  TRIE_KEY_SIZE,
  TRIE_KEY_SLOT_OFFSET,
  decodeNamespace,
  decodeNamespaceKey,
  encodeNamespace,
  encodeNamespaceKey,
  decodeCgroup,
  decodeConfig,
  decodeLabel,
  decodePortKey,
  decodeState,
  encodeCgroup,
  encodeCgroupKey,
  encodeConfig,
  decodeAgentStatus,
  encodeAgentStatus,
  encodeLabel,
  encodePortKey,
  encodeState,
  encodeU32,
  decodeTrieValue,
  type AgentStatus,
  type KernelConfig,
  type KernelState,
} from './codec.js';
import { cgroupLabel, namespaceLabel } from './labels.js';
import {
  ADOPTED_GROUP,
  desiredNamespaces,
  labelsInUse,
  planTrie,
  shadowFrom,
  staleLabels,
  type ShadowGroup,
  type TrieWrites,
} from './slotPlan.js';
import { groupSize, validateDesired, type DesiredCgroup, type DesiredState } from './desired.js';
import { TrieKeyOwners, encodeTrieGroup, type LabelIds } from './trieEncode.js';
import { trieBatch } from './batchOrder.js';
import { MeshgateError } from '../errors.js';
import { LoadedObject, type AttachReport } from './loader.js';
import type { DatapathVariant } from './variant.js';
import { readVerdictCounters, type VerdictCount } from './counters.js';
import { writeDnsSettings, type DnsLearningSettings } from './dnsLearned.js';
import { writeReplySettings, type ReplySettings } from './replies.js';
import { readDnsSlots, wantedDnsSlot, writeDnsSlot, type DnsSlotShadow } from './dnsTables.js';

export interface DatapathOptions {
  readonly pinDir: string;
  readonly objectPath?: string;
  /** Which build of the programs to load; default: selectVariant() (a probe, or MESHGATE_DATAPATH_VARIANT). */
  readonly variant?: DatapathVariant;
  /** cgroup level of the attach point: decisions walk pod cgroups from there. */
  readonly cgroupWalkStart: number;
  readonly eventsPerSec?: number;
  readonly eventsBurst?: number;
  /** mg_flows' size (set before load; a pinned map of another size is replaced); 0: flows are not recorded. */
  readonly flowsMax?: number;
  /** Capacity of mg_learned (--dns-learned-max); default MG_DNS_LEARNED_DEFAULT. */
  readonly learnedMax?: number;
  /**
   * The netns whose sockets are never enforced as unknown pods (hostNetwork pods): the agent's own
   * (it is hostNetwork), recorded in mg_state.host_netns_cookie at each apply. The agent passes
   * its own (native netnsCookie()); tests a netns they created. Absent or 0n: none.
   */
  readonly hostNetnsCookie?: bigint;
  /** Tests only: called before each group of kernel writes, to force a failure partway. */
  readonly beforeWrite?: (step: string) => void;
}

export interface ApplyResult {
  readonly generation: bigint;
  readonly activeSlot: number;
  /** false when the desired state was already in force: nothing was written. */
  readonly switched: boolean;
  readonly trieUpserts: number;
  readonly trieDeletes: number;
  readonly cgroupWrites: number;
  readonly durationMs: number;
  /**
   * From the start to the moment the kernel enforces the result (the switch and
   * the cgroup writes). The rest of durationMs is the RCU grace period the slot
   * just left needs before it is written again, waited for right after the
   * switch, off the enforcement path.
   */
  readonly inForceMs: number;
}

interface SlotShadow {
  groups: Map<string, ShadowGroup>;
  ports: Set<number>;
  /** mg_namespaces of the slot: namespace id -> enum mg_blocked_action */
  namespaces: Map<number, number>;
  config: Buffer | null;
  /** mg_dns_hosts and mg_dns_ports of this slot, and the desired hosts they were built from. */
  dns: DnsSlotShadow;
  dnsHosts: DesiredState['policy']['dnsHosts'] | null;
  /** Groups that shared a trie key with another group when last written: re-encoded on every change. */
  sharing: ReadonlySet<string>;
}

const SLOT_OFFSET = TRIE_KEY_SLOT_OFFSET;

const emptySlot = (): SlotShadow => ({
  groups: new Map(),
  ports: new Set(),
  namespaces: new Map(),
  config: null,
  dns: new Map(),
  dnsHosts: null,
  sharing: new Set(),
});
const sameDnsHosts = (a: DesiredState['policy']['dnsHosts'] | null, b: DesiredState['policy']['dnsHosts']): boolean =>
  a === b || (a !== null && JSON.stringify(a ?? []) === JSON.stringify(b ?? []));

export class Datapath {
  readonly object: LoadedObject;
  private readonly opts: DatapathOptions;
  private slots: [SlotShadow, SlotShadow] = [emptySlot(), emptySlot()];
  private dirty: [boolean, boolean] = [false, false];
  private cgroups = new Map<bigint, string>(); // id -> encoded value (latin1)
  private cgroupsDirty = false;
  private activeSlot = 0;
  private generation = 0n;
  private graceNeeded = false;
  private labelIds = new Map<string, number>();
  private nextLabelId = 1;
  private hostNetns: bigint;

  private constructor(object: LoadedObject, opts: DatapathOptions) {
    this.object = object;
    this.opts = opts;
    this.hostNetns = opts.hostNetnsCookie ?? 0n;
  }

  /** Tests only: another netns taken as the node's (hostNetnsCookie), written by the next apply. */
  setHostNetnsCookie(cookie: bigint): void {
    this.hostNetns = cookie;
  }

  /** Opens the object with pinned maps (adopting what a previous agent left) and reads the kernel's state. */
  static open(opts: DatapathOptions): Datapath {
    const dp = new Datapath(
      LoadedObject.open({
        pinDir: opts.pinDir,
        objectPath: opts.objectPath,
        variant: opts.variant,
        flowsMax: opts.flowsMax,
        learnedMax: opts.learnedMax,
      }),
      opts,
    );
    try {
      dp.readKernelState();
    } catch (err) {
      dp.close();
      throw err;
    }
    return dp;
  }

  get maps(): LoadedObject['maps'] {
    return this.object.maps;
  }

  get currentGeneration(): bigint {
    return this.generation;
  }

  get currentSlot(): number {
    return this.activeSlot;
  }

  /** Rebuilds every shadow from what the kernel holds: the truth after a restart or a failed write. */
  private readKernelState(): void {
    const { maps } = this.object;
    const state = maps.mg_state.lookup(encodeU32(0));
    this.activeSlot = state ? decodeState(state).activeSlot & 1 : 0;
    this.slots = [emptySlot(), emptySlot()];
    for (const slot of [0, 1]) {
      const raw = maps.mg_config.lookup(encodeU32(slot));
      const cfg = raw ? decodeConfig(raw) : null;
      if (cfg && cfg.flags & CONFIG_FLAG.MG_CFG_LOADED) {
        this.slots[slot]!.config = raw;
        if (slot === this.activeSlot) this.generation = cfg.generation;
      }
    }
    const adopted = [new Map<string, number>(), new Map<string, number>()];
    for (const [key, value] of maps.mg_policy_trie.entries()) {
      const slot = key[SLOT_OFFSET]! & 1;
      key[SLOT_OFFSET] = 0;
      adopted[slot]!.set(key.toString('latin1'), decodeTrieValue(value).labelId);
    }
    for (const slot of [0, 1]) this.slots[slot]!.groups.set(ADOPTED_GROUP, shadowFrom(null, adopted[slot]!));
    for (const key of maps.mg_excluded_ports.keys()) {
      const { slot, port } = decodePortKey(key);
      this.slots[slot & 1]!.ports.add(port);
    }
    for (const [key, value] of maps.mg_namespaces.entries()) {
      const { slot, namespaceId } = decodeNamespaceKey(key);
      this.slots[slot & 1]!.namespaces.set(namespaceId, decodeNamespace(value).blockedAction);
    }
    const dns = readDnsSlots(maps);
    this.slots[0]!.dns = dns[0];
    this.slots[1]!.dns = dns[1];
    this.cgroups = new Map(maps.mg_cgroups.entries().map(([k, v]) => [k.readBigUInt64LE(0), v.toString('latin1')]));
    this.labelIds = new Map();
    this.nextLabelId = 1;
    for (const [k, v] of maps.mg_labels.entries()) {
      const id = k.readUInt32LE(0);
      this.labelIds.set(decodeLabel(v), id);
      this.nextLabelId = Math.max(this.nextLabelId, id + 1);
    }
    this.dirty = [false, false];
    this.cgroupsDirty = false;
    // Another process may have switched away from the inactive slot a moment ago: wait before writing into it.
    // Unless its mg_config was never loaded: a slot becomes active only after that write, and the hooks are
    // attached only while the active slot is loaded (attach()), so no program has ever read that slot. A cold
    // start writes its first policy without waiting.
    this.graceNeeded = this.slots[1 - this.activeSlot]!.config !== null;
  }

  private labelId(text: string | undefined, newLabels: Map<string, number>): number {
    if (!text) return 0;
    let id = this.labelIds.get(text) ?? newLabels.get(text);
    if (id === undefined) {
      encodeLabel(text); // size check before anything is written
      id = this.nextLabelId++;
      newLabels.set(text, id);
    }
    return id;
  }

  private kernelConfig(desired: DesiredState, generation: bigint): Buffer {
    const p = desired.policy;
    const hasMesh = p.groups.some((g) =>
      g.cidrs ? g.table === 'mesh' && g.cidrs.length > 0 : g.entries.some((e) => e.table === 'mesh'),
    );
    const config: KernelConfig = {
      flags:
        CONFIG_FLAG.MG_CFG_LOADED |
        (p.egress ? CONFIG_FLAG.MG_CFG_EGRESS : 0) |
        (hasMesh ? CONFIG_FLAG.MG_CFG_HAS_MESH_CIDRS : 0),
      proxyPort: p.proxyPort,
      blockedAction: BLOCKED_ACTION_IDS[p.blockedAction],
      unknownPodPolicy: p.unknownPodPolicy === 'deny-external' ? 1 : 0,
      proxyUid: p.proxyUid,
      eventMask: p.eventVerdicts.reduce((m, v) => m | (1 << VERDICT_NAMES.indexOf(v)), 0),
      generation,
    };
    return encodeConfig(config);
  }

  private kernelCgroups(cgroups: readonly DesiredCgroup[], newLabels: Map<string, number>): Map<bigint, string> {
    const kinds = {
      pod: CGROUP_KIND.MG_CGROUP_POD,
      proxy: CGROUP_KIND.MG_CGROUP_PROXY,
      unenforced: CGROUP_KIND.MG_CGROUP_UNENFORCED,
    };
    const out = new Map<bigint, string>();
    for (const c of cgroups) {
      out.set(
        c.cgroupId,
        encodeCgroup({
          kind: kinds[c.kind],
          namespaceId: this.labelId(namespaceLabel(c.namespace), newLabels),
          flags: c.proxyCgroupKnown ? CGROUP_FLAG.MG_POD_PROXY_CGROUP_KNOWN : 0,
          labelId: this.labelId(cgroupLabel(c), newLabels),
        }).toString('latin1'),
      );
    }
    return out;
  }

  private step(name: string): void {
    this.opts.beforeWrite?.(name);
  }

  private waitForGracePeriod(): void {
    if (!this.graceNeeded) return;
    const { maps } = this.object;
    maps.mg_rcu_barrier.update(encodeU32(0), encodeU32(maps.mg_rcu_inner.fd));
    this.graceNeeded = false;
  }

  /**
   * Makes the kernel enforce `desired`: all of it, or (on any failure) none of
   * it. Idempotent; writes only what differs from the slot it fills.
   */
  apply(desired: DesiredState): ApplyResult {
    const started = performance.now();
    const active = this.slots[this.activeSlot]!;
    const groupsSame = (s: SlotShadow): boolean =>
      s.groups.size === desired.policy.groups.length &&
      desired.policy.groups.every((g) => s.groups.get(g.id)?.source === g);
    const newLabels = new Map<string, number>();
    const wantedCgroups = this.kernelCgroups(desired.cgroups, newLabels);
    const wantedNamespaces = this.kernelNamespaces(desired, newLabels);
    const policyUnchanged =
      !this.dirty[this.activeSlot] &&
      active.config !== null &&
      groupsSame(active) &&
      sameSet(active.ports, desired.policy.excludedPorts) &&
      sameMap(active.namespaces, wantedNamespaces) &&
      sameDnsHosts(active.dnsHosts, desired.policy.dnsHosts) &&
      this.kernelConfig(desired, this.generation).equals(active.config);

    const target = 1 - this.activeSlot;
    let trieUpserts = 0;
    let trieDeletes = 0;
    try {
      if (!policyUnchanged) {
        if (this.dirty[target]) this.resyncSlot(target);
        const slot = this.slots[target]!;
        // Groups that shared a key are planned together again, so the key leaves the slot only with its last holder.
        const changed = desired.policy.groups.filter(
          (g) => slot.groups.get(g.id)?.source !== g || slot.sharing.has(g.id),
        );
        const total = desired.policy.groups.reduce((n, g) => n + groupSize(g), 0);
        // The changed groups' entries are checked by encodeTrieGroup, as it encodes them.
        validateDesired(desired, [], total);
        const owners = new TrieKeyOwners(changed.reduce((n, g) => n + groupSize(g), 0));
        const ids: LabelIds = {
          label: (text) => this.labelId(text, newLabels),
          namespace: (namespace) => this.labelId(namespaceLabel(namespace), newLabels),
        };
        const plan = planTrie(slot.groups, desired.policy.groups, changed, owners, (g) =>
          encodeTrieGroup(g, ids, owners),
        );
        const dnsWant = this.planDns(desired, target, newLabels);
        this.waitForGracePeriod();
        this.dirty[target] = true;
        this.writeLabels(newLabels);
        this.step('trie-delete');
        this.deleteTrie(target, plan.deletes);
        this.step('trie-update');
        this.writeTrie(target, plan.upserts);
        this.step('ports');
        this.writePorts(target, slot.ports, desired.policy.excludedPorts);
        this.step('namespaces');
        this.writeNamespaces(target, slot.namespaces, wantedNamespaces);
        this.step('dns');
        writeDnsSlot(this.object.maps, slot.dns, dnsWant);
        slot.dns = dnsWant;
        slot.dnsHosts = desired.policy.dnsHosts ?? [];
        this.step('config');
        const generation = this.generation + 1n;
        const config = this.kernelConfig(desired, generation);
        this.object.maps.mg_config.update(encodeU32(target), config);
        slot.groups = plan.groups;
        slot.sharing = owners.sharing;
        slot.ports = new Set(desired.policy.excludedPorts);
        slot.namespaces = wantedNamespaces;
        slot.config = config;
        this.dirty[target] = false;
        this.step('switch');
        this.object.maps.mg_state.update(encodeU32(0), encodeState(this.kernelState(target)));
        this.activeSlot = target;
        this.generation = generation;
        this.graceNeeded = true;
        trieUpserts = plan.upserts.count;
        trieDeletes = plan.deletes.length;
      } else {
        validateDesired(desired, [], 0);
        this.writeLabels(newLabels);
        // Same policy, other per-node settings (a restart with another --flows-max): same slot, new knobs.
        const state = encodeState(this.kernelState(this.activeSlot));
        if (!this.object.maps.mg_state.lookup(encodeU32(0))?.equals(state))
          this.object.maps.mg_state.update(encodeU32(0), state);
      }
      const cgroupWrites = this.writeCgroups(wantedCgroups);
      this.collectLabels(desired);
      const inForceMs = performance.now() - started;
      if (!policyUnchanged) {
        // The next apply writes into the slot just left: wait for its last readers now, while the new policy is
        // already in force, rather than at the start of the next change. A failure here is retried before that write.
        try {
          this.waitForGracePeriod();
        } catch {
          this.graceNeeded = true;
        }
      }
      return {
        generation: this.generation,
        activeSlot: this.activeSlot,
        switched: !policyUnchanged,
        trieUpserts,
        trieDeletes,
        cgroupWrites,
        durationMs: performance.now() - started,
        inForceMs,
      };
    } catch (err) {
      if (err instanceof MeshgateError && err.code !== 'MG_BPF_CALL_FAILED') throw err; // already says what failed
      throw new MeshgateError(
        'MG_APPLY_FAILED',
        `apply of generation ${this.generation + 1n} failed; generation ${this.generation} stays in force: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  private kernelState(activeSlot: number): KernelState {
    return {
      activeSlot,
      cgroupWalkStart: this.opts.cgroupWalkStart,
      eventsPerSec: this.opts.eventsPerSec ?? 100,
      eventsBurst: this.opts.eventsBurst ?? 200,
      recordFlows: this.opts.flowsMax !== 0,
      hostNetnsCookie: this.hostNetns,
    };
  }

  /** The DNS tables the target slot must hold; encodes every name before anything is written. */
  private planDns(desired: DesiredState, slot: number, newLabels: Map<string, number>): DnsSlotShadow {
    try {
      return wantedDnsSlot(
        desired.policy.dnsHosts ?? [],
        slot,
        (ns) => this.labelId(namespaceLabel(ns), newLabels),
        (text) => this.labelId(text, newLabels),
      );
    } catch (err) {
      throw new MeshgateError(
        'MG_DESIRED_STATE_INVALID',
        `desired state rejected before any kernel write: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  private writeTrie(slot: number, writes: TrieWrites): void {
    if (writes.count === 0) return;
    const batch = trieBatch(writes.chunks, slot);
    this.object.maps.mg_policy_trie.updateBatch(batch.keys, batch.values, batch.count);
  }

  private deleteTrie(slot: number, keys: readonly string[]): void {
    if (keys.length === 0) return;
    const trie = this.object.maps.mg_policy_trie;
    const keyBuf = Buffer.alloc(TRIE_KEY_SIZE);
    // LPM tries have no batch delete on every kernel: delete one by one.
    for (const key of keys) {
      keyBuf.write(key, 0, 'latin1');
      keyBuf[SLOT_OFFSET] = slot;
      trie.delete(keyBuf);
    }
  }

  private writePorts(slot: number, have: ReadonlySet<number>, want: readonly number[]): void {
    const ports = this.object.maps.mg_excluded_ports;
    const wanted = new Set(want);
    for (const port of have) if (!wanted.has(port)) ports.delete(encodePortKey(slot, port));
    for (const port of wanted) if (!have.has(port)) ports.update(encodePortKey(slot, port), Buffer.from([1]));
  }

  /** The namespaces' own blocked actions, by namespace id (ids are the namespaces' labels, as in the trie and mg_cgroups). */
  private kernelNamespaces(desired: DesiredState, newLabels: Map<string, number>): Map<number, number> {
    const out = new Map<number, number>();
    for (const a of desired.policy.namespaceActions ?? []) {
      out.set(this.labelId(namespaceLabel(a.namespace), newLabels), BLOCKED_ACTION_IDS[a.action]);
    }
    return out;
  }

  private writeNamespaces(slot: number, have: ReadonlyMap<number, number>, want: ReadonlyMap<number, number>): void {
    const map = this.object.maps.mg_namespaces;
    for (const id of have.keys()) if (!want.has(id)) map.delete(encodeNamespaceKey(slot, id));
    for (const [id, action] of want)
      if (have.get(id) !== action) map.update(encodeNamespaceKey(slot, id), encodeNamespace(action));
  }

  private writeLabels(newLabels: Map<string, number>): void {
    if (newLabels.size === 0) return;
    this.step('labels');
    for (const [text, id] of newLabels) {
      this.object.maps.mg_labels.update(encodeU32(id), encodeLabel(text));
      this.labelIds.set(text, id);
    }
  }

  private writeCgroups(wanted: Map<bigint, string>): number {
    const map = this.object.maps.mg_cgroups;
    if (this.cgroupsDirty) {
      this.cgroups = new Map(map.entries().map(([k, v]) => [k.readBigUInt64LE(0), v.toString('latin1')]));
      this.cgroupsDirty = false;
    }
    let writes = 0;
    this.cgroupsDirty = true;
    this.step('cgroups');
    for (const [id, value] of wanted) {
      if (this.cgroups.get(id) === value) continue;
      map.update(encodeCgroupKey(id), Buffer.from(value, 'latin1'));
      this.cgroups.set(id, value);
      writes++;
    }
    for (const id of [...this.cgroups.keys()]) {
      if (wanted.has(id)) continue;
      map.delete(encodeCgroupKey(id));
      this.cgroups.delete(id);
      writes++;
    }
    this.cgroupsDirty = false;
    return writes;
  }

  /**
   * Writes only mg_cgroups (and their labels): the policy in force stays as
   * the kernel has it. Used by an agent that adopted a policy it cannot
   * rebuild yet (its config is invalid at startup) while pods come and go.
   */
  applyCgroups(cgroups: readonly DesiredCgroup[]): number {
    if (!this.hasPolicy())
      throw new MeshgateError('MG_APPLY_FAILED', 'no policy in the kernel: a complete desired state is needed first');
    const newLabels = new Map<string, number>();
    const wanted = this.kernelCgroups(cgroups, newLabels);
    this.writeLabels(newLabels);
    const writes = this.writeCgroups(wanted);
    this.collectLabels(null);
    return writes;
  }

  /** The kernel holds a complete policy in the active slot. */
  hasPolicy(): boolean {
    return this.slots[this.activeSlot]!.config !== null;
  }

  /** Deletes labels that neither slot nor any cgroup refers to any more. */
  private collectLabels(desired: DesiredState | null): void {
    const used = labelsInUse({
      groups: this.slots.flatMap((slot) => [...slot.groups.values()]),
      namespaceIds: this.slots.flatMap((slot) => [...slot.namespaces.keys()]),
      dnsSlots: this.slots.map((slot) => slot.dns),
      cgroups: [...this.cgroups.values()].map((value) => decodeCgroup(Buffer.from(value, 'latin1'))),
      desiredNamespaceIds: [...desiredNamespaces(desired)].map((ns) => this.labelIds.get(namespaceLabel(ns)) ?? 0),
    });
    for (const [text, id] of staleLabels(this.labelIds, used)) {
      this.object.maps.mg_labels.delete(encodeU32(id));
      this.labelIds.delete(text);
    }
  }

  /** After a failed write the slot's content is unknown: read it back from the kernel. */
  private resyncSlot(slot: number): void {
    const keys = new Map<string, number>();
    for (const [key, value] of this.object.maps.mg_policy_trie.entries()) {
      if ((key[SLOT_OFFSET]! & 1) !== slot) continue;
      key[SLOT_OFFSET] = 0;
      keys.set(key.toString('latin1'), decodeTrieValue(value).labelId);
    }
    const ports = new Set<number>();
    for (const key of this.object.maps.mg_excluded_ports.keys()) {
      const k = decodePortKey(key);
      if (k.slot === slot) ports.add(k.port);
    }
    const namespaces = new Map<number, number>();
    for (const [key, value] of this.object.maps.mg_namespaces.entries()) {
      const k = decodeNamespaceKey(key);
      if (k.slot === slot) namespaces.set(k.namespaceId, decodeNamespace(value).blockedAction);
    }
    this.slots[slot] = {
      groups: new Map([[ADOPTED_GROUP, shadowFrom(null, keys)]]),
      ports,
      namespaces,
      config: null,
      dns: readDnsSlots(this.object.maps)[slot]!,
      dnsHosts: null,
      sharing: new Set(),
    };
    this.dirty[slot] = false;
  }

  /** Attaches (or re-points pinned links) once the maps hold a complete policy. */
  attach(cgroupPath: string): AttachReport {
    if (this.slots[this.activeSlot]!.config === null) {
      throw new MeshgateError('MG_APPLY_FAILED', 'refusing to attach before a complete policy has been applied');
    }
    const report = this.object.attach(cgroupPath);
    // `meshgate status` learns from here which hooks this variant has, agent or not.
    const raw = this.object.maps.mg_agent_status.lookup(encodeU32(0));
    const recorded: AgentStatus = raw
      ? decodeAgentStatus(raw)
      : {
          lastApplyUnixMs: 0,
          lastReconcileUnixMs: 0,
          generation: 0n,
          agentPid: 0,
          mode: 'none',
          objectsTotal: 0,
          objectsInvalid: 0,
        };
    this.writeAgentStatus(recorded);
    return report;
  }

  /** The resolvers whose answers the kernel reads, and how long what it learns stays (once per agent start). */
  configureDns(settings: Omit<DnsLearningSettings, 'learnedMax'>): void {
    writeDnsSettings(this.object.maps, { ...settings, learnedMax: this.object.learnedMax });
  }

  /** How long a UDP peer of a pod's socket stays one its replies may go to (once per agent start). */
  configureReplies(settings: ReplySettings): void {
    writeReplySettings(this.object.maps, settings);
  }

  /** Records the agent's last reconcile next to the pins, for `meshgate status`. */
  writeAgentStatus(status: AgentStatus): void {
    const withVariant = { ...status, datapathVariant: this.object.variant };
    this.object.maps.mg_agent_status.update(encodeU32(0), encodeAgentStatus(withVariant));
  }

  /** What the last agent recorded, or null when none ever did. */
  readAgentStatus(): AgentStatus | null {
    const raw = this.object.maps.mg_agent_status.lookup(encodeU32(0));
    const status = raw ? decodeAgentStatus(raw) : null;
    return status && status.agentPid !== 0 ? status : null;
  }

  /** Verdict counters summed over CPUs. */
  readCounters(): VerdictCount[] {
    return readVerdictCounters(this.object.maps.mg_counters);
  }

  /** Entries of the policy in force (active slot), and of the slot-less maps. */
  entryCounts(): Record<string, number> {
    const slot = this.slots[this.activeSlot]!;
    let trie = 0;
    for (const g of slot.groups.values()) trie += g.labels.length;
    let dnsHosts = 0;
    for (const k of slot.dns.keys()) if (k.startsWith('mg_dns_hosts|')) dnsHosts++;
    const maps = this.object.maps;
    return {
      // What the agent writes: from its own shadow of the maps (the active slot's).
      mg_policy_trie: trie,
      mg_excluded_ports: slot.ports.size,
      mg_namespaces: slot.namespaces.size,
      mg_cgroups: this.cgroups.size,
      mg_labels: this.labelIds.size,
      mg_dns_hosts: dnsHosts,
      mg_dns_ports: slot.dns.size - dnsHosts,
      // What the programs write: counted in batches (MapHandle.count), both slots where keyed by slot.
      mg_learned: maps.mg_learned.count(),
      mg_flows: maps.mg_flows.count(),
      mg_reply_peers: maps.mg_reply_peers.count(),
      mg_origdst_by_peer: maps.mg_origdst_by_peer.count(),
      mg_dns_names: maps.mg_dns_names.count(),
      mg_dns_resolvers: maps.mg_dns_resolvers.count(),
    };
  }

  close(): void {
    this.object.close();
  }
}

function sameSet(a: ReadonlySet<number>, b: readonly number[]): boolean {
  return a.size === new Set(b).size && b.every((x) => a.has(x));
}

function sameMap(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  return a.size === b.size && [...b].every(([k, v]) => a.get(k) === v);
}
