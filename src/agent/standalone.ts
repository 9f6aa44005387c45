// Standalone mode: no cluster. One cgroup is one meshed pod; the policy comes
// from local files, which are watched and re-applied within milliseconds.
import { existsSync, watch, type FSWatcher } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AllowlistEntry, ConfigIssue, GlobalConfig } from '../config/index.js';
import { Datapath } from '../datapath/datapath.js';
import { pinLayout } from '../datapath/loader.js';
import { HostResolver, type HostResolverOptions } from '../dns/hostResolver.js';
import { cgroupId, cgroupLevel } from '../node/cgroup.js';
import { PolicyCompiler, allowlistHosts } from '../policy/compile.js';
import { readAllowlistFile, readGlobalFile, type FileReading } from './fileSources.js';
import { AgentMetrics } from './metrics.js';
import { startServer } from './server.js';

export interface StandaloneOptions {
  readonly configFile: string;
  readonly allowlistFiles: readonly string[];
  readonly cgroup: string;
  readonly proxyCgroup?: string;
  readonly pinDir: string;
  readonly namespace: string;
  readonly podName: string;
  readonly listen: string;
  readonly debounceMs: number;
  readonly objectPath?: string;
  readonly dns?: Pick<HostResolverOptions, 'servers' | 'floorMs' | 'ceilingMs' | 'graceMs'>;
}

export class StandaloneAgent {
  private readonly opts: StandaloneOptions;
  private readonly log: Logger;
  private readonly compiler = new PolicyCompiler();
  private readonly resolver: HostResolver;
  private readonly metrics: AgentMetrics;
  private datapath: Datapath | null = null;
  private server: Server | null = null;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastGoodGlobal: GlobalConfig | null = null;
  private readonly lastGoodAllowlists = new Map<string, readonly AllowlistEntry[]>();
  private appliedOnce = false;
  private attached = false;

  constructor(opts: StandaloneOptions, log: Logger) {
    this.opts = opts;
    this.log = log.child({ module: 'agent' });
    this.resolver = new HostResolver({ ...opts.dns, logger: log });
    this.metrics = new AgentMetrics(() => this.datapath);
    this.resolver.onChange(() => this.schedule('dns'));
  }

  async start(): Promise<void> {
    const { opts } = this;
    this.datapath = Datapath.open({ pinDir: opts.pinDir, objectPath: opts.objectPath, cgroupWalkStart: cgroupLevel(opts.cgroup) });
    this.log.info({ pinDir: opts.pinDir, adopted: this.datapath.object.adoptedMaps, generation: String(this.datapath.currentGeneration) }, 'datapath opened');
    this.server = await startServer(opts.listen, this, this.metrics);
    const bound = this.server.address();
    this.log.info({ address: opts.listen, port: typeof bound === 'object' && bound ? bound.port : null }, 'serving /healthz /readyz /metrics');
    for (const file of [opts.configFile, ...opts.allowlistFiles]) this.watchFile(file);
    await this.reconcile('start');
  }

  /** Watches the file's directory: editors replace files by rename, which a file watch would miss. */
  private watchFile(file: string): void {
    const dir = path.dirname(path.resolve(file));
    const base = path.basename(file);
    const watcher = watch(dir, (_event, name) => {
      if (name === base) this.schedule(`file ${file}`);
    });
    watcher.on('error', (err) => this.log.error({ err, file }, 'file watch failed'));
    this.watchers.push(watcher);
  }

  private schedule(reason: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.reconcile(reason);
    }, this.opts.debounceMs);
  }

  private accept<T>(reading: FileReading<T>): T | null {
    const { result, path: file } = reading;
    for (const w of result.warnings) this.log.warn({ file, code: w.code, key: w.key }, w.message);
    this.metrics.configValid.set({ object: `file ${file}` }, result.ok ? 1 : 0);
    if (result.ok) return result.value;
    for (const e of result.errors as readonly ConfigIssue[]) {
      this.log.error({ file, code: e.code, key: e.key, entry: e.entryName, value: e.value }, `config rejected, keeping previous policy: ${e.message}`);
    }
    return null;
  }

  /** Reads every file, compiles, applies. Never throws: a failure keeps the last good policy. */
  async reconcile(reason: string): Promise<void> {
    const started = performance.now();
    try {
      let invalid = 0;
      const global = this.accept(readGlobalFile(this.opts.configFile));
      if (!global) invalid++;
      if (global) this.lastGoodGlobal = global;
      for (const file of this.opts.allowlistFiles) {
        const entries = this.accept(readAllowlistFile(file));
        if (entries) this.lastGoodAllowlists.set(file, entries);
        else invalid++;
      }
      const status = { lastReconcileUnixMs: Date.now(), agentPid: process.pid, mode: 'standalone' as const, objectsTotal: 1 + this.opts.allowlistFiles.length, objectsInvalid: invalid };
      if (!this.lastGoodGlobal) {
        this.log.error({ reason, configFile: this.opts.configFile }, 'no valid global config yet: enforcement stays as the kernel has it');
        return;
      }
      const allowlists = new Map([[this.opts.namespace, [...this.lastGoodAllowlists.values()].flat()]]);
      this.resolver.setHosts(allowlistHosts(this.lastGoodGlobal, allowlists));
      const resolved = new Map([...this.resolver.snapshot()].map(([host, r]) => [host, r.addresses]));
      if (!this.lastGoodGlobal.meshCidrs.length && !this.lastGoodGlobal.egress) {
        this.log.warn({}, 'mesh_cidr_ranges is empty with egress off: every TCP destination not allowlisted is redirected to the proxy and UDP passes, because in-mesh and external cannot be told apart');
      }
      const state = this.compiler.compile({
        global: this.lastGoodGlobal,
        allowlists,
        resolved,
        pods: [{
          namespace: this.opts.namespace,
          name: this.opts.podName,
          podCgroupId: cgroupId(this.opts.cgroup),
          proxyCgroupId: this.opts.proxyCgroup ? cgroupId(this.opts.proxyCgroup) : null,
          meshed: true,
        }],
      });
      const result = this.datapath!.apply(state);
      if (!this.attached) {
        const report = this.datapath!.attach(this.opts.cgroup);
        this.attached = true;
        this.log.info({ cgroup: this.opts.cgroup, ...report }, 'hooks attached');
      }
      this.appliedOnce = true;
      this.datapath!.writeAgentStatus({ ...status, lastApplyUnixMs: Date.now(), generation: result.generation });
      this.metrics.generation.set(Number(result.generation));
      this.metrics.syncDuration.observe((performance.now() - started) / 1000);
      this.log.info({ reason, generation: String(result.generation), switched: result.switched, trieUpserts: result.trieUpserts, trieDeletes: result.trieDeletes, ms: Math.round(result.durationMs * 10) / 10 }, 'policy applied');
    } catch (err) {
      this.metrics.applyFailures.inc();
      this.log.error({ err, reason }, 'apply failed, keeping previous policy');
    }
  }

  healthProblem(): string | null {
    const { linksDir, mapsDir } = pinLayout(this.opts.pinDir);
    if (!existsSync(path.join(mapsDir, 'mg_state'))) return `pinned maps are gone from ${mapsDir}\n`;
    if (this.attached && !existsSync(path.join(linksDir, 'mg_connect4'))) return `pinned links are gone from ${linksDir}\n`;
    return null;
  }

  ready(): boolean {
    return this.appliedOnce;
  }

  /** Stops watching and serving. Pins, and so enforcement, stay. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.resolver.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.datapath?.close();
    this.datapath = null;
  }
}
