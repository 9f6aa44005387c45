// deploy/ is what users apply to their clusters: these tests pin down its security-relevant
// properties (RBAC verbs, capabilities, mounts, probes, rolling update) and keep its agent flags
// consistent with the real CLI, so a careless edit fails CI instead of a cluster.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, unknown>;

/** The repository root, found from the working directory or above this test file. */
function findRoot(): string {
  const candidates = [process.cwd()];
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir))
    candidates.push(dir);
  const root = candidates.find(
    (dir) => existsSync(join(dir, 'deploy', 'daemonset.yaml')) && existsSync(join(dir, 'package.json')),
  );
  assert.ok(root, `deploy/daemonset.yaml not found from ${process.cwd()}`);
  return root;
}

const ROOT = findRoot();
const DEPLOY = join(ROOT, 'deploy');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const p = join(dir, e.name);
      if (e.isDirectory()) return yamlFiles(p);
      return /\.ya?ml$/.test(e.name) ? [p] : [];
    })
    .sort();
}

interface Manifest {
  readonly file: string;
  readonly doc: Obj;
}

function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of yamlFiles(DEPLOY)) {
    for (const d of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const where = relative(ROOT, file);
      assert.deepEqual(
        d.errors.map((e) => e.message),
        [],
        `${where} is not valid YAML`,
      );
      const doc: unknown = d.toJS();
      if (doc === null || doc === undefined) continue;
      assert.ok(isObj(doc), `${where}: a document is not a map`);
      out.push({ file: where, doc });
    }
  }
  return out;
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
function obj(v: unknown, what: string): Obj {
  assert.ok(isObj(v), `${what} is not a map`);
  return v;
}
function arr(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} is not a list`);
  return v;
}
function str(v: unknown, what: string): string {
  assert.equal(typeof v, 'string', `${what} is not a string`);
  return v as string;
}

const MANIFESTS = loadManifests();
const named = (kind: string, name: string): Obj => {
  const found = MANIFESTS.filter(
    (m) => m.doc['kind'] === kind && obj(m.doc['metadata'], `${kind} metadata`)['name'] === name,
  );
  assert.equal(found.length, 1, `expected exactly one ${kind} ${name} in deploy/, found ${found.length}`);
  return found[0]!.doc;
};
const ofKind = (kind: string): Manifest[] => MANIFESTS.filter((m) => m.doc['kind'] === kind);

const NAMESPACE = 'meshgate-system';
const agentDs = named('DaemonSet', 'meshgate');
const agentPod = obj(obj(obj(agentDs['spec'], 'spec')['template'], 'template')['spec'], 'pod spec');
const agentContainers = arr(agentPod['containers'], 'containers').map((c, i) => obj(c, `containers[${i}]`));
const agent = agentContainers[0]!;
const agentArgs = arr(agent['args'], 'args').map((a, i) => str(a, `args[${i}]`));

/** `--flag=value` and `--flag value` both; the last one wins, as commander does. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  let value: string | undefined;
  args.forEach((a, i) => {
    if (a.startsWith(`${flag}=`)) value = a.slice(flag.length + 1);
    else if (a === flag) value = args[i + 1];
  });
  return value;
}

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'meshgate.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------

test('every manifest in deploy/ parses and names its apiVersion, kind and metadata.name', () => {
  assert.ok(MANIFESTS.length >= 6, `only ${MANIFESTS.length} manifests found under deploy/`);
  for (const { file, doc } of MANIFESTS) {
    assert.equal(typeof doc['apiVersion'], 'string', `${file}: apiVersion`);
    assert.equal(typeof doc['kind'], 'string', `${file}: kind`);
    assert.equal(typeof obj(doc['metadata'], `${file} metadata`)['name'], 'string', `${file}: metadata.name`);
  }
});

test("the agent's objects live in meshgate-system, whose Pod Security level admits hostPath and added capabilities", () => {
  const ns = named('Namespace', NAMESPACE);
  assert.equal(
    obj(obj(ns['metadata'], 'metadata')['labels'], 'labels')['pod-security.kubernetes.io/enforce'],
    'privileged',
  );
  for (const { file, doc } of MANIFESTS) {
    if (file.startsWith('deploy/samples/')) continue;
    if (['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(String(doc['kind']))) continue;
    assert.equal(
      obj(doc['metadata'], 'metadata')['namespace'],
      NAMESPACE,
      `${file}: ${String(doc['kind'])} is not in ${NAMESPACE}`,
    );
  }
});

test('RBAC grants exactly get/list/watch on pods and configmaps and create on core events, nothing else', () => {
  const allowed = new Set([
    '/pods/get',
    '/pods/list',
    '/pods/watch',
    '/configmaps/get',
    '/configmaps/list',
    '/configmaps/watch',
    '/events/create',
  ]);
  const granted = new Set<string>();
  const roles = [...ofKind('ClusterRole'), ...ofKind('Role')];
  assert.deepEqual(
    roles.map((r) => `${String(r.doc['kind'])}/${String(obj(r.doc['metadata'], 'metadata')['name'])}`),
    ['ClusterRole/meshgate'],
  );
  for (const { file, doc } of roles) {
    assert.equal(doc['aggregationRule'], undefined, `${file}: an aggregated role can grow without an edit here`);
    for (const [i, raw] of arr(doc['rules'], `${file} rules`).entries()) {
      const rule = obj(raw, `${file} rules[${i}]`);
      assert.deepEqual(
        Object.keys(rule).sort(),
        ['apiGroups', 'resources', 'verbs'],
        `${file} rules[${i}]: no resourceNames, nonResourceURLs or other fields`,
      );
      for (const group of arr(rule['apiGroups'], 'apiGroups')) {
        for (const resource of arr(rule['resources'], 'resources')) {
          for (const verb of arr(rule['verbs'], 'verbs')) {
            const perm = `${str(group, 'apiGroup')}/${str(resource, 'resource')}/${str(verb, 'verb')}`;
            assert.ok(allowed.has(perm), `${file} rules[${i}] grants ${perm}, which the agent must not have`);
            granted.add(perm);
          }
        }
      }
    }
  }
  assert.deepEqual([...granted].sort(), [...allowed].sort(), 'a permission the agent needs is missing');
});

test('the only bindings bind the meshgate role to the meshgate ServiceAccount, which the DaemonSet uses', () => {
  named('ServiceAccount', 'meshgate');
  const bindings = [...ofKind('ClusterRoleBinding'), ...ofKind('RoleBinding')];
  assert.equal(bindings.length, 1, 'one ClusterRoleBinding');
  for (const { file, doc } of bindings) {
    assert.deepEqual(
      doc['roleRef'],
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'meshgate' },
      `${file}: roleRef`,
    );
    assert.deepEqual(
      doc['subjects'],
      [{ kind: 'ServiceAccount', name: 'meshgate', namespace: NAMESPACE }],
      `${file}: subjects`,
    );
  }
  assert.equal(agentPod['serviceAccountName'], 'meshgate');
});

test("nothing in deploy/ is privileged or shares the host's network, PID or IPC namespace", () => {
  const walk = (v: unknown, at: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (isObj(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (['privileged', 'hostNetwork', 'hostPID', 'hostIPC'].includes(k))
          assert.notEqual(x, true, `${at}.${k} is true`);
        if (k === 'mountPropagation')
          assert.notEqual(x, 'Bidirectional', `${at}: Bidirectional propagation needs a privileged container`);
        walk(x, `${at}.${k}`);
      }
    }
  };
  for (const { file, doc } of MANIFESTS) walk(doc, file);
});

test('the agent container adds exactly BPF, NET_ADMIN and PERFMON to an otherwise empty capability set', () => {
  assert.equal(agentContainers.length, 1, 'one container: the agent');
  const sc = obj(agent['securityContext'], 'securityContext');
  const caps = obj(sc['capabilities'], 'capabilities');
  assert.deepEqual(caps['drop'], ['ALL']);
  assert.deepEqual([...arr(caps['add'], 'add')].map((c) => str(c, 'cap')).sort(), ['BPF', 'NET_ADMIN', 'PERFMON']);
  assert.equal(sc['privileged'], false);
  assert.equal(sc['allowPrivilegeEscalation'], false);
  assert.equal(sc['readOnlyRootFilesystem'], true);
  assert.deepEqual(sc['seccompProfile'], { type: 'RuntimeDefault' });
});

test("the agent mounts the node's bpffs (HostToContainer) and cgroup2 root (read-only), and no other host path", () => {
  const volumes = new Map(
    arr(agentPod['volumes'], 'volumes').map((v, i) => {
      const vol = obj(v, `volumes[${i}]`);
      return [str(vol['name'], 'volume name'), vol] as const;
    }),
  );
  const hostPaths = [...volumes.values()]
    .filter((v) => v['hostPath'] !== undefined)
    .map((v) => str(obj(v['hostPath'], 'hostPath')['path'], 'path'))
    .sort();
  assert.deepEqual(hostPaths, ['/sys/fs/bpf', '/sys/fs/cgroup']);
  const mounts = arr(agent['volumeMounts'], 'volumeMounts').map((m, i) => obj(m, `volumeMounts[${i}]`));
  const mountOf = (hostPath: string): Obj => {
    const vol = [...volumes.entries()].find(([, v]) => isObj(v['hostPath']) && v['hostPath']['path'] === hostPath);
    assert.ok(vol, `no volume for ${hostPath}`);
    const mount = mounts.find((m) => m['name'] === vol[0]);
    assert.ok(mount, `${hostPath} is not mounted`);
    return mount;
  };
  const bpffs = mountOf('/sys/fs/bpf');
  assert.equal(bpffs['mountPath'], '/sys/fs/bpf');
  assert.equal(bpffs['mountPropagation'], 'HostToContainer');
  assert.notEqual(bpffs['readOnly'], true, 'the agent pins there');
  // Over the container's own cgroup mount, so /proc/self/mountinfo's cgroup2 entry is the node's tree.
  const cgroup = mountOf('/sys/fs/cgroup');
  assert.equal(cgroup['mountPath'], '/sys/fs/cgroup');
  assert.equal(cgroup['readOnly'], true);
  const pinDir = flagValue(agentArgs, '--pin-dir') ?? '/sys/fs/bpf/meshgate';
  assert.ok(pinDir.startsWith('/sys/fs/bpf/'), `--pin-dir ${pinDir} is not inside the bpffs mount`);
});

test('the agent runs `meshgate agent` in cluster mode with flags the real CLI accepts', () => {
  assert.deepEqual(agent['command'], ['meshgate']);
  assert.equal(agentArgs[0], 'agent');
  const help = runCli(['agent', '--help']);
  assert.equal(help.status, 0, help.stderr);
  const known = new Set([...help.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]));
  assert.ok(
    known.has('--pin-dir') && known.has('--config-map'),
    'could not read the flags from `meshgate agent --help`',
  );
  for (const arg of agentArgs.slice(1)) {
    assert.match(arg, /^--[a-z0-9-]+(=.*)?$/, `argument ${arg} is not a --flag=value`);
    const flag = arg.split('=')[0]!;
    assert.ok(known.has(flag), `${flag} is not a flag of meshgate agent`);
  }
  for (const standaloneOnly of ['--config-file', '--allowlist-file', '--cgroup', '--proxy-cgroup']) {
    assert.equal(
      flagValue(agentArgs, standaloneOnly),
      undefined,
      `${standaloneOnly} would switch the agent to standalone mode`,
    );
  }
  const driver = flagValue(agentArgs, '--cgroup-driver');
  if (driver !== undefined) assert.ok(['auto', 'systemd', 'cgroupfs'].includes(driver));
  assert.equal(agent['workingDir'], undefined);
});

test("NODE_NAME comes from the downward API, so the agent watches only its own node's pods", () => {
  const env = arr(agent['env'], 'env').map((e, i) => obj(e, `env[${i}]`));
  const nodeName = env.find((e) => e['name'] === 'NODE_NAME');
  assert.ok(nodeName, 'NODE_NAME is not set');
  assert.deepEqual(nodeName['valueFrom'], { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.equal(
    flagValue(agentArgs, '--node-name'),
    undefined,
    'a fixed --node-name would make every agent watch one node',
  );
});

test('probes hit /readyz and /healthz on the port the agent listens on', () => {
  const listen = flagValue(agentArgs, '--listen') ?? ':9090';
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  assert.equal(port, 9090);
  assert.equal(
    listen.slice(0, listen.lastIndexOf(':')),
    '',
    '--listen must not bind to loopback only: the kubelet probes the pod IP',
  );
  const ready = obj(obj(agent['readinessProbe'], 'readinessProbe')['httpGet'], 'readinessProbe.httpGet');
  const live = obj(obj(agent['livenessProbe'], 'livenessProbe')['httpGet'], 'livenessProbe.httpGet');
  assert.deepEqual([ready['path'], ready['port']], ['/readyz', port]);
  assert.deepEqual([live['path'], live['port']], ['/healthz', port]);
  const ports = arr(agent['ports'], 'ports').map((p) => obj(p, 'port')['containerPort']);
  assert.deepEqual(ports, [port]);
});

test('a rolling update never runs two agents on one node, and nothing drops enforcement on the way', () => {
  const strategy = obj(obj(agentDs['spec'], 'spec')['updateStrategy'], 'updateStrategy');
  assert.equal(strategy['type'], 'RollingUpdate');
  assert.deepEqual(strategy['rollingUpdate'], { maxSurge: 0, maxUnavailable: 1 });
  // A preStop cleanup would detach everything on every update and eviction (SPEC: enforcement continues).
  assert.equal(agent['lifecycle'], undefined);
});

test('the agent tolerates every taint, runs with requests and a memory limit', () => {
  const tolerations = arr(agentPod['tolerations'], 'tolerations');
  assert.ok(
    tolerations.some(
      (t) => isObj(t) && t['operator'] === 'Exists' && t['key'] === undefined && t['effect'] === undefined,
    ),
    'no catch-all toleration',
  );
  const resources = obj(agent['resources'], 'resources');
  const requests = obj(resources['requests'], 'requests');
  assert.ok(requests['cpu'] && requests['memory'], 'cpu and memory requests');
  assert.ok(obj(resources['limits'], 'limits')['memory'], 'memory limit');
});

/** "256Mi", "200M", "1Gi" -> bytes (the quantities a memory request or limit uses). */
function quantityBytes(q: unknown): number {
  const m = /^([0-9]+)(Ki|Mi|Gi|K|M|G)?$/.exec(String(q));
  assert.ok(m, `${String(q)} is not a memory quantity this test reads`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2] as 'Ki'] ?? 1;
  return Number(m[1]) * unit;
}

test("the memory limit keeps 25% above the cluster agent's peak at 100,000 entries, as bench/results/reference.json recorded it", () => {
  const reference = JSON.parse(readFileSync(join(ROOT, 'bench/results/reference.json'), 'utf8')) as {
    results?: { memory?: Array<{ mode?: string; entries: number; hwmMiB: number; rssMiB: number }> };
  };
  const row = reference.results?.memory?.find((m) => m.mode === 'cluster' && m.entries === 100_000);
  assert.ok(
    row,
    'bench/results/reference.json has no cluster-mode memory row at 100,000 entries: run `node dist/bench/run.js` and commit its JSON as the reference',
  );
  const resources = obj(agent['resources'], 'resources');
  const limit = quantityBytes(obj(resources['limits'], 'limits')['memory']);
  const request = quantityBytes(obj(resources['requests'], 'requests')['memory']);
  const peak = row.hwmMiB * 1024 ** 2;
  assert.ok(
    peak <= limit * 0.75,
    `peak ${row.hwmMiB.toFixed(1)} MiB is above the limit ${(limit / 1024 ** 2).toFixed(0)} MiB minus 25%`,
  );
  // The request covers the measured steady state, so the scheduler reserves what the agent really uses.
  assert.ok(
    request >= row.rssMiB * 1024 ** 2,
    `request ${(request / 1024 ** 2).toFixed(0)} MiB is below the measured RSS ${row.rssMiB.toFixed(1)} MiB`,
  );
  assert.ok(request <= limit, 'the request is within the limit');
});

test('the image is tagged with the package version, and every pod in deploy/ uses the same one', () => {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(agent['image'], `meshgate:${version}`);
  for (const { file, doc } of ofKind('DaemonSet')) {
    const pod = obj(obj(obj(doc['spec'], 'spec')['template'], 'template')['spec'], 'pod');
    for (const c of [
      ...arr(pod['containers'], 'containers'),
      ...(Array.isArray(pod['initContainers']) ? pod['initContainers'] : []),
    ]) {
      assert.equal(obj(c, 'container')['image'], `meshgate:${version}`, `${file}: image`);
    }
  }
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^ENTRYPOINT \["meshgate"\]$/m);
});

test("the uninstall DaemonSet runs `meshgate cleanup` on the agent's pin dir with CAP_BPF only and no API access", () => {
  const ds = named('DaemonSet', 'meshgate-cleanup');
  const pod = obj(obj(obj(ds['spec'], 'spec')['template'], 'template')['spec'], 'pod');
  assert.equal(pod['automountServiceAccountToken'], false);
  const init = arr(pod['initContainers'], 'initContainers').map((c) => obj(c, 'initContainer'));
  assert.equal(init.length, 1);
  const cleanup = init[0]!;
  assert.deepEqual(cleanup['command'], ['meshgate']);
  const args = arr(cleanup['args'], 'args').map((a) => str(a, 'arg'));
  assert.equal(args[0], 'cleanup');
  assert.equal(
    flagValue(args, '--pin-dir') ?? '/sys/fs/bpf/meshgate',
    flagValue(agentArgs, '--pin-dir') ?? '/sys/fs/bpf/meshgate',
  );
  const caps = obj(obj(cleanup['securityContext'], 'securityContext')['capabilities'], 'capabilities');
  assert.deepEqual(caps, { drop: ['ALL'], add: ['BPF'] });
  assert.ok(
    arr(pod['tolerations'], 'tolerations').some(
      (t) => isObj(t) && t['operator'] === 'Exists' && t['key'] === undefined,
    ),
  );
});

test("the sample ConfigMaps pass meshgate's own validator with no warnings, and the global one is the agent's --config-map", () => {
  const samples = yamlFiles(join(DEPLOY, 'samples'));
  assert.ok(samples.length >= 2);
  const r = runCli(['validate', '--json', ...samples]);
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const report = JSON.parse(r.stdout) as { valid: boolean; issues: unknown[] };
  assert.equal(report.valid, true);
  assert.deepEqual(report.issues, []);

  const configMaps = MANIFESTS.filter((m) => m.file.startsWith('deploy/samples/')).map((m) =>
    obj(m.doc['metadata'], 'metadata'),
  );
  const labelled = configMaps.filter(
    (m) => isObj(m['labels']) && m['labels']['meshgate.io/egress-allowlist'] === 'true',
  );
  assert.ok(labelled.length >= 1, 'a sample allowlist labelled meshgate.io/egress-allowlist: "true"');
  const global = configMaps
    .filter((m) => !labelled.includes(m))
    .map((m) => `${String(m['namespace'])}/${String(m['name'])}`);
  assert.deepEqual(global, [flagValue(agentArgs, '--config-map') ?? 'osm-system/osm-config']);
});

test('the validator check above can fail: a broken sample is refused', () => {
  const r = runCli(['validate', join(ROOT, 'deploy', 'daemonset.yaml')]);
  assert.equal(r.status, 1, 'a DaemonSet is not a ConfigMap: validate must refuse it');
});
