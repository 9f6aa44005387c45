// A small Kubernetes API client over node:https: what the agent needs (list,
// watch, create), from a kubeconfig file or the pod's service account.
// Loading @kubernetes/client-node costs the agent about 65 MB of RSS (its
// generated models and auth providers), more than the agent's whole idle
// budget, so the agent uses only its types and talks to the API itself. The
// library is loaded only for a kubeconfig user that needs its auth plugins
// (exec, auth-provider). See docs/decisions.md.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { MeshgateError } from '../errors.js';

/** Where the API server is and how to authenticate to it. */
export interface KubeConnection {
  readonly server: URL;
  readonly agent: http.Agent;
  /** Headers for every request (Authorization); re-read each time, so rotated tokens are picked up. */
  headers(): Promise<Record<string, string>>;
}

/** A failed request: the HTTP status (undefined for a network error), and the server's Status message. */
export class KubeApiError extends MeshgateError {
  constructor(
    message: string,
    readonly statusCode: number | undefined,
    options?: { cause?: unknown },
  ) {
    super('MG_KUBE_REQUEST_FAILED', message, options);
    this.name = 'KubeApiError';
  }
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function named(list: unknown, name: string | undefined, what: string, field: string): Obj {
  const found = Array.isArray(list) ? list.find((x) => isObj(x) && x['name'] === name) : undefined;
  if (!isObj(found) || !isObj(found[field]))
    throw new MeshgateError('MG_KUBECONFIG_INVALID', `kubeconfig: no ${what} named ${JSON.stringify(name)}`);
  return found[field] as Obj;
}

/** The service account's token, CA and the API's in-cluster address (what client-node's loadFromCluster reads). */
function inClusterConnection(): KubeConnection {
  const host = process.env.KUBERNETES_SERVICE_HOST!;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  const server = new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`);
  const agent = new https.Agent({ keepAlive: true, ca: readFileSync(path.join(SERVICE_ACCOUNT_DIR, 'ca.crt')) });
  const tokenFile = path.join(SERVICE_ACCOUNT_DIR, 'token');
  return {
    server,
    agent,
    headers: async () => ({ authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` }),
  };
}

/** A kubeconfig's current context: server, TLS and credentials. Exec and auth-provider users go through client-node. */
async function fileConnection(file: string): Promise<KubeConnection> {
  const config: unknown = parseYaml(readFileSync(file, 'utf8'));
  if (!isObj(config)) throw new MeshgateError('MG_KUBECONFIG_INVALID', `kubeconfig ${file} is not a map`);
  const contextName = str(config['current-context']);
  const context = named(config['contexts'], contextName, 'context', 'context');
  const cluster = named(config['clusters'], str(context['cluster']), 'cluster', 'cluster');
  const user =
    isObj(config['users']) || Array.isArray(config['users'])
      ? named(config['users'], str(context['user']), 'user', 'user')
      : {};
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) return clientNodeConnection(file);
  const dir = path.dirname(path.resolve(file));
  const fileOrData = (fileKey: string, dataKey: string): Buffer | undefined => {
    const data = str(cluster[dataKey]) ?? str(user[dataKey]);
    if (data) return Buffer.from(data, 'base64');
    const name = str(cluster[fileKey]) ?? str(user[fileKey]);
    return name ? readFileSync(path.resolve(dir, name)) : undefined;
  };
  const server = new URL(str(cluster['server']) ?? '');
  const tls = {
    ca: fileOrData('certificate-authority', 'certificate-authority-data'),
    cert: fileOrData('client-certificate', 'client-certificate-data'),
    key: fileOrData('client-key', 'client-key-data'),
    rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    servername: str(cluster['tls-server-name']),
  };
  const agent =
    server.protocol === 'https:' ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
  const token = str(user['token']);
  const tokenFile = str(user['tokenFile']);
  const basic =
    str(user['username']) !== undefined
      ? Buffer.from(`${user['username']}:${user['password'] ?? ''}`).toString('base64')
      : undefined;
  return {
    server,
    agent,
    headers: async (): Promise<Record<string, string>> => {
      if (tokenFile) return { authorization: `Bearer ${readFileSync(path.resolve(dir, tokenFile), 'utf8').trim()}` };
      if (token) return { authorization: `Bearer ${token}` };
      return basic ? { authorization: `Basic ${basic}` } : {};
    },
  };
}

/** The heavy path: client-node's KubeConfig computes the agent and headers (exec plugins, auth providers). */
async function clientNodeConnection(file: string): Promise<KubeConnection> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new MeshgateError('MG_KUBECONFIG_INVALID', `kubeconfig ${file}: no current cluster`);
  const first = await kc.applyToFetchOptions({});
  return {
    server: new URL(cluster.server),
    agent: (first.agent as http.Agent | undefined) ?? new https.Agent({ keepAlive: true }),
    headers: async (): Promise<Record<string, string>> => {
      const opts = await kc.applyToFetchOptions({});
      const h = opts.headers as Record<string, string> | undefined;
      return h?.['Authorization'] ? { authorization: h['Authorization'] } : {};
    },
  };
}

/**
 * As client-node's KubeConfig: the given file; else, in a pod, the service
 * account; else $KUBECONFIG (its first file) or ~/.kube/config.
 */
export async function loadKubeConnection(file?: string): Promise<KubeConnection> {
  if (file) return fileConnection(file);
  if (process.env.KUBERNETES_SERVICE_HOST) return inClusterConnection();
  const fromEnv = process.env.KUBECONFIG?.split(path.delimiter).find((f) => f !== '');
  return fileConnection(fromEnv ?? path.join(os.homedir(), '.kube', 'config'));
}

export interface WatchHandle {
  abort(): void;
}

function statusMessage(status: number | undefined, body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (isObj(parsed) && typeof parsed['message'] === 'string') return parsed['message'];
  } catch {
    // not a Status object
  }
  return body.slice(0, 200) || http.STATUS_CODES[status ?? 0] || 'no response';
}

export class KubeClient {
  constructor(readonly connection: KubeConnection) {}

  private async open(
    method: string,
    pathAndQuery: string,
    body?: unknown,
  ): Promise<{ req: http.ClientRequest; res: Promise<http.IncomingMessage> }> {
    const url = new URL(pathAndQuery, this.connection.server);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json', ...(await this.connection.headers()) };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const send = url.protocol === 'https:' ? https.request : http.request;
    const req = send(url, { method, headers, agent: this.connection.agent });
    const res = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.on('error', (err) =>
        reject(new KubeApiError(`${method} ${url.pathname}: ${err.message}`, undefined, { cause: err })),
      );
    });
    req.end(payload);
    return { req, res };
  }

  /** One request with a JSON answer; a status other than 2xx throws KubeApiError. */
  async request<T>(method: string, pathAndQuery: string, body?: unknown): Promise<T> {
    const { res } = await this.open(method, pathAndQuery, body);
    const answer = await res;
    const chunks: Buffer[] = [];
    for await (const chunk of answer) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = answer.statusCode ?? 0;
    if (status < 200 || status > 299)
      throw new KubeApiError(`${method} ${pathAndQuery}: HTTP ${status}: ${statusMessage(status, text)}`, status);
    return JSON.parse(text) as T;
  }

  /**
   * A watch: `onEvent` for each line of the stream ({type, object}), then
   * `done` once, with null when the server ended the stream, or the error.
   */
  async watch(
    pathAndQuery: string,
    onEvent: (type: string, object: unknown) => void,
    done: (err: Error | null) => void,
  ): Promise<WatchHandle> {
    let finished = false;
    const finish = (err: Error | null) => {
      if (finished) return;
      finished = true;
      done(err);
    };
    let opened: Awaited<ReturnType<KubeClient['open']>>;
    try {
      opened = await this.open('GET', pathAndQuery);
    } catch (err) {
      finish(err as Error);
      return { abort: () => undefined };
    }
    const { req, res } = opened;
    const handle = { abort: () => req.destroy(new KubeApiError('watch aborted', undefined)) };
    res.then(
      (answer) => {
        const status = answer.statusCode ?? 0;
        if (status !== 200) {
          let text = '';
          answer.on('data', (d: Buffer) => (text += d.toString()));
          answer.on('end', () =>
            finish(new KubeApiError(`watch ${pathAndQuery}: HTTP ${status}: ${statusMessage(status, text)}`, status)),
          );
          answer.on('error', (err) => finish(err));
          return;
        }
        answer.socket?.setKeepAlive(true, 30_000);
        const lines = createInterface({ input: answer, crlfDelay: Infinity });
        lines.on('line', (line) => {
          if (finished || line.trim() === '') return;
          let event: unknown;
          try {
            event = JSON.parse(line);
          } catch {
            return; // not a watch event
          }
          if (isObj(event) && typeof event['type'] === 'string') onEvent(event['type'], event['object']);
        });
        answer.on('error', (err) => finish(err));
        lines.on('error', (err) => finish(err)); // readline re-emits the stream's error
        answer.on('aborted', () => finish(new KubeApiError('watch stream aborted', undefined)));
        lines.on('close', () =>
          finish(answer.complete ? null : new KubeApiError('watch stream ended early', undefined)),
        );
      },
      (err: Error) => finish(err),
    );
    return handle;
  }
}
