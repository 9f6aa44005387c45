// The test API server's own protocol semantics (selectors, pagination, conflicts, Status errors, watch
// replay and expiry, bookmarks, timeouts), checked through client-node's API client and its Watch, or raw HTTP
// where client-node has no call for it.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ApiException, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import { configMap, pod, startKubeTestEnv, waitFor, type KubeTestEnv } from './support.js';

interface WatchLine {
  type: string;
  object: { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string } };
}

/** Opens a raw watch and collects its lines until the stream ends or `close()` is called. */
async function rawWatch(url: string) {
  const controller = new AbortController();
  const response = await fetch(url, { signal: controller.signal });
  const lines: WatchLine[] = [];
  let ended = false;
  const done = (async () => {
    let buffered = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += Buffer.from(chunk).toString('utf8');
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buffered.slice(0, newline)) as WatchLine);
          buffered = buffered.slice(newline + 1);
        }
      }
    } catch {
      // aborted by close()
    }
    ended = true;
  })();
  return {
    status: response.status,
    lines,
    ended: () => ended,
    summary: () => lines.map((line) => `${line.type} ${line.object.metadata?.name ?? line.object.reason ?? ''}`),
    async close() {
      controller.abort();
      await done;
    },
  };
}

async function apiError(promise: Promise<unknown>): Promise<ApiException<string>> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiException) return err as ApiException<string>;
    throw err;
  }
  throw new Error('expected an ApiException');
}

describe('test API server protocol', () => {
  let env: KubeTestEnv;
  beforeEach(async () => {
    env = await startKubeTestEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('answers lists in the real shape: <Kind>List, revision, sorted items without kind', async () => {
    env.server.create('configmaps', configMap('b', 'z'));
    env.server.create('configmaps', configMap('a', 'y'));
    const response = await fetch(`${env.server.url}/api/v1/configmaps`);
    assert.equal(response.headers.get('content-type'), 'application/json');
    const list = (await response.json()) as {
      kind: string;
      apiVersion: string;
      metadata: { resourceVersion: string };
      items: { kind?: string; metadata: { name: string } }[];
    };
    assert.equal(list.kind, 'ConfigMapList');
    assert.equal(list.apiVersion, 'v1');
    assert.equal(list.metadata.resourceVersion, '2');
    assert.deepEqual(
      list.items.map((item) => item.metadata.name),
      ['y', 'z'],
    );
    assert.equal(list.items[0]?.kind, undefined);
  });

  it('filters lists with equality, existence and set-based label selectors', async () => {
    env.server.create('configmaps', configMap('a', 'prod', { tier: 'prod', team: 'x' }));
    env.server.create('configmaps', configMap('a', 'dev', { tier: 'dev' }));
    env.server.create('configmaps', configMap('a', 'none'));
    const names = async (labelSelector: string) =>
      (await env.coreApi.listNamespacedConfigMap({ namespace: 'a', labelSelector })).items.map(
        (cm) => cm.metadata?.name,
      );
    assert.deepEqual(await names('tier=prod'), ['prod']);
    assert.deepEqual(await names('tier==prod,team=x'), ['prod']);
    assert.deepEqual(await names('tier!=prod'), ['dev', 'none']);
    assert.deepEqual(await names('tier'), ['dev', 'prod']);
    assert.deepEqual(await names('!tier'), ['none']);
    assert.deepEqual(await names('tier in (dev, prod),!team'), ['dev']);
    assert.deepEqual(await names('tier notin (dev)'), ['none', 'prod']);
    const bad = await apiError(names('tier in prod'));
    assert.equal(bad.code, 400);
    assert.match(String(bad.body), /"reason":"BadRequest"/);
  });

  it('filters by metadata and per-resource fields, and rejects unsupported field labels as a real server does', async () => {
    env.server.create('pods', pod('a', 'p1', 'node-a'));
    env.server.create('pods', pod('b', 'p2', 'node-a'));
    env.server.create('pods', pod('b', 'p3', 'node-b'));
    const names = async (fieldSelector: string) =>
      (await env.coreApi.listPodForAllNamespaces({ fieldSelector })).items.map((p) => p.metadata?.name);
    assert.deepEqual(await names('spec.nodeName=node-a'), ['p1', 'p2']);
    assert.deepEqual(await names('spec.nodeName=node-a,metadata.namespace!=a'), ['p2']);
    assert.deepEqual(await names('metadata.name==p3'), ['p3']);
    const bad = await apiError(names('spec.containers=x'));
    assert.equal(bad.code, 400);
    assert.match(String(bad.body), /field label not supported: spec.containers/);
  });

  it('paginates with limit and continue', async () => {
    for (const name of ['c1', 'c2', 'c3', 'c4', 'c5']) env.server.create('configmaps', configMap('a', name));
    const first = await env.coreApi.listNamespacedConfigMap({ namespace: 'a', limit: 2 });
    assert.deepEqual(
      first.items.map((cm) => cm.metadata?.name),
      ['c1', 'c2'],
    );
    assert.equal(first.metadata?.remainingItemCount, 3);
    const second = await env.coreApi.listNamespacedConfigMap({
      namespace: 'a',
      limit: 2,
      _continue: first.metadata?._continue,
    });
    assert.deepEqual(
      second.items.map((cm) => cm.metadata?.name),
      ['c3', 'c4'],
    );
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion);
    const last = await env.coreApi.listNamespacedConfigMap({
      namespace: 'a',
      limit: 2,
      _continue: second.metadata?._continue,
    });
    assert.deepEqual(
      last.items.map((cm) => cm.metadata?.name),
      ['c5'],
    );
    assert.equal(last.metadata?._continue, undefined);

    env.server.create('configmaps', configMap('a', 'c6'));
    env.server.compact();
    const expired = await apiError(
      env.coreApi.listNamespacedConfigMap({ namespace: 'a', limit: 2, _continue: first.metadata?._continue }),
    );
    assert.equal(expired.code, 410);
  });

  it('creates, replaces with optimistic concurrency, merge-patches and deletes over HTTP', async () => {
    const created = await env.coreApi.createNamespacedConfigMap({
      namespace: 'a',
      body: configMap('a', 'cm', {}, { k: '1' }),
    });
    assert.equal(created.metadata?.resourceVersion, '1');
    const duplicate = await apiError(
      env.coreApi.createNamespacedConfigMap({ namespace: 'a', body: configMap('a', 'cm') }),
    );
    assert.equal(duplicate.code, 409);
    assert.match(String(duplicate.body), /AlreadyExists/);

    const replaced = await env.coreApi.replaceNamespacedConfigMap({
      namespace: 'a',
      name: 'cm',
      body: { ...created, data: { k: '2' } },
    });
    assert.equal(replaced.metadata?.resourceVersion, '2');
    assert.equal(replaced.metadata?.uid, created.metadata?.uid);
    const stale = await apiError(
      env.coreApi.replaceNamespacedConfigMap({ namespace: 'a', name: 'cm', body: { ...created, data: { k: '3' } } }),
    );
    assert.equal(stale.code, 409);
    assert.match(String(stale.body), /"reason":"Conflict"/);

    const patched = await env.coreApi.patchNamespacedConfigMap(
      { namespace: 'a', name: 'cm', body: { metadata: { labels: { x: 'y' } }, data: { k: null, extra: 'e' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.deepEqual(patched.data, { extra: 'e' });
    assert.deepEqual(patched.metadata?.labels, { x: 'y' });

    await env.coreApi.deleteNamespacedConfigMap({ namespace: 'a', name: 'cm' });
    assert.equal(env.server.get('configmaps', 'a', 'cm'), undefined);
    const missing = await apiError(env.coreApi.readNamespacedConfigMap({ namespace: 'a', name: 'cm' }));
    assert.equal(missing.code, 404);
  });

  it('answers unknown paths and verbs with a Status body', async () => {
    const unknown = await fetch(`${env.server.url}/api/v1/widgets`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server could not find the requested resource (GET /api/v1/widgets)',
      reason: 'NotFound',
      code: 404,
    });
    const collectionPut = await fetch(`${env.server.url}/api/v1/namespaces/a/events`, { method: 'PUT', body: '{}' });
    assert.equal(collectionPut.status, 405);
    assert.equal(((await collectionPut.json()) as { reason: string }).reason, 'MethodNotAllowed');
  });

  it('a no-op update takes no resourceVersion and emits no event', async () => {
    const cm = env.server.create('configmaps', configMap('a', 'same', {}, { k: 'v' }));
    const again = env.server.update('configmaps', cm);
    assert.equal(again.metadata.resourceVersion, cm.metadata.resourceVersion);
    assert.equal(env.server.resourceVersion(), 1);
  });

  it('a watch without resourceVersion starts with ADDED for the current state; one from N replays what followed N', async () => {
    env.server.create('configmaps', configMap('a', 'one'));
    const fromNow = await rawWatch(`${env.server.url}/api/v1/namespaces/a/configmaps?watch=1`);
    env.server.create('configmaps', configMap('a', 'two'));
    env.server.create('configmaps', configMap('b', 'other-namespace'));
    env.server.delete('configmaps', 'a', 'one');
    const fromOne = await rawWatch(`${env.server.url}/api/v1/namespaces/a/configmaps?watch=true&resourceVersion=1`);
    try {
      await waitFor('three events on each', () => fromNow.lines.length === 3 && fromOne.lines.length === 2);
      assert.equal(fromNow.status, 200);
      assert.deepEqual(fromNow.summary(), ['ADDED one', 'ADDED two', 'DELETED one']);
      assert.deepEqual(fromOne.summary(), ['ADDED two', 'DELETED one']);
      const deleted = fromNow.lines[2];
      assert.equal(deleted?.object.kind, 'ConfigMap');
      assert.equal(deleted?.object.metadata?.resourceVersion, '4', 'a deletion takes its own resourceVersion');
    } finally {
      await fromNow.close();
      await fromOne.close();
    }
  });

  it('expires watches from before the history limit, as an ERROR event that ends the stream or as HTTP 410', async () => {
    await env.close();
    env = await startKubeTestEnv({ historyLimit: 2 });
    for (const name of ['c1', 'c2', 'c3', 'c4']) env.server.create('configmaps', configMap('a', name));
    const inWindow = await rawWatch(`${env.server.url}/api/v1/configmaps?watch=true&resourceVersion=2`);
    const expired = await rawWatch(`${env.server.url}/api/v1/configmaps?watch=true&resourceVersion=1`);
    try {
      await waitFor(
        'the replay and the end of the expired stream',
        () => inWindow.lines.length === 2 && expired.ended(),
      );
      assert.deepEqual(inWindow.summary(), ['ADDED c3', 'ADDED c4']);
      assert.equal(expired.status, 200);
      assert.deepEqual(
        expired.lines.map((line) => [line.type, line.object.kind, line.object.code, line.object.reason]),
        [['ERROR', 'Status', 410, 'Expired']],
      );
    } finally {
      await inWindow.close();
      await expired.close();
    }
    env.server.setExpiredWatchResponse('http-410');
    const plain = await fetch(`${env.server.url}/api/v1/configmaps?watch=true&resourceVersion=1`);
    assert.equal(plain.status, 410);
    assert.equal(((await plain.json()) as { reason: string }).reason, 'Expired');
  });

  it('ends a watch cleanly after timeoutSeconds', async () => {
    const started = Date.now();
    const watch = await rawWatch(`${env.server.url}/api/v1/pods?watch=true&timeoutSeconds=1`);
    await waitFor('the end of the stream', () => watch.ended(), 3000);
    assert.ok(Date.now() - started >= 900);
    assert.equal(env.server.openWatches(), 0);
  });

  it('sends periodic bookmarks to watches that allow them, through client-node Watch', async () => {
    await env.close();
    env = await startKubeTestEnv({ bookmarkIntervalMs: 50 });
    const seen: { type: string; resourceVersion?: string }[] = [];
    let done: unknown = 'open';
    const watch = new Watch(env.kubeConfig);
    const controller = await watch.watch(
      '/api/v1/pods',
      { allowWatchBookmarks: true },
      (type: string, obj: { metadata?: { resourceVersion?: string } }) =>
        seen.push({ type, resourceVersion: obj.metadata?.resourceVersion }),
      (err: unknown) => {
        done = err;
      },
    );
    const plain = await rawWatch(`${env.server.url}/api/v1/pods?watch=true`);
    try {
      env.server.create('configmaps', configMap('a', 'bump'));
      await waitFor('two bookmarks', () => seen.filter((event) => event.type === 'BOOKMARK').length >= 2);
      assert.deepEqual(seen[0], { type: 'BOOKMARK', resourceVersion: seen[0]?.resourceVersion });
      assert.equal(seen[seen.length - 1]?.resourceVersion, '1');
      assert.deepEqual(plain.lines, [], 'no bookmarks without allowWatchBookmarks');
    } finally {
      controller.abort();
      await plain.close();
    }
    await waitFor('the watch to close', () => done !== 'open' && env.server.openWatches() === 0);
  });

  it('holds, fails and logs requests on demand', async () => {
    const release = env.server.hold({ verb: 'list', resource: 'pods' });
    let answered = false;
    const listing = env.coreApi.listPodForAllNamespaces().then(() => {
      answered = true;
    });
    await waitFor('the held request', () => env.server.requests({ verb: 'list' }).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(answered, false);
    assert.equal(env.server.requests()[0]?.status, undefined);
    release();
    await listing;
    assert.equal(env.server.requests()[0]?.status, 200);

    env.server.failNext({ verb: 'get', status: 503, times: 2 });
    for (let i = 0; i < 2; i++) {
      assert.equal((await apiError(env.coreApi.readNamespace({ name: 'x' }))).code, 503);
    }
    assert.equal((await apiError(env.coreApi.readNamespace({ name: 'x' }))).code, 404);
    assert.deepEqual(env.server.counts('pods'), { list: 1, watch: 0 });
    env.server.clearRequests();
    assert.deepEqual(env.server.requests(), []);
  });
});
