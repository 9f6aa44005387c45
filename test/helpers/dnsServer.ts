// A tiny authoritative DNS responder on 127.0.0.1 (UDP, OS-chosen port) for tests that exercise the
// real resolver path. It answers A and AAAA from an in-memory table and can simulate failures.
import { createSocket, type RemoteInfo } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import {
  AUTHORITATIVE_ANSWER,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  decode,
  encode,
  type Answer,
  type DecodedPacket,
} from 'dns-packet';

export interface DnsTestAnswer {
  readonly address: string;
  readonly ttl: number;
}

export interface DnsTestRecord {
  readonly a?: readonly DnsTestAnswer[];
  readonly aaaa?: readonly DnsTestAnswer[];
  /** NXDOMAIN and SERVFAIL answer with that rcode; DROP never answers (the client times out). */
  readonly fail?: 'NXDOMAIN' | 'SERVFAIL' | 'DROP';
  /** Answer one address per query, the next one each time (a round-robin pool). */
  readonly rotate?: boolean;
  /** Answer a CNAME to this name, followed by that name's records (a chain inside one answer). */
  readonly cname?: string;
}

export interface DnsServerOptions {
  /** default 127.0.0.1 */
  readonly address?: string;
  /** default 0: the OS chooses */
  readonly port?: number;
}

/** Host name (any case) -> records. A name that is absent answers NXDOMAIN. */
export type DnsTestRecords = Readonly<Record<string, DnsTestRecord>>;

export interface DnsTestServer {
  readonly port: number;
  setRecords(records: DnsTestRecords): void;
  /** Number of questions received so far, answered or not. */
  queries(): number;
  /** Sends raw bytes from the server's socket (an answer nobody asked for). */
  send(packet: Buffer, port: number, address: string): Promise<void>;
  stop(): Promise<void>;
}

const RCODE_NOERROR = 0;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

function normalise(records: DnsTestRecords): Map<string, DnsTestRecord> {
  const table = new Map<string, DnsTestRecord>();
  for (const [name, record] of Object.entries(records)) {
    table.set(name.toLowerCase().replace(/\.$/, ''), record);
  }
  return table;
}

export async function startDnsServer(records: DnsTestRecords, opts: DnsServerOptions = {}): Promise<DnsTestServer> {
  let table = normalise(records);
  let questionCount = 0;
  const rotation = new Map<string, number>();
  let stopped = false;
  const socket = createSocket('udp4');

  const respond = (message: Buffer, remote: RemoteInfo): void => {
    let query: DecodedPacket;
    try {
      query = decode(message);
    } catch {
      return; // not DNS: ignore, as a real server would
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    questionCount += 1;

    const record = table.get(question.name.toLowerCase().replace(/\.$/, ''));
    if (record?.fail === 'DROP') return;

    let rcode = RCODE_NOERROR;
    const answers: Answer[] = [];
    if (record === undefined || record.fail === 'NXDOMAIN') {
      rcode = RCODE_NXDOMAIN;
    } else if (record.fail === 'SERVFAIL') {
      rcode = RCODE_SERVFAIL;
    } else if (question.type === 'A' || question.type === 'AAAA') {
      const type = question.type;
      let owner = question.name;
      let current: DnsTestRecord | undefined = record;
      for (let hops = 0; current?.cname && hops < 8; hops++) {
        answers.push({ type: 'CNAME', name: owner, class: 'IN', ttl: 60, data: current.cname });
        owner = current.cname;
        current = table.get(owner.toLowerCase());
      }
      let list = (type === 'A' ? current?.a : current?.aaaa) ?? [];
      if (current?.rotate && list.length) {
        const n = rotation.get(owner) ?? 0;
        rotation.set(owner, n + 1);
        list = [list[n % list.length]!];
      }
      for (const answer of list) {
        answers.push({ type, name: owner, class: 'IN', ttl: answer.ttl, data: answer.address });
      }
    }
    // An empty NOERROR answer is NODATA, which the client reports as ENODATA.

    const response = encode({
      type: 'response',
      id: query.id ?? 0,
      flags: AUTHORITATIVE_ANSWER | RECURSION_AVAILABLE | (query.flag_rd ? RECURSION_DESIRED : 0) | rcode,
      questions: [question],
      answers,
    });
    if (!stopped) socket.send(response, remote.port, remote.address);
  };

  socket.on('message', respond);
  // A send error to a vanished client must not crash the test process.
  socket.on('error', () => undefined);

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(opts.port ?? 0, opts.address ?? '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const { port } = socket.address() as AddressInfo;

  return {
    port,
    setRecords(next: DnsTestRecords): void {
      table = normalise(next);
    },
    queries: () => questionCount,
    send: (packet, port, address) =>
      new Promise<void>((resolve, reject) =>
        socket.send(packet, port, address, (err) => (err ? reject(err) : resolve())),
      ),
    stop(): Promise<void> {
      if (stopped) return Promise.resolve();
      stopped = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
