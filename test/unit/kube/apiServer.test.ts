// The real @kubernetes/client-node 1.4 informer (ListWatch) against the test API server: events, selectors,
// dropped watches, 410 in both forms, server restarts, bookmarks, and posting Events. These tests also pin
// down how client-node behaves (see the header of test/helpers/kubeApiServer.ts), so the cluster agent
// can rely on it; if an upgrade changes that behaviour, a test here fails.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ListWatch,
  Watch,
  makeInformer,
  type CoreV1Event,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  type V1ConfigMap,
  type V1Pod,
} from '@kubernetes/client-node';
import { configMap, pod, sleep, startKubeTestEnv, waitFor, type KubeTestEnv } from './support.js';

const ALLOWLIST_SELECTOR = 'meshgate.io/egress-allowlist=true';
const ALLOWLIST_LABELS = { 'meshgate.io/egress-allowlist': 'true' };

type TestInformer<T extends KubernetesObject> = Informer<T> & ObjectCache<T> & { latestResourceVersion?: () => string };

/** Every callback of an informer, as "verb namespace/name" lines, plus the errors. */
function recordCallbacks<T extends KubernetesObject>(informer: Informer<T>) {
  const seen: string[] = [];
  const errors: unknown[] = [];
  let connects = 0;
  const name = (obj: T) => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
  informer.on('add', (obj) => seen.push(`add ${name(obj)}`));
  informer.on('update', (obj) => seen.push(`update ${name(obj)}`));
  informer.on('delete', (obj) => seen.push(`delete ${name(obj)}`));
  informer.on('error', (err) => errors.push(err));
  informer.on('connect', () => connects++);
  return { seen, errors, connects: () => connects };
}

function allowlistInformer(env: KubeTestEnv): TestInformer<V1ConfigMap> {
  return makeInformer<V1ConfigMap>(
    env.kubeConfig,
    '/api/v1/configmaps',
    () => env.coreApi.listConfigMapForAllNamespaces({ labelSelector: ALLOWLIST_SELECTOR }),
    ALLOWLIST_SELECTOR,
  );
}

function sortedNames<T extends KubernetesObject>(cache: ObjectCache<T>): string[] {
  return cache
    .list()
    .map((obj) => `${obj.metadata?.namespace}/${obj.metadata?.name}`)
    .sort();
}

describe('client-node informer against the test API server', () => {
  let env: KubeTestEnv;
  const informers: Informer<KubernetesObject>[] = [];
  const track = <T extends KubernetesObject>(informer: TestInformer<T>): TestInformer<T> => {
    informers.push(informer as unknown as Informer<KubernetesObject>);
    return informer;
  };

  beforeEach(async () => {
    env = await startKubeTestEnv();
  });
  afterEach(async () => {
    for (const informer of informers.splice(0)) await informer.stop();
    await env.close();
  });

  it('lists then watches allowlist ConfigMaps by label selector, with the paths the agent expects', async () => {
    env.server.create('configmaps', configMap('a', 'pre-existing', ALLOWLIST_LABELS));
    env.server.create('configmaps', configMap('a', 'unlabelled'));
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    await informer.start();
    await waitFor('the initial add', () => events.seen.length === 1);
    assert.deepEqual(events.seen, ['add a/pre-existing']);

    const [list, watch] = env.server.requests({ resource: 'configmaps' });
    assert.equal(list?.verb, 'list');
    assert.equal(list?.path, '/api/v1/configmaps');
    assert.equal(list?.query['labelSelector'], ALLOWLIST_SELECTOR);
    assert.equal(watch?.verb, 'watch');
    assert.equal(watch?.path, '/api/v1/configmaps');
    assert.deepEqual(watch?.query, {
      watch: 'true',
      resourceVersion: String(env.server.resourceVersion()),
      labelSelector: ALLOWLIST_SELECTOR,
    });

    env.server.create('configmaps', configMap('b', 'stripe', ALLOWLIST_LABELS, { egress: '[]' }));
    env.server.create('configmaps', configMap('b', 'ignored'));
    env.server.patch('configmaps', 'b', 'stripe', (cm) => {
      cm['data'] = { egress: '- name: stripe' };
    });
    env.server.patch('configmaps', 'b', 'ignored', (cm) => {
      cm.metadata.labels = { ...ALLOWLIST_LABELS };
    });
    env.server.patch('configmaps', 'a', 'pre-existing', (cm) => {
      cm.metadata.labels = {};
    });
    env.server.delete('configmaps', 'b', 'stripe');
    await waitFor('six watch callbacks', () => events.seen.length === 6);
    assert.deepEqual(events.seen, [
      'add a/pre-existing',
      'add b/stripe',
      'update b/stripe',
      'add b/ignored', // started to match the selector
      'delete a/pre-existing', // stopped matching it
      'delete b/stripe',
    ]);
    assert.deepEqual(sortedNames(informer), ['b/ignored']);
    assert.equal(informer.latestResourceVersion?.(), String(env.server.resourceVersion()));
    assert.deepEqual(events.errors, []);
  });

  it('watches the pods of one node with a field selector (ListWatch, since makeInformer takes none)', async () => {
    const selector = 'spec.nodeName=node-a';
    env.server.create('pods', pod('a', 'here', 'node-a'));
    env.server.create('pods', pod('a', 'elsewhere', 'node-b'));
    const informer = track(
      new ListWatch<V1Pod>(
        '/api/v1/pods',
        new Watch(env.kubeConfig),
        () => env.coreApi.listPodForAllNamespaces({ fieldSelector: selector }),
        false,
        undefined,
        selector,
      ),
    );
    const events = recordCallbacks(informer);
    await informer.start();
    await waitFor('the initial add', () => events.seen.length === 1);

    env.server.create('pods', pod('b', 'new-here', 'node-a'));
    env.server.create('pods', pod('b', 'new-elsewhere', 'node-b'));
    env.server.patch('pods', 'a', 'here', (p) => {
      p['status'] = { phase: 'Running', podIP: '10.0.0.7' };
    });
    env.server.patch('pods', 'a', 'elsewhere', (p) => {
      p['status'] = { phase: 'Running' };
    });
    env.server.delete('pods', 'a', 'here');
    env.server.delete('pods', 'a', 'elsewhere');
    await waitFor('four callbacks', () => events.seen.length === 4);
    await sleep(50); // nothing about node-b may follow
    assert.deepEqual(events.seen, ['add a/here', 'add b/new-here', 'update a/here', 'delete a/here']);
    assert.deepEqual(sortedNames(informer), ['b/new-here']);
    const watch = env.server.requests({ verb: 'watch', resource: 'pods' })[0];
    assert.equal(watch?.query['fieldSelector'], selector);
    assert.equal(env.server.requests({ verb: 'list', resource: 'pods' })[0]?.query['fieldSelector'], selector);
  });

  it('watches the global ConfigMap by name in its namespace', async () => {
    const selector = 'metadata.name=osm-config';
    env.server.create('configmaps', configMap('osm-system', 'osm-config', {}, { egress: 'false' }));
    env.server.create('configmaps', configMap('osm-system', 'other'));
    env.server.create('configmaps', configMap('elsewhere', 'osm-config'));
    const informer = track(
      new ListWatch<V1ConfigMap>(
        '/api/v1/namespaces/osm-system/configmaps',
        new Watch(env.kubeConfig),
        () => env.coreApi.listNamespacedConfigMap({ namespace: 'osm-system', fieldSelector: selector }),
        false,
        undefined,
        selector,
      ),
    );
    const events = recordCallbacks(informer);
    await informer.start();
    env.server.patch('configmaps', 'osm-system', 'osm-config', (cm) => {
      cm['data'] = { egress: 'true' };
    });
    env.server.patch('configmaps', 'elsewhere', 'osm-config', (cm) => {
      cm['data'] = { egress: 'true' };
    });
    await waitFor('add and update', () => events.seen.length === 2);
    await sleep(50);
    assert.deepEqual(events.seen, ['add osm-system/osm-config', 'update osm-system/osm-config']);
    assert.equal(informer.get('osm-config', 'osm-system')?.data?.['egress'], 'true');
    const [list, watch] = env.server.requests({ resource: 'configmaps' });
    assert.equal(list?.path, '/api/v1/namespaces/osm-system/configmaps');
    assert.equal(list?.query['fieldSelector'], selector);
    assert.equal(watch?.path, '/api/v1/namespaces/osm-system/configmaps');
    assert.equal(watch?.query['fieldSelector'], selector);
  });

  it('re-watches at once from its last resourceVersion, without a relist, when a watch ends cleanly', async () => {
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    await informer.start();
    env.server.create('configmaps', configMap('a', 'one', ALLOWLIST_LABELS));
    await waitFor('the add', () => events.seen.length === 1);
    const rvBefore = String(env.server.resourceVersion());

    assert.equal(env.server.endWatches(), 1);
    await waitFor(
      'a second watch',
      () => env.server.openWatches('configmaps') === 1 && env.server.counts('configmaps').watch === 2,
    );
    env.server.create('configmaps', configMap('a', 'two', ALLOWLIST_LABELS));
    await waitFor('the second add', () => events.seen.length === 2);

    assert.deepEqual(events.seen, ['add a/one', 'add a/two']);
    assert.deepEqual(env.server.counts('configmaps'), { list: 1, watch: 2 });
    assert.equal(env.server.requests({ verb: 'watch' })[1]?.query['resourceVersion'], rvBefore);
    assert.equal(events.connects(), 2);
    assert.deepEqual(events.errors, []);
  });

  it('a dropped watch socket is an error that stops the informer; start() resumes without a relist or lost events', async () => {
    env.server.create('configmaps', configMap('a', 'kept', ALLOWLIST_LABELS));
    env.server.create('configmaps', configMap('a', 'removed', ALLOWLIST_LABELS));
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    await informer.start();
    await waitFor('two adds', () => events.seen.length === 2);

    assert.equal(env.server.dropWatches(), 1);
    await waitFor('the error callback', () => events.errors.length === 1);
    assert.match(String((events.errors[0] as Error).message), /Premature close/);
    // While nobody watches: the informer does not retry by itself.
    env.server.patch('configmaps', 'a', 'kept', (cm) => {
      cm['data'] = { changed: 'yes' };
    });
    env.server.delete('configmaps', 'a', 'removed');
    env.server.create('configmaps', configMap('b', 'added', ALLOWLIST_LABELS));
    await sleep(200);
    assert.deepEqual(env.server.counts('configmaps'), { list: 1, watch: 1 });

    await informer.start();
    await waitFor('the three missed changes', () => events.seen.length === 5);
    assert.deepEqual(events.seen.slice(2), ['update a/kept', 'delete a/removed', 'add b/added']);
    assert.deepEqual(sortedNames(informer), ['a/kept', 'b/added']);
    assert.deepEqual(env.server.counts('configmaps'), { list: 1, watch: 2 });
    assert.equal(events.errors.length, 1);
  });

  for (const mode of ['error-event', 'http-410'] as const) {
    it(`relists and ends with the right cache when the re-watch is expired (410 as ${mode})`, async () => {
      env.server.setExpiredWatchResponse(mode);
      env.server.create('configmaps', configMap('a', 'kept', ALLOWLIST_LABELS));
      env.server.create('configmaps', configMap('a', 'changed', ALLOWLIST_LABELS));
      env.server.create('configmaps', configMap('a', 'removed', ALLOWLIST_LABELS));
      const informer = track(allowlistInformer(env));
      const events = recordCallbacks(informer);
      await informer.start();
      await waitFor('three adds', () => events.seen.length === 3);

      // The watch ends and the re-watch is parked while the history moves on and is compacted away.
      const release = env.server.hold({ verb: 'watch' });
      env.server.endWatches();
      await waitFor('the parked re-watch', () => env.server.counts('configmaps').watch === 2);
      env.server.patch('configmaps', 'a', 'changed', (cm) => {
        cm['data'] = { v: '2' };
      });
      env.server.delete('configmaps', 'a', 'removed');
      env.server.create('configmaps', configMap('b', 'added', ALLOWLIST_LABELS));
      env.server.compact();
      release();

      await waitFor(
        'the relist and a live watch',
        () => env.server.counts('configmaps').list === 2 && env.server.openWatches() === 1,
      );
      const rewatch = env.server.requests({ verb: 'watch' })[1];
      assert.equal(rewatch?.status, mode === 'http-410' ? 410 : 200);
      assert.deepEqual(sortedNames(informer), ['a/changed', 'a/kept', 'b/added']);
      assert.deepEqual(informer.get('changed', 'a')?.data, { v: '2' });
      assert.deepEqual(events.seen.slice(3).sort(), ['add b/added', 'delete a/removed', 'update a/changed']);
      assert.deepEqual(events.errors, [], '410 is handled without an error callback');
      // The watch after the relist starts from the list's resourceVersion and sees live changes.
      assert.equal(
        env.server.requests({ verb: 'watch' })[2]?.query['resourceVersion'],
        String(env.server.resourceVersion()),
      );
      env.server.create('configmaps', configMap('b', 'live', ALLOWLIST_LABELS));
      await waitFor('a live add after the relist', () => events.seen.includes('add b/live'));
    });
  }

  it('server down: the informer reports an error and stays stopped; after restart(), start() recovers', async () => {
    env.server.create('configmaps', configMap('a', 'one', ALLOWLIST_LABELS));
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    await informer.start();
    await waitFor('the add', () => events.seen.length === 1);
    const port = env.server.port;

    await env.server.stop();
    await waitFor('the error callback', () => events.errors.length === 1);
    env.server.create('configmaps', configMap('a', 'two', ALLOWLIST_LABELS));
    env.server.delete('configmaps', 'a', 'one');

    // start() while the server is down: connection refused, one more error, stopped again.
    await informer.start();
    await waitFor('the second error', () => events.errors.length === 2);
    assert.equal((events.errors[1] as { code?: string }).code, 'ECONNREFUSED');

    await env.server.restart();
    assert.equal(env.server.port, port);
    await sleep(100);
    assert.equal(env.server.requests().length, 2, 'no request arrives until the caller calls start() again');
    await informer.start();
    await waitFor('the missed changes', () => events.seen.length === 3);
    assert.deepEqual(events.seen, ['add a/one', 'add a/two', 'delete a/one']);
    assert.deepEqual(sortedNames(informer), ['a/two']);
    assert.deepEqual(env.server.counts('configmaps'), { list: 1, watch: 2 });
  });

  it('an HTTP error on the watch is reported once and not retried', async () => {
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    env.server.failNext({ verb: 'watch', status: 500 });
    await informer.start();
    await waitFor('the error callback', () => events.errors.length === 1);
    assert.equal((events.errors[0] as { statusCode?: number }).statusCode, 500);
    await sleep(200);
    assert.deepEqual(env.server.counts('configmaps'), { list: 1, watch: 1 });
  });

  it('a failed list is reported and not retried', async () => {
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    env.server.failNext({ verb: 'list', status: 503 });
    await informer.start();
    await waitFor('the error callback', () => events.errors.length === 1);
    assert.equal((events.errors[0] as { code?: number }).code, 503);
    await sleep(100);
    assert.deepEqual(env.server.counts('configmaps'), { list: 1, watch: 0 });
    await informer.start();
    await waitFor('a watch after the second start', () => env.server.openWatches() === 1);
    assert.deepEqual(env.server.counts('configmaps'), { list: 2, watch: 1 });
  });

  it('accepts bookmarks: they advance its resourceVersion, so a re-watch after compaction needs no relist', async () => {
    await env.close();
    env = await startKubeTestEnv({ bookmarksWithoutOptIn: true });
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    await informer.start();
    await waitFor('the watch', () => env.server.openWatches() === 1);
    for (let i = 0; i < 3; i++) env.server.create('pods', pod('a', `p${i}`, 'node-a'));
    const current = String(env.server.resourceVersion());
    assert.notEqual(informer.latestResourceVersion?.(), current);

    assert.equal(env.server.sendBookmarks(), 1);
    await waitFor('the bookmark', () => informer.latestResourceVersion?.() === current);
    env.server.compact();
    env.server.endWatches();
    await waitFor('the re-watch', () => env.server.counts('configmaps').watch === 2 && env.server.openWatches() === 1);
    assert.equal(env.server.requests({ verb: 'watch' })[1]?.status, 200);
    assert.equal(env.server.counts('configmaps').list, 1);
    assert.deepEqual(events.seen, []);
    assert.deepEqual(events.errors, []);
  });

  it('stop() aborts the watch, and the abort arrives as an AbortError through the error callback', async () => {
    const informer = allowlistInformer(env);
    const events = recordCallbacks(informer);
    await informer.start();
    await waitFor('the watch', () => env.server.openWatches() === 1);
    await informer.stop();
    await waitFor('the watch to close', () => env.server.openWatches() === 0);
    await waitFor('the abort error', () => events.errors.length === 1);
    assert.equal((events.errors[0] as Error).name, 'AbortError');
    await sleep(100);
    assert.equal(env.server.counts('configmaps').watch, 1, 'no re-watch after stop()');
  });

  it('quirk: stop() while the list is in flight does not stop the watch that follows it', async () => {
    const informer = track(allowlistInformer(env));
    const release = env.server.hold({ verb: 'list' });
    const started = informer.start();
    await waitFor('the parked list', () => env.server.counts('configmaps').list === 1);
    await informer.stop();
    release();
    await started;
    await waitFor('the watch it opens anyway', () => env.server.openWatches() === 1);
    // Only a second stop() ends it; the agent must stop() again after start() settles.
    await informer.stop();
    await waitFor('the watch to close', () => env.server.openWatches() === 0);
  });

  it('list objects are deserialised (Date timestamps) while watch objects are raw JSON (string timestamps)', async () => {
    env.server.create('configmaps', configMap('a', 'listed', ALLOWLIST_LABELS));
    const informer = track(allowlistInformer(env));
    const events = recordCallbacks(informer);
    await informer.start();
    env.server.create('configmaps', configMap('a', 'watched', ALLOWLIST_LABELS));
    await waitFor('two adds', () => events.seen.length === 2);
    assert.ok(informer.get('listed', 'a')?.metadata?.creationTimestamp instanceof Date);
    assert.equal(typeof informer.get('watched', 'a')?.metadata?.creationTimestamp, 'string');
    assert.equal(informer.get('listed', 'a')?.kind, undefined, 'list items carry no kind, as on a real server');
    assert.equal(informer.get('watched', 'a')?.kind, 'ConfigMap');
  });

  it('CoreV1Api.createNamespacedEvent posts an Event that the server stores', async () => {
    const cm = env.server.create('configmaps', configMap('b', 'allowlist', ALLOWLIST_LABELS));
    const body: CoreV1Event = {
      metadata: { generateName: 'allowlist.', namespace: 'b' },
      involvedObject: {
        kind: 'ConfigMap',
        apiVersion: 'v1',
        namespace: 'b',
        name: 'allowlist',
        uid: cm.metadata.uid,
        resourceVersion: cm.metadata.resourceVersion,
      },
      reason: 'ConfigRejected',
      message: 'egress[0].ports: required',
      type: 'Warning',
      source: { component: 'meshgate', host: 'node-a' },
      reportingComponent: 'meshgate',
      reportingInstance: 'node-a',
      firstTimestamp: new Date('2024-01-01T00:00:00Z'),
      lastTimestamp: new Date('2024-01-01T00:00:00Z'),
      count: 1,
    };
    const created = await env.coreApi.createNamespacedEvent({ namespace: 'b', body });
    assert.match(created.metadata.name ?? '', /^allowlist\./);
    assert.ok(created.metadata.uid);

    const stored = env.server.list('events', 'b');
    assert.equal(stored.length, 1);
    assert.equal(stored[0]?.metadata.name, created.metadata.name);
    assert.equal(stored[0]?.['reason'], 'ConfigRejected');
    assert.equal(stored[0]?.['type'], 'Warning');
    assert.equal(stored[0]?.['firstTimestamp'], '2024-01-01T00:00:00.000Z');
    assert.deepEqual((stored[0]?.['involvedObject'] as Record<string, unknown>)['uid'], cm.metadata.uid);
    const post = env.server.requests({ verb: 'create' })[0];
    assert.equal(post?.method, 'POST');
    assert.equal(post?.path, '/api/v1/namespaces/b/events');
    assert.equal(post?.status, 201);

    const byObject = await env.coreApi.listNamespacedEvent({
      namespace: 'b',
      fieldSelector: `involvedObject.name=allowlist,involvedObject.kind=ConfigMap,reason=ConfigRejected`,
    });
    assert.equal(byObject.items.length, 1);
  });
});
