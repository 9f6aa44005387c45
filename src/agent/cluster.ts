// Cluster mode: the DaemonSet agent (being built).
import type { Logger } from 'pino';
import type { HostResolverOptions } from '../dns/hostResolver.js';

export interface ClusterOptions {
  readonly pinDir: string;
  readonly listen: string;
  readonly debounceMs: number;
  readonly dns?: Pick<HostResolverOptions, 'servers' | 'floorMs' | 'ceilingMs' | 'graceMs'>;
  readonly kubeconfig?: string;
  readonly configMap: { readonly namespace: string; readonly name: string };
  readonly nodeName: string;
  readonly cgroupRoot?: string;
  readonly cgroupDriver: 'auto' | 'systemd' | 'cgroupfs';
  readonly proxyContainers: readonly string[];
  readonly seed: { readonly egress?: boolean; readonly meshCidrs: readonly string[] };
}

export class ClusterAgent {
  constructor(readonly opts: ClusterOptions, readonly log: Logger) {}
  async start(): Promise<void> {
    throw new Error('cluster mode is not built yet');
  }
  async stop(): Promise<void> {}
}
