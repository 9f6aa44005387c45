// A Kubernetes node as the cluster agent sees it, without a kubelet: a
// kubepods cgroup tree laid out exactly as the kubelet lays it out (systemd or
// cgroupfs driver), and pods that each have their own netns, an app container
// cgroup and (when meshed) a sidecar container cgroup with a real listener on
// the proxy port. The matching Pod objects go to the test API server.
// Everything lives under one sandbox (cgroup, pins) plus one netns per pod,
// all named mgtest-*, and cleanup() removes it all.
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { classify, PROXY_PORT, type Verdict } from './kernelFixture.js';
import { createSandbox, removeCgroup, SOCKPROBE, type Sandbox } from './sandbox.js';
import type { KubeObject } from './kubeApiServer.js';
import { sockprobeArgv, tcpConnectArgv } from '../../src/node/sockprobe.js';

export const NODE_NAME = 'node-a';
/** Addresses every pod netns has on lo: a mesh service, an allowlisted API, a forbidden site. */
export const MESH_ADDR = '10.96.0.10';
export const API_ADDR = '203.0.113.10';
export const FORBIDDEN_ADDR = '198.51.100.7';
const ADDRS = [MESH_ADDR, API_ADDR, FORBIDDEN_ADDR];

export type Driver = 'systemd' | 'cgroupfs';

export interface FakePodSpec {
  readonly namespace: string;
  readonly name: string;
  /** Adds a sidecar container named envoy. */
  readonly meshed: boolean;
  readonly qos?: 'Guaranteed' | 'Burstable' | 'BestEffort';
  readonly hostNetwork?: boolean;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export interface FakePod {
  readonly spec: FakePodSpec;
  readonly uid: string;
  readonly dir: string;
  readonly appDir: string;
  readonly proxyDir: string | null;
  readonly netnsPath: string;
  /** The Pod object as the API server stored it. */
  object(): KubeObject;
  /** One real connect from the app container (or from `cgroup`); the verdict the kernel gave. */
  connect(addr: string, port: number, cgroup?: string): Verdict;
  /**
   * The sidecar restarts as a container runtime restarts it: its cgroup goes
   * and a new one (a new container ID) appears; the Pod's status is not
   * updated (the kubelet's update comes later). Its listeners move to the app's
   * cgroup meanwhile (listening is never decided). Returns the new cgroup.
   */
  restartSidecar(): { dir: string; containerId: string };
  /** The shell command of that connect, for traffic loops. */
  probeCommand(addr: string, port: number): string;
}

export interface FakeNode {
  readonly sb: Sandbox;
  readonly driver: Driver;
  /** The kubepods cgroup: --cgroup-root. */
  readonly kubepods: string;
  /**
   * Creates the Pod through `register` (the API server, which assigns the
   * uid, as a real one does), then its cgroups, netns and processes.
   */
  addPod(spec: FakePodSpec, register: (pod: KubeObject) => KubeObject): Promise<FakePod>;
  /** The pod's processes stop and its cgroups and netns go, as when the kubelet removes it. */
  removePod(pod: FakePod): void;
  cleanup(): void;
}

function podDirOf(kubepods: string, driver: Driver, uid: string, qos: string): string {
  if (driver === 'systemd') {
    const id = uid.replace(/-/g, '_');
    if (qos === 'Guaranteed') return path.join(kubepods, `kubepods-pod${id}.slice`);
    const q = qos.toLowerCase();
    return path.join(kubepods, `kubepods-${q}.slice`, `kubepods-${q}-pod${id}.slice`);
  }
  return qos === 'Guaranteed' ? path.join(kubepods, `pod${uid}`) : path.join(kubepods, qos.toLowerCase(), `pod${uid}`);
}

const containerDirName = (driver: Driver, id: string): string =>
  driver === 'systemd' ? `cri-containerd-${id}.scope` : id;

export function createFakeNode(label: string, driver: Driver): FakeNode {
  const sb = createSandbox(label);
  const kubepods = sb.child(driver === 'systemd' ? 'kubepods.slice' : 'kubepods');
  const netnses: string[] = [];
  const processes = new Map<string, ChildProcess[]>();
  let podCount = 0;

  const stopProcesses = (uid: string) => {
    for (const child of processes.get(uid) ?? [])
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    processes.delete(uid);
  };

  const listen = (uid: string, netns: string, cgroup: string, port: number, banner: string): Promise<void> => {
    const child = spawn(
      SOCKPROBE,
      sockprobeArgv({ netns: `/run/netns/${netns}`, cgroup }, 'listen', {
        family: 4,
        proto: 'tcp',
        addr: '0.0.0.0',
        port,
        banner,
      }),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    (processes.get(uid) ?? processes.set(uid, []).get(uid)!).push(child);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`listener ${banner} did not start`)), 5000);
      child.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`listener ${banner} exited ${code}`)));
    });
  };

  return {
    sb,
    driver,
    kubepods,
    async addPod(spec, register) {
      const qos = spec.qos ?? 'Burstable';
      const appId = randomBytes(32).toString('hex');
      const proxyId = randomBytes(32).toString('hex');
      const containers = [{ name: 'app', image: 'app' }, ...(spec.meshed ? [{ name: 'envoy', image: 'envoy' }] : [])];
      const status = (name: string, id: string) => ({
        name,
        containerID: `containerd://${id}`,
        ready: true,
        restartCount: 0,
        image: name,
        imageID: name,
      });
      const stored = register({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels, annotations: spec.annotations },
        spec: { nodeName: NODE_NAME, containers, hostNetwork: spec.hostNetwork },
        status: {
          phase: 'Running',
          qosClass: qos,
          containerStatuses: [status('app', appId), ...(spec.meshed ? [status('envoy', proxyId)] : [])],
        },
      } as unknown as KubeObject);
      const uid = stored.metadata.uid!;
      const dir = podDirOf(kubepods, driver, uid, qos);
      const netns = `${sb.name}-p${++podCount}`;
      execFileSync('ip', ['netns', 'add', netns]);
      netnses.push(netns);
      execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      for (const a of ADDRS) execFileSync('ip', ['-n', netns, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
      mkdirSync(dir, { recursive: true });
      const appDir = path.join(dir, containerDirName(driver, appId));
      mkdirSync(appDir);
      let proxyDir: string | null = null;
      if (spec.meshed) {
        proxyDir = path.join(dir, containerDirName(driver, proxyId));
        mkdirSync(proxyDir);
      }
      // Listeners live in the sidecar's cgroup (or the app's for an unmeshed pod): listening is never decided.
      const listenerCgroup = proxyDir ?? appDir;
      await listen(uid, netns, listenerCgroup, PROXY_PORT, 'proxy');
      for (const port of [80, 443]) await listen(uid, netns, listenerCgroup, port, `service:${port}`);
      const netnsPath = `/run/netns/${netns}`;
      const probeArgs = (addr: string, port: number, cgroup = appDir) =>
        tcpConnectArgv({ netns: netnsPath, cgroup }, addr, port);
      return {
        spec,
        uid,
        dir,
        appDir,
        get proxyDir() {
          return proxyDir;
        },
        netnsPath,
        object: () => stored,
        connect(addr, port, cgroup) {
          const r = spawnSync(SOCKPROBE, probeArgs(addr, port, cgroup), { encoding: 'utf8', timeout: 10_000 });
          if (r.status !== 0) throw new Error(`sockprobe connect ${addr}:${port} exited ${r.status}: ${r.stderr}`);
          return classify(JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}'));
        },
        probeCommand(addr, port) {
          return [SOCKPROBE, ...probeArgs(addr, port)].join(' ');
        },
        restartSidecar() {
          if (!proxyDir) throw new Error(`${spec.namespace}/${spec.name} has no sidecar`);
          for (const pid of readFileSync(path.join(proxyDir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
            writeFileSync(path.join(appDir, 'cgroup.procs'), pid);
          rmdirSync(proxyDir);
          const id = randomBytes(32).toString('hex');
          proxyDir = path.join(dir, containerDirName(driver, id));
          mkdirSync(proxyDir);
          return { dir: proxyDir, containerId: `containerd://${id}` };
        },
      };
    },
    removePod(pod) {
      stopProcesses(pod.uid);
      if (!removeCgroup(pod.dir)) throw new Error(`pod cgroup ${pod.dir} still holds processes`);
      const netns = path.basename(pod.netnsPath);
      spawnSync('ip', ['netns', 'del', netns]);
      netnses.splice(netnses.indexOf(netns), 1);
    },
    cleanup() {
      for (const uid of [...processes.keys()]) stopProcesses(uid);
      for (const netns of netnses) spawnSync('ip', ['netns', 'del', netns]);
      sb.cleanup();
    },
  };
}
