// Cluster mode: the DaemonSet agent. Three informers (the global ConfigMap,
// the labelled allowlist ConfigMaps, this node's Pods) and a watch on the
// kubepods cgroups feed one debounced reconcile, which compiles and applies
// atomically. Nothing is written to the kernel before every informer has
// synced: a half-listed cluster would look like "no pods, no allowlists", and
// applying that would drop enforcement (the Cilium upgrade bug).
import type { ReplySettings } from '../datapath/replies.js';
import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import { readdirSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  ALLOWLIST_LABEL,
  DEFAULT_LIMITS,
  GLOBAL_KEYS,
  describeObject,
  parseGlobalConfig,
  type GlobalConfig,
  type ObjectRef,
} from '../config/index.js';
import { CidrListMemo } from '../config/cidrListMemo.js';
import type { HostResolverOptions } from '../dns/hostResolver.js';
import { KubeClient, loadKubeConnection } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { ResilientInformer } from '../kube/informer.js';
import { releaseOptimisingCompiler } from './tiering.js';
import { parseSeed, seedData, type SeedFlags } from './seedFlags.js';
import { cgroupId, cgroupLevel, findCgroup2Mount } from '../node/cgroup.js';
import {
  cgroupCreatedMs,
  driverOf,
  findContainerCgroup,
  findKubepods,
  findPodCgroup,
  podParentDirs,
  podUidOfCgroupName,
  type KubepodsLayout,
} from '../node/podCgroups.js';
import type { PodInput } from '../policy/compile.js';
import { AgentCore, heldBackIssues } from './core.js';
import type { HeldBack } from '../policy/capacity.js';
import { LastGoodStore, allowlistObjectFromData, type ConfigObjectId, type Resolution } from './lastGood.js';
import { LastGoodPersistence } from './lastGoodPersistence.js';
import { decidePod, type PodDecision } from './pods.js';
import { restartedProxyCgroup } from './sidecarRestart.js';
import { MeshgateError } from '../errors.js';

export interface ClusterOptions {
  readonly pinDir: string;
  readonly listen: string;
  readonly debounceMs: number;
  readonly objectPath?: string;
  readonly dns?: Pick<HostResolverOptions, 'servers' | 'floorMs' | 'ceilingMs' | 'graceMs'>;
  /** UDP replies' peer lifetimes (--udp-reply-timeout, --udp-reply-stream-timeout). */
  readonly replies?: ReplySettings;
  /** mg_flows' size; 0: flows are not recorded (--flows-max). */
  readonly flowsMax?: number;
  readonly kubeconfig?: string;
  readonly configMap: { readonly namespace: string; readonly name: string };
  readonly nodeName: string;
  readonly cgroupRoot?: string;
  readonly cgroupDriver: 'auto' | 'systemd' | 'cgroupfs';
  readonly proxyContainers: readonly string[];
  readonly seed: SeedFlags;
  /** Informer retry backoff (tests shorten it). */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
}

const cmRef = (cm: V1ConfigMap): ObjectRef => ({
  kind: 'ConfigMap',
  namespace: cm.metadata?.namespace,
  name: cm.metadata?.name ?? '',
});
const cmVersion = (cm: V1ConfigMap): string => `${cm.metadata?.uid}@${cm.metadata?.resourceVersion}`;
/** The directories inside a pod's cgroup: its containers' cgroups (and the sandbox's). */
const childCgroups = (dir: string): string[] => {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
};
const cmKey = (cm: V1ConfigMap): string => `${cm.metadata?.namespace}/${cm.metadata?.name}`;
const allowlistId = (cm: V1ConfigMap): ConfigObjectId => {
  const ref = cmRef(cm);
  return { key: describeObject(ref), kind: 'allowlist', ref, namespace: cm.metadata?.namespace ?? '' };
};

export class ClusterAgent {
  private readonly opts: ClusterOptions;
  private readonly core: AgentCore;
  private readonly log: Logger;
  private layout: KubepodsLayout | null = null;
  private events: EventRecorder | null = null;
  private informers: Array<ResilientInformer<V1ConfigMap> | ResilientInformer<V1Pod>> = [];
  private globalInformer: ResilientInformer<V1ConfigMap> | null = null;
  private allowlistInformer: ResilientInformer<V1ConfigMap> | null = null;
  private podInformer: ResilientInformer<V1Pod> | null = null;
  private dirWatchers = new Map<string, FSWatcher>();
  /** Watched directories whose children changed since the last reconcile. */
  private changedDirs = new Set<string>();
  /** Per meshed pod uid: its directory's children while the sidecar's known cgroup existed (sidecarRestart.ts). */
  private podChildren = new Map<string, ReadonlySet<string>>();
  private restartsLogged = new Map<string, string>();
  /** Every object's hash, parse and last good content; a change re-parses one object. Persisted with the pins. */
  private readonly store: LastGoodStore;
  private readonly persistence: LastGoodPersistence;
  /** Whether the persisted last good content has been read (at the first reconcile after the informers sync). */
  private restored = false;
  private readonly globalId: ConfigObjectId;
  private defaultsGlobal: GlobalConfig | null = null;
  /** cgroup ids in mg_cgroups, and when each pod cgroup was first seen (for the pod-start window). */
  private mapped = new Set<bigint>();
  private uidByCgroup = new Map<bigint, string>();
  private firstSeen = new Map<string, number>();
  private loggedPods = new Map<string, string>();
  private waitingLogged = false;
  private said = new Set<string>();
  private startedAt = Date.now();

  constructor(opts: ClusterOptions, log: Logger) {
    this.opts = opts;
    this.core = new AgentCore({ ...opts, mode: 'cluster' }, log);
    this.log = this.core.log;
    const seed = seedData(opts.seed);
    // The previous parse of each long CIDR list, so a one-entry edit re-reads only what changed.
    const cidrMemo = new CidrListMemo();
    this.store = new LastGoodStore({
      // The flags seed only keys the ConfigMap leaves out; a ConfigMap with no meshgate key at all is still refused.
      global: (raw, ref) => {
        const data = 'data' in raw ? raw.data : {};
        const own: readonly string[] = GLOBAL_KEYS;
        return parseGlobalConfig(
          Object.keys(data).some((k) => own.includes(k)) ? { ...seed, ...data } : data,
          ref,
          DEFAULT_LIMITS,
          cidrMemo,
        );
      },
      allowlist: (raw, ref) => allowlistObjectFromData('data' in raw ? raw.data : {}, ref),
    });
    this.persistence = new LastGoodPersistence(this.log);
    const { namespace, name } = opts.configMap;
    const ref: ObjectRef = { kind: 'ConfigMap', namespace, name };
    this.globalId = { key: describeObject(ref), kind: 'global', ref };
  }

  /** The attach point: --cgroup-root, else the kubelet's kubepods cgroup. Never the cgroup2 root. */
  private findLayout(): KubepodsLayout {
    const mount = findCgroup2Mount();
    if (this.opts.cgroupRoot) {
      const root = path.resolve(this.opts.cgroupRoot);
      if (root === path.resolve(mount))
        throw new MeshgateError(
          'MG_ATTACH_ROOT_CGROUP',
          `--cgroup-root ${root} is the node's root cgroup: meshgate never attaches there (the node's own daemons would be enforced)`,
        );
      const driver = this.opts.cgroupDriver === 'auto' ? driverOf(root) : this.opts.cgroupDriver;
      return { root, driver };
    }
    const found = findKubepods(mount, this.opts.cgroupDriver);
    if (!found)
      throw new MeshgateError(
        'MG_KUBEPODS_NOT_FOUND',
        `no kubepods cgroup found under ${mount} (looked for kubepods.slice, *-kubepods.slice and kubepods, 3 levels deep): pass --cgroup-root`,
      );
    return found;
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    this.layout = this.findLayout();
    this.log.info(
      { cgroupRoot: this.layout.root, driver: this.layout.driver, node: this.opts.nodeName },
      'kubepods cgroup found',
    );
    await this.core.open(cgroupLevel(this.layout.root), () => this.reconcile());
    this.watchCgroups();

    const client = new KubeClient(await loadKubeConnection(this.opts.kubeconfig));
    this.events = new EventRecorder(client, this.opts.nodeName, this.log);
    const common = {
      log: this.log,
      onChange: (what: string) => this.core.schedule(what, undefined, true),
      backoffMs: this.opts.backoffMs,
    };
    const { namespace, name } = this.opts.configMap;
    this.globalInformer = new ResilientInformer<V1ConfigMap>(client, {
      ...common,
      name: 'global-configmap',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
      fieldSelector: `metadata.name=${name}`,
      onRestart: () => this.core.metrics.informerRestarts.inc({ informer: 'global-configmap' }),
    });
    this.allowlistInformer = new ResilientInformer<V1ConfigMap>(client, {
      ...common,
      name: 'allowlist-configmaps',
      path: '/api/v1/configmaps',
      labelSelector: `${ALLOWLIST_LABEL}=true`,
      onRestart: () => this.core.metrics.informerRestarts.inc({ informer: 'allowlist-configmaps' }),
    });
    this.podInformer = new ResilientInformer<V1Pod>(client, {
      ...common,
      name: 'pods',
      path: '/api/v1/pods',
      fieldSelector: `spec.nodeName=${this.opts.nodeName}`,
      onRestart: () => this.core.metrics.informerRestarts.inc({ informer: 'pods' }),
    });
    this.informers = [this.globalInformer, this.allowlistInformer, this.podInformer];
    await Promise.all(this.informers.map((i) => i.start()));
    await this.core.runNow();
  }

  /** New pod cgroups (and sidecar container cgroups) trigger a reconcile at once: the pod-start window. */
  private watchCgroups(): void {
    for (const dir of podParentDirs(this.layout!)) this.watchDir(dir);
  }

  private watchDir(dir: string): void {
    if (this.dirWatchers.has(dir)) return;
    try {
      const w = watch(dir, (_event, name) => {
        if (!name) return;
        this.changedDirs.add(dir);
        const uid = podUidOfCgroupName(String(name));
        if (uid && !this.firstSeen.has(uid)) this.firstSeen.set(uid, Date.now());
        this.core.schedule(`cgroup ${path.join(dir, String(name))}`, 0);
      });
      w.on('error', () => this.unwatchDir(dir));
      this.dirWatchers.set(dir, w);
    } catch {
      // Not there yet (a QoS cgroup appears with its first pod): the reconcile retries.
    }
  }

  private unwatchDir(dir: string): void {
    this.dirWatchers.get(dir)?.close();
    this.dirWatchers.delete(dir);
  }

  /** The defaults and the --enable-egress / --mesh-cidr flags: the global config when the ConfigMap never existed. */
  private flagsGlobal(): GlobalConfig | null {
    if (!this.defaultsGlobal) {
      const result = parseSeed(this.opts.seed); // `meshgate agent` checked the flags (checkSeedFlags)
      if (!result.ok && this.once('flags-invalid'))
        this.log.error({ errors: result.errors }, 'the --enable-egress / --mesh-cidr flags give no global config');
      this.defaultsGlobal = result.ok ? result.value : null;
    }
    return this.defaultsGlobal;
  }

  /** Feeds every config object to the store (parsing only changed ones) and resolves what is in force. */
  private readConfig(cm: V1ConfigMap | undefined): { resolution: Resolution; total: number } {
    const byKey = new Map<string, V1ConfigMap>();
    if (cm) {
      this.store.observe(this.globalId, { data: cm.data ?? {} }, cmVersion(cm));
      byKey.set(this.globalId.key, cm);
    } else {
      this.store.absent(this.globalId.key);
    }
    for (const item of this.allowlistInformer!.list()) {
      const id = allowlistId(item);
      this.store.observe(id, { data: item.data ?? {} }, cmVersion(item));
      byKey.set(id.key, item);
    }
    for (const key of this.store.keys('allowlist')) {
      if (byKey.has(key)) continue;
      this.store.remove(key); // deleted (maybe while the agent was down): nothing of it stays
      this.core.metrics.configValid.remove({ configmap: key });
    }
    const resolution = this.store.resolve();
    for (const state of resolution.changed) {
      const item = byKey.get(state.id.key);
      if (!item) continue; // a deleted global ConfigMap: said below
      this.core.report(state.id.key, state.valid, state.errors, state.warnings, { configmap: cmKey(item) });
      if (!state.valid && state.errors.length) void this.events?.rejected(item, state.errors);
    }
    this.persistence.flush(this.store);
    return { resolution, total: byKey.size };
  }

  /** This node's pods, each with its cgroup (when the kubelet has made it) and its sidecar's. */
  private pods(): PodInput[] {
    const out: PodInput[] = [];
    const layout = this.layout!;
    this.uidByCgroup = new Map();
    const live = new Set<string>();
    for (const pod of this.podInformer!.list()) {
      if (pod.spec?.nodeName && pod.spec.nodeName !== this.opts.nodeName) continue;
      const d = decidePod(pod, this.opts.proxyContainers);
      if (!d) continue;
      live.add(d.uid);
      this.logDecision(d);
      const dir = findPodCgroup(layout, d.uid, d.qosClass);
      if (!dir) continue; // not made yet: the cgroup watch reconciles when it appears
      if (!this.firstSeen.has(d.uid)) this.firstSeen.set(d.uid, cgroupCreatedMs(dir) ?? Date.now());
      let podCgroupId: bigint;
      try {
        podCgroupId = cgroupId(dir);
      } catch {
        continue; // removed between the lookup and the stat
      }
      const meshed = d.enforcement === 'meshed';
      let proxyCgroupId: bigint | null = null;
      if (meshed && d.proxyContainerId) {
        // Watched for the pod's life: the sidecar's cgroup appears a moment after the pod's, and a
        // restarted sidecar's new one before the kubelet reports its new container ID.
        this.watchDir(dir);
        proxyCgroupId = this.proxyCgroup(dir, d as PodDecision & { proxyContainerId: string });
      } else if (meshed && d.proxyContainer) {
        this.watchDir(dir);
      }
      out.push({ namespace: d.namespace, name: d.name, podCgroupId, proxyCgroupId, meshed });
      this.uidByCgroup.set(podCgroupId, d.uid);
    }
    this.changedDirs.clear();
    for (const uid of [...this.podChildren.keys()]) if (!live.has(uid)) this.podChildren.delete(uid);
    for (const uid of [...this.restartsLogged.keys()]) if (!live.has(uid)) this.restartsLogged.delete(uid);
    for (const uid of [...this.firstSeen.keys()])
      if (!live.has(uid) && this.firstSeen.get(uid)! < Date.now() - 600_000) this.firstSeen.delete(uid);
    for (const dir of [...this.dirWatchers.keys()]) {
      const uid = podUidOfCgroupName(path.basename(dir));
      if (uid && !live.has(uid)) this.unwatchDir(dir);
    }
    for (const key of [...this.loggedPods.keys()]) if (!live.has(key)) this.loggedPods.delete(key);
    for (const dir of podParentDirs(layout)) this.watchDir(dir);
    return out;
  }

  /** The sidecar's cgroup id: its reported container's, else a restarted sidecar's new cgroup, else null. */
  private proxyCgroup(dir: string, d: PodDecision & { proxyContainerId: string }): bigint | null {
    const driver = this.layout!.driver;
    const proxyDir = findContainerCgroup(dir, driver, d.proxyContainerId);
    try {
      if (proxyDir) {
        const base = this.podChildren.get(d.uid);
        if (!base || this.changedDirs.has(dir) || !base.has(path.basename(proxyDir)))
          this.podChildren.set(d.uid, new Set(childCgroups(dir)));
        return cgroupId(proxyDir);
      }
      const name = restartedProxyCgroup(childCgroups(dir), this.podChildren.get(d.uid) ?? null, driver, d);
      if (!name) return null;
      const id = cgroupId(path.join(dir, name));
      if (this.restartsLogged.get(d.uid) !== name) {
        this.restartsLogged.set(d.uid, name);
        this.log.info(
          { pod: `${d.namespace}/${d.name}`, uid: d.uid, cgroup: name, previous: d.proxyContainerId },
          "sidecar restarted: its new container cgroup is the proxy's until the kubelet reports the new container ID",
        );
      }
      return id;
    } catch {
      return null; // removed between the lookup and the stat: the watch reconciles again
    }
  }

  private logDecision(d: PodDecision): void {
    const said = `${d.enforcement}|${d.proxyContainerId}`;
    if (this.loggedPods.get(d.uid) === said) return;
    this.loggedPods.set(d.uid, said);
    const fields = { pod: `${d.namespace}/${d.name}`, uid: d.uid, enforcement: d.enforcement, reason: d.reason };
    if (d.enforcement === 'host-network') this.log.info(fields, 'pod skipped: hostNetwork pods are never enforced');
    else this.log.info(fields, `pod ${d.enforcement}`);
  }

  private async reconcile(): Promise<void> {
    const started = performance.now();
    const pending = this.informers.filter((i) => !i.synced);
    if (pending.length || this.informers.length === 0) {
      if (!this.waitingLogged) this.log.info({}, 'waiting for every informer to sync before writing any map');
      this.waitingLogged = true;
      return;
    }
    if (!this.restored) {
      // Start-up is over once every informer has synced: from here the policy is read at full
      // speed (tiering.ts), beginning with the last good content a previous agent persisted.
      releaseOptimisingCompiler();
      this.persistence.restore(this.opts.pinDir, this.store);
      this.restored = true;
      this.dropOtherGlobals();
    }
    const { namespace, name } = this.opts.configMap;
    const cm = this.globalInformer!.get(name, namespace);
    const { resolution, total } = this.readConfig(cm);
    let global = resolution.global;
    if (cm) this.said.clear();
    else if (global) {
      if (this.once('global-deleted'))
        this.log.error(
          { configmap: `${namespace}/${name}` },
          'the global ConfigMap was deleted: keeping the last good global config until it is back',
        );
      this.core.metrics.configValid.set({ configmap: this.globalId.key }, 0);
    } else if (!this.core.kernelHasPolicy()) {
      if (this.once('global-absent-defaults'))
        this.log.warn(
          { configmap: `${namespace}/${name}` },
          'the global ConfigMap does not exist: using the defaults and the --enable-egress / --mesh-cidr flags',
        );
      global = this.flagsGlobal();
    } else if (this.once('global-absent-kept')) {
      this.log.warn(
        { configmap: `${namespace}/${name}` },
        'the global ConfigMap does not exist: the policy the kernel holds stays in force',
      );
    }
    const pods = this.pods();
    const objectsInvalid = resolution.objects.filter((o) => !o.valid && !o.absent).length;

    if (global) {
      this.core.warnOverlaps(global, resolution.allowlistObjects);
      this.core.apply(
        {
          global,
          allowlists: resolution.allowlists,
          namespaceActions: resolution.actions,
          pods,
          objectsTotal: total,
          objectsInvalid,
          onHeldBack: (heldBack) => this.reportHeldBack(heldBack, resolution, cm),
        },
        this.layout!.root,
        started,
      );
    } else if (this.core.kernelHasPolicy()) {
      // No global config was ever valid here (nor persisted): the kernel's policy is the only one known. Keep it; update the pods.
      this.core.applyPodsOnly({ pods, objectsTotal: total, objectsInvalid }, this.layout!.root, started);
    } else {
      this.log.error({}, 'no valid global config and no policy in the kernel: nothing applied');
      return;
    }
    this.observePodStarts();
  }

  /**
   * Only the configured ConfigMap's global config counts: one persisted under an earlier --config-map
   * would otherwise be resolved first and shadow it (standalone mode drops files it no longer reads
   * alike). Only the restore can bring one in.
   */
  private dropOtherGlobals(): void {
    for (const key of this.store.keys('global')) {
      if (key === this.globalId.key) continue;
      this.store.remove(key);
      this.core.metrics.configValid.remove({ configmap: key });
      this.log.warn(
        { object: key, configmap: `${this.opts.configMap.namespace}/${this.opts.configMap.name}` },
        'a persisted global config of another ConfigMap (an earlier --config-map) is dropped: only the configured one is used',
      );
    }
  }

  /** Objects whose allowlists are held back for capacity: config_valid 0 and an Event each, until they fit. */
  private heldBackKeys = new Set<string>();
  private reportHeldBack(heldBack: readonly HeldBack[], resolution: Resolution, cm: V1ConfigMap | undefined): void {
    const items = new Map(this.allowlistInformer!.list().map((item) => [allowlistId(item).key, item]));
    if (cm) items.set(this.globalId.key, cm);
    const now = new Set<string>();
    for (const { state, issue } of heldBackIssues(heldBack, resolution.objects)) {
      now.add(state.id.key);
      this.core.metrics.configValid.set({ configmap: state.id.key }, 0);
      const item = items.get(state.id.key);
      if (item) void this.events?.rejected(item, [issue]);
    }
    for (const key of this.heldBackKeys) {
      const state = resolution.objects.find((o) => o.id.key === key);
      if (!now.has(key) && state) this.core.metrics.configValid.set({ configmap: key }, state.valid ? 1 : 0);
    }
    this.heldBackKeys = now;
  }

  private once(what: string): boolean {
    if (this.said.has(what)) return false;
    this.said.add(what);
    return true;
  }

  /** The pod-start window: from a pod cgroup's creation to its entry in the kernel. */
  private observePodStarts(): void {
    const now = Date.now();
    for (const [id, uid] of this.uidByCgroup) {
      if (this.mapped.has(id)) continue;
      this.mapped.add(id);
      // Only pods whose cgroup appeared while this agent ran: the others waited for the agent, not for a reconcile.
      const seen = this.firstSeen.get(uid);
      if (seen !== undefined && seen >= this.startedAt && now - seen < 60_000)
        this.core.metrics.podStartWindow.observe(Math.max(0, now - seen) / 1000);
    }
    for (const id of [...this.mapped]) if (!this.uidByCgroup.has(id)) this.mapped.delete(id);
  }

  /** Stops the informers, watches and server. Pins, and so enforcement, stay. */
  async stop(): Promise<void> {
    for (const w of this.dirWatchers.values()) w.close();
    this.dirWatchers.clear();
    this.events?.close();
    await Promise.all(this.informers.map((i) => i.stop()));
    await this.core.stop();
    this.persistence.close();
  }
}
