// The Kubernetes API test server's public types, and the internal records of its store.
import type { ServerResponse } from 'node:http';
import type { FieldRequirement, LabelRequirement } from './selectors.js';

export interface KubeObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: KubeObjectMeta;
  [field: string]: unknown;
}

export interface ResourceType {
  /** Plural, lower case, as in the path: "configmaps". */
  readonly resource: string;
  readonly kind: string;
  /** '' for the core group (/api/v1). */
  readonly group: string;
  readonly version: string;
  readonly namespaced: boolean;
  /** Field selector labels beyond metadata.name and metadata.namespace. */
  readonly fields: readonly string[];
}

export const DEFAULT_RESOURCES: readonly ResourceType[] = [
  { resource: 'configmaps', kind: 'ConfigMap', group: '', version: 'v1', namespaced: true, fields: [] },
  {
    resource: 'pods',
    kind: 'Pod',
    group: '',
    version: 'v1',
    namespaced: true,
    fields: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  },
  {
    resource: 'events',
    kind: 'Event',
    group: '',
    version: 'v1',
    namespaced: true,
    fields: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  },
  { resource: 'namespaces', kind: 'Namespace', group: '', version: 'v1', namespaced: false, fields: ['status.phase'] },
  { resource: 'nodes', kind: 'Node', group: '', version: 'v1', namespaced: false, fields: ['spec.unschedulable'] },
];

export type ExpiredWatchResponse = 'error-event' | 'http-410';

export interface KubeApiServerOptions {
  /** 0 (default) lets the OS choose; restart() reuses whichever port was bound. */
  readonly port?: number;
  /** The address to listen on, and the one the kubeconfig names. Default 127.0.0.1. */
  readonly host?: string;
  /** Extra resource types, added to DEFAULT_RESOURCES. */
  readonly resources?: readonly ResourceType[];
  /** Events kept for watch replay; older ones are forgotten as if compacted. Default 1000. */
  readonly historyLimit?: number;
  readonly expiredWatch?: ExpiredWatchResponse;
  /** Send a BOOKMARK to every bookmark-enabled watch this often; 0 (default) never. */
  readonly bookmarkIntervalMs?: number;
  /** Send bookmarks also to watches that did not ask (client-node 1.4's informer never asks). */
  readonly bookmarksWithoutOptIn?: boolean;
  /** End watches that did not pass timeoutSeconds after this long; default never. */
  readonly defaultWatchTimeoutSeconds?: number;
}

export type ApiVerb = 'list' | 'watch' | 'get' | 'create' | 'update' | 'patch' | 'delete' | 'unknown';

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly verb: ApiVerb;
  readonly resource?: string;
  readonly namespace?: string;
  readonly name?: string;
  /** The HTTP status answered; undefined while the request is held or in progress. */
  status?: number;
}

export interface RequestFilter {
  readonly verb?: ApiVerb;
  readonly resource?: string;
  readonly namespace?: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface KubeApiServer {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Stores a new object; throws if it exists. Returns the stored copy (with kind, apiVersion, uid, ...). */
  create(resource: string, obj: KubeObject): KubeObject;
  /** Replaces an object; a metadata.resourceVersion, if given, must be current. */
  update(resource: string, obj: KubeObject): KubeObject;
  /** get + mutate a copy + update. */
  patch(resource: string, namespace: string | undefined, name: string, mutate: (draft: KubeObject) => void): KubeObject;
  delete(resource: string, namespace: string | undefined, name: string): KubeObject;
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Without namespace: all namespaces. Sorted by namespace/name. Copies. */
  list(resource: string, namespace?: string): KubeObject[];
  /** The current global revision. */
  resourceVersion(): number;
  /** Forgets all history: a watch from any resourceVersion older than the current one is expired. */
  compact(): void;
  setExpiredWatchResponse(mode: ExpiredWatchResponse): void;
  /** BOOKMARK now to every open watch that accepts bookmarks; returns how many got one. */
  sendBookmarks(): number;
  /** Ends every open watch stream cleanly (as a server-side watch timeout does); returns how many. */
  endWatches(): number;
  /** Destroys the socket of every open watch stream mid-response; returns how many. */
  dropWatches(): number;
  openWatches(resource?: string): number;
  /** Parks matching requests (before they are answered) until the returned function is called. */
  hold(filter: RequestFilter): () => void;
  /** Answers the next `times` matching requests with `status` (a Status body). */
  failNext(filter: RequestFilter & { readonly status: number; readonly times?: number }): void;
  requests(filter?: RequestFilter): RequestRecord[];
  counts(resource: string): { list: number; watch: number };
  clearRequests(): void;
  /** Closes the listener and every socket (watches end abruptly). The store survives. Idempotent. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  /** Writes <dir>/kubeconfig (plain HTTP, no credentials) and returns its path. */
  writeKubeconfig(dir: string): Promise<string>;
}

export interface HistoryEntry {
  readonly revision: number;
  readonly resource: string;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: KubeObject;
  /** State before the change (MODIFIED, DELETED). */
  readonly previous?: KubeObject;
}

export interface Watcher {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  readonly labels: LabelRequirement[];
  readonly fields: FieldRequirement[];
  readonly bookmarks: boolean;
  readonly res: ServerResponse;
  timer?: NodeJS.Timeout;
}
