// How KubeClient (src/kube/client.ts) frames a watch stream: one JSON event per line, whatever
// the chunks the server's writes arrive in, and a stream cut off mid-line is an error, not an end.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { KubeClient } from '../../../src/kube/client.js';

/** A server whose one watch response is written as `chunks`, then ended (or its socket destroyed). */
async function serve(chunks: readonly Buffer[], end: 'end' | 'destroy') {
  const server = http.createServer(async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    for (const chunk of chunks) {
      res.write(chunk);
      await new Promise((r) => setTimeout(r, 5)); // separate reads on the client
    }
    if (end === 'end') res.end();
    else res.socket?.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent();
  const client = new KubeClient({
    server: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    agent,
    headers: async () => ({}),
  });
  const close = async () => {
    agent.destroy();
    await new Promise((r) => server.close(r));
  };
  return { client, close };
}

async function watchAll(client: KubeClient) {
  const events: Array<[string, unknown]> = [];
  const done = await new Promise<Error | null>((resolve) => {
    void client.watch('/api/v1/configmaps?watch=1', (type, object) => events.push([type, object]), resolve);
  });
  return { events, done };
}

test('events split across chunks, a character split across chunks, CRLF and a last line with no newline', async () => {
  const text =
    '{"type":"ADDED","object":{"name":"caf\u00e9 \u2603"}}\n\n' +
    '{"type":"MODIFIED","object":{"n":1}}\r\n' +
    'not json\n' +
    '{"type":"DELETED","object":{"n":2}}';
  const bytes = Buffer.from(text, 'utf8');
  const snowman = bytes.indexOf(Buffer.from('\u2603', 'utf8'));
  const cuts = [7, snowman + 1, snowman + 2, bytes.indexOf('\n') + 1, bytes.indexOf('MODIFIED') + 3, bytes.length];
  const chunks = cuts.map((cut, i) => bytes.subarray(i === 0 ? 0 : cuts[i - 1], cut));
  const { client, close } = await serve(chunks, 'end');
  try {
    const { events, done } = await watchAll(client);
    assert.equal(done, null);
    assert.deepEqual(events, [
      ['ADDED', { name: 'caf\u00e9 \u2603' }],
      ['MODIFIED', { n: 1 }],
      ['DELETED', { n: 2 }],
    ]);
  } finally {
    await close();
  }
});

test('a stream cut off mid-line ends the watch with an error, after the whole events before it', async () => {
  const { client, close } = await serve([Buffer.from('{"type":"ADDED","object":{"n":1}}\n{"type":"MODI')], 'destroy');
  try {
    const { events, done } = await watchAll(client);
    assert.ok(done instanceof Error, 'a cut stream is not a clean end');
    assert.deepEqual(events, [['ADDED', { n: 1 }]]);
  } finally {
    await close();
  }
});
