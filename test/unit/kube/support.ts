// Shared set-up for the tests that drive the real @kubernetes/client-node against test/helpers/kubeApiServer.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions } from '../../helpers/kubeApiServer.js';

export interface KubeTestEnv {
  readonly server: KubeApiServer;
  readonly kubeConfig: KubeConfig;
  readonly coreApi: CoreV1Api;
  close(): Promise<void>;
}

export async function startKubeTestEnv(options: KubeApiServerOptions = {}): Promise<KubeTestEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-kube-'));
  const server = await startKubeApiServer(options);
  try {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(await server.writeKubeconfig(dir));
    return {
      server,
      kubeConfig,
      coreApi: kubeConfig.makeApiClient(CoreV1Api),
      async close() {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Polls `condition` every 10 ms; fails after `timeoutMs` naming what it waited for. */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function configMap(
  namespace: string,
  name: string,
  labels: Record<string, string> = {},
  data: Record<string, string> = {},
) {
  return { metadata: { namespace, name, labels }, data };
}

export function pod(namespace: string, name: string, nodeName: string) {
  return {
    metadata: { namespace, name, labels: { app: name } },
    spec: { nodeName, containers: [{ name: 'app', image: 'busybox' }] },
  };
}
