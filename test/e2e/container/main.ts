// The e2e behind test/e2e/container/run.sh: the image's root filesystem run by runc as the
// DaemonSet's container (spec from deploy/daemonset.yaml through manifest.ts and ociSpec.ts),
// in cluster mode against the Kubernetes API test server, on a fake node whose pods are
// kubelet-style cgroups holding real processes in their own netns.
//
// Runs inside the "node" netns run.sh creates (nsenter, so the mounts stay the host's): the API
// server and the probes talk to the agent's pod netns over a veth, as a kubelet would, and no
// traffic reaches the host's own interfaces. Inputs (from run.sh): MESHGATE_E2E_ROOTFS (the image,
// exported), MESHGATE_E2E_IMAGE_CONFIG (docker inspect's .Config), MESHGATE_E2E_IMAGE, MESHGATE_E2E_WORK.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { get as httpGet } from 'node:http';
import { promisify } from 'node:util';
import {
  createFakeNode,
  API_ADDR,
  FORBIDDEN_ADDR,
  MESH_ADDR,
  NODE_NAME,
  type FakeNode,
  type FakePod,
} from '../../helpers/fakeNode.js';
import { basePolicy, classify } from '../../helpers/kernelFixture.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../../helpers/kubeApiServer.js';
import { REPO_ROOT, until } from '../../helpers/sandbox.js';
import { cleanupPins } from '../../../src/datapath/loader.js';
import { findCgroup2Mount } from '../../../src/node/cgroup.js';
import { capName, readAgentContainer, type AgentContainer, type AgentMount } from './manifest.js';
import { containerCapabilities, ociSpec, type HostSide, type ImageConfig, type RuntimeDefaults } from './ociSpec.js';
import { captureRuntimeDefaults, removeCtrNamespace, Runc } from './runtime.js';

const execFileAsync = promisify(execFile);
const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run test/e2e/container/run.sh)`);
  return v;
};

const TAG = `mgtest-ctr-${process.pid}`;
const NODE_IP = '10.244.0.1';
const POD_IP = '10.244.0.2';
const KUBECONFIG_DIR = '/var/run/secrets/meshgate-e2e';

// ---------------------------------------------------------------------------------------------
// Reporting: one line per check; the summary at the end is what run.sh prints.
const results: { name: string; ok: boolean; detail: string }[] = [];
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
function check(name: string, ok: boolean, detail = ''): void {
  results.push({ name, ok, detail });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}
// biome-ignore lint/suspicious/noConfusingVoidType: a step may return a detail line or nothing
async function step(name: string, fn: () => Promise<string | void> | string | void): Promise<void> {
  try {
    const detail = await fn();
    check(name, true, detail ?? '');
  } catch (err) {
    check(name, false, (err as Error).message.split('\n').slice(0, 8).join(' | '));
  }
}
function expect(cond: boolean, message: string): void {
  if (!cond) throw new Error(message);
}

// ---------------------------------------------------------------------------------------------
const cleanups: (() => void | Promise<void>)[] = [];
async function cleanupAll(): Promise<void> {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch (err) {
      console.error(`cleanup: ${(err as Error).message}`);
    }
  }
  cleanups.length = 0;
}

const sh = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function osmConfig(): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'osm-config', namespace: 'osm-system' },
    data: {
      egress: 'false',
      mesh_cidr_ranges: '10.96.0.0/12',
      egress_allowlist: `- name: payments\n  addresses: [${API_ADDR}]\n  ports: [{number: 443, protocol: HTTPS}]\n`,
    },
  } as unknown as KubeObject;
}

/** The manifest's value of --flag (either --flag=v or --flag v), or null. */
function flagValue(args: readonly string[], flag: string): string | null {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1] ?? null;
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1);
  }
  return null;
}

/** The mount whose mountPath holds `p`, and p's path on the host. */
function hostPathOf(c: AgentContainer, volumePath: (m: AgentMount) => string, p: string): string {
  const m = [...c.mounts]
    .sort((a, b) => b.mountPath.length - a.mountPath.length)
    .find((x) => p === x.mountPath || p.startsWith(`${x.mountPath}/`));
  if (!m) throw new Error(`${p} is on no volume of the container`);
  return path.join(volumePath(m), path.relative(m.mountPath, p));
}

function fsTypeAt(mountinfo: string, mountPoint: string): { type: string; options: string; optional: string } | null {
  let found: { type: string; options: string; optional: string } | null = null;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left[4] === mountPoint) found = { type: right[0]!, options: left[5]!, optional: left.slice(6).join(' ') };
  }
  return found; // the last one mounted there is the one in view
}

const capMask = (names: readonly string[]): bigint => {
  const numbers: Record<string, number> = {
    CAP_NET_ADMIN: 12,
    CAP_NET_RAW: 13,
    CAP_SYS_ADMIN: 21,
    CAP_PERFMON: 38,
    CAP_BPF: 39,
    CAP_CHECKPOINT_RESTORE: 40,
  };
  let mask = 0n;
  for (const n of names) {
    const bit = numbers[n];
    if (bit === undefined) throw new Error(`capability ${n}: add its number to capMask`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
};

/** The agent's log as "msg +seconds", to see where its start-up time goes. */
function timeline(logFile: string): string {
  const lines = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'));
  const first = lines.length ? (JSON.parse(lines[0]!) as { time: number }).time : 0;
  return lines
    .slice(0, 12)
    .map((l) => {
      const o = JSON.parse(l) as { time: number; msg: string; level: number; err?: { message?: string } };
      return `${o.msg}${o.level >= 40 && o.err?.message ? ` (${o.err.message})` : ''} +${((o.time - first) / 1000).toFixed(1)}s`;
    })
    .join(', ');
}

// ---------------------------------------------------------------------------------------------
async function main(): Promise<number> {
  const rootfs = env('MESHGATE_E2E_ROOTFS');
  const work = env('MESHGATE_E2E_WORK');
  const imageName = env('MESHGATE_E2E_IMAGE');
  const raw = JSON.parse(readFileSync(env('MESHGATE_E2E_IMAGE_CONFIG'), 'utf8')) as {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    User?: string;
  };
  const image: ImageConfig = {
    env: raw.Env ?? [],
    entrypoint: raw.Entrypoint ?? [],
    cmd: raw.Cmd ?? [],
    workingDir: raw.WorkingDir ?? '/',
  };

  const manifestFile = path.join(REPO_ROOT, 'deploy/daemonset.yaml');
  const agent = readAgentContainer(readFileSync(manifestFile, 'utf8'));
  const caps = containerCapabilities(agent, []);
  console.log(
    `manifest: ${path.relative(REPO_ROOT, manifestFile)}: capabilities ${caps.join(',')}${agent.capabilitiesDropAll ? ' (drop ALL)' : ''}, uid ${agent.runAsUser}:${agent.runAsGroup}, ` +
      `readOnlyRootFilesystem ${agent.readOnlyRootFilesystem}, no_new_privs ${!agent.allowPrivilegeEscalation}, seccomp ${agent.seccompProfile}`,
  );
  console.log(
    `manifest: mounts ${agent.mounts.map((m) => `${m.mountPath}(${m.source.kind}${m.source.kind === 'hostPath' ? ` ${m.source.path}` : ''}${m.readOnly ? ',ro' : ''},${m.propagation})`).join(' ')}`,
  );
  console.log(`manifest: args ${[...agent.command, ...agent.args].join(' ')}`);

  // --- the node: pods, API server, the agent's pod netns ----------------------------------------
  const cg2 = findCgroup2Mount();
  const node: FakeNode = createFakeNode('ctr', 'systemd');
  cleanups.push(() => node.cleanup());
  const podNetns = `${TAG}-agent`;
  sh('ip', 'netns', 'add', podNetns);
  cleanups.push(() => void spawnSync('ip', ['netns', 'del', podNetns]));
  sh('ip', 'link', 'add', 'mgnode0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNetns);
  sh('ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'mgnode0');
  sh('ip', 'link', 'set', 'mgnode0', 'up');
  sh('ip', '-n', podNetns, 'addr', 'add', `${POD_IP}/24`, 'dev', 'eth0');
  sh('ip', '-n', podNetns, 'link', 'set', 'eth0', 'up');
  sh('ip', '-n', podNetns, 'link', 'set', 'lo', 'up');
  // The API server listens on the node's side of the veth, as the agent reaches it from its pod.
  const api: KubeApiServer = await startKubeApiServer({ host: NODE_IP, bookmarkIntervalMs: 200 });
  cleanups.push(() => api.stop());
  api.create('configmaps', osmConfig());
  const register = (pod: KubeObject) => api.create('pods', pod);
  const shop: FakePod = await node.addPod({ namespace: 'shop', name: 'web', meshed: true }, register);
  const batch: FakePod = await node.addPod(
    { namespace: 'shop', name: 'batch', meshed: false, qos: 'Guaranteed' },
    register,
  );
  const secrets = path.join(work, 'secrets');
  mkdirSync(secrets, { recursive: true });
  await api.writeKubeconfig(secrets);

  // --- volumes: where each of the manifest's volumes lives on this host -------------------------
  // hostPath /sys/fs/bpf: a bpffs of the test's own (shared, so HostToContainer can be shown), never
  // the node's /sys/fs/bpf/meshgate. hostPath /sys/fs/cgroup: the node's cgroup2 root (here it is
  // mounted at cg2). Other hostPaths: a directory under the run's work dir. emptyDir: a directory,
  // a tmpfs for medium Memory, kept across container restarts as the kubelet keeps it.
  const volumes = new Map<string, string>();
  const volumePath = (m: AgentMount): string => {
    const known = volumes.get(m.name);
    if (known) return known;
    let p: string;
    if (m.source.kind === 'hostPath' && m.source.path === '/sys/fs/bpf') {
      p = `/sys/fs/bpf/${TAG}`;
      mkdirSync(p);
      sh('mount', '-t', 'bpf', 'bpf', p);
      sh('mount', '--make-shared', p);
      cleanups.push(() => {
        try {
          cleanupPins(path.join(p, 'meshgate'));
        } finally {
          spawnSync('umount', ['-l', p]);
          rmSync(p, { recursive: true, force: true });
        }
      });
    } else if (m.source.kind === 'hostPath' && m.source.path === '/sys/fs/cgroup') {
      p = cg2;
    } else if (m.source.kind === 'hostPath') {
      p = path.join(work, 'hostpath', m.source.path);
      mkdirSync(p, { recursive: true });
    } else {
      p = path.join(work, 'volumes', m.name);
      mkdirSync(p, { recursive: true });
      if (m.source.medium === 'Memory') {
        const size = m.source.sizeLimit ? `,size=${m.source.sizeLimit.replace(/i$/, '').toLowerCase()}` : '';
        sh('mount', '-t', 'tmpfs', '-o', `mode=1777${size}`, 'tmpfs', p);
        cleanups.push(() => void spawnSync('umount', ['-l', p]));
      }
    }
    volumes.set(m.name, p);
    return p;
  };
  for (const m of agent.mounts) volumePath(m);

  const containerArgs = [...agent.command, ...agent.args];
  const pinDirInContainer = flagValue(containerArgs, '--pin-dir') ?? '/sys/fs/bpf/meshgate';
  const hostPinDir = hostPathOf(agent, volumePath, pinDirInContainer);
  const cgroupMount = agent.mounts.find((m) => m.source.kind === 'hostPath' && m.source.path === '/sys/fs/cgroup');
  if (!cgroupMount) throw new Error('the manifest mounts no cgroup2 root (hostPath /sys/fs/cgroup)');
  const cgroupRootInContainer = path.join(cgroupMount.mountPath, path.relative(cg2, node.kubepods));
  const listenPort = agent.readinessProbe?.port ?? 9090;

  // Test-only additions: on a real node the agent finds the kubelet's kubepods cgroup itself and
  // uses its service account; here the kubepods tree is the test's and the API server speaks HTTP.
  const extraArgs = [`--cgroup-root=${cgroupRootInContainer}`, `--kubeconfig=${KUBECONFIG_DIR}/kubeconfig`];
  console.log(`test adds: ${extraArgs.join(' ')}; NODE_NAME=${NODE_NAME}; pins on the host under ${hostPinDir}`);

  const runc = new Runc(`/run/${TAG}-runc`);
  cleanups.push(() => {
    for (const id of runc.list()) runc.delete(id);
    rmSync(runc.root, { recursive: true, force: true });
  });
  const ctrNamespace = TAG;
  cleanups.push(() => removeCtrNamespace(ctrNamespace));
  const defaultsCache = new Map<string, RuntimeDefaults>();
  let ctrCount = 0;
  const defaultsFor = (capSet: readonly string[]): RuntimeDefaults => {
    const key = capSet.join(',');
    if (!defaultsCache.has(key))
      defaultsCache.set(key, captureRuntimeDefaults(rootfs, capSet, `${TAG}-spec-${++ctrCount}`, ctrNamespace));
    return defaultsCache.get(key)!;
  };

  let containerCount = 0;
  const agentLogs: string[] = [];
  agentLogsForReport = agentLogs;
  const hostSide = (netnsPath: string): HostSide => ({
    rootfs,
    netnsPath,
    cgroupsPath: `/${TAG}-agent`,
    hostname: 'meshgate-e2e',
    fields: { 'spec.nodeName': NODE_NAME, 'metadata.namespace': 'meshgate-system', 'metadata.name': 'meshgate-e2e' },
    volumePath,
    extraArgs,
    extraMounts: [{ source: secrets, destination: KUBECONFIG_DIR }],
  });
  const startAgent = (): { id: string; pid: number; log: string } => {
    const id = `${TAG}-agent-${++containerCount}`;
    const spec = ociSpec(agent, image, defaultsFor(caps), hostSide(`/run/netns/${podNetns}`));
    const log = path.join(work, `${id}.log`);
    agentLogs.push(log);
    const pid = runc.run(id, path.join(work, 'bundles', id), spec, log);
    return { id, pid, log };
  };
  const stopAgent = async (id: string): Promise<void> => {
    runc.kill(id, 'SIGTERM');
    await until(`${id} to exit`, () => runc.status(id) === 'stopped' || runc.status(id) === null, 30_000);
    runc.delete(id);
  };
  // A fresh connection per request, as the kubelet's probes make: a pooled keep-alive socket that
  // the agent's server closed meanwhile would fail the request (UND_ERR_SOCKET) for the client's sake.
  const http = (p: string, port = listenPort): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpGet({ host: POD_IP, port, path: p, agent: false, timeout: 3000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out after 3 s')));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`GET ${POD_IP}:${port}${p}: ${err.code ?? err.message}`)),
      );
    });
  const ready = async (log: string, ms = 90_000): Promise<void> => {
    const probe = agent.readinessProbe ?? { path: '/readyz', port: listenPort };
    await until(
      'the readiness probe',
      async () => {
        try {
          return (await http(probe.path, probe.port)).status === 200;
        } catch {
          return false;
        }
      },
      ms,
      () => `agent log tail: ${readFileSync(log, 'utf8').split('\n').slice(-6).join(' | ')}`,
    );
  };

  // --- 1. the agent, as the DaemonSet runs it -----------------------------------------------------
  let current = { id: '', pid: 0, log: '' };
  await step('agent container starts and turns ready (readinessProbe through the pod IP)', async () => {
    const started = Date.now();
    const seen: string[] = [];
    const poll = setInterval(() => {
      const n = api.requests().length;
      if (n > seen.length)
        for (const r of api.requests().slice(seen.length))
          seen.push(`${r.verb} ${r.resource} +${((Date.now() - started) / 1000).toFixed(1)}s`);
    }, 50);
    current = startAgent();
    try {
      await ready(current.log);
    } finally {
      clearInterval(poll);
    }
    console.log(`api requests: ${seen.slice(0, 8).join(', ')}`);
    return `${current.id}, ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${timeline(current.log)})`;
  });
  if (!results.at(-1)!.ok) {
    if (current.log && existsSync(current.log))
      console.log(readFileSync(current.log, 'utf8').split('\n').slice(-30).join('\n'));
    return finish();
  }

  await step("the agent process has exactly the manifest's privileges", () => {
    const status = readFileSync(`/proc/${current.pid}/status`, 'utf8');
    const field = (k: string) =>
      status
        .split('\n')
        .find((l) => l.startsWith(`${k}:`))
        ?.split(':')[1]
        ?.trim() ?? '';
    const want = capMask(caps);
    for (const set of ['CapEff', 'CapPrm', 'CapBnd'])
      expect(BigInt(`0x${field(set)}`) === want, `${set} ${field(set)}, want ${want.toString(16)} (${caps.join(',')})`);
    expect(
      BigInt(`0x${field('CapInh')}`) === 0n && BigInt(`0x${field('CapAmb')}`) === 0n,
      `inheritable ${field('CapInh')} / ambient ${field('CapAmb')} not empty`,
    );
    expect(field('NoNewPrivs') === (agent.allowPrivilegeEscalation ? '0' : '1'), `NoNewPrivs ${field('NoNewPrivs')}`);
    expect(field('Seccomp') === (agent.seccompProfile === 'RuntimeDefault' ? '2' : '0'), `Seccomp ${field('Seccomp')}`);
    expect(field('Uid').split(/\s+/)[0] === String(agent.runAsUser), `uid ${field('Uid')}`);
    const mountinfo = readFileSync(`/proc/${current.pid}/mountinfo`, 'utf8');
    const root = fsTypeAt(mountinfo, '/');
    expect(
      !!root && root.options.split(',').includes('ro') === agent.readOnlyRootFilesystem,
      `root filesystem options ${root?.options}`,
    );
    const seen: string[] = [];
    for (const m of agent.mounts) {
      const mi = fsTypeAt(mountinfo, m.mountPath);
      expect(!!mi, `${m.mountPath} is not mounted in the container`);
      expect(
        mi!.options.split(',').includes('ro') === m.readOnly,
        `${m.mountPath}: options ${mi!.options}, readOnly ${m.readOnly}`,
      );
      if (m.propagation === 'HostToContainer')
        expect(
          /master:\d+/.test(mi!.optional) && !/shared:/.test(mi!.optional),
          `${m.mountPath}: propagation "${mi!.optional}", want a slave mount`,
        );
      seen.push(`${m.mountPath} ${mi!.type}${m.readOnly ? ' ro' : ''}${mi!.optional ? ` ${mi!.optional}` : ''}`);
    }
    const cg = fsTypeAt(mountinfo, cgroupMount.mountPath);
    expect(cg?.type === 'cgroup2', `${cgroupMount.mountPath} is ${cg?.type}, want cgroup2`);
    return `${caps.join(',')} only; no_new_privs; seccomp filter; ${seen.join('; ')}`;
  });

  await step('the root filesystem is read-only in the container (a write fails with EROFS)', () => {
    const r = runc.exec(current.id, [
      '/usr/local/bin/node',
      '-e',
      "try { require('fs').writeFileSync('/opt/meshgate/x', ''); console.log('written') } catch (e) { console.log(e.code) }",
    ]);
    expect(r.stdout.trim() === 'EROFS', `write to /opt/meshgate gave ${r.stdout.trim() || r.stderr.trim()}`);
    return 'EROFS';
  });

  await step('HostToContainer: a mount made on the node under the bpffs volume after the start shows up inside', () => {
    const m = agent.mounts.find((x) => x.propagation === 'HostToContainer');
    if (!m) return 'no HostToContainer mount in the manifest';
    const late = path.join(volumePath(m), `late-${process.pid}`);
    mkdirSync(late);
    try {
      sh('mount', '-t', 'tmpfs', '-o', 'size=4k', 'tmpfs', late);
      const inside = path.join(m.mountPath, path.basename(late));
      const info = fsTypeAt(readFileSync(`/proc/${current.pid}/mountinfo`, 'utf8'), inside);
      expect(info?.type === 'tmpfs', `${inside} in the container is ${info?.type ?? 'not a mount'}`);
      return `${inside} appeared inside`;
    } finally {
      spawnSync('umount', [late]);
      rmSync(late, { recursive: true, force: true });
    }
  });

  // --- 2. enforcement on a meshed pod -------------------------------------------------------------
  await step(
    'meshed pod: redirect with the original destination, allowlist pass, deny; unmeshed pod untouched',
    async () => {
      await until('the meshed pod to be enforced', () => shop.connect(FORBIDDEN_ADDR, 443).verdict === 'deny', 20_000);
      const r = shop.connect(MESH_ADDR, 80);
      expect(r.verdict === 'redirect', `${MESH_ADDR}:80 gave ${r.verdict}`);
      expect(r.origdst === `${MESH_ADDR}:80`, `SO_ORIGINAL_DST gave ${r.origdst}`);
      const p = shop.connect(API_ADDR, 443);
      expect(p.verdict === 'pass', `allowlisted ${API_ADDR}:443 gave ${p.verdict}`);
      const d = shop.connect(FORBIDDEN_ADDR, 443);
      expect(d.verdict === 'deny' && d.raw.error === 'EPERM', `${FORBIDDEN_ADDR}:443 gave ${d.verdict} ${d.raw.error}`);
      expect(batch.connect(FORBIDDEN_ADDR, 443).verdict === 'pass', 'the unmeshed pod was enforced');
      return `redirect ${MESH_ADDR}:80 (origdst ${r.origdst}), pass ${API_ADDR}:443, deny ${FORBIDDEN_ADDR}:443 (EPERM)`;
    },
  );

  await step("/healthz and /metrics through the container's port", async () => {
    const liveness = agent.livenessProbe ?? { path: '/healthz', port: listenPort };
    const h = await http(liveness.path, liveness.port);
    expect(h.status === 200, `${liveness.path}: HTTP ${h.status}`);
    const m = await http('/metrics');
    expect(m.status === 200, `/metrics: HTTP ${m.status}`);
    const deny = /meshgate_verdicts_total\{verdict="deny"[^}]*\} (\d+)/.exec(m.body);
    expect(!!deny && Number(deny[1]) > 0, 'no deny counted in meshgate_verdicts_total');
    expect(/meshgate_config_valid\{[^}]*\} 1/.test(m.body), 'meshgate_config_valid is not 1');
    return `${liveness.path} 200; /metrics: ${deny![0]}`;
  });

  // --- 3. kubectl exec ----------------------------------------------------------------------------
  const meshgate = (...args: string[]) =>
    runc.exec(current.id, ['meshgate', ...args, `--pin-dir=${pinDirInContainer}`]);
  await step('exec meshgate status', () => {
    const r = meshgate('status');
    expect(
      r.status === 0,
      `exit ${r.status}: ${r.stdout
        .split('\n')
        .filter((l) => /problem|unknown|orphan|no link/i.test(l))
        .join(' / ')} ${r.stderr}`,
    );
    expect(r.stdout.includes(pinDirInContainer), `no pin dir in: ${r.stdout.slice(0, 300)}`);
    return r.stdout
      .split('\n')
      .filter((l) => /generation|valid|attached|link/i.test(l))
      .slice(0, 3)
      .join(' / ')
      .replace(/\s+/g, ' ');
  });
  await step('exec meshgate dump', () => {
    const r = meshgate('dump');
    expect(r.status === 0, `exit ${r.status}: ${r.stderr}`);
    for (const s of ['shop/web', API_ADDR, '10.96.0.0/12']) expect(r.stdout.includes(s), `dump does not show ${s}`);
    return `${r.stdout.split('\n').length} lines, shows shop/web, ${API_ADDR} and 10.96.0.0/12`;
  });
  await step('exec meshgate explain', () => {
    // Exit status 4 is deny, 3 redirect (docs/cli.md).
    const r = meshgate('explain', 'shop/web', `${FORBIDDEN_ADDR}:443`);
    expect(r.status === 4 && /\bden(y|ied)\b/i.test(r.stdout), `exit ${r.status}: ${r.stdout} ${r.stderr}`);
    const m = meshgate('explain', 'shop/web', `${MESH_ADDR}:80`);
    expect(m.status === 3 && /redirect/i.test(m.stdout), `mesh address: exit ${m.status}: ${m.stdout} ${m.stderr}`);
    return `${r.stdout.trim().split('\n')[0]!} (exit 4); ${MESH_ADDR}:80 redirect (exit 3)`;
  });
  await step('exec meshgate trace (a deny from the pod is streamed)', async () => {
    const child = runc.execStream(current.id, [
      'meshgate',
      'trace',
      '--json',
      '--verdict',
      'deny',
      '--count',
      '1',
      '--duration',
      '20',
      `--pin-dir=${pinDirInContainer}`,
    ]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until(
        'trace to stream a deny',
        () => {
          shop.connect(FORBIDDEN_ADDR, 443);
          return out.includes(FORBIDDEN_ADDR);
        },
        15_000,
        () => `trace stdout: ${out} stderr: ${err}`,
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGINT');
    }
    const code = await exited;
    const line = out.split('\n').find((l) => l.includes(FORBIDDEN_ADDR))!;
    return `exit ${code}: ${line.slice(0, 160)}`;
  });

  // --- 4. a container restart under a connect loop -------------------------------------------------
  await step('container restart: the new agent adopts the pins, no wrong verdict under a connect loop', async () => {
    let stop = false;
    const tally = { total: 0, silent: 0, wrong: [] as string[] };
    const loop = (async () => {
      const targets: [string, number, string][] = [
        [FORBIDDEN_ADDR, 443, 'deny'],
        [MESH_ADDR, 80, 'redirect'],
        [API_ADDR, 443, 'pass'],
      ];
      for (let i = 0; !stop && i < 5000; i++) {
        const [addr, port, want] = targets[i % targets.length]!;
        const [cmd, ...args] = shop.probeCommand(addr, port).split(' ');
        tally.total++;
        // A probe that prints no report at all (seen once in several runs, exit 0, no stderr) is
        // not a verdict: it is counted and retried once; a second silence is a failure.
        for (let attempt = 1; attempt <= 2; attempt++) {
          try {
            const { stdout, stderr } = await execFileAsync(cmd!, args, { timeout: 10_000 });
            const last = stdout.trim().split('\n').pop() ?? '';
            if (!last.startsWith('{')) {
              tally.silent++;
              if (attempt === 1) continue;
              throw new Error(`no report twice (stdout "${stdout}", stderr "${stderr}")`);
            }
            const v = classify(JSON.parse(last));
            if (v.verdict !== want)
              tally.wrong.push(`${addr}:${port} ${v.verdict}${v.raw.error ? ` ${v.raw.error}` : ''}`);
          } catch (err) {
            tally.wrong.push(`${addr}:${port} probe failed: ${(err as Error).message.split('\n')[0]}`);
          }
          break;
        }
      }
    })();
    const before = tally.total;
    await until('the loop to run', () => tally.total >= before + 5, 10_000);
    const old = current.id;
    await stopAgent(old);
    const duringGap = tally.total;
    current = startAgent();
    await ready(current.log);
    const afterReady = tally.total;
    const gapConnects = afterReady - duringGap;
    await until('a few connects after ready', () => tally.total >= afterReady + 6, 10_000);
    stop = true;
    await loop;
    expect(
      tally.wrong.length === 0,
      `${tally.wrong.length} wrong verdicts of ${tally.total}: ${tally.wrong.slice(0, 5).join(', ')}`,
    );
    const log = readFileSync(current.log, 'utf8');
    const opened = log.split('\n').find((l) => l.includes('"datapath opened"'));
    expect(
      !!opened && /"adopted":(true|[1-9])/.test(opened),
      `the new agent did not adopt the pins: ${opened ?? 'no "datapath opened" line'}`,
    );
    return `${tally.total} connects, ${gapConnects} of them while no agent ran or it was starting; 0 wrong${tally.silent ? `; ${tally.silent} probe(s) printed nothing and were retried` : ''}; ${old} -> ${current.id}`;
  });

  // --- 5. each added capability is needed ----------------------------------------------------------
  const pfNetns = `${TAG}-pf`;
  sh('ip', 'netns', 'add', pfNetns);
  cleanups.push(() => void spawnSync('ip', ['netns', 'del', pfNetns]));
  for (const cap of agent.capabilitiesAdd) {
    await step(`without ${capName(cap)}: preflight fails with one line that names it`, () => {
      const without = containerCapabilities(agent, [], { withoutCapabilities: [cap] });
      const id = `${TAG}-pf-${++containerCount}`;
      const bundle = path.join(work, 'bundles', id);
      mkdirSync(bundle, { recursive: true });
      writeFileSync(
        path.join(bundle, 'config.json'),
        JSON.stringify(
          ociSpec(agent, image, defaultsFor(without), hostSide(`/run/netns/${pfNetns}`), {
            withoutCapabilities: [cap],
          }),
          null,
          2,
        ),
      );
      const r = spawnSync('runc', ['--root', runc.root, 'run', '--bundle', bundle, id], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      runc.delete(id);
      const lines = `${r.stdout}\n${r.stderr}`.split('\n');
      const preflightLines = lines.filter((l) => l.startsWith('meshgate agent: preflight'));
      expect(r.status === 1, `exit ${r.status}: ${r.stderr.slice(-400)}`);
      expect(preflightLines.length === 1, `${preflightLines.length} preflight lines: ${preflightLines.join(' | ')}`);
      expect(
        preflightLines[0]!.includes(capName(cap)),
        `the preflight line does not name ${capName(cap)}: ${preflightLines[0]}`,
      );
      return preflightLines[0]!;
    });
  }

  // --- 5b. ...and the kernel agrees: past the preflight, loading and attaching fail without it -------
  // The same container (its seccomp profile for those capabilities included) runs a script that
  // opens the datapath and attaches it to a cgroup of its own, on a pin dir of its own. With every
  // capability of the manifest it must succeed (the control); without any one of them it must fail.
  const needsDir = path.join(REPO_ROOT, 'test/e2e/container');
  const bpfMount = agent.mounts.find((m) => m.source.kind === 'hostPath' && m.source.path === '/sys/fs/bpf');
  const kernelNeeds = (without: string[]): { ok: boolean; stage?: string; kind?: string; error?: string } => {
    const id = `${TAG}-needs-${++containerCount}`;
    const bundle = path.join(work, 'bundles', id);
    mkdirSync(bundle, { recursive: true });
    const cgroup = node.sb.child(`needs-${containerCount}`);
    const pinName = `needs-${containerCount}`;
    const inContainer = (hostPath: string) => path.join(cgroupMount.mountPath, path.relative(cg2, hostPath));
    const capSet = containerCapabilities(agent, [], { withoutCapabilities: without });
    const host = {
      ...hostSide(`/run/netns/${pfNetns}`),
      extraMounts: [...hostSide('').extraMounts, { source: needsDir, destination: '/e2e' }],
    };
    const spec = ociSpec(agent, image, defaultsFor(capSet), host, {
      withoutCapabilities: without,
      argv: [
        '/usr/local/bin/node',
        '/e2e/kernel-needs.mjs',
        path.join(bpfMount!.mountPath, pinName),
        inContainer(cgroup),
        JSON.stringify({ policy: basePolicy(), cgroups: [] }),
      ],
    });
    writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    const r = spawnSync('runc', ['--root', runc.root, 'run', '--bundle', bundle, id], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    runc.delete(id);
    cleanupPins(path.join(volumePath(bpfMount!), pinName));
    const last = r.stdout.trim().split('\n').pop() ?? '';
    if (!last.startsWith('{'))
      throw new Error(`no report: exit ${r.status}: ${r.stdout.slice(-300)} ${r.stderr.slice(-300)}`);
    return JSON.parse(last);
  };
  if (bpfMount) {
    await step(`with ${caps.join(', ')}: the datapath loads and attaches (the control)`, () => {
      const r = kernelNeeds([]);
      expect(r.ok, `${r.stage}: ${r.error}`);
      return 'loaded and attached';
    });
    for (const cap of agent.capabilitiesAdd) {
      await step(`without ${capName(cap)}: the kernel refuses the datapath (past the preflight)`, () => {
        const r = kernelNeeds([cap]);
        expect(
          !r.ok,
          `the datapath loaded and attached without ${capName(cap)}: the manifest's ${capName(cap)} looks superfluous`,
        );
        return `${r.stage}${r.kind ? ` (${r.kind})` : ''}: ${r.error}`;
      });
    }
  }

  // Not --privileged: that asks for every capability, and a host whose own bounding set lacks one
  // (this one has no CAP_SYS_RESOURCE) refuses it. The demo creates a netns and a cgroup and loads
  // programs: SYS_ADMIN (which covers BPF and PERFMON, unknown to Docker 20.10) and NET_ADMIN.
  await step('meshgate demo from the image (docker run)', () => {
    const bpf = agent.mounts.find((m) => m.source.kind === 'hostPath' && m.source.path === '/sys/fs/bpf');
    const args = [
      'run',
      '--rm',
      '--name',
      `${TAG}-demo`,
      '--cap-add',
      'SYS_ADMIN',
      '--cap-add',
      'NET_ADMIN',
      '--security-opt',
      'seccomp=unconfined',
      '--security-opt',
      'apparmor=unconfined',
      '--network',
      'none',
      '-v',
      `${bpf ? volumePath(bpf) : '/sys/fs/bpf'}:/sys/fs/bpf`,
      '-v',
      `${cg2}:/sys/fs/cgroup`,
      imageName,
      'demo',
    ];
    const r = spawnSync('docker', args, { encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) spawnSync('docker', ['rm', '-f', `${TAG}-demo`], { stdio: 'ignore' });
    expect(r.status === 0, `exit ${r.status}: ${(r.stdout + r.stderr).split('\n').slice(-12).join(' | ')}`);
    for (const word of ['redirect', 'deny', 'pass', 'cleaned up'])
      expect(r.stdout.toLowerCase().includes(word), `the demo's output does not say ${word}`);
    return `docker ${args.slice(0, -2).join(' ')} … demo: exit 0`;
  });

  await step('the agents logged no warning or error', () => {
    const bad: string[] = [];
    for (const file of agentLogs) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        const o = JSON.parse(line) as { level: number; msg: string; err?: unknown };
        if (o.level >= 40)
          bad.push(
            `${path.basename(file, '.log')}: ${o.msg}${o.err ? ` (${JSON.stringify(o.err).slice(0, 200)})` : ''}`,
          );
      }
    }
    expect(bad.length === 0, bad.join(' | '));
    return `${agentLogs.length} agent runs`;
  });

  await step('the agent is still healthy at the end', async () => {
    expect(runc.status(current.id) === 'running', `${current.id} is ${runc.status(current.id)}`);
    expect((await http(agent.livenessProbe?.path ?? '/healthz')).status === 200, 'healthz failed');
  });
  return finish();
}

let agentLogsForReport: string[] = [];
function finish(): number {
  const failed = results.filter((r) => !r.ok);
  if (failed.length) {
    for (const file of agentLogsForReport.filter((f) => existsSync(f))) {
      console.log(`\n--- ${path.basename(file)} (last 25 lines)`);
      console.log(readFileSync(file, 'utf8').trimEnd().split('\n').slice(-25).join('\n'));
    }
  }
  console.log(`\n${results.length - failed.length}/${results.length} checks passed in ${elapsed()}`);
  for (const f of failed) console.log(`FAILED: ${f.name}: ${f.detail}`);
  return failed.length ? 1 : 0;
}

let exiting = false;
for (const event of ['unhandledRejection', 'uncaughtException'] as const) {
  process.on(event, (err: Error) => {
    console.error(`e2e: ${event}: ${err?.stack ?? String(err)}`);
    if (exiting) return;
    exiting = true;
    void cleanupAll().then(() => process.exit(1));
  });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    console.error(`${sig}: cleaning up`);
    void cleanupAll().then(() => process.exit(130));
  });
}

main().then(
  async (code) => {
    await cleanupAll();
    process.exitCode = code;
  },
  async (err: Error) => {
    console.error(`e2e: ${err.stack ?? err.message}`);
    await cleanupAll();
    process.exitCode = 1;
  },
);
