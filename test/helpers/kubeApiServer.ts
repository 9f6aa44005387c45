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
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import {
  handleList,
  handleWatch,
  handleWrite,
  route,
  sendJson,
  verbOf,
  type HandlerContext,
} from './kubeApi/handlers.js';
import { ObjectStore } from './kubeApi/objectStore.js';
import { ApiError, REASONS, clone, matchesFilter, statusBody } from './kubeApi/protocol.js';
import type {
  ExpiredWatchResponse,
  KubeApiServer,
  KubeApiServerOptions,
  RequestFilter,
  RequestRecord,
} from './kubeApi/types.js';

export { statusBody } from './kubeApi/protocol.js';
export { parseFieldSelector, parseLabelSelector } from './kubeApi/selectors.js';
export * from './kubeApi/types.js';

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const store = new ObjectStore(options.resources, options.historyLimit ?? 1000);
  let expiredWatch: ExpiredWatchResponse = options.expiredWatch ?? 'error-event';
  const ctx: HandlerContext = { store, options, expiredWatch: () => expiredWatch };
  const sockets = new Set<Socket>();
  const log: RequestRecord[] = [];
  const holds: { filter: RequestFilter; waiting: (() => void)[] }[] = [];
  const failures: { filter: RequestFilter; status: number; remaining: number }[] = [];
  let httpServer: Server | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let port = options.port ?? 0;

  const waitIfHeld = async (entry: RequestRecord): Promise<void> => {
    const hold = holds.find((h) => matchesFilter(entry, h.filter));
    if (hold) await new Promise<void>((resolve) => hold.waiting.push(resolve));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const target = route(ctx, url.pathname);
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
      if (!target)
        throw new ApiError(
          404,
          'NotFound',
          `the server could not find the requested resource (${method} ${url.pathname})`,
        );
      switch (verb) {
        case 'list':
          handleList(ctx, res, entry, target, url.searchParams);
          return;
        case 'watch':
          handleWatch(ctx, res, entry, target, url.searchParams);
          return;
        case 'get': {
          const found = store.get(target.type.resource, target.namespace, target.name ?? '');
          if (!found) throw new ApiError(404, 'NotFound', `${target.type.resource} "${target.name}" not found`);
          sendJson(res, entry, 200, found);
          return;
        }
        case 'create':
        case 'update':
        case 'patch':
        case 'delete':
          await handleWrite(ctx, req, res, entry, target, verb);
          return;
        default:
          throw new ApiError(
            405,
            'MethodNotAllowed',
            `the server does not allow this method on the requested resource (${method} ${url.pathname})`,
          );
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
    create: (resource, obj) => rethrowPlain(() => store.create(resource, obj)),
    update: (resource, obj) => rethrowPlain(() => store.update(resource, obj)),
    patch(resource, namespace, name, mutate) {
      const current = store.get(resource, namespace, name);
      if (!current) throw new Error(`kubeApiServer: ${resource} ${namespace ?? ''}/${name} not found`);
      mutate(current);
      return rethrowPlain(() => store.update(resource, current));
    },
    delete: (resource, namespace, name) => rethrowPlain(() => store.delete(resource, namespace, name)),
    get: (resource, namespace, name) => store.get(resource, namespace, name),
    list(resource, namespace) {
      return store
        .sortedObjects(resource)
        .filter(([, obj]) => namespace === undefined || obj.metadata.namespace === namespace)
        .map(([, obj]) => clone(obj));
    },
    resourceVersion: () => store.revision,
    compact() {
      store.compactedRevision = store.revision;
      store.history = [];
    },
    setExpiredWatchResponse(mode) {
      expiredWatch = mode;
    },
    sendBookmarks() {
      let sent = 0;
      for (const watcher of store.watchers) {
        if (watcher.bookmarks) {
          store.bookmark(watcher);
          sent++;
        }
      }
      return sent;
    },
    endWatches() {
      const open = [...store.watchers];
      for (const watcher of open) {
        store.closeWatcher(watcher);
        watcher.res.end();
      }
      return open.length;
    },
    dropWatches() {
      const open = [...store.watchers];
      for (const watcher of open) {
        store.closeWatcher(watcher);
        watcher.res.socket?.destroy();
      }
      return open.length;
    },
    openWatches: (resource) =>
      [...store.watchers].filter((w) => resource === undefined || w.type.resource === resource).length,
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
      for (const watcher of [...store.watchers]) store.closeWatcher(watcher);
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
