// Prometheus metrics. Verdict counters and map sizes are read from the kernel at scrape time.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Datapath } from '../datapath/datapath.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly syncDuration: Histogram;
  readonly configValid: Gauge;
  readonly generation: Gauge;
  readonly dnsHosts: Gauge;
  readonly dnsRefreshFailures: Counter;
  readonly applyFailures: Counter;

  constructor(datapath: () => Datapath | null) {
    const registers = [this.registry];
    this.syncDuration = new Histogram({
      name: 'meshgate_sync_duration_seconds', help: 'Time to compile and apply one desired state', registers,
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.configValid = new Gauge({ name: 'meshgate_config_valid', help: '1 when the object last read was valid, 0 when it was rejected', labelNames: ['object'], registers });
    this.generation = new Gauge({ name: 'meshgate_policy_generation', help: 'Generation of the policy in force', registers });
    this.dnsHosts = new Gauge({ name: 'meshgate_dns_hosts', help: 'Allowlisted hostnames by resolution state', labelNames: ['state'], registers });
    this.dnsRefreshFailures = new Counter({ name: 'meshgate_dns_refresh_failures_total', help: 'Failed hostname refreshes', registers });
    this.applyFailures = new Counter({ name: 'meshgate_apply_failures_total', help: 'Applies that failed and left the previous policy in force', registers });
    new Counter({
      name: 'meshgate_verdicts_total', help: 'Decisions made by the kernel, by verdict and rule', labelNames: ['verdict', 'rule'], registers,
      collect() {
        const dp = datapath();
        if (!dp) return;
        this.reset();
        for (const { verdict, rule, count } of dp.readCounters()) this.inc({ verdict, rule }, Number(count));
      },
    });
    new Gauge({
      name: 'meshgate_map_entries', help: 'Entries in each policy map of the active slot, and in the cgroup map', labelNames: ['map'], registers,
      collect() {
        const dp = datapath();
        if (!dp) return;
        for (const [map, n] of Object.entries(dp.entryCounts())) this.set({ map }, n);
      },
    });
  }
}
