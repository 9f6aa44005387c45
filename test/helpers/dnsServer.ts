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
}

/** Host name (any case) -> records. A name that is absent answers NXDOMAIN. */
export type DnsTestRecords = Readonly<Record<string, DnsTestRecord>>;

export interface DnsTestServer {
  readonly port: number;
  setRecords(records: DnsTestRecords): void;
  /** Number of questions received so far, answered or not. */
  queries(): number;
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

export async function startDnsServer(records: DnsTestRecords): Promise<DnsTestServer> {
  let table = normalise(records);
  let questionCount = 0;
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
      for (const answer of (type === 'A' ? record.a : record.aaaa) ?? []) {
        answers.push({ type, name: question.name, class: 'IN', ttl: answer.ttl, data: answer.address });
      }
    }
    // An empty NOERROR answer is NODATA, which the client reports as ENODATA.

    const response = encode({
      type: 'response',
      id: query.id ?? 0,
      flags:
        AUTHORITATIVE_ANSWER |
        RECURSION_AVAILABLE |
        (query.flag_rd ? RECURSION_DESIRED : 0) |
        rcode,
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
    socket.bind(0, '127.0.0.1', () => {
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
    stop(): Promise<void> {
      if (stopped) return Promise.resolve();
      stopped = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
