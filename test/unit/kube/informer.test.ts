// meshgate's own client and informer against the Kubernetes API test server: kubeconfig reading,
// list + watch into a cache, re-watch on a clean end, relist on 410 Gone, restart after the server
// was away, and Events created with POST.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClient, loadKubeConnection } from '../../../src/kube/client.js';
import { ResilientInformer } from '../../../src/kube/informer.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../../helpers/kubeApiServer.js';
import { waitFor } from './support.js';

const cm = (namespace: string, name: string, data: Record<string, string>, labels?: Record<string, string>) =>
  ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    data,
  }) as unknown as KubeObject;

describe('kubeconfig', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'mgtest-kubeconfig-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  const write = async (
    user: string,
    cluster = `server: https://api.example:6443\n      certificate-authority-data: ${Buffer.from('CA').toString('base64')}`,
  ) => {
    const file = join(dir, `kc-${Math.random().toString(16).slice(2)}`);
    await writeFile(
      file,
      `apiVersion: v1
kind: Config
clusters:
  - name: other
    cluster: {server: https://wrong.example}
  - name: c
    cluster:
      ${cluster}
users:
  - name: u
    user: ${user}
contexts:
  - name: ctx
    context: {cluster: c, user: u}
current-context: ctx
`,
    );
    return file;
  };

  test('the current context names the server, the CA and a bearer token', async () => {
    const conn = await loadKubeConnection(await write('{token: abc}'));
    assert.equal(conn.server.href, 'https://api.example:6443/');
    assert.deepEqual(await conn.headers(), { authorization: 'Bearer abc' });
    assert.equal(String((conn.agent as unknown as { options: { ca: Buffer } }).options.ca), 'CA');
  });

  test('a tokenFile is read again for every request (rotated tokens work)', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'first\n');
    const conn = await loadKubeConnection(await write(`{tokenFile: ${tokenFile}}`));
    assert.deepEqual(await conn.headers(), { authorization: 'Bearer first' });
    await writeFile(tokenFile, 'second');
    assert.deepEqual(await conn.headers(), { authorization: 'Bearer second' });
  });

  test('client certificates and insecure-skip-tls-verify reach the TLS agent', async () => {
    const conn = await loadKubeConnection(
      await write(
        `{client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key-data: ${Buffer.from('KEY').toString('base64')}}`,
        'server: https://api.example\n      insecure-skip-tls-verify: true',
      ),
    );
    const options = (conn.agent as unknown as { options: { cert: Buffer; key: Buffer; rejectUnauthorized: boolean } })
      .options;
    assert.deepEqual([String(options.cert), String(options.key), options.rejectUnauthorized], ['CERT', 'KEY', false]);
    assert.deepEqual(await conn.headers(), {});
  });

  test('a missing context is an error that names it', async () => {
    const file = join(dir, 'broken');
    await writeFile(file, 'apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n');
    await assert.rejects(loadKubeConnection(file), /no context named "nope"/);
  });
});

describe('informer against the API test server', () => {
  let api: KubeApiServer;
  let dir: string;
  let client: KubeClient;
  before(async () => {
    api = await startKubeApiServer();
    dir = await mkdtemp(join(tmpdir(), 'mgtest-informer-'));
    client = new KubeClient(await loadKubeConnection(await api.writeKubeconfig(dir)));
  });
  after(async () => {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('lists, watches, re-watches after a clean end, relists after 410 and recovers after an outage', async () => {
    api.create('configmaps', cm('a', 'one', { k: '1' }, { pick: 'yes' }));
    api.create('configmaps', cm('a', 'other', { k: '1' }));
    const changes: string[] = [];
    const informer = new ResilientInformer<V1ConfigMap>(client, {
      name: 'cms',
      path: '/api/v1/configmaps',
      labelSelector: 'pick=yes',
      log: pino({ level: 'silent' }),
      onChange: (what) => changes.push(what),
      backoffMs: { initial: 20, max: 50 },
    });
    try {
      await informer.start();
      assert.equal(informer.synced, true);
      assert.deepEqual(
        informer.list().map((c) => c.metadata?.name),
        ['one'],
      );
      assert.deepEqual(changes, ['cms add a/one', 'cms synced']);

      api.update('configmaps', cm('a', 'one', { k: '2' }, { pick: 'yes' }));
      await waitFor('the update', () => informer.get('one', 'a')?.data?.['k'] === '2');
      api.endWatches(); // a server-side timeout: the informer re-watches from its resourceVersion
      api.create('configmaps', cm('b', 'two', { k: '1' }, { pick: 'yes' }));
      await waitFor('the add after the re-watch', () => informer.get('two', 'b') !== undefined);

      api.compact(); // history gone: the next watch gets 410 and the informer relists
      api.delete('configmaps', 'a', 'one');
      api.dropWatches();
      await waitFor('the deletion seen by the relist', () => informer.get('one', 'a') === undefined);
      assert.ok(changes.includes('cms delete a/one'));

      await api.stop();
      await waitFor('a restart to be scheduled', () => informer.restarts > 0, 3000);
      api.create('configmaps', cm('c', 'three', {}, { pick: 'yes' }));
      await api.restart();
      await waitFor(
        'the object created while the informer was away',
        () => informer.get('three', 'c') !== undefined,
        5000,
      );
    } finally {
      await informer.stop();
    }
  });

  test("request() posts JSON and reports a failure with the server's status and message", async () => {
    const created = await client.request<{ metadata: { name: string } }>('POST', '/api/v1/namespaces/a/events', {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'e1', namespace: 'a' },
      involvedObject: { kind: 'ConfigMap', name: 'x' },
      reason: 'R',
      message: 'm',
    });
    assert.equal(created.metadata.name, 'e1');
    await assert.rejects(
      client.request('GET', '/api/v1/namespaces/a/configmaps/missing'),
      (err: Error & { statusCode?: number }) => err.statusCode === 404 && /HTTP 404/.test(err.message),
    );
  });
});
