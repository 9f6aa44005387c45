// Kubernetes Events for rejected ConfigMaps: one Warning per (object, resourceVersion, errors):
// a cross-object error (a name another ConfigMap also uses) can reject an unchanged object.
import { createHash } from 'node:crypto';
import type { CoreV1Event, V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ConfigIssue } from '../config/index.js';
import type { KubeClient } from './client.js';

export const EVENT_REASON_INVALID = 'MeshgateConfigRejected';
const MAX_MESSAGE = 1000;

export class EventRecorder {
  private readonly posted = new Set<string>();

  constructor(
    private readonly client: KubeClient,
    private readonly nodeName: string,
    private readonly log: Logger,
  ) {}

  /** Posts one Warning event on the ConfigMap naming every error (key, entry, value). Never throws. */
  async rejected(cm: V1ConfigMap, errors: readonly ConfigIssue[]): Promise<void> {
    const meta = cm.metadata ?? {};
    let message = `rejected by meshgate on node ${this.nodeName}, the last good configuration stays in force: ${errors.map((e) => e.message).join('; ')}`;
    const key = `${meta.uid}@${meta.resourceVersion}@${createHash('sha256').update(message).digest('hex').slice(0, 16)}`;
    if (this.posted.has(key) || !meta.namespace || !meta.name) return;
    this.posted.add(key);
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
    try {
      await this.client.request('POST', `/api/v1/namespaces/${encodeURIComponent(meta.namespace)}/events`, event);
      this.log.info({ configmap: `${meta.namespace}/${meta.name}`, reason: EVENT_REASON_INVALID }, 'event posted');
    } catch (err) {
      this.posted.delete(key);
      this.log.warn(
        { err: (err as Error).message, configmap: `${meta.namespace}/${meta.name}` },
        'could not post the event',
      );
    }
  }
}
