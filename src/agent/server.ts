// /healthz, /readyz and /metrics.
import { createServer, type Server } from 'node:http';
import type { AgentMetrics } from './metrics.js';

export interface HealthSource {
  /** null when healthy, else why not */
  healthProblem(): string | null;
  ready(): boolean;
}

export function startServer(address: string, health: HealthSource, metrics: AgentMetrics): Promise<Server> {
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') {
      const problem = health.healthProblem();
      res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain' }).end(problem ?? 'ok\n');
    } else if (url === '/readyz') {
      const ready = health.ready();
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready: no complete apply yet\n');
    } else if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  const colon = address.lastIndexOf(':');
  const host = colon > 0 ? address.slice(0, colon) : undefined;
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
