// Standalone mode: no cluster. One cgroup is one meshed pod; the policy comes
// from local files, which are watched and re-applied within milliseconds.
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { CidrListMemo } from '../config/cidrListMemo.js';
import type { ObjectRef } from '../config/index.js';
import { cgroupId, cgroupLevel } from '../node/cgroup.js';
import { AgentCore, heldBackIssues, type CoreOptions } from './core.js';
import { allowlistFromText, globalFromText, readConfigText } from './fileSources.js';
import { LastGoodStore, type ConfigObjectId } from './lastGood.js';
import { LastGoodPersistence } from './lastGoodPersistence.js';
import { releaseOptimisingCompiler } from './tiering.js';

export interface StandaloneOptions extends Omit<CoreOptions, 'mode'> {
  readonly configFile: string;
  readonly allowlistFiles: readonly string[];
  readonly cgroup: string;
  readonly proxyCgroup?: string;
  readonly namespace: string;
  readonly podName: string;
}

export class StandaloneAgent {
  private readonly opts: StandaloneOptions;
  private readonly core: AgentCore;
  private readonly log: Logger;
  private watchers: FSWatcher[] = [];
  /** The previous parse of each long CIDR list, so a one-entry edit re-reads only what changed. */
  private readonly cidrMemo = new CidrListMemo();
  /** Every file's hash, parse and last good content; persisted with the pins, so a restart starts from it. */
  private readonly store = new LastGoodStore({
    global: (raw, ref) => globalFromText('text' in raw ? raw.text : '', ref.path ?? ref.name, this.cidrMemo),
    allowlist: (raw, ref) => allowlistFromText('text' in raw ? raw.text : '', ref.path ?? ref.name),
  });
  private readonly persistence: LastGoodPersistence;

  constructor(opts: StandaloneOptions, log: Logger) {
    this.opts = opts;
    this.core = new AgentCore({ ...opts, mode: 'standalone' }, log);
    this.log = this.core.log;
    this.persistence = new LastGoodPersistence(this.log);
  }

  private fileId(file: string, kind: ConfigObjectId['kind']): ConfigObjectId {
    const ref: ObjectRef = { kind: 'File', name: file, path: file };
    return { key: `file ${file}`, kind, ref, namespace: kind === 'allowlist' ? this.opts.namespace : undefined };
  }

  async start(): Promise<void> {
    await this.core.open(cgroupLevel(this.opts.cgroup), () => this.reconcile());
    releaseOptimisingCompiler(); // start-up is over: the policy is read at full speed (tiering.ts)
    this.persistence.restore(this.opts.pinDir, this.store);
    for (const file of [this.opts.configFile, ...this.opts.allowlistFiles]) this.watchFile(file);
    await this.core.runNow();
  }

  /** Watches the file's directory: editors replace files by rename, which a file watch would miss. */
  private watchFile(file: string): void {
    const dir = path.dirname(path.resolve(file));
    const base = path.basename(file);
    const watcher = watch(dir, (_event, name) => {
      if (name === base) this.core.schedule(`file ${file}`);
    });
    watcher.on('error', (err) => this.log.error({ err, file }, 'file watch failed'));
    this.watchers.push(watcher);
  }

  /**
   * Reads a file into the store, which re-parses it only when its bytes
   * changed (timestamps are too coarse to tell two quick writes apart): a DNS
   * refresh or another file's edit does not re-parse a 100,000-CIDR config.
   */
  private observe(file: string, kind: ConfigObjectId['kind']): void {
    const id = this.fileId(file, kind);
    const text = readConfigText(file);
    if (text.ok) this.store.observe(id, { text: text.value });
    else this.store.reject(id, text.errors);
  }

  /** Reads every file, compiles, applies. A rejected file keeps its last good content. */
  private async reconcile(): Promise<void> {
    const started = performance.now();
    this.observe(this.opts.configFile, 'global');
    for (const file of this.opts.allowlistFiles) this.observe(file, 'allowlist');
    const wanted = new Set([this.opts.configFile, ...this.opts.allowlistFiles].map((f) => `file ${f}`));
    for (const key of this.store.keys()) if (!wanted.has(key)) this.store.remove(key);
    const r = this.store.resolve();
    for (const state of r.changed)
      this.core.report(state.id.key, state.valid, state.errors, state.warnings, { file: state.id.ref.path });
    this.persistence.flush(this.store);
    const objectsTotal = 1 + this.opts.allowlistFiles.length;
    if (!r.global) {
      this.log.error(
        { configFile: this.opts.configFile },
        'no valid global config yet: enforcement stays as the kernel has it',
      );
      if (this.core.kernelHasPolicy())
        this.core.recordStatus(
          { objectsTotal, objectsInvalid: r.invalid },
          this.core.datapath!.currentGeneration,
          false,
        );
      return;
    }
    const allowlists = new Map([[this.opts.namespace, r.allowlists.get(this.opts.namespace) ?? []]]);
    const action = r.actions.get(this.opts.namespace);
    const namespaceActions = new Map(action ? [[this.opts.namespace, action]] : []);
    this.core.warnOverlaps(r.global, r.allowlistObjects);
    this.core.apply(
      {
        global: r.global,
        allowlists,
        namespaceActions,
        pods: [
          {
            namespace: this.opts.namespace,
            name: this.opts.podName,
            podCgroupId: cgroupId(this.opts.cgroup),
            proxyCgroupId: this.opts.proxyCgroup ? cgroupId(this.opts.proxyCgroup) : null,
            meshed: true,
          },
        ],
        objectsTotal,
        objectsInvalid: r.invalid,
        onHeldBack: (heldBack) => {
          const held = new Set(heldBackIssues(heldBack, r.objects).map(({ state }) => state.id.key));
          for (const state of r.objects)
            this.core.metrics.configValid.set(
              { configmap: state.id.key },
              state.valid && !held.has(state.id.key) ? 1 : 0,
            );
        },
      },
      this.opts.cgroup,
      started,
    );
  }

  /** Stops watching and serving. Pins, and so enforcement, stay. */
  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    await this.core.stop();
    this.persistence.close();
  }
}
