// The API test server's object store: one global revision (as etcd's), a capped
// history for watches that resume, and delivery of each change to open watches.
import { randomUUID } from 'node:crypto';
import { ApiError, clone, comparable, objectKey } from './protocol.js';
import { fieldsMatch, labelsMatch } from './selectors.js';
import {
  DEFAULT_RESOURCES,
  type HistoryEntry,
  type KubeObject,
  type ResourceType,
  type WatchEventType,
  type Watcher,
} from './types.js';

export const apiVersionOf = (type: ResourceType): string =>
  type.group ? `${type.group}/${type.version}` : type.version;

export function writeEvent(watcher: Watcher, type: WatchEventType, object: unknown): void {
  if (!watcher.res.writableEnded && !watcher.res.destroyed) {
    watcher.res.write(`${JSON.stringify({ type, object })}\n`);
  }
}

export class ObjectStore {
  readonly types = new Map<string, ResourceType>();
  private readonly store = new Map<string, Map<string, KubeObject>>();
  private readonly historyLimit: number;
  revision = 0;
  /** Watches from a resourceVersion below this are expired. */
  compactedRevision = 0;
  history: HistoryEntry[] = [];
  readonly watchers = new Set<Watcher>();

  constructor(resources: readonly ResourceType[] = [], historyLimit = 1000) {
    for (const type of [...DEFAULT_RESOURCES, ...resources]) this.types.set(type.resource, type);
    for (const resource of this.types.keys()) this.store.set(resource, new Map());
    this.historyLimit = historyLimit;
  }

  typeOf(resource: string): ResourceType {
    const type = this.types.get(resource);
    if (!type) throw new Error(`kubeApiServer: unknown resource "${resource}" (register it in options.resources)`);
    return type;
  }
  bucket(resource: string): Map<string, KubeObject> {
    this.typeOf(resource);
    return this.store.get(resource) as Map<string, KubeObject>;
  }

  // --- watch delivery

  watcherMatches(watcher: Watcher, obj: KubeObject): boolean {
    return (
      (watcher.namespace === undefined || (obj.metadata.namespace ?? '') === watcher.namespace) &&
      labelsMatch(watcher.labels, obj) &&
      fieldsMatch(watcher.fields, obj)
    );
  }

  /** What one watcher sees of a change, selector transitions included. */
  deliver(watcher: Watcher, entry: HistoryEntry): void {
    if (watcher.type.resource !== entry.resource) return;
    const now = entry.type !== 'DELETED' && this.watcherMatches(watcher, entry.object);
    const before = entry.previous !== undefined && this.watcherMatches(watcher, entry.previous);
    if (entry.type === 'ADDED' && now) writeEvent(watcher, 'ADDED', entry.object);
    else if (entry.type === 'MODIFIED' && now) writeEvent(watcher, before ? 'MODIFIED' : 'ADDED', entry.object);
    else if (entry.type === 'MODIFIED' && before && entry.previous) {
      const gone = clone(entry.previous);
      gone.metadata.resourceVersion = String(entry.revision);
      writeEvent(watcher, 'DELETED', gone);
    } else if (entry.type === 'DELETED' && before) writeEvent(watcher, 'DELETED', entry.object);
  }

  record(entry: HistoryEntry): void {
    this.history.push(entry);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedRevision = dropped[dropped.length - 1]?.revision ?? this.compactedRevision;
    }
    for (const watcher of this.watchers) this.deliver(watcher, entry);
  }

  bookmark(watcher: Watcher): void {
    writeEvent(watcher, 'BOOKMARK', {
      kind: watcher.type.kind,
      apiVersion: apiVersionOf(watcher.type),
      metadata: { resourceVersion: String(this.revision) },
    });
  }

  closeWatcher(watcher: Watcher): void {
    this.watchers.delete(watcher);
    if (watcher.timer) clearTimeout(watcher.timer);
  }

  // --- store operations (shared by the test API and HTTP)

  create(resource: string, input: KubeObject): KubeObject {
    const type = this.typeOf(resource);
    const objects = this.bucket(resource);
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
    this.revision++;
    const stored: KubeObject = {
      ...clone(input),
      kind: type.kind,
      apiVersion: apiVersionOf(type),
      metadata: {
        ...clone(metadata),
        uid: randomUUID(),
        resourceVersion: String(this.revision),
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    };
    objects.set(key, stored);
    this.record({ revision: this.revision, resource, type: 'ADDED', object: clone(stored) });
    return clone(stored);
  }

  update(resource: string, input: KubeObject): KubeObject {
    const type = this.typeOf(resource);
    const objects = this.bucket(resource);
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
    this.revision++;
    next.metadata.resourceVersion = String(this.revision);
    objects.set(key, next);
    this.record({ revision: this.revision, resource, type: 'MODIFIED', object: clone(next), previous: clone(current) });
    return clone(next);
  }

  delete(resource: string, namespace: string | undefined, name: string): KubeObject {
    const type = this.typeOf(resource);
    const objects = this.bucket(resource);
    const key = objectKey(type.namespaced ? namespace || 'default' : undefined, name);
    const current = objects.get(key);
    if (!current) throw new ApiError(404, 'NotFound', `${resource} "${name}" not found`);
    objects.delete(key);
    this.revision++;
    const gone = clone(current);
    gone.metadata.resourceVersion = String(this.revision);
    this.record({ revision: this.revision, resource, type: 'DELETED', object: gone, previous: clone(current) });
    return clone(gone);
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const type = this.typeOf(resource);
    const found = this.bucket(resource).get(objectKey(type.namespaced ? namespace || 'default' : undefined, name));
    return found ? clone(found) : undefined;
  }

  sortedObjects(resource: string): [string, KubeObject][] {
    return [...this.bucket(resource).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
