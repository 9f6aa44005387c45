// A ListWatch that survives: client-node's ListWatch relists on 410 Gone and
// re-watches when a watch ends, but after a network or server error it emits
// 'error' and stops. This wrapper restarts it with exponential backoff, asks
// for bookmarks (so a re-watch resumes from a recent resourceVersion instead of
// hitting 410), bounds each watch with timeoutSeconds (a half-open connection
// cannot stall it forever), and says when the first list has completed.
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

class BookmarkWatch extends Watch {
  constructor(config: KubeConfig, private readonly timeoutSeconds: number) {
    super(config);
  }

  override watch(path: string, queryParams: Record<string, unknown>, callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    // Spread the watches' ends so that informers do not all re-watch at once.
    const timeoutSeconds = Math.round(this.timeoutSeconds * (0.75 + Math.random() / 2));
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }, callback, done);
  }
}

export interface InformerOptions<T extends KubernetesObject> {
  readonly name: string;
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly onChange: (what: string) => void;
  readonly onRestart?: () => void;
  readonly log: Logger;
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  readonly watchTimeoutSeconds?: number;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly opts: InformerOptions<T>;
  private readonly log: Logger;
  private erroredDuringStart = false;
  private starting = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private stopped = false;
  /** The first list has completed: the cache holds the whole state once. */
  synced = false;
  restarts = 0;

  constructor(kc: KubeConfig, opts: InformerOptions<T>) {
    this.opts = opts;
    this.log = opts.log.child({ informer: opts.name });
    this.delayMs = opts.backoffMs?.initial ?? 200;
    this.lw = new ListWatch<T>(opts.path, new BookmarkWatch(kc, opts.watchTimeoutSeconds ?? 300), opts.list, false, opts.labelSelector, opts.fieldSelector);
    const changed = (verb: string) => (obj: T) => {
      this.delayMs = this.opts.backoffMs?.initial ?? 200;
      opts.onChange(`${opts.name} ${verb} ${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`);
    };
    this.lw.on('add', changed('add'));
    this.lw.on('update', changed('update'));
    this.lw.on('delete', changed('delete'));
    this.lw.on('error', (err: unknown) => this.failed(err));
  }

  /** Starts listing and watching; resolves once the first attempt is done (synced or scheduled to retry). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.attempt();
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    this.erroredDuringStart = false;
    this.starting = true;
    try {
      await this.lw.start();
    } catch (err) {
      this.erroredDuringStart = true;
      this.scheduleRestart(err);
    } finally {
      this.starting = false;
    }
    // client-node opens the watch even when stop() came while the list was in flight.
    if (this.stopped) {
      await this.lw.stop();
      return;
    }
    if (!this.erroredDuringStart) {
      if (!this.synced) this.log.info({ objects: this.lw.list().length, resourceVersion: this.lw.latestResourceVersion() }, 'informer synced');
      else this.log.info({ resourceVersion: this.lw.latestResourceVersion() }, 'informer watching again');
      const wasSynced = this.synced;
      this.synced = true;
      if (!wasSynced) this.opts.onChange(`${this.opts.name} synced`);
    }
  }

  private failed(err: unknown): void {
    if (this.starting) this.erroredDuringStart = true;
    this.scheduleRestart(err);
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.opts.backoffMs?.max ?? 30_000);
    const e = err as { message?: string; statusCode?: number; code?: string };
    this.log.warn({ err: e?.message ?? String(err), status: e?.statusCode, code: e?.code, retryInMs: delay }, 'list/watch failed; enforcement is unchanged, retrying');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarts++;
      this.opts.onRestart?.();
      void this.attempt();
    }, delay);
  }

  list(): readonly T[] {
    return this.lw.list();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    await this.lw.stop();
  }
}
