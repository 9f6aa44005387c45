// The command line of build/sockprobe (test/helpers/sockprobe.c), the socket
// probe that `meshgate demo` and the kernel tests run inside a cgroup and a
// netns: one place that spells its flags.

/** Flag values: camelCase keys become --kebab-case flags; true is a bare flag; false and undefined are left out. */
export type ProbeFlags = Readonly<Record<string, string | number | boolean | undefined>>;

/** Where the probe runs: a netns (/run/netns/NAME) and a cgroup directory, each optional. */
export interface ProbePlace {
  readonly netns?: string;
  readonly cgroup?: string;
}

/** An operation's `--flag value...` */
export function sockprobeFlags(flags: ProbeFlags): string[] {
  const argv: string[] = [];
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined || value === false) continue;
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    if (value === true) argv.push(flag);
    else argv.push(flag, String(value));
  }
  return argv;
}

/** `[--netns N] [--cgroup C] OP --flag value...` */
export function sockprobeArgv(place: ProbePlace, op: string, flags: ProbeFlags): string[] {
  const argv: string[] = [];
  if (place.netns) argv.push('--netns', place.netns);
  if (place.cgroup) argv.push('--cgroup', place.cgroup);
  return [...argv, op, ...sockprobeFlags(flags)];
}

/** The connect the demo and the fake node make: IPv4 TCP to addr:port, reading the server's banner, 1 s timeout. */
export function tcpConnectArgv(place: ProbePlace, addr: string, port: number): string[] {
  return sockprobeArgv(place, 'connect', { family: 4, proto: 'tcp', addr, port, read: true, timeoutMs: 1000 });
}
