// `meshgate agent`: the node agent. With --config-file it runs standalone (one
// cgroup is one pod, the policy comes from files); otherwise it is the
// DaemonSet agent that watches the cluster.
import { Option } from 'commander';
import { pino, type Logger } from 'pino';
import { preflight } from '../../agent/preflight.js';
import { StandaloneAgent } from '../../agent/standalone.js';
import { FLOWS_MAX_DEFAULT, FLOWS_MAX_LIMIT } from '../../datapath/loader.js';
import { collect, pinDirOption, type CliContext } from './context.js';
import { DEFAULT_LEARNED_MAX, LEARNED_MAX_RANGE } from '../../datapath/loader.js';
import { parseResolver } from '../../datapath/dnsCodec.js';
import { REPLY_DEFAULTS, type ReplySettings } from '../../datapath/replies.js';
import { MeshgateError } from '../../errors.js';
import { checkSeedFlags } from '../../agent/seedFlags.js';
import { TIMER_MAX_MS, parseNumberFlag } from '../numberFlag.js';

/** A debounce longer than a minute would hold every change back that long. */
const DEBOUNCE_MS_RANGE = { min: 0, max: 60_000, integer: true, unit: 'milliseconds' } as const;
/** At least 1 ms (0 would retry a failed list/watch in a tight loop), at most an hour. */
const BACKOFF_MAX_MS_RANGE = { min: 1, max: 3_600_000, integer: true, unit: 'milliseconds' } as const;

interface AgentFlags {
  // both modes
  pinDir: string;
  listen: string;
  debounceMs: string;
  logLevel: string;
  flowsMax: string;
  dnsServer: string[];
  dnsTtlFloor: string;
  dnsTtlCeiling: string;
  dnsGrace: string;
  dnsLearnedMax: string;
  udpReplyTimeout: string;
  udpReplyStreamTimeout: string;
  // standalone
  configFile?: string;
  allowlistFile: string[];
  cgroup?: string;
  proxyCgroup?: string;
  namespace: string;
  podName: string;
  // cluster
  kubeconfig?: string;
  configMap: string;
  nodeName?: string;
  cgroupRoot?: string;
  cgroupDriver: string;
  proxyContainer: string;
  enableEgress?: boolean;
  meshCidr: string[];
  informerBackoffMaxMs: string;
}

/** The DNS and timing flags both modes share, in the units the agents take. */
function dnsOptions(o: AgentFlags) {
  // Each becomes a timer's delay: at most what Node's timers take.
  const seconds = (flag: string, v: string, min: number): number =>
    parseNumberFlag(`--${flag}`, v, { min, max: Math.floor(TIMER_MAX_MS / 1000), unit: 'seconds' }) * 1000;
  const floorMs = seconds('dns-ttl-floor', o.dnsTtlFloor, 0.001);
  const ceilingMs = seconds('dns-ttl-ceiling', o.dnsTtlCeiling, 0.001);
  if (ceilingMs < floorMs)
    throw new MeshgateError(
      'MG_CLI_BAD_FLAG',
      `--dns-ttl-ceiling: ${o.dnsTtlCeiling} is below --dns-ttl-floor ${o.dnsTtlFloor}`,
    );
  const learnedMax = parseNumberFlag('--dns-learned-max', o.dnsLearnedMax, { ...LEARNED_MAX_RANGE, integer: true });
  const servers = o.dnsServer.length ? o.dnsServer : undefined;
  for (const s of servers ?? []) {
    try {
      parseResolver(s);
    } catch (err) {
      throw new MeshgateError(
        'MG_CLI_BAD_FLAG',
        `--dns-server: ${JSON.stringify(s)} is not host[:port] with an IP address: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return { servers, floorMs, ceilingMs, graceMs: seconds('dns-grace', o.dnsGrace, 0), learnedMax };
}

/** --udp-reply-timeout and --udp-reply-stream-timeout, in ms. */
export function replyOptions(o: Pick<AgentFlags, 'udpReplyTimeout' | 'udpReplyStreamTimeout'>): ReplySettings {
  const ms = (flag: string, v: string): number =>
    parseNumberFlag(`--${flag}`, v, { min: 0.001, max: 86400, unit: 'seconds' }) * 1000;
  const unrepliedMs = ms('udp-reply-timeout', o.udpReplyTimeout);
  const assuredMs = ms('udp-reply-stream-timeout', o.udpReplyStreamTimeout);
  if (assuredMs < unrepliedMs)
    throw new MeshgateError(
      'MG_CLI_BAD_FLAG',
      `--udp-reply-stream-timeout: ${o.udpReplyStreamTimeout} is below --udp-reply-timeout ${o.udpReplyTimeout}`,
    );
  return { unrepliedMs, assuredMs };
}

/** The cluster mode's own flags, checked: a usage error (MG_CLI_BAD_FLAG) names the flag and the value. */
function clusterFlags(o: AgentFlags) {
  if (!o.nodeName)
    throw new MeshgateError(
      'MG_CLI_BAD_FLAG',
      'cluster mode needs --node-name or $NODE_NAME (the DaemonSet sets it from spec.nodeName)',
    );
  const slash = o.configMap.indexOf('/');
  if (slash <= 0 || slash === o.configMap.length - 1)
    throw new MeshgateError('MG_CLI_BAD_FLAG', `--config-map: ${JSON.stringify(o.configMap)} is not NAMESPACE/NAME`);
  const backoffMax = parseNumberFlag('--informer-backoff-max-ms', o.informerBackoffMaxMs, BACKOFF_MAX_MS_RANGE);
  const seed = { egress: o.enableEgress, meshCidrs: o.meshCidr };
  checkSeedFlags(seed);
  return {
    kubeconfig: o.kubeconfig,
    configMap: { namespace: o.configMap.slice(0, slash), name: o.configMap.slice(slash + 1) },
    nodeName: o.nodeName,
    cgroupRoot: o.cgroupRoot,
    cgroupDriver: o.cgroupDriver as 'auto' | 'systemd' | 'cgroupfs',
    proxyContainers: o.proxyContainer
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    backoffMs: { initial: Math.min(200, backoffMax), max: backoffMax },
    seed,
  };
}

async function runUntilSignal(agent: { start(): Promise<void>; stop(): Promise<void> }, log: Logger): Promise<void> {
  await agent.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping; enforcement stays pinned');
      void agent.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

export function register(ctx: CliContext): void {
  ctx.program
    .command('agent')
    .description('run the node agent: the DaemonSet agent by default, standalone with --config-file and --cgroup')
    .addOption(pinDirOption())
    .option('--listen <addr>', 'health and metrics address', ':9090')
    .option('--debounce-ms <n>', 'wait this long after a change before reconciling', '10')
    .option('--log-level <level>', 'pino log level', 'info')
    .option(
      '--flows-max <n>',
      `recent flows kept in the kernel for flows and preview (0: none; at most ${FLOWS_MAX_LIMIT})`,
      String(FLOWS_MAX_DEFAULT),
    )
    .option(
      '--dns-server <host[:port]>',
      "trusted resolver: pods' answers from it are learned, and the agent resolves with it (repeatable; default: /etc/resolv.conf)",
      collect,
      [],
    )
    .option('--dns-ttl-floor <seconds>', 'refresh a hostname no sooner than this', '5')
    .option('--dns-ttl-ceiling <seconds>', 'refresh a hostname at least this often', '300')
    .option('--dns-grace <seconds>', 'keep addresses this long after their TTL (learned) or a failed refresh', '600')
    .option(
      '--dns-learned-max <n>',
      'addresses learned from pod DNS answers kept at most (oldest go first)',
      String(DEFAULT_LEARNED_MAX),
    )
    .option(
      '--udp-reply-timeout <seconds>',
      "a UDP peer that sent to a pod's socket may be replied to this long after its last datagram",
      String(REPLY_DEFAULTS.unrepliedMs / 1000),
    )
    .option(
      '--udp-reply-stream-timeout <seconds>',
      'the same, once the socket has replied to that peer (conntrack: udp_timeout_stream)',
      String(REPLY_DEFAULTS.assuredMs / 1000),
    )
    // standalone mode
    .option(
      '--config-file <file>',
      'standalone: the global config, an osm-config ConfigMap manifest or a key/value YAML file',
    )
    .option('--allowlist-file <file>', 'standalone: an allowlist file for --namespace (repeatable)', collect, [])
    .option('--cgroup <dir>', 'standalone: the cgroup v2 directory of the one pod to enforce')
    .option(
      '--proxy-cgroup <dir>',
      "standalone: the sidecar's own cgroup (a child of --cgroup); otherwise proxy_uid identifies it",
    )
    .option('--namespace <name>', 'standalone: the namespace of the pod', 'default')
    .option('--pod-name <name>', 'standalone: the name shown for the pod', 'standalone')
    // cluster mode
    .option('--kubeconfig <file>', 'cluster: kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)')
    .option('--config-map <namespace/name>', 'cluster: the global ConfigMap', 'osm-system/osm-config')
    .addOption(new Option('--node-name <name>', 'cluster: this node; only its pods are enforced').env('NODE_NAME'))
    .option('--cgroup-root <dir>', "cluster: where the hooks attach (default: the kubelet's kubepods cgroup)")
    .addOption(
      new Option('--cgroup-driver <driver>', "cluster: the kubelet's cgroup driver")
        .choices(['auto', 'systemd', 'cgroupfs'])
        .default('auto'),
    )
    .option('--proxy-container <names>', 'cluster: sidecar container names that make a pod meshed', 'envoy,istio-proxy')
    .option(
      '--enable-egress',
      'cluster: egress "true" when the ConfigMap does not say (as osm install --enable-egress)',
    )
    .option('--informer-backoff-max-ms <n>', 'cluster: longest wait between retries of a failed list/watch', '30000')
    .option(
      '--mesh-cidr <cidrs>',
      'cluster: mesh_cidr_ranges when the ConfigMap does not say (repeatable, commas allowed)',
      collect,
      [],
    )
    .action(async (o: AgentFlags) => {
      // Every flag is checked before anything is touched: a bad one is a usage error (exit 2).
      const common = {
        pinDir: o.pinDir,
        listen: o.listen,
        debounceMs: parseNumberFlag('--debounce-ms', o.debounceMs, DEBOUNCE_MS_RANGE),
        dns: dnsOptions(o),
        replies: replyOptions(o),
        flowsMax: parseNumberFlag('--flows-max', o.flowsMax, { min: 0, max: FLOWS_MAX_LIMIT, integer: true }),
      };
      const standalone = o.configFile !== undefined || o.cgroup !== undefined;
      if (standalone && (!o.configFile || !o.cgroup))
        throw new MeshgateError('MG_CLI_BAD_FLAG', 'standalone mode needs both --config-file and --cgroup');
      const cluster = standalone ? undefined : clusterFlags(o);
      const log = pino({ base: { app: 'meshgate' }, level: o.logLevel });
      const problems = preflight(o.pinDir);
      if (problems.length) {
        for (const p of problems) process.stderr.write(`meshgate agent: preflight ${p.check}: ${p.message}\n`);
        log.fatal({ problems }, 'preflight failed');
        ctx.exitCode = 1;
        return;
      }
      if (!cluster) {
        await runUntilSignal(
          new StandaloneAgent(
            {
              ...common,
              configFile: o.configFile!,
              allowlistFiles: o.allowlistFile,
              cgroup: o.cgroup!,
              proxyCgroup: o.proxyCgroup,
              namespace: o.namespace,
              podName: o.podName,
            },
            log,
          ),
          log,
        );
        return;
      }
      // Loaded only in cluster mode: the Kubernetes client alone costs about 90 MB of RSS.
      const { ClusterAgent } = await import('../../agent/cluster.js');
      await runUntilSignal(new ClusterAgent({ ...common, ...cluster }, log), log);
    });
}
