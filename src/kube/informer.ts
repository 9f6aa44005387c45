// An informer that survives: it lists, caches by namespace/name and watches
// from the list's resourceVersion; it re-watches when a watch ends, relists
// on 410 Gone (an HTTP 410 or an ERROR event with code 410), and after any
// other error restarts with exponential backoff. It asks for bookmarks (so a
// re-watch resumes from a recent resourceVersion instead of hitting 410),
// bounds each watch with timeoutSeconds (a half-open connection cannot stall
// it forever), and says when the first list has completed. It speaks to the
// API through src/kube/client.ts (see there for why not client-node's
// ListWatch).
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient, type WatchHandle } from './client.js';

export interface InformerOptions {
  readonly name: string;
  /** Collection path, e.g. /api/v1/namespaces/osm-system/configmaps. */
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly onChange: (what: string) => void;
  readonly onRestart?: () => void;
  readonly log: Logger;
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  readonly watchTimeoutSeconds?: number;
}

interface ListAnswer<T> {
  readonly metadata?: { readonly resourceVersion?: string };
  readonly items?: readonly T[];
}

const keyOf = (obj: KubernetesObject): string => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;

export class ResilientInformer<T extends KubernetesObject> {
  private readonly opts: InformerOptions;
  private readonly log: Logger;
  private readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private watchHandle: WatchHandle | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private stopped = false;
  /** The first list has completed: the cache holds the whole state once. */
  synced = false;
  restarts = 0;

  constructor(
    private readonly client: KubeClient,
    opts: InformerOptions,
  ) {
    this.opts = opts;
    this.log = opts.log.child({ informer: opts.name });
    this.delayMs = opts.backoffMs?.initial ?? 200;
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.opts.labelSelector) q.set('labelSelector', this.opts.labelSelector);
    if (this.opts.fieldSelector) q.set('fieldSelector', this.opts.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.opts.path}?${q}`;
  }

  /** Starts listing and watching; resolves once the first attempt is done (synced or scheduled to retry). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.attempt();
  }

  private changed(verb: string, obj: T): void {
    this.delayMs = this.opts.backoffMs?.initial ?? 200;
    this.opts.onChange(`${this.opts.name} ${verb} ${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`);
  }

  /** List (replacing the cache, with add/update/delete for what changed), then watch. */
  private async attempt(): Promise<void> {
    if (this.stopped) return;
    let answer: ListAnswer<T>;
    try {
      answer = await this.client.request<ListAnswer<T>>('GET', this.query({}));
    } catch (err) {
      this.scheduleRestart(err);
      return;
    }
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const item of answer.items ?? []) {
      const key = keyOf(item);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (!old) this.changed('add', item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.changed('update', item);
    }
    for (const [key, old] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.changed('delete', old);
    }
    this.resourceVersion = answer.metadata?.resourceVersion ?? '';
    if (!this.synced)
      this.log.info({ objects: this.cache.size, resourceVersion: this.resourceVersion }, 'informer synced');
    else this.log.info({ resourceVersion: this.resourceVersion }, 'informer watching again');
    const wasSynced = this.synced;
    this.synced = true;
    if (!wasSynced) this.opts.onChange(`${this.opts.name} synced`);
    await this.watch();
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    // Spread the watches' ends so that informers do not all re-watch at once.
    const timeoutSeconds = Math.round((this.opts.watchTimeoutSeconds ?? 300) * (0.75 + Math.random() / 2));
    let relist = false;
    const handle = await this.client.watch(
      this.query({
        watch: 'true',
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(timeoutSeconds),
      }),
      (type, object) => {
        const obj = object as T & { code?: number; message?: string };
        if (type === 'BOOKMARK') {
          this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
        } else if (type === 'ERROR') {
          relist = obj.code === 410;
          if (!relist) this.log.warn({ status: obj.code, message: obj.message }, 'watch error event');
          this.watchHandle?.abort();
        } else {
          this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
          const key = keyOf(obj);
          if (type === 'DELETED') {
            this.cache.delete(key);
            this.changed('delete', obj);
          } else if (type === 'ADDED' || type === 'MODIFIED') {
            const had = this.cache.has(key);
            this.cache.set(key, obj);
            this.changed(had ? 'update' : 'add', obj);
          }
        }
      },
      (err) => {
        this.watchHandle = null;
        if (this.stopped) return;
        const gone = relist || (err instanceof KubeApiError && err.statusCode === 410);
        if (gone) {
          this.resourceVersion = '';
          void this.attempt(); // 410 Gone: the history is compacted; relist now
        } else if (err === null) {
          void this.watch(); // the server ended the watch (timeoutSeconds): resume from the last resourceVersion
        } else {
          this.scheduleRestart(err);
        }
      },
    );
    if (this.stopped) handle.abort();
    else this.watchHandle = handle;
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.opts.backoffMs?.max ?? 30_000);
    const e = err as { message?: string; statusCode?: number; code?: string };
    this.log.warn(
      { err: e?.message ?? String(err), status: e?.statusCode, code: e?.code, retryInMs: delay },
      'list/watch failed; enforcement is unchanged, retrying',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarts++;
      this.opts.onRestart?.();
      void this.attempt();
    }, delay);
  }

  list(): readonly T[] {
    return [...this.cache.values()];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.watchHandle?.abort();
    this.watchHandle = null;
  }
}
