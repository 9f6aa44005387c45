import { MeshgateError } from '../errors.js';

/** One line, exit 1: the commands that read pins need root (CAP_BPF and bpffs access). */
export function requireRoot(command: string): void {
  if (process.getuid?.() !== 0) {
    throw new MeshgateError(
      'MG_CLI_NEEDS_ROOT',
      `${command} needs root: it reads BPF maps pinned on bpffs (try sudo meshgate ${command})`,
    );
  }
}
