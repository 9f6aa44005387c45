// Standalone mode: no cluster. One cgroup is one meshed pod; the policy comes
// from local files, which are watched and re-applied within milliseconds.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { mergeNamespaceAllowlists, type AllowlistEntry, type GlobalConfig } from '../config/index.js';
import { cgroupId, cgroupLevel } from '../node/cgroup.js';
import { AgentCore, type CoreOptions } from './core.js';
import { readAllowlistFile, readGlobalFile, type FileReading } from './fileSources.js';

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
  private readonly lastGoodAllowlists = new Map<string, readonly AllowlistEntry[]>();
  private lastGoodMerged: readonly AllowlistEntry[] = [];
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
      const entries = this.accept(file, readAllowlistFile);
      if (entries) this.lastGoodAllowlists.set(file, entries);
      else invalid++;
    }
    const objectsTotal = 1 + this.opts.allowlistFiles.length;
    if (!this.lastGoodGlobal) {
      this.log.error({ configFile: this.opts.configFile }, 'no valid global config yet: enforcement stays as the kernel has it');
      if (this.core.kernelHasPolicy()) this.core.recordStatus({ objectsTotal, objectsInvalid: invalid }, this.core.datapath!.currentGeneration, false);
      return;
    }
    // Several files for one namespace merge as several ConfigMaps do: a name used twice is an error, and the namespace keeps its last good entries.
    const merged = mergeNamespaceAllowlists([...this.lastGoodAllowlists].map(([file, entries]) => ({ ref: { kind: 'File' as const, name: file, path: file }, entries })));
    if (merged.ok) this.lastGoodMerged = merged.value;
    else {
      invalid++;
      for (const e of merged.errors) this.log.error({ code: e.code, entry: e.entryName }, `allowlist files rejected, the namespace keeps its last good entries: ${e.message}`);
    }
    const allowlists = new Map([[this.opts.namespace, this.lastGoodMerged]]);
    this.core.warnOverlaps(this.lastGoodGlobal, allowlists);
    this.core.apply({
      global: this.lastGoodGlobal,
      allowlists,
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
