// The API test server's HTTP side: routing a path to a resource, the verb of a
// request, and the list, watch and write handlers over the object store.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ObjectStore, apiVersionOf, writeEvent } from './objectStore.js';
import { ApiError, clone, mergePatch, readBody, statusBody } from './protocol.js';
import { fieldsMatch, labelsMatch, parseFieldSelector, parseLabelSelector } from './selectors.js';
import type {
  ApiVerb,
  ExpiredWatchResponse,
  KubeApiServerOptions,
  KubeObject,
  RequestRecord,
  ResourceType,
  Watcher,
} from './types.js';

/** What the handlers share: the store, the server's options, and the current expired-watch mode. */
export interface HandlerContext {
  readonly store: ObjectStore;
  readonly options: KubeApiServerOptions;
  expiredWatch(): ExpiredWatchResponse;
}

export interface Route {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}

export function route(ctx: HandlerContext, pathname: string): Route | undefined {
  const parts = pathname
    .split('/')
    .filter((part) => part !== '')
    .map(decodeURIComponent);
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
  const type = ctx.store.types.get(rest[0] ?? '');
  if (!type || type.group !== group || type.version !== version) return undefined;
  if (namespace !== undefined && !type.namespaced) return undefined;
  return { type, namespace, name: rest[1] };
}

export function verbOf(method: string, target: Route | undefined, query: URLSearchParams): ApiVerb {
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
}

export function sendJson(res: ServerResponse, entry: RequestRecord, status: number, body: unknown): void {
  entry.status = status;
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function handleList(
  ctx: HandlerContext,
  res: ServerResponse,
  entry: RequestRecord,
  target: Route,
  query: URLSearchParams,
): void {
  const labels = parseLabelSelector(query.get('labelSelector') ?? '');
  const fields = parseFieldSelector(query.get('fieldSelector') ?? '', target.type);
  const limit = Number.parseInt(query.get('limit') ?? '0', 10) || 0;
  let after = '';
  let listRevision = ctx.store.revision;
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
    if (parsed.rv < ctx.store.compactedRevision) {
      throw new ApiError(
        410,
        'Expired',
        'The provided continue parameter is too old to display a consistent list result.',
      );
    }
    after = parsed.start;
    listRevision = parsed.rv;
  }
  const matching = ctx.store
    .sortedObjects(target.type.resource)
    .filter(
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
  sendJson(res, entry, 200, {
    kind: `${target.type.kind}List`,
    apiVersion: apiVersionOf(target.type),
    metadata,
    items,
  });
}

export function handleWatch(
  ctx: HandlerContext,
  res: ServerResponse,
  entry: RequestRecord,
  target: Route,
  query: URLSearchParams,
): void {
  const labels = parseLabelSelector(query.get('labelSelector') ?? '');
  const fields = parseFieldSelector(query.get('fieldSelector') ?? '', target.type);
  const rvText = query.get('resourceVersion') ?? '';
  if (rvText !== '' && !/^\d+$/.test(rvText)) {
    throw new ApiError(400, 'BadRequest', `invalid resource version "${rvText}"`);
  }
  const from = rvText === '' ? 0 : Number(rvText);
  const expired = from !== 0 && from < ctx.store.compactedRevision;
  const expiredMessage = `too old resource version: ${from} (${ctx.store.compactedRevision})`;
  if (expired && ctx.expiredWatch() === 'http-410') throw new ApiError(410, 'Expired', expiredMessage);

  entry.status = 200;
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Transfer-Encoding': 'chunked',
    'Cache-Control': 'no-cache',
  });
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
    bookmarks: query.get('allowWatchBookmarks') === 'true' || ctx.options.bookmarksWithoutOptIn === true,
    res,
  };
  if (from === 0) {
    for (const [, obj] of ctx.store.sortedObjects(target.type.resource)) {
      if (ctx.store.watcherMatches(watcher, obj)) writeEvent(watcher, 'ADDED', obj);
    }
  } else {
    for (const past of ctx.store.history) if (past.revision > from) ctx.store.deliver(watcher, past);
  }
  ctx.store.watchers.add(watcher);
  res.on('close', () => ctx.store.closeWatcher(watcher));
  const timeoutSeconds =
    Number.parseInt(query.get('timeoutSeconds') ?? '', 10) || ctx.options.defaultWatchTimeoutSeconds;
  if (timeoutSeconds && timeoutSeconds > 0) {
    watcher.timer = setTimeout(() => {
      ctx.store.closeWatcher(watcher);
      res.end();
    }, timeoutSeconds * 1000);
    watcher.timer.unref();
  }
}

export async function handleWrite(
  ctx: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  entry: RequestRecord,
  target: Route,
  verb: ApiVerb,
): Promise<void> {
  const resource = target.type.resource;
  if (verb === 'delete') {
    const gone = ctx.store.delete(resource, target.namespace, target.name ?? '');
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
      throw new ApiError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unsupported patch type: ${contentType}`,
      );
    }
    const current = ctx.store.get(resource, target.namespace, target.name ?? '');
    if (!current) throw new ApiError(404, 'NotFound', `${resource} "${target.name}" not found`);
    const patched = mergePatch(current, body) as KubeObject;
    patched.metadata = { ...patched.metadata, name: current.metadata.name, namespace: current.metadata.namespace };
    sendJson(res, entry, 200, ctx.store.update(resource, patched));
    return;
  }
  const obj = body as KubeObject;
  if (obj.kind !== undefined && obj.kind !== target.type.kind) {
    throw new ApiError(
      400,
      'BadRequest',
      `the kind of the provided object (${String(obj.kind)}) is not ${target.type.kind}`,
    );
  }
  const metadata = { ...(obj.metadata ?? {}) };
  if (target.namespace !== undefined) {
    if (metadata.namespace && metadata.namespace !== target.namespace) {
      throw new ApiError(
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    metadata.namespace = target.namespace;
  }
  if (verb === 'update') {
    if (metadata.name !== target.name) {
      throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    }
    sendJson(res, entry, 200, ctx.store.update(resource, { ...obj, metadata }));
    return;
  }
  sendJson(res, entry, 201, ctx.store.create(resource, { ...obj, metadata }));
}
