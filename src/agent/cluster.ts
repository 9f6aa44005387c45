// Cluster mode: the DaemonSet agent. Three informers (the global ConfigMap,
// the labelled allowlist ConfigMaps, this node's Pods) and a watch on the
// kubepods cgroups feed one debounced reconcile, which compiles and applies
// atomically. Nothing is written to the kernel before every informer has
// synced: a half-listed cluster would look like "no pods, no allowlists", and
// applying that would drop enforcement (the Cilium upgrade bug).
import { CoreV1Api, KubeConfig, type V1ConfigMap, type V1Pod } from '@kubernetes/client-node';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  ALLOWLIST_LABEL, allowlistAction, checkNamespaceObjects, describeObject, mergeNamespaceAllowlists, parseAllowlist, parseGlobalConfig,
  type AllowlistEntry, type BlockedEgressAction, type ConfigIssue, type GlobalConfig, type NamespaceObject, type ObjectRef, type ParseResult,
} from '../config/index.js';
import type { HostResolverOptions } from '../dns/hostResolver.js';
import { EventRecorder } from '../kube/events.js';
import { ResilientInformer } from '../kube/informer.js';
import { cgroupId, cgroupLevel, findCgroup2Mount } from '../node/cgroup.js';
import {
  cgroupCreatedMs, driverOf, findContainerCgroup, findKubepods, findPodCgroup, podParentDirs, podUidOfCgroupName,
  type KubepodsLayout,
} from '../node/podCgroups.js';
import type { PodInput } from '../policy/compile.js';
import { AgentCore } from './core.js';
import { decidePod, type PodDecision } from './pods.js';

export interface ClusterOptions {
  readonly pinDir: string;
  readonly listen: string;
  readonly debounceMs: number;
  readonly objectPath?: string;
  readonly dns?: Pick<HostResolverOptions, 'servers' | 'floorMs' | 'ceilingMs' | 'graceMs'>;
  /** mg_flows' size; 0: flows are not recorded (--flows-max). */
  readonly flowsMax?: number;
  readonly kubeconfig?: string;
  readonly configMap: { readonly namespace: string; readonly name: string };
  readonly nodeName: string;
  readonly cgroupRoot?: string;
  readonly cgroupDriver: 'auto' | 'systemd' | 'cgroupfs';
  readonly proxyContainers: readonly string[];
  readonly seed: { readonly egress?: boolean; readonly meshCidrs: readonly string[] };
  /** Informer retry backoff (tests shorten it). */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
}

interface Parsed<T> {
  readonly version: string;
  readonly result: ParseResult<T>;
}

const cmRef = (cm: V1ConfigMap): ObjectRef => ({ kind: 'ConfigMap', namespace: cm.metadata?.namespace, name: cm.metadata?.name ?? '' });
const cmVersion = (cm: V1ConfigMap): string => `${cm.metadata?.uid}@${cm.metadata?.resourceVersion}`;
const cmKey = (cm: V1ConfigMap): string => `${cm.metadata?.namespace}/${cm.metadata?.name}`;

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export class ClusterAgent {
  private readonly opts: ClusterOptions;
  private readonly core: AgentCore;
  private readonly log: Logger;
  private layout: KubepodsLayout | null = null;
  private kc: KubeConfig | null = null;
  private events: EventRecorder | null = null;
  private informers: Array<ResilientInformer<V1ConfigMap> | ResilientInformer<V1Pod>> = [];
  private globalInformer: ResilientInformer<V1ConfigMap> | null = null;
  private allowlistInformer: ResilientInformer<V1ConfigMap> | null = null;
  private podInformer: ResilientInformer<V1Pod> | null = null;
  private dirWatchers = new Map<string, FSWatcher>();
  /** Parse results by object, reused while its resourceVersion is unchanged: a change re-parses one object. */
  private parsedGlobal: Parsed<GlobalConfig> | null = null;
  private parsedAllowlists = new Map<string, Parsed<readonly AllowlistEntry[]>>();
  private lastGoodGlobal: GlobalConfig | null = null;
  private lastGoodAllowlists = new Map<string, { namespace: string; entries: readonly AllowlistEntry[]; action: BlockedEgressAction | null }>();
  private lastGoodNamespaces = new Map<string, { entries: readonly AllowlistEntry[]; action: BlockedEgressAction | null }>();
  /** Objects in a cross-object conflict of their namespace, with the version whose errors were reported. */
  private conflicts = new Map<string, string>();
  private globalSeen = false;
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
  }

  /** The attach point: --cgroup-root, else the kubelet's kubepods cgroup. Never the cgroup2 root. */
  private findLayout(): KubepodsLayout {
    const mount = findCgroup2Mount();
    if (this.opts.cgroupRoot) {
      const root = path.resolve(this.opts.cgroupRoot);
      if (root === path.resolve(mount)) throw new Error(`--cgroup-root ${root} is the node's root cgroup: meshgate never attaches there (the node's own daemons would be enforced)`);
      const driver = this.opts.cgroupDriver === 'auto' ? driverOf(root) : this.opts.cgroupDriver;
      return { root, driver };
    }
    const found = findKubepods(mount, this.opts.cgroupDriver);
    if (!found) throw new Error(`no kubepods cgroup found under ${mount} (looked for kubepods.slice, *-kubepods.slice and kubepods, 3 levels deep): pass --cgroup-root`);
    return found;
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    this.layout = this.findLayout();
    this.log.info({ cgroupRoot: this.layout.root, driver: this.layout.driver, node: this.opts.nodeName }, 'kubepods cgroup found');
    await this.core.open(cgroupLevel(this.layout.root), () => this.reconcile());
    this.watchCgroups();

    this.kc = loadKubeConfig(this.opts.kubeconfig);
    const api = this.kc.makeApiClient(CoreV1Api);
    this.events = new EventRecorder(api, this.opts.nodeName, this.log);
    const common = {
      log: this.log,
      onChange: (what: string) => this.core.schedule(what),
      backoffMs: this.opts.backoffMs,
    };
    const { namespace, name } = this.opts.configMap;
    this.globalInformer = new ResilientInformer<V1ConfigMap>(this.kc, {
      ...common, name: 'global-configmap', path: `/api/v1/namespaces/${namespace}/configmaps`, fieldSelector: `metadata.name=${name}`,
      list: () => api.listNamespacedConfigMap({ namespace, fieldSelector: `metadata.name=${name}` }),
      onRestart: () => this.core.metrics.informerRestarts.inc({ informer: 'global-configmap' }),
    });
    const labelSelector = `${ALLOWLIST_LABEL}=true`;
    this.allowlistInformer = new ResilientInformer<V1ConfigMap>(this.kc, {
      ...common, name: 'allowlist-configmaps', path: '/api/v1/configmaps', labelSelector,
      list: () => api.listConfigMapForAllNamespaces({ labelSelector }),
      onRestart: () => this.core.metrics.informerRestarts.inc({ informer: 'allowlist-configmaps' }),
    });
    const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
    this.podInformer = new ResilientInformer<V1Pod>(this.kc, {
      ...common, name: 'pods', path: '/api/v1/pods', fieldSelector,
      list: () => api.listPodForAllNamespaces({ fieldSelector }),
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

  private parseGlobal(cm: V1ConfigMap | undefined): GlobalConfig | null {
    const seed: Record<string, string> = {};
    if (this.opts.seed.egress !== undefined) seed.egress = String(this.opts.seed.egress);
    if (this.opts.seed.meshCidrs.length) seed.mesh_cidr_ranges = this.opts.seed.meshCidrs.join(',');
    if (!cm) {
      const result = parseGlobalConfig(seed, { kind: 'ConfigMap', name: 'flags (--enable-egress, --mesh-cidr)' });
      return result.ok ? result.value : null;
    }
    const version = cmVersion(cm);
    if (this.parsedGlobal?.version !== version) {
      const result = parseGlobalConfig({ ...seed, ...(cm.data ?? {}) }, cmRef(cm));
      this.parsedGlobal = { version, result };
      this.core.report(describeObject(cmRef(cm)), result.ok, result.ok ? [] : result.errors, result.warnings, { configmap: cmKey(cm) });
    }
    const { result } = this.parsedGlobal;
    if (!result.ok) void this.events?.rejected(cm, result.errors);
    return result.ok ? result.value : null;
  }

  /** Allowlists in force per namespace: each object's last good entries, merged; a namespace whose merge fails keeps its last good set. */
  private allowlists(): {
    byNamespace: Map<string, readonly AllowlistEntry[]>; actions: Map<string, BlockedEgressAction>; total: number; invalid: number; unknown: number;
  } {
    const present = new Set<string>();
    const cms = new Map<string, V1ConfigMap>();
    let invalid = 0;
    let unknown = 0;
    for (const cm of this.allowlistInformer!.list()) {
      const key = cmKey(cm);
      present.add(key);
      cms.set(key, cm);
      const version = cmVersion(cm);
      let parsed = this.parsedAllowlists.get(key);
      if (parsed?.version !== version) {
        const result = parseAllowlist(cm.data ?? {}, cmRef(cm));
        parsed = { version, result };
        this.parsedAllowlists.set(key, parsed);
        this.core.report(describeObject(cmRef(cm)), result.ok, result.ok ? [] : result.errors, result.warnings, { configmap: key });
      }
      if (parsed.result.ok) {
        this.lastGoodAllowlists.set(key, { namespace: cm.metadata!.namespace!, entries: parsed.result.value, action: allowlistAction(cm.data ?? {}) });
      } else {
        invalid++;
        if (!this.lastGoodAllowlists.has(key)) unknown++;
        void this.events?.rejected(cm, parsed.result.errors);
      }
    }
    for (const key of [...this.lastGoodAllowlists.keys()]) if (!present.has(key)) this.lastGoodAllowlists.delete(key);
    for (const key of [...this.parsedAllowlists.keys()]) {
      if (present.has(key)) continue;
      this.parsedAllowlists.delete(key);
      const [ns, ...rest] = key.split('/');
      this.core.metrics.configValid.remove({ configmap: describeObject({ kind: 'ConfigMap', namespace: ns, name: rest.join('/') }) });
    }

    const parts = new Map<string, NamespaceObject[]>();
    for (const [key, { namespace, entries, action }] of this.lastGoodAllowlists) {
      const slash = key.indexOf('/');
      (parts.get(namespace) ?? parts.set(namespace, []).get(namespace)!).push({ ref: { kind: 'ConfigMap', namespace, name: key.slice(slash + 1) }, entries, action });
    }
    const byNamespace = new Map<string, readonly AllowlistEntry[]>();
    const actions = new Map<string, BlockedEgressAction>();
    const conflicted = new Set<string>();
    for (const [namespace, list] of [...parts].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const merged = mergeNamespaceAllowlists(list);
      const check = checkNamespaceObjects(list);
      for (const [object, issues] of check.issuesByObject) {
        const key = `${namespace}/${object.slice(`ConfigMap ${namespace}/`.length)}`;
        conflicted.add(key);
        this.reportConflict(key, cms.get(key), object, issues);
      }
      let kept = this.lastGoodNamespaces.get(namespace);
      if (merged.ok && check.issuesByObject.size === 0) {
        kept = { entries: merged.value, action: check.action };
        this.lastGoodNamespaces.set(namespace, kept);
      } else {
        invalid += Math.max(merged.ok ? 0 : 1, check.issuesByObject.size);
        if (!merged.ok) for (const e of merged.errors) this.log.error({ namespace, code: e.code, entry: e.entryName }, `allowlists rejected, the namespace keeps its last good entries: ${e.message}`);
      }
      if (kept) {
        byNamespace.set(namespace, kept.entries);
        if (kept.action) actions.set(namespace, kept.action);
      }
    }
    // An object whose conflict is over is valid again (unless it is invalid alone).
    for (const key of [...this.conflicts.keys()]) {
      if (conflicted.has(key)) continue;
      this.conflicts.delete(key);
      const [ns, ...rest] = key.split('/');
      if (this.parsedAllowlists.get(key)?.result.ok) this.core.metrics.configValid.set({ configmap: describeObject({ kind: 'ConfigMap', namespace: ns, name: rest.join('/') }) }, 1);
    }
    for (const ns of [...this.lastGoodNamespaces.keys()]) if (!parts.has(ns)) this.lastGoodNamespaces.delete(ns);
    return { byNamespace, actions, total: present.size, invalid, unknown };
  }

  /** A cross-object error, three ways: a log line and the metric (once per version), an Event on the object. */
  private reportConflict(key: string, cm: V1ConfigMap | undefined, object: string, issues: readonly ConfigIssue[]): void {
    const version = `${cm ? cmVersion(cm) : ''}|${issues.map((i) => i.message).join('|')}`;
    if (this.conflicts.get(key) !== version) {
      this.conflicts.set(key, version);
      this.core.report(object, false, issues, [], { configmap: key });
    }
    this.core.metrics.configValid.set({ configmap: object }, 0);
    if (cm) void this.events?.rejected(cm, issues);
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
        const proxyDir = findContainerCgroup(dir, layout.driver, d.proxyContainerId);
        if (proxyDir) {
          proxyCgroupId = cgroupId(proxyDir);
          this.unwatchDir(dir);
        } else {
          this.watchDir(dir); // the sidecar's cgroup appears a moment after the pod's
        }
      } else if (meshed && d.proxyContainer) {
        this.watchDir(dir);
      }
      out.push({ namespace: d.namespace, name: d.name, podCgroupId, proxyCgroupId, meshed });
      this.uidByCgroup.set(podCgroupId, d.uid);
    }
    for (const uid of [...this.firstSeen.keys()]) if (!live.has(uid) && this.firstSeen.get(uid)! < Date.now() - 600_000) this.firstSeen.delete(uid);
    for (const dir of [...this.dirWatchers.keys()]) {
      const uid = podUidOfCgroupName(path.basename(dir));
      if (uid && !live.has(uid)) this.unwatchDir(dir);
    }
    for (const key of [...this.loggedPods.keys()]) if (!live.has(key)) this.loggedPods.delete(key);
    for (const dir of podParentDirs(layout)) this.watchDir(dir);
    return out;
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
    const { namespace, name } = this.opts.configMap;
    const cm = this.globalInformer!.get(name, namespace);
    let objectsInvalid = 0;
    let unknownState = false;
    if (cm) {
      this.globalSeen = true;
      this.said.clear();
      const global = this.parseGlobal(cm);
      if (global) this.lastGoodGlobal = global;
      else {
        objectsInvalid++;
        if (!this.lastGoodGlobal) unknownState = true;
      }
    } else if (this.lastGoodGlobal && this.globalSeen) {
      if (this.once('global-deleted')) this.log.error({ configmap: `${namespace}/${name}` }, 'the global ConfigMap was deleted: keeping the last good global config until it is back');
      this.core.metrics.configValid.set({ configmap: `ConfigMap ${namespace}/${name}` }, 0);
    } else if (this.core.kernelHasPolicy()) {
      if (this.once('global-absent-kept')) this.log.warn({ configmap: `${namespace}/${name}` }, 'the global ConfigMap does not exist: the policy the kernel holds stays in force');
      unknownState = true;
    } else {
      if (this.once('global-absent-defaults')) this.log.warn({ configmap: `${namespace}/${name}` }, 'the global ConfigMap does not exist: using the defaults and the --enable-egress / --mesh-cidr flags');
      this.lastGoodGlobal = this.parseGlobal(undefined);
    }
    const allow = this.allowlists();
    objectsInvalid += allow.invalid;
    if (allow.unknown) unknownState = true;
    const pods = this.pods();
    const objectsTotal = (cm ? 1 : 0) + allow.total;

    if ((unknownState || !this.lastGoodGlobal) && this.core.kernelHasPolicy()) {
      // Restarted while something is invalid: the kernel's policy is the last good one. Keep it; update the pods.
      this.core.applyPodsOnly({ pods, objectsTotal, objectsInvalid }, this.layout!.root, started);
    } else if (this.lastGoodGlobal) {
      this.core.warnOverlaps(this.lastGoodGlobal, allow.byNamespace);
      this.core.apply({ global: this.lastGoodGlobal, allowlists: allow.byNamespace, namespaceActions: allow.actions, pods, objectsTotal, objectsInvalid }, this.layout!.root, started);
    } else {
      this.log.error({}, 'no valid global config and no policy in the kernel: nothing applied');
      return;
    }
    this.observePodStarts();
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
      if (seen !== undefined && seen >= this.startedAt && now - seen < 60_000) this.core.metrics.podStartWindow.observe(Math.max(0, now - seen) / 1000);
    }
    for (const id of [...this.mapped]) if (!this.uidByCgroup.has(id)) this.mapped.delete(id);
  }

  /** Stops the informers, watches and server. Pins, and so enforcement, stay. */
  async stop(): Promise<void> {
    for (const w of this.dirWatchers.values()) w.close();
    this.dirWatchers.clear();
    await Promise.all(this.informers.map((i) => i.stop()));
    await this.core.stop();
  }
}
