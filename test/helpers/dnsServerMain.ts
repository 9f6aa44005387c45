// The test DNS server as its own process, to run inside a test netns
// (`ip netns exec NS node dnsServerMain.js --port P [--address A]`). Commands
// arrive as JSON lines on stdin:
//   {"records": {...}}                         replace the table (DnsTestRecords)
//   {"send": {"hex": "...", "port": N, "address": "A"}}   send raw bytes from the server socket
// It prints {"listening": PORT} once, then {"ok": N} after each command N (1-based).
import { createInterface } from 'node:readline';
import { startDnsServer } from './dnsServer.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const server = await startDnsServer({}, { address: arg('--address') ?? '127.0.0.1', port: Number(arg('--port') ?? 0) });
process.stdout.write(`${JSON.stringify({ listening: server.port })}\n`);
let n = 0;
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  void (async () => {
    const cmd = JSON.parse(line) as {
      records?: Parameters<typeof server.setRecords>[0];
      send?: { hex: string; port: number; address: string };
    };
    if (cmd.records) server.setRecords(cmd.records);
    if (cmd.send) await server.send(Buffer.from(cmd.send.hex, 'hex'), cmd.send.port, cmd.send.address);
    process.stdout.write(`${JSON.stringify({ ok: ++n })}\n`);
  })();
});
lines.on('close', () => void server.stop().then(() => process.exit(0)));
