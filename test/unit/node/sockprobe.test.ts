// sockprobe's command line, as the demo and the kernel tests build it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sockprobeArgv } from '../../../src/node/sockprobe.js';

test('place first, then the operation, then --kebab-case flags; true is bare, false and undefined are left out', () => {
  assert.deepEqual(
    sockprobeArgv({ netns: '/run/netns/n1', cgroup: '/cg/app' }, 'connect', {
      family: 4,
      addr: '10.0.0.1',
      port: 80,
      read: true,
      quiet: false,
      banner: undefined,
      timeoutMs: 500,
    }),
    [
      '--netns',
      '/run/netns/n1',
      '--cgroup',
      '/cg/app',
      'connect',
      '--family',
      '4',
      '--addr',
      '10.0.0.1',
      '--port',
      '80',
      '--read',
      '--timeout-ms',
      '500',
    ],
  );
  assert.deepEqual(sockprobeArgv({}, 'listen', { port: 1 }), ['listen', '--port', '1']);
});
