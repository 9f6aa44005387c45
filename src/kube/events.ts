// Kubernetes Events for rejected ConfigMaps: one Warning per (object, resourceVersion, errors):
// a cross-object error (a name another ConfigMap also uses) can reject an unchanged object.
// The agent reports an object only when its state changes, so a failed POST is retried here
// with backoff (a bounded number of times) rather than lost; what was posted is remembered in
// a bounded set, oldest first out.
import { createHash } from 'node:crypto';
import type { CoreV1Event, V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ConfigIssue } from '../config/index.js';
import { KubeApiError, type KubeClient } from './client.js';

export const EVENT_REASON_INVALID = 'MeshgateConfigRejected';
const MAX_MESSAGE = 1000;

export interface EventRecorderOptions {
  /** Retries after a failed POST (default 5): 1 s, 2 s, 4 s, … up to maxMs. */
  readonly retries?: number;
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  /** How many posted Events are remembered, so one is not posted twice (default 1024). */
  readonly remember?: number;
  /** Injectable for tests. */
  readonly sleep?: (ms: number) => Promise<void>;
}

const unrefSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

export class EventRecorder {
  /** Keys of Events posted or being posted, in insertion order (a Set iterates oldest first). */
  private readonly posted = new Set<string>();
  private readonly retries: number;
  private readonly backoff: { readonly initial: number; readonly max: number };
  private readonly remember: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private closed = false;

  constructor(
    private readonly client: Pick<KubeClient, 'request'>,
    private readonly nodeName: string,
    private readonly log: Logger,
    options: EventRecorderOptions = {},
  ) {
    this.retries = options.retries ?? 5;
    this.backoff = options.backoffMs ?? { initial: 1000, max: 30_000 };
    this.remember = options.remember ?? 1024;
    this.sleep = options.sleep ?? unrefSleep;
  }

  /** How many posted Events are remembered (bounded by `remember`). */
  get remembered(): number {
    return this.posted.size;
  }

  /** Stops pending retries (the agent is stopping). */
  close(): void {
    this.closed = true;
  }

  /** Posts one Warning event on the ConfigMap naming every error (key, entry, value). Never throws. */
  async rejected(cm: V1ConfigMap, errors: readonly ConfigIssue[]): Promise<void> {
    const meta = cm.metadata ?? {};
    let message = `rejected by meshgate on node ${this.nodeName}, the last good configuration stays in force: ${errors.map((e) => e.message).join('; ')}`;
    const key = `${meta.uid}@${meta.resourceVersion}@${createHash('sha256').update(message).digest('hex').slice(0, 16)}`;
    if (this.posted.has(key) || !meta.namespace || !meta.name) return;
    this.posted.add(key);
    for (const old of this.posted) {
      if (this.posted.size <= this.remember) break;
      this.posted.delete(old);
    }
    if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE - 20)}… (${errors.length} errors)`;
    const now = new Date();
    const event: CoreV1Event = {
      metadata: {
        name: `${meta.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`,
        namespace: meta.namespace,
      },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        namespace: meta.namespace,
        name: meta.name,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      reason: EVENT_REASON_INVALID,
      message,
      type: 'Warning',
      source: { component: 'meshgate-agent', host: this.nodeName },
      reportingComponent: 'meshgate.io/agent',
      reportingInstance: this.nodeName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    const configmap = `${meta.namespace}/${meta.name}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.request('POST', `/api/v1/namespaces/${encodeURIComponent(meta.namespace)}/events`, event);
        this.log.info({ configmap, reason: EVENT_REASON_INVALID, attempt }, 'event posted');
        return;
      } catch (err) {
        // 409: an earlier attempt was stored though its answer was lost.
        if (err instanceof KubeApiError && err.statusCode === 409) return;
        if (attempt >= this.retries || this.closed) {
          this.posted.delete(key);
          this.log.warn(
            { err: (err as Error).message, configmap, attempts: attempt + 1 },
            'could not post the event, giving up',
          );
          return;
        }
        const delayMs = Math.min(this.backoff.initial * 2 ** attempt, this.backoff.max);
        this.log.warn(
          { err: (err as Error).message, configmap, attempt: attempt + 1, delayMs },
          'could not post the event, retrying',
        );
        await this.sleep(delayMs);
        if (this.closed) {
          this.posted.delete(key);
          return;
        }
      }
    }
  }
}
