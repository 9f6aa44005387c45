// The meshgate command line. Exit codes: 0 ok, 1 failure or invalid input, 2 usage.
import { Command, CommanderError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { pino } from 'pino';
import {
  parseAllowlist, parseGlobalConfig, readConfigDocuments, type ConfigIssue,
} from '../config/index.js';
import { cleanupPins, DEFAULT_PIN_DIR, listPinnedLinks } from '../datapath/loader.js';
import { openPinnedMaps } from '../datapath/pinned.js';
import { StandaloneAgent } from '../agent/standalone.js';
import { dumpMaps, formatDump } from './dump.js';
import { runDemo } from './demo.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function validateFiles(files: string[]): { issues: Array<ConfigIssue & { file: string }>; objects: number } {
  const issues: Array<ConfigIssue & { file: string }> = [];
  let objects = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      issues.push({ file, code: 'MG_CONFIG_FILE_UNREADABLE', severity: 'error', object: `file ${file}`, key: '', message: `file ${file}: cannot be read: ${(err as Error).message}` });
      continue;
    }
    const { documents, errors } = readConfigDocuments(text, file);
    issues.push(...errors.map((e) => ({ ...e, file })));
    for (const doc of documents) {
      objects++;
      const r = doc.kind === 'global' ? parseGlobalConfig(doc.data, doc.ref) : parseAllowlist(doc.data, doc.ref);
      issues.push(...r.warnings.map((w) => ({ ...w, file })));
      if (!r.ok) issues.push(...r.errors.map((e) => ({ ...e, file })));
    }
  }
  return { issues, objects };
}

function fail(message: string): number {
  process.stderr.write(`meshgate: ${message}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command('meshgate')
    .description('Kubernetes service-mesh egress enforced in the kernel: eBPF cgroup hooks decide redirect, pass or deny on every connect()')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const pinDirOption = () => new Option('--pin-dir <dir>', 'bpffs directory of the pins').default(DEFAULT_PIN_DIR);

  program.command('agent')
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

  program.command('validate')
    .description('validate ConfigMap or allowlist YAML files offline, with the errors the agent would report')
    .argument('<files...>')
    .option('--json', 'machine-readable output')
    .action((files: string[], o: { json?: boolean }) => {
      const { issues, objects } = validateFiles(files);
      const errors = issues.filter((i) => i.severity === 'error');
      if (o.json) process.stdout.write(`${JSON.stringify({ valid: errors.length === 0, objects, issues }, null, 2)}\n`);
      else {
        for (const i of issues) process.stdout.write(`${i.severity} ${i.code}: ${i.message}\n`);
        process.stdout.write(errors.length ? `${errors.length} error(s) in ${files.length} file(s)\n` : `ok: ${objects} object(s) in ${files.length} file(s) are valid\n`);
      }
      exitCode = errors.length ? 1 : 0;
    });

  program.command('cleanup')
    .description('detach and unpin everything meshgate pinned under the pin directory, and nothing else')
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { pinDir: string; json?: boolean }) => {
      if (!existsSync(o.pinDir)) {
        process.stdout.write(o.json ? '{"detached":[],"unpinned":[],"errors":[]}\n' : `nothing pinned under ${o.pinDir}\n`);
        return;
      }
      const r = cleanupPins(o.pinDir);
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`detached ${r.detached.length} link(s), unpinned ${r.unpinned.length} object(s) under ${o.pinDir}\n${r.errors.map((e) => `error: ${e}\n`).join('')}`);
      exitCode = r.errors.length ? 1 : 0;
    });

  program.command('status')
    .description('attached programs and links, pin directory, generation')
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { pinDir: string; json?: boolean }) => {
      const links = listPinnedLinks(o.pinDir);
      const pinned = openPinnedMaps(o.pinDir);
      try {
        const d = dumpMaps(pinned.maps);
        const status = { pinDir: o.pinDir, generation: d.generation, activeSlot: d.activeSlot, links: links.map((l) => ({ hook: l.hook, linkId: l.info?.id ?? null, programId: l.info?.progId ?? null, cgroupId: l.info?.cgroupId.toString() ?? null, error: l.error })) };
        if (o.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        else {
          process.stdout.write(`pin dir     ${o.pinDir}\ngeneration  ${d.generation} (slot ${d.activeSlot})\nlinks:\n`);
          for (const l of status.links) process.stdout.write(`  ${l.hook.padEnd(18)} link ${l.linkId ?? '-'} prog ${l.programId ?? '-'} cgroup ${l.cgroupId ?? '-'}${l.error ? `  PROBLEM: ${l.error}` : ''}\n`);
          if (links.length === 0) process.stdout.write('  (none: maps are pinned but no hook is attached)\n');
        }
        exitCode = links.length === 6 && links.every((l) => !l.error) ? 0 : 1;
      } finally {
        pinned.close();
      }
    });

  program.command('dump')
    .description('every pinned map decoded: config, mesh CIDRs, exclusions, allowlists, pods, counters')
    .argument('[map]', 'one section: config, mesh, exclusions, allowlists, pods, counters')
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .action((only: string | undefined, o: { pinDir: string; json?: boolean }) => {
      const pinned = openPinnedMaps(o.pinDir);
      try {
        const d = dumpMaps(pinned.maps);
        process.stdout.write(o.json ? `${JSON.stringify(only ? { [only]: (d as Record<string, unknown>)[only] } : d, null, 2)}\n` : `${formatDump(d, only)}\n`);
      } finally {
        pinned.close();
      }
    });

  program.command('demo')
    .description('a safe, self-contained show: sandbox cgroup and netns, standalone agent, redirect / pass / deny, a live config edit, then dump')
    .action(async () => {
      exitCode = await runDemo();
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    return fail((err as Error).message);
  }
  return exitCode;
}
