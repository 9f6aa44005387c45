// `meshgate explain (NAMESPACE/POD | --cgroup ID) DEST:PORT [--udp]`.
import type { Command } from 'commander';
import {
  Explainer,
  VERDICT_EXIT_CODES,
  formatExplanation,
  parseDestination,
  quoteInput,
  type CallerRef,
  type Destination,
} from '../../explain/explain.js';
import { Pins } from '../../datapath/pinned.js';
import { requireRoot } from '../requireRoot.js';
import { pinDirOption, type CliContext } from './context.js';
import { parseNumberFlag } from '../numberFlag.js';

interface ExplainFlags {
  pinDir: string;
  cgroup?: string;
  udp?: boolean;
  uid?: string;
  netns?: string;
  json?: boolean;
}

function usage(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: 2, code: 'meshgate.usage' });
}

export function register(ctx: CliContext): void {
  ctx.program
    .command('explain')
    .description(
      'the verdict the kernel would give a connect() to DEST:PORT, and the rule and map entry that decide it',
    )
    .argument('[pod]', 'NAMESPACE/POD as the agent mapped it, or a bare POD unambiguous on the node (or use --cgroup)')
    .argument('[dest]', 'ADDRESS:PORT, [IPV6]:PORT')
    .option(
      '--cgroup <id>',
      'the caller is a process in this cgroup (id as in `meshgate dump pods` or `stat -c %i DIR`)',
    )
    .option('--udp', 'a UDP connect() or sendmsg() (default: TCP)')
    .option('--uid <uid>', "the caller's uid: matters only for proxy_uid when the pod's sidecar cgroup is unknown")
    .option(
      '--netns <file>',
      "the caller's network namespace (/proc/PID/ns/net): matters only for an unmapped cgroup under deny-external, where the node's netns passes (default: a process of the cgroup's)",
    )
    .addOption(pinDirOption())
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExit status: 0 pass, 3 redirect, 4 deny, 5 audit (let through, would be\ndenied); 1 error (no pins, not root, no such pod), 2 usage.\n' +
        'Examples:\n  meshgate explain shop/web 198.51.100.7:443\n  meshgate explain --cgroup 4242 [2001:db8::1]:53 --udp\n',
    )
    .action(function (this: Command, a: string | undefined, b: string | undefined, o: ExplainFlags) {
      const positional = [a, b].filter((x): x is string => x !== undefined);
      let ref: CallerRef;
      let destText: string;
      if (o.cgroup !== undefined) {
        if (positional.length !== 1) usage(this, 'with --cgroup give exactly one DEST:PORT');
        if (!/^\d{1,20}$/.test(o.cgroup) || BigInt(o.cgroup) > 0xffff_ffff_ffff_ffffn)
          usage(this, `--cgroup ${quoteInput(o.cgroup)} is not a cgroup id (a number in 0..2^64-1)`);
        ref = { cgroupId: BigInt(o.cgroup) };
        destText = positional[0]!;
      } else {
        if (positional.length !== 2) usage(this, 'give [NAMESPACE/]POD DEST:PORT, or --cgroup ID DEST:PORT');
        // Kubernetes names (DNS labels and subdomains): anything else cannot name a pod, and is never echoed whole.
        if (
          positional[0]!.length > 317 ||
          !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(positional[0]!)
        ) {
          usage(this, `${quoteInput(positional[0]!)} is not NAMESPACE/POD or POD`);
        }
        ref = { pod: positional[0]! };
        destText = positional[1]!;
      }
      const uid =
        o.uid === undefined ? null : parseNumberFlag('--uid', o.uid, { min: 0, max: 0xffff_ffff, integer: true });
      let dest: Destination;
      try {
        dest = parseDestination(destText);
      } catch (err) {
        usage(this, (err as Error).message);
      }
      requireRoot('explain');
      const pins = Pins.open(o.pinDir);
      try {
        const x = new Explainer(pins).explain(ref, dest, { udp: o.udp, uid, netns: o.netns });
        process.stdout.write(o.json ? `${JSON.stringify(x, null, 2)}\n` : `${formatExplanation(x)}\n`);
        ctx.exitCode = VERDICT_EXIT_CODES[x.verdict];
      } finally {
        pins.close();
      }
    });
}
