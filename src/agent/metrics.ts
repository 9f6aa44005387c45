// Prometheus metrics (prom-client). Verdict counters, map sizes and DNS states
// are read at scrape time, from the kernel and the resolver.
import { Counter, Gauge, Histogram, Registry } from './promClient.js';
import type { Datapath } from '../datapath/datapath.js';
import type { ResolvedHost } from '../dns/hostResolver.js';
import { readDnsStats } from '../datapath/dnsLearned.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly syncDuration: Histogram;
  readonly configValid: Gauge;
  readonly generation: Gauge;
  readonly podsEnforced: Gauge;
  readonly dnsRefreshFailures: Counter;
  readonly applyFailures: Counter;
  readonly reconcileRetries: Counter;
  readonly informerRestarts: Counter;
  readonly podStartWindow: Histogram;
  readonly policyHeldBack: Gauge;

  constructor(datapath: () => Datapath | null, hosts: () => ReadonlyMap<string, ResolvedHost>) {
    const registers = [this.registry];
    this.syncDuration = new Histogram({
      name: 'meshgate_sync_duration_seconds',
      help: 'Time to reconcile: read, compile and apply one desired state',
      registers,
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.configValid = new Gauge({
      name: 'meshgate_config_valid',
      help: '1 when the config object last read was valid, 0 when it was rejected (its last good state stays)',
      labelNames: ['configmap'],
      registers,
    });
    this.generation = new Gauge({
      name: 'meshgate_policy_generation',
      help: 'Generation of the policy in force',
      registers,
    });
    this.podsEnforced = new Gauge({
      name: 'meshgate_pods_enforced',
      help: 'Meshed pods whose cgroup is mapped and enforced',
      registers,
    });
    this.dnsRefreshFailures = new Counter({
      name: 'meshgate_dns_refresh_failures_total',
      help: 'Hostname refreshes that failed (counted when a hostname turns stale or failed)',
      registers,
    });
    this.applyFailures = new Counter({
      name: 'meshgate_apply_failures_total',
      help: 'Reconciles that failed and left the previous policy in force',
      registers,
    });
    this.reconcileRetries = new Counter({
      name: 'meshgate_reconcile_retries_total',
      help: 'Retries scheduled (with exponential backoff) after a failed reconcile',
      registers,
    });
    this.informerRestarts = new Counter({
      name: 'meshgate_informer_restarts_total',
      help: 'Informer watches restarted after an error',
      labelNames: ['informer'],
      registers,
    });
    this.podStartWindow = new Histogram({
      name: 'meshgate_pod_start_window_seconds',
      help: "Time from a pod cgroup's creation to its entry in mg_cgroups (unknown_pod_policy applies meanwhile)",
      registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    this.policyHeldBack = new Gauge({
      name: 'meshgate_policy_held_back_entries',
      help: 'Trie entries of a namespace allowlist held back because the whole policy does not fit the maps ("" is the global allowlist)',
      labelNames: ['namespace'],
      registers,
    });
    new Gauge({
      name: 'meshgate_dns_hosts',
      help: 'Allowlisted hostnames by resolution state (fresh, stale = kept through the grace period, failed, pending)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const state of ['pending', 'fresh', 'stale', 'failed']) this.set({ state }, 0);
        for (const h of hosts().values()) this.inc({ state: h.state });
      },
    });
    new Counter({
      name: 'meshgate_verdicts_total',
      help: 'Decisions made by the kernel, by verdict and rule',
      labelNames: ['verdict', 'rule'],
      registers,
      collect() {
        const dp = datapath();
        if (!dp) return;
        this.reset();
        for (const { verdict, rule, count } of dp.readCounters()) this.inc({ verdict, rule }, Number(count));
      },
    });
    // The kernel's DNS reader (bpf/dns.bpf.c): its per-CPU counters, summed at scrape time.
    const dnsStat = (name: string) => {
      const dp = datapath();
      return dp ? Number(readDnsStats(dp.maps.mg_dns_stats)[name] ?? 0n) : null;
    };
    const dnsCounter = (name: string, help: string, stat: string) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const n = dnsStat(stat);
          if (n === null) return;
          this.reset();
          this.inc(n);
        },
      });
    dnsCounter(
      'meshgate_dns_answers_learned_total',
      'Pod DNS answers from a trusted resolver that taught the kernel at least one allowlisted address',
      'answers_learned',
    );
    dnsCounter(
      'meshgate_dns_addresses_learned_total',
      'Addresses written to mg_learned (one per address and host)',
      'addresses_learned',
    );
    dnsCounter(
      'meshgate_dns_learned_evictions_total',
      'Unexpired learned addresses pushed out of the full mg_learned by newer ones (oldest first)',
      'evicted',
    );
    dnsCounter(
      'meshgate_dns_queries_total',
      'DNS queries from enforced pods to a trusted resolver, remembered on their socket',
      'queries',
    );
    new Counter({
      name: 'meshgate_dns_answers_refused_total',
      help: 'DNS answers the kernel learned nothing from: untrusted source, unsolicited (no matching query on that socket), malformed, or not an allowlisted name',
      labelNames: ['reason'],
      registers,
      collect() {
        const dp = datapath();
        if (!dp) return;
        const stats = readDnsStats(dp.maps.mg_dns_stats);
        this.reset();
        for (const reason of ['untrusted', 'unsolicited', 'malformed', 'not_allowlisted'])
          this.inc({ reason }, Number(stats[reason] ?? 0n));
      },
    });
    new Gauge({
      name: 'meshgate_map_entries',
      help: 'Entries per map: the policy maps of the active slot (mg_policy_trie, mg_excluded_ports, mg_namespaces, mg_dns_hosts, mg_dns_ports), and every hash map the agent or the programs fill',
      labelNames: ['map'],
      registers,
      collect() {
        const dp = datapath();
        if (!dp) return;
        for (const [map, n] of Object.entries(dp.entryCounts())) this.set({ map }, n);
      },
    });
  }
}
