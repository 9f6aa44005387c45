// `meshgate agent`.
import { pino } from 'pino';
import { StandaloneAgent } from '../../agent/standalone.js';
import { collect, pinDirOption, type CliContext } from './context.js';

export function register(ctx: CliContext): void {
  ctx.program.command('agent')
    .description('run the node agent (standalone mode: --config-file and --cgroup)')
    .requiredOption('--config-file <file>', 'global config: an osm-config ConfigMap manifest or a key/value YAML file')
    .option('--allowlist-file <file>', 'allowlist file (repeatable)', collect, [])
    .requiredOption('--cgroup <dir>', 'cgroup v2 directory of the one pod to enforce')
    .option('--proxy-cgroup <dir>', "the sidecar's own cgroup (a child of --cgroup); otherwise proxy_uid identifies it")
    .addOption(pinDirOption())
    .option('--namespace <name>', 'namespace the standalone pod belongs to', 'default')
    .option('--pod-name <name>', 'name shown for the standalone pod', 'standalone')
    .option('--listen <addr>', 'health and metrics address', ':9090')
    .option('--debounce-ms <n>', 'wait this long after a change before applying', '10')
    .action(async (o: { configFile: string; allowlistFile: string[]; cgroup: string; proxyCgroup?: string; pinDir: string; namespace: string; podName: string; listen: string; debounceMs: string }) => {
      const log = pino({ base: { app: 'meshgate' } });
      const agent = new StandaloneAgent({
        configFile: o.configFile, allowlistFiles: o.allowlistFile, cgroup: o.cgroup, proxyCgroup: o.proxyCgroup,
        pinDir: o.pinDir, namespace: o.namespace, podName: o.podName, listen: o.listen, debounceMs: Number(o.debounceMs),
      }, log);
      await agent.start();
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info({ signal }, 'stopping; enforcement stays pinned');
          void agent.stop().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
