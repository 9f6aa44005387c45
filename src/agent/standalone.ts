// Standalone mode: no cluster. One cgroup is one meshed pod; the policy comes
// from local files, which are watched and re-applied within milliseconds.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  checkNamespaceObjects, mergeNamespaceAllowlists, type AllowlistEntry, type BlockedEgressAction, type GlobalConfig, type ObjectRef,
} from '../config/index.js';
import { cgroupId, cgroupLevel } from '../node/cgroup.js';
import { AgentCore, type CoreOptions } from './core.js';
import { readAllowlistFile, readGlobalFile, type AllowlistFile, type FileReading } from './fileSources.js';

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
  private lastGoodGlobal: GlobalConfig | null = null;
  private readonly lastGoodAllowlists = new Map<string, AllowlistFile>();
  private lastGoodMerged: readonly AllowlistEntry[] = [];
  private lastGoodAction: BlockedEgressAction | null = null;
  /** Files whose blocked_egress_action disagrees with another file's, as last reported. */
  private conflictText = '';
  private readonly readings = new Map<string, { version: Buffer | null; result: FileReading<unknown>['result'] }>();

  constructor(opts: StandaloneOptions, log: Logger) {
    this.opts = opts;
    this.core = new AgentCore({ ...opts, mode: 'standalone' }, log);
    this.log = this.core.log;
  }

  async start(): Promise<void> {
    await this.core.open(cgroupLevel(this.opts.cgroup), () => this.reconcile());
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
   * Reads and validates a file, or reuses the last reading while its bytes
   * are unchanged (timestamps are too coarse to tell two quick writes apart):
   * a DNS refresh or another file's edit does not re-parse a 100,000-CIDR
   * config, nor repeat its warnings.
   */
  private accept<T>(file: string, read: (file: string) => FileReading<T>): T | null {
    let version: Buffer | null = null;
    try {
      version = readFileSync(file);
    } catch {
      // unreadable: read() reports why
    }
    const cached = this.readings.get(file);
    let result = cached && version !== null && cached.version?.equals(version) ? (cached.result as FileReading<T>['result']) : null;
    if (!result) {
      result = read(file).result;
      this.readings.set(file, { version, result });
      this.core.report(`file ${file}`, result.ok, result.ok ? [] : result.errors, result.warnings, { file });
    }
    return result.ok ? result.value : null;
  }

  /** Reads every file, compiles, applies. A rejected file keeps its last good content. */
  private async reconcile(): Promise<void> {
    const started = performance.now();
    let invalid = 0;
    const global = this.accept(this.opts.configFile, readGlobalFile);
    if (global) this.lastGoodGlobal = global;
    else invalid++;
    for (const file of this.opts.allowlistFiles) {
      const read = this.accept(file, readAllowlistFile);
      if (read) this.lastGoodAllowlists.set(file, read);
      else invalid++;
    }
    const objectsTotal = 1 + this.opts.allowlistFiles.length;
    if (!this.lastGoodGlobal) {
      this.log.error({ configFile: this.opts.configFile }, 'no valid global config yet: enforcement stays as the kernel has it');
      if (this.core.kernelHasPolicy()) this.core.recordStatus({ objectsTotal, objectsInvalid: invalid }, this.core.datapath!.currentGeneration, false);
      return;
    }
    // Several files for one namespace merge as several ConfigMaps do: a name used twice is an error, and the namespace keeps its last good entries.
    const parts = [...this.lastGoodAllowlists].map(([file, read]) => ({ ref: { kind: 'File', name: file, path: file } as ObjectRef, ...read }));
    const merged = mergeNamespaceAllowlists(parts);
    // Files that disagree on blocked_egress_action are each rejected, reported as any invalid file is.
    const check = checkNamespaceObjects(parts);
    const conflictText = [...check.issuesByObject.values()].flat().map((e) => e.message).join('\n');
    if (conflictText !== this.conflictText) {
      this.conflictText = conflictText;
      for (const [object, issues] of check.issuesByObject) this.core.report(object, false, issues, [], { file: object.replace(/^file /, '') });
      for (const file of this.lastGoodAllowlists.keys()) {
        const ok = this.readings.get(file)?.result.ok ?? false;
        if (ok && !check.issuesByObject.has(`file ${file}`)) this.core.metrics.configValid.set({ configmap: `file ${file}` }, 1);
      }
    }
    // A re-read of a file in conflict reports it valid alone: the conflict still holds.
    for (const object of check.issuesByObject.keys()) this.core.metrics.configValid.set({ configmap: object }, 0);
    if (merged.ok && check.issuesByObject.size === 0) {
      this.lastGoodMerged = merged.value;
      this.lastGoodAction = check.action;
    } else {
      invalid += Math.max(merged.ok ? 0 : 1, check.issuesByObject.size);
      if (!merged.ok) for (const e of merged.errors) this.log.error({ code: e.code, entry: e.entryName }, `allowlist files rejected, the namespace keeps its last good entries: ${e.message}`);
    }
    const allowlists = new Map([[this.opts.namespace, this.lastGoodMerged]]);
    const namespaceActions = new Map(this.lastGoodAction ? [[this.opts.namespace, this.lastGoodAction]] : []);
    this.core.warnOverlaps(this.lastGoodGlobal, allowlists);
    this.core.apply({
      global: this.lastGoodGlobal,
      allowlists,
      namespaceActions,
      pods: [{
        namespace: this.opts.namespace,
        name: this.opts.podName,
        podCgroupId: cgroupId(this.opts.cgroup),
        proxyCgroupId: this.opts.proxyCgroup ? cgroupId(this.opts.proxyCgroup) : null,
        meshed: true,
      }],
      objectsTotal,
      objectsInvalid: invalid,
    }, this.opts.cgroup, started);
  }

  /** Stops watching and serving. Pins, and so enforcement, stay. */
  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    await this.core.stop();
  }
}
