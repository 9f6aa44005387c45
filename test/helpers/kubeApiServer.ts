// An in-process Kubernetes API server for tests: the real @kubernetes/client-node talks to it over plain
// HTTP on 127.0.0.1, with the real wire protocol (JSON lists, chunked newline-delimited watch streams,
// Status errors). No real API server can run on the test machines, so this is what the cluster agent's
// tests point their kubeconfig at (see writeKubeconfig).
//
// What it reproduces:
// - An object store per resource with one global, monotonically increasing resourceVersion (as etcd's
//   revision): every create/update/delete takes the next number; a no-op update takes none and emits nothing.
//   Server-set metadata: uid, resourceVersion, creationTimestamp (RFC 3339, seconds), generation is not kept.
// - Paths /api/v1/{resource} (all namespaces, or cluster-scoped), /api/v1/namespaces/{ns}/{resource}[/{name}],
//   and /apis/{group}/{version}/... for resources registered with a group.
// - GET list: kind "<Kind>List", metadata.resourceVersion = current revision, items sorted by namespace/name
//   and, like the real server, WITHOUT kind/apiVersion on the items. labelSelector (=, ==, !=, exists, !key,
//   in (...), notin (...), comma = AND) and fieldSelector (=, ==, !=; metadata.name, metadata.namespace and
//   the per-resource fields such as spec.nodeName; an unsupported field is a 400 as on the real server).
//   limit/continue pagination (see "does not" below). client-node's informer itself never paginates.
// - GET ?watch=true|1: 200 with a chunked stream of {"type","object"} lines. resourceVersion unset or "0":
//   synthetic ADDED for every matching object, then live events. resourceVersion=N: every event after N
//   is replayed from the history, then live events. Watch objects carry kind/apiVersion. An object that
//   stops matching a watcher's selectors is sent to it as DELETED (previous content, the event's
//   resourceVersion), one that starts matching as ADDED, as the real watch cache does.
//   timeoutSeconds ends the stream cleanly. Bookmarks only when allowWatchBookmarks=true (unless
//   bookmarksWithoutOptIn), every bookmarkIntervalMs and on sendBookmarks(), carrying the current revision.
// - Expired history: history is capped (historyLimit) and compact() forgets it all. A watch (or continue token)
//   from an older resourceVersion gets, per expiredWatch: 'error-event' (default, what current servers do):
//   200 + one {"type":"ERROR","object":Status 410 Expired} line, then the stream ends; 'http-410': a plain
//   HTTP 410 with a Status body (older servers, and the watch-cache-disabled path).
// - POST (201), PUT (optimistic concurrency: a stale metadata.resourceVersion is 409 Conflict), PATCH with a
//   JSON merge patch (strategic merge patch is treated as a merge patch), DELETE (200 Status Success). Events
//   are just the "events" resource. Errors are Status objects {kind:"Status",status:"Failure",reason,code}.
// - Faults: endWatches() (clean end, like a watch timeout), dropWatches() (sockets destroyed mid-stream),
//   stop()/restart() on the same port with the same store, hold() (park matching requests until released),
//   failNext() (answer matching requests with an error status).
//
// What it does not:
// - No authentication, authorisation, admission, defaulting, validation beyond names, finalizers, graceful
//   deletion, ownerReferences/garbage collection, generation, managedFields, server-side apply, subresources
//   (status, log, exec), protobuf, table output, the legacy /api/v1/watch/ paths, or discovery.
// - A list always reads the latest state: the list resourceVersion/resourceVersionMatch parameters are ignored,
//   and a continue token resumes after the last key returned but from the *current* state, so pages are not
//   one consistent snapshot (the real server serves all pages at the first page's revision).
// - A watch from a resourceVersion newer than the current one is accepted (the real server waits, then errors).
// - Periodic bookmarks are not jittered; the real server's default watch timeout (min-request-timeout,
//   30-60 min) is not applied unless defaultWatchTimeoutSeconds is set.
//
// How @kubernetes/client-node 1.4's ListWatch (what makeInformer returns) behaves against a real server, as
// checked by test/unit/kube/apiServer.test.ts against this one:
// - makeInformer(kc, path, listFn, labelSelector) has no fieldSelector parameter. For a field selector use
//   `new ListWatch(path, new Watch(kc), listFn, false, labelSelector, fieldSelector)` (autoStart is the 4th
//   argument and defaults to true: pass false and call start() after registering handlers).
// - start(): emits 'connect', calls listFn (only when it holds no resourceVersion), then opens
//   GET {path}?watch=true&resourceVersion=<rv>[&labelSelector=..][&fieldSelector=..]. No timeoutSeconds,
//   no allowWatchBookmarks, no limit. listFn is yours, so its query must use the same selectors.
// - Watch stream ends cleanly (server timeout, endWatches()): it re-watches at once from its last
//   resourceVersion, emitting 'connect', without relisting and without any delay or backoff.
// - Any error (connection refused, socket destroyed mid-stream: node-fetch reports "Premature close", HTTP
//   5xx/4xx other than 410, listFn rejecting): it emits 'error' ONCE and STOPS. It never retries by itself.
//   The caller must call start() again (after its own backoff); start() keeps the cache and the last
//   resourceVersion, so it resumes the watch without relisting and no event is lost as long as the server
//   still has the history.
// - 410 as HTTP status: no 'error'; clears its resourceVersion, relists at once, re-watches.
//   410 as an ERROR event: clears its resourceVersion; when the server then ends the stream it relists and
//   re-watches. (If a server sent the ERROR and kept the stream open, it would hang.) Other ERROR events are
//   ignored. The relist emits 'delete' for cached objects missing from the list, 'update' for changed ones.
// - BOOKMARK: no callback; the informer's resourceVersion advances to the bookmark's.
// - No watchdog: Watch sets TCP keep-alive (30 s) on the socket but no request timeout (the 30 s
//   AbortSignal.timeout it builds is overwritten), so a silently dead connection is noticed only by TCP.
// - stop() aborts the watch; the abort comes back as an 'error' callback with an AbortError. stop() during a
//   relist does not prevent the watch opened after the list completes.
// - Objects from listFn are deserialised by the generated client (metadata.creationTimestamp is a Date);
//   objects from watch events are raw JSON (creationTimestamp is a string). Handlers must accept both.
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';

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
    fields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
      'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  },
  {
    resource: 'events',
    kind: 'Event',
    group: '',
    version: 'v1',
    namespaced: true,
    fields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid',
      'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason',
      'reportingComponent', 'source', 'type'],
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

interface HistoryEntry {
  readonly revision: number;
  readonly resource: string;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: KubeObject;
  /** State before the change (MODIFIED, DELETED). */
  readonly previous?: KubeObject;
}

interface Watcher {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  readonly labels: LabelRequirement[];
  readonly fields: FieldRequirement[];
  readonly bookmarks: boolean;
  readonly res: ServerResponse;
  timer?: NodeJS.Timeout;
}

interface LabelRequirement {
  readonly key: string;
  readonly op: 'in' | 'notin' | 'exists' | 'notexists';
  readonly values: readonly string[];
}

interface FieldRequirement {
  readonly field: string;
  readonly equal: boolean;
  readonly value: string;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function statusBody(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

const REASONS: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

const MAX_BODY_BYTES = 3 * 1024 * 1024;
const LABEL_KEY = '(?:[A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?';
const LABEL_VALUE = '(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?';
const SET_TERM = new RegExp(`^(${LABEL_KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const EQUALITY_TERM = new RegExp(`^(${LABEL_KEY})\\s*(==|=|!=)\\s*(${LABEL_VALUE})$`);
const EXISTS_TERM = new RegExp(`^(!?)\\s*(${LABEL_KEY})$`);
const VALUE_ONLY = new RegExp(`^${LABEL_VALUE}$`);

/** Splits at commas outside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms.map((term) => term.trim()).filter((term) => term !== '');
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  return splitTerms(selector).map((term) => {
    const set = SET_TERM.exec(term);
    if (set) {
      const values = (set[3] ?? '').split(',').map((v) => v.trim());
      if (values.some((v) => !VALUE_ONLY.test(v))) {
        throw new ApiError(400, 'BadRequest', `unable to parse requirement: invalid label value in "${term}"`);
      }
      return { key: set[1] ?? '', op: set[2] === 'in' ? 'in' : 'notin', values };
    }
    const equality = EQUALITY_TERM.exec(term);
    if (equality) {
      return { key: equality[1] ?? '', op: equality[2] === '!=' ? 'notin' : 'in', values: [equality[3] ?? ''] };
    }
    const exists = EXISTS_TERM.exec(term);
    if (exists) {
      return { key: exists[2] ?? '', op: exists[1] === '!' ? 'notexists' : 'exists', values: [] };
    }
    throw new ApiError(400, 'BadRequest', `unable to parse requirement: "${term}" in label selector "${selector}"`);
  });
}

export function parseFieldSelector(selector: string, type: ResourceType): FieldRequirement[] {
  return splitTerms(selector).map((term) => {
    const match = /^([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!match) {
      throw new ApiError(400, 'BadRequest', `invalid field selector term "${term}" in "${selector}"`);
    }
    const field = match[1] ?? '';
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !type.fields.includes(field)) {
      throw new ApiError(400, 'BadRequest', `field label not supported: ${field}`);
    }
    return { field, equal: match[2] !== '!=', value: match[3] ?? '' };
  });
}

function labelsMatch(requirements: readonly LabelRequirement[], obj: KubeObject): boolean {
  const labels = obj.metadata.labels ?? {};
  return requirements.every((req) => {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    switch (req.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && req.values.includes(labels[req.key] ?? '');
      case 'notin':
        return !has || !req.values.includes(labels[req.key] ?? '');
    }
  });
}

function fieldValue(obj: KubeObject, path: string): string {
  let cursor: unknown = obj;
  for (const part of path.split('.')) {
    if (cursor === null || typeof cursor !== 'object') return '';
    cursor = (cursor as Record<string, unknown>)[part];
  }
  if (typeof cursor === 'string') return cursor;
  if (typeof cursor === 'number' || typeof cursor === 'boolean') return String(cursor);
  if (path === 'source' && cursor && typeof cursor === 'object') {
    return String((cursor as Record<string, unknown>)['component'] ?? '');
  }
  return '';
}

function fieldsMatch(requirements: readonly FieldRequirement[], obj: KubeObject): boolean {
  return requirements.every((req) => (fieldValue(obj, req.field) === req.value) === req.equal);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** The object without the fields a no-op update may differ in. */
function comparable(obj: KubeObject): string {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = obj.metadata;
  return JSON.stringify({ ...obj, metadata });
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function matchesFilter(record: RequestRecord, filter: RequestFilter): boolean {
  return (
    (filter.verb === undefined || filter.verb === record.verb) &&
    (filter.resource === undefined || filter.resource === record.resource) &&
    (filter.namespace === undefined || filter.namespace === record.namespace)
  );
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ApiError(413, 'RequestEntityTooLarge', 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text === '' ? undefined : JSON.parse(text));
      } catch (err) {
        reject(new ApiError(400, 'BadRequest', `request body is not JSON: ${(err as Error).message}`));
      }
    });
  });
}

interface Route {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const types = new Map<string, ResourceType>();
  for (const type of [...DEFAULT_RESOURCES, ...(options.resources ?? [])]) types.set(type.resource, type);
  const historyLimit = options.historyLimit ?? 1000;
  let expiredWatch: ExpiredWatchResponse = options.expiredWatch ?? 'error-event';

  const store = new Map<string, Map<string, KubeObject>>();
  for (const resource of types.keys()) store.set(resource, new Map());
  let revision = 0;
  /** Watches from a resourceVersion below this are expired. */
  let compactedRevision = 0;
  let history: HistoryEntry[] = [];
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const log: RequestRecord[] = [];
  const holds: { filter: RequestFilter; waiting: (() => void)[] }[] = [];
  const failures: { filter: RequestFilter; status: number; remaining: number }[] = [];
  let httpServer: Server | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let port = options.port ?? 0;

  const typeOf = (resource: string): ResourceType => {
    const type = types.get(resource);
    if (!type) throw new Error(`kubeApiServer: unknown resource "${resource}" (register it in options.resources)`);
    return type;
  };
  const bucket = (resource: string): Map<string, KubeObject> => {
    typeOf(resource);
    return store.get(resource) as Map<string, KubeObject>;
  };
  const apiVersionOf = (type: ResourceType): string => (type.group ? `${type.group}/${type.version}` : type.version);

  // --- watch delivery -----------------------------------------------------------------------------

  const watcherMatches = (watcher: Watcher, obj: KubeObject): boolean =>
    (watcher.namespace === undefined || (obj.metadata.namespace ?? '') === watcher.namespace) &&
    labelsMatch(watcher.labels, obj) &&
    fieldsMatch(watcher.fields, obj);

  const writeEvent = (watcher: Watcher, type: WatchEventType, object: unknown): void => {
    if (!watcher.res.writableEnded && !watcher.res.destroyed) {
      watcher.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  };

  /** What one watcher sees of a change, selector transitions included. */
  const deliver = (watcher: Watcher, entry: HistoryEntry): void => {
    if (watcher.type.resource !== entry.resource) return;
    const now = entry.type !== 'DELETED' && watcherMatches(watcher, entry.object);
    const before = entry.previous !== undefined && watcherMatches(watcher, entry.previous);
    if (entry.type === 'ADDED' && now) writeEvent(watcher, 'ADDED', entry.object);
    else if (entry.type === 'MODIFIED' && now) writeEvent(watcher, before ? 'MODIFIED' : 'ADDED', entry.object);
    else if (entry.type === 'MODIFIED' && before && entry.previous) {
      const gone = clone(entry.previous);
      gone.metadata.resourceVersion = String(entry.revision);
      writeEvent(watcher, 'DELETED', gone);
    } else if (entry.type === 'DELETED' && before) writeEvent(watcher, 'DELETED', entry.object);
  };

  const record = (entry: HistoryEntry): void => {
    history.push(entry);
    if (history.length > historyLimit) {
      const dropped = history.splice(0, history.length - historyLimit);
      compactedRevision = dropped[dropped.length - 1]?.revision ?? compactedRevision;
    }
    for (const watcher of watchers) deliver(watcher, entry);
  };

  const bookmark = (watcher: Watcher): void => {
    writeEvent(watcher, 'BOOKMARK', {
      kind: watcher.type.kind,
      apiVersion: apiVersionOf(watcher.type),
      metadata: { resourceVersion: String(revision) },
    });
  };

  const closeWatcher = (watcher: Watcher): void => {
    watchers.delete(watcher);
    if (watcher.timer) clearTimeout(watcher.timer);
  };

  // --- store operations (shared by the test API and HTTP) ------------------------------------------

  const doCreate = (resource: string, input: KubeObject): KubeObject => {
    const type = typeOf(resource);
    const objects = bucket(resource);
    const metadata = { ...(input.metadata ?? {}) };
    if (!metadata.name && metadata.generateName) {
      metadata.name = `${metadata.generateName}${randomUUID().slice(0, 5)}`;
    }
    if (!metadata.name) throw new ApiError(422, 'Invalid', `${type.kind} "": metadata.name: Required value`);
    if (type.namespaced) {
      metadata.namespace = metadata.namespace || 'default';
    } else {
      delete metadata.namespace;
    }
    const key = objectKey(metadata.namespace, metadata.name);
    if (objects.has(key)) {
      throw new ApiError(409, 'AlreadyExists', `${resource} "${metadata.name}" already exists`);
    }
    revision++;
    const stored: KubeObject = {
      ...clone(input),
      kind: type.kind,
      apiVersion: apiVersionOf(type),
      metadata: {
        ...clone(metadata),
        uid: randomUUID(),
        resourceVersion: String(revision),
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    };
    objects.set(key, stored);
    record({ revision, resource, type: 'ADDED', object: clone(stored) });
    return clone(stored);
  };

  const doUpdate = (resource: string, input: KubeObject): KubeObject => {
    const type = typeOf(resource);
    const objects = bucket(resource);
    const name = input.metadata?.name ?? '';
    const namespace = type.namespaced ? input.metadata?.namespace || 'default' : undefined;
    const key = objectKey(namespace, name);
    const current = objects.get(key);
    if (!current) throw new ApiError(404, 'NotFound', `${resource} "${name}" not found`);
    const given = input.metadata.resourceVersion;
    if (given !== undefined && given !== '' && given !== current.metadata.resourceVersion) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; ` +
          'please apply your changes to the latest version and try again',
      );
    }
    const next: KubeObject = {
      ...clone(input),
      kind: type.kind,
      apiVersion: apiVersionOf(type),
      metadata: {
        ...clone(input.metadata),
        namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        resourceVersion: current.metadata.resourceVersion,
      },
    };
    if (namespace === undefined) delete next.metadata.namespace;
    if (comparable(next) === comparable(current)) return clone(current);
    revision++;
    next.metadata.resourceVersion = String(revision);
    objects.set(key, next);
    record({ revision, resource, type: 'MODIFIED', object: clone(next), previous: clone(current) });
    return clone(next);
  };

  const doDelete = (resource: string, namespace: string | undefined, name: string): KubeObject => {
    const type = typeOf(resource);
    const objects = bucket(resource);
    const key = objectKey(type.namespaced ? namespace || 'default' : undefined, name);
    const current = objects.get(key);
    if (!current) throw new ApiError(404, 'NotFound', `${resource} "${name}" not found`);
    objects.delete(key);
    revision++;
    const gone = clone(current);
    gone.metadata.resourceVersion = String(revision);
    record({ revision, resource, type: 'DELETED', object: gone, previous: clone(current) });
    return clone(gone);
  };

  const doGet = (resource: string, namespace: string | undefined, name: string): KubeObject | undefined => {
    const type = typeOf(resource);
    const found = bucket(resource).get(objectKey(type.namespaced ? namespace || 'default' : undefined, name));
    return found ? clone(found) : undefined;
  };

  const sortedObjects = (resource: string): [string, KubeObject][] =>
    [...bucket(resource).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  // --- HTTP ----------------------------------------------------------------------------------------

  const route = (pathname: string): Route | undefined => {
    const parts = pathname.split('/').filter((part) => part !== '').map(decodeURIComponent);
    let rest: string[];
    let group = '';
    let version: string;
    if (parts[0] === 'api' && parts.length >= 3) {
      version = parts[1] ?? '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 4) {
      group = parts[1] ?? '';
      version = parts[2] ?? '';
      rest = parts.slice(3);
    } else {
      return undefined;
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length > 2) return undefined;
    const type = types.get(rest[0] ?? '');
    if (!type || type.group !== group || type.version !== version) return undefined;
    if (namespace !== undefined && !type.namespaced) return undefined;
    return { type, namespace, name: rest[1] };
  };

  const verbOf = (method: string, target: Route | undefined, query: URLSearchParams): ApiVerb => {
    if (!target) return 'unknown';
    const watch = query.get('watch');
    switch (method) {
      case 'GET':
        if (target.name !== undefined) return 'get';
        return watch === 'true' || watch === '1' ? 'watch' : 'list';
      case 'POST':
        return target.name === undefined ? 'create' : 'unknown';
      case 'PUT':
        return target.name !== undefined ? 'update' : 'unknown';
      case 'PATCH':
        return target.name !== undefined ? 'patch' : 'unknown';
      case 'DELETE':
        return target.name !== undefined ? 'delete' : 'unknown';
      default:
        return 'unknown';
    }
  };

  const sendJson = (res: ServerResponse, entry: RequestRecord, status: number, body: unknown): void => {
    entry.status = status;
    if (res.destroyed || res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  const handleList = (res: ServerResponse, entry: RequestRecord, target: Route, query: URLSearchParams): void => {
    const labels = parseLabelSelector(query.get('labelSelector') ?? '');
    const fields = parseFieldSelector(query.get('fieldSelector') ?? '', target.type);
    const limit = Number.parseInt(query.get('limit') ?? '0', 10) || 0;
    let after = '';
    let listRevision = revision;
    const token = query.get('continue');
    if (token) {
      let parsed: { rv?: unknown; start?: unknown };
      try {
        parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as typeof parsed;
      } catch {
        throw new ApiError(400, 'BadRequest', 'continue key is not valid');
      }
      if (typeof parsed.rv !== 'number' || typeof parsed.start !== 'string') {
        throw new ApiError(400, 'BadRequest', 'continue key is not valid');
      }
      if (parsed.rv < compactedRevision) {
        throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      }
      after = parsed.start;
      listRevision = parsed.rv;
    }
    const matching = sortedObjects(target.type.resource).filter(
      ([key, obj]) =>
        key > after &&
        (target.namespace === undefined || obj.metadata.namespace === target.namespace) &&
        labelsMatch(labels, obj) &&
        fieldsMatch(fields, obj),
    );
    const page = limit > 0 ? matching.slice(0, limit) : matching;
    const metadata: Record<string, unknown> = { resourceVersion: String(listRevision) };
    if (page.length < matching.length) {
      const lastKey = page[page.length - 1]?.[0] ?? '';
      metadata['continue'] = Buffer.from(JSON.stringify({ rv: listRevision, start: lastKey })).toString('base64url');
      metadata['remainingItemCount'] = matching.length - page.length;
    }
    const items = page.map(([, obj]) => {
      const { kind: _kind, apiVersion: _apiVersion, ...item } = clone(obj);
      return item;
    });
    sendJson(res, entry, 200, { kind: `${target.type.kind}List`, apiVersion: apiVersionOf(target.type), metadata, items });
  };

  const handleWatch = (res: ServerResponse, entry: RequestRecord, target: Route, query: URLSearchParams): void => {
    const labels = parseLabelSelector(query.get('labelSelector') ?? '');
    const fields = parseFieldSelector(query.get('fieldSelector') ?? '', target.type);
    const rvText = query.get('resourceVersion') ?? '';
    if (rvText !== '' && !/^\d+$/.test(rvText)) {
      throw new ApiError(400, 'BadRequest', `invalid resource version "${rvText}"`);
    }
    const from = rvText === '' ? 0 : Number(rvText);
    const expired = from !== 0 && from < compactedRevision;
    const expiredMessage = `too old resource version: ${from} (${compactedRevision})`;
    if (expired && expiredWatch === 'http-410') throw new ApiError(410, 'Expired', expiredMessage);

    entry.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    if (expired) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: statusBody(410, 'Expired', expiredMessage) })}\n`);
      return;
    }
    const watcher: Watcher = {
      type: target.type,
      namespace: target.namespace,
      labels,
      fields,
      bookmarks: query.get('allowWatchBookmarks') === 'true' || options.bookmarksWithoutOptIn === true,
      res,
    };
    if (from === 0) {
      for (const [, obj] of sortedObjects(target.type.resource)) {
        if (watcherMatches(watcher, obj)) writeEvent(watcher, 'ADDED', obj);
      }
    } else {
      for (const past of history) if (past.revision > from) deliver(watcher, past);
    }
    watchers.add(watcher);
    res.on('close', () => closeWatcher(watcher));
    const timeoutSeconds = Number.parseInt(query.get('timeoutSeconds') ?? '', 10) || options.defaultWatchTimeoutSeconds;
    if (timeoutSeconds && timeoutSeconds > 0) {
      watcher.timer = setTimeout(() => {
        closeWatcher(watcher);
        res.end();
      }, timeoutSeconds * 1000);
      watcher.timer.unref();
    }
  };

  const handleWrite = async (
    req: IncomingMessage,
    res: ServerResponse,
    entry: RequestRecord,
    target: Route,
    verb: ApiVerb,
  ): Promise<void> => {
    const resource = target.type.resource;
    if (verb === 'delete') {
      const gone = doDelete(resource, target.namespace, target.name ?? '');
      sendJson(res, entry, 200, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name: gone.metadata.name, kind: resource, uid: gone.metadata.uid },
      });
      return;
    }
    const body = await readBody(req);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError(400, 'BadRequest', 'request body must be a JSON object');
    }
    if (verb === 'patch') {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
      if (contentType !== 'application/merge-patch+json' && contentType !== 'application/strategic-merge-patch+json') {
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unsupported patch type: ${contentType}`);
      }
      const current = doGet(resource, target.namespace, target.name ?? '');
      if (!current) throw new ApiError(404, 'NotFound', `${resource} "${target.name}" not found`);
      const patched = mergePatch(current, body) as KubeObject;
      patched.metadata = { ...patched.metadata, name: current.metadata.name, namespace: current.metadata.namespace };
      sendJson(res, entry, 200, doUpdate(resource, patched));
      return;
    }
    const obj = body as KubeObject;
    if (obj.kind !== undefined && obj.kind !== target.type.kind) {
      throw new ApiError(400, 'BadRequest', `the kind of the provided object (${String(obj.kind)}) is not ${target.type.kind}`);
    }
    const metadata = { ...(obj.metadata ?? {}) };
    if (target.namespace !== undefined) {
      if (metadata.namespace && metadata.namespace !== target.namespace) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      metadata.namespace = target.namespace;
    }
    if (verb === 'update') {
      if (metadata.name !== target.name) {
        throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
      }
      sendJson(res, entry, 200, doUpdate(resource, { ...obj, metadata }));
      return;
    }
    sendJson(res, entry, 201, doCreate(resource, { ...obj, metadata }));
  };

  const waitIfHeld = async (entry: RequestRecord): Promise<void> => {
    const hold = holds.find((h) => matchesFilter(entry, h.filter));
    if (hold) await new Promise<void>((resolve) => hold.waiting.push(resolve));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const target = route(url.pathname);
    const method = req.method ?? 'GET';
    const verb = verbOf(method, target, url.searchParams);
    const entry: RequestRecord = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      verb,
      resource: target?.type.resource,
      namespace: target?.namespace,
      name: target?.name,
    };
    log.push(entry);
    try {
      await waitIfHeld(entry);
      if (res.destroyed) return;
      const failure = failures.find((f) => f.remaining > 0 && matchesFilter(entry, f.filter));
      if (failure) {
        failure.remaining--;
        throw new ApiError(failure.status, REASONS[failure.status] ?? 'Unknown', `injected failure ${failure.status}`);
      }
      if (!target) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${method} ${url.pathname})`);
      switch (verb) {
        case 'list':
          handleList(res, entry, target, url.searchParams);
          return;
        case 'watch':
          handleWatch(res, entry, target, url.searchParams);
          return;
        case 'get': {
          const found = doGet(target.type.resource, target.namespace, target.name ?? '');
          if (!found) throw new ApiError(404, 'NotFound', `${target.type.resource} "${target.name}" not found`);
          sendJson(res, entry, 200, found);
          return;
        }
        case 'create':
        case 'update':
        case 'patch':
        case 'delete':
          await handleWrite(req, res, entry, target, verb);
          return;
        default:
          throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method} ${url.pathname})`);
      }
    } catch (err) {
      if (err instanceof ApiError) sendJson(res, entry, err.code, statusBody(err.code, err.reason, err.message));
      else sendJson(res, entry, 500, statusBody(500, 'InternalError', (err as Error).message));
    }
  };

  const listen = async (): Promise<void> => {
    const server = createServer((req, res) => {
      void handle(req, res);
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
    httpServer = server;
    if (options.bookmarkIntervalMs && options.bookmarkIntervalMs > 0) {
      bookmarkTimer = setInterval(() => api.sendBookmarks(), options.bookmarkIntervalMs);
      bookmarkTimer.unref();
    }
  };

  const api: KubeApiServer = {
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    create: (resource, obj) => rethrowPlain(() => doCreate(resource, obj)),
    update: (resource, obj) => rethrowPlain(() => doUpdate(resource, obj)),
    patch(resource, namespace, name, mutate) {
      const current = doGet(resource, namespace, name);
      if (!current) throw new Error(`kubeApiServer: ${resource} ${namespace ?? ''}/${name} not found`);
      mutate(current);
      return rethrowPlain(() => doUpdate(resource, current));
    },
    delete: (resource, namespace, name) => rethrowPlain(() => doDelete(resource, namespace, name)),
    get: doGet,
    list(resource, namespace) {
      return sortedObjects(resource)
        .filter(([, obj]) => namespace === undefined || obj.metadata.namespace === namespace)
        .map(([, obj]) => clone(obj));
    },
    resourceVersion: () => revision,
    compact() {
      compactedRevision = revision;
      history = [];
    },
    setExpiredWatchResponse(mode) {
      expiredWatch = mode;
    },
    sendBookmarks() {
      let sent = 0;
      for (const watcher of watchers) {
        if (watcher.bookmarks) {
          bookmark(watcher);
          sent++;
        }
      }
      return sent;
    },
    endWatches() {
      const open = [...watchers];
      for (const watcher of open) {
        closeWatcher(watcher);
        watcher.res.end();
      }
      return open.length;
    },
    dropWatches() {
      const open = [...watchers];
      for (const watcher of open) {
        closeWatcher(watcher);
        watcher.res.socket?.destroy();
      }
      return open.length;
    },
    openWatches: (resource) => [...watchers].filter((w) => resource === undefined || w.type.resource === resource).length,
    hold(filter) {
      const hold = { filter, waiting: [] as (() => void)[] };
      holds.push(hold);
      return () => {
        const index = holds.indexOf(hold);
        if (index >= 0) holds.splice(index, 1);
        for (const resume of hold.waiting.splice(0)) resume();
      };
    },
    failNext(filter) {
      failures.push({ filter, status: filter.status, remaining: filter.times ?? 1 });
    },
    requests: (filter) => log.filter((entry) => filter === undefined || matchesFilter(entry, filter)),
    counts: (resource) => ({
      list: log.filter((entry) => entry.resource === resource && entry.verb === 'list').length,
      watch: log.filter((entry) => entry.resource === resource && entry.verb === 'watch').length,
    }),
    clearRequests() {
      log.length = 0;
    },
    async stop() {
      if (bookmarkTimer) clearInterval(bookmarkTimer);
      bookmarkTimer = undefined;
      const server = httpServer;
      httpServer = undefined;
      for (const watcher of [...watchers]) closeWatcher(watcher);
      for (const hold of holds.splice(0)) for (const resume of hold.waiting.splice(0)) resume();
      if (!server) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    async restart() {
      if (httpServer) throw new Error('kubeApiServer: restart() while running; stop() first');
      await listen();
    },
    async writeKubeconfig(dir) {
      const path = join(dir, 'kubeconfig');
      // client-node 1.4 refuses an http:// server unless insecure-skip-tls-verify is set.
      const text = [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '  - name: meshgate-test',
        '    cluster:',
        `      server: http://${options.host ?? '127.0.0.1'}:${port}`,
        '      insecure-skip-tls-verify: true',
        'users:',
        '  - name: meshgate-test',
        '    user: {}',
        'contexts:',
        '  - name: meshgate-test',
        '    context:',
        '      cluster: meshgate-test',
        '      user: meshgate-test',
        '      namespace: default',
        'current-context: meshgate-test',
        '',
      ].join('\n');
      await writeFile(path, text, { mode: 0o600 });
      return path;
    },
  };

  await listen();
  return api;
}

/** The test API throws plain Errors with the Status reason in the message. */
function rethrowPlain<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ApiError) throw new Error(`kubeApiServer: ${err.reason}: ${err.message}`, { cause: err });
    throw err;
  }
}
