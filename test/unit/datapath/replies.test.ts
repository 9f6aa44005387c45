// The replies' user-space side: the kernel config and peer codecs (offsets from the BTF), and
// the agent's --udp-reply-timeout / --udp-reply-stream-timeout flags.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STRUCTS } from '../../../src/datapath/abi.generated.js';
import {
  REPLY_DEFAULTS,
  decodeReplyConfig,
  decodeReplyPeer,
  encodeReplyConfig,
} from '../../../src/datapath/replies.js';
import { replyOptions } from '../../../src/cli/commands/agent.js';
import { MeshgateError } from '../../../src/errors.js';

describe('reply codecs', () => {
  test('the config round-trips in milliseconds, and the defaults are conntrack UDP timeouts', () => {
    assert.deepEqual(REPLY_DEFAULTS, { unrepliedMs: 30_000, assuredMs: 120_000 });
    const b = encodeReplyConfig({ unrepliedMs: 300, assuredMs: 5000 });
    assert.equal(b.length, STRUCTS.mg_reply_config.size);
    assert.equal(b.readBigUInt64LE(STRUCTS.mg_reply_config.fields.unreplied_ns.offset), 300_000_000n);
    assert.deepEqual(decodeReplyConfig(b), { unrepliedMs: 300, assuredMs: 5000 });
  });

  test('a peer entry decodes its socket, address, port (network order), pod and replied flag', () => {
    const k = STRUCTS.mg_reply_key;
    const v = STRUCTS.mg_reply;
    const key = Buffer.alloc(k.size);
    key.writeBigUInt64LE(77n, k.fields.sock_cookie.offset);
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 77, 2]).copy(key, k.fields.addr.offset);
    key.writeUInt16BE(41000, k.fields.port.offset);
    const value = Buffer.alloc(v.size);
    value.writeBigUInt64LE(9n, v.fields.expires_ns.offset);
    value.writeBigUInt64LE(5n, v.fields.last_in_ns.offset);
    value.writeBigUInt64LE(1234n, v.fields.pod_cgroup_id.offset);
    value.writeUInt32LE(1, v.fields.flags.offset);
    assert.deepEqual(decodeReplyPeer(key, value), {
      sockCookie: 77n,
      peer: '192.168.77.2',
      port: 41000,
      podCgroupId: 1234n,
      assured: true,
      expiresNs: 9n,
      lastInNs: 5n,
    });
  });
});

describe('--udp-reply-timeout and --udp-reply-stream-timeout', () => {
  test('seconds, fractions allowed, become milliseconds', () => {
    assert.deepEqual(replyOptions({ udpReplyTimeout: '30', udpReplyStreamTimeout: '120' }), REPLY_DEFAULTS);
    assert.deepEqual(replyOptions({ udpReplyTimeout: '0.5', udpReplyStreamTimeout: '0.5' }), {
      unrepliedMs: 500,
      assuredMs: 500,
    });
  });

  test('a bad value is refused with MG_CLI_BAD_FLAG naming the flag and the value', () => {
    for (const [timeout, stream, flag] of [
      ['abc', '120', '--udp-reply-timeout'],
      ['0', '120', '--udp-reply-timeout'],
      ['', '120', '--udp-reply-timeout'],
      ['30', '-1', '--udp-reply-stream-timeout'],
      ['30', '86401', '--udp-reply-stream-timeout'],
      ['60', '30', '--udp-reply-stream-timeout'], // shorter than the unreplied lifetime
    ] as const) {
      assert.throws(
        () => replyOptions({ udpReplyTimeout: timeout, udpReplyStreamTimeout: stream }),
        (err: unknown) =>
          err instanceof MeshgateError && err.code === 'MG_CLI_BAD_FLAG' && err.message.startsWith(flag),
        `${timeout} / ${stream}`,
      );
    }
  });
});
