#!/usr/bin/env bash
# meshgate end-to-end test on a kind cluster: the image, deploy/ as users apply it, real pods.
#
# NOTE: this cannot run on the machine meshgate is developed on (no public image can be pulled
# there, and there is no kind). It runs wherever Docker can pull images and `kind`, `kubectl`
# and `jq` are installed: CI runs it on a GitHub-hosted runner (.github/workflows/e2e.yml).
#
#   bash test/e2e/kind/run.sh            # creates the cluster, tests, deletes the cluster
#   KEEP_CLUSTER=1 bash test/e2e/kind/run.sh   # leaves the cluster for debugging
#
# What it checks, from inside pods on the worker node:
#   1. a meshed pod's TCP connect to a Service is redirected to its sidecar (127.0.0.1:15001),
#      and the sidecar recovers the original destination with SO_ORIGINAL_DST;
#   2. an allowlisted external destination passes; a non-allowlisted one is denied (EPERM);
#      the sidecar's own traffic passes; unmeshed and opted-out pods are untouched;
#   3. an edit of the allowlist ConfigMap is enforced without restarting any pod, and an invalid
#      edit keeps the last good policy and is reported as an Event;
#   4. `kubectl rollout restart` of the agent under a probe loop gives no wrong verdict;
#   5. deleting the agent keeps enforcement; the cleanup DaemonSet removes it; all is deleted.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CLUSTER=${CLUSTER:-meshgate-e2e}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
PROBE_IMAGE=meshgate-e2e-probe:dev
NS=e2e
SYS=meshgate-system
# The tag deploy/ uses (the unit test keeps it equal to package.json's version).
IMAGE=$(awk '$1=="image:" && $2 ~ /^meshgate:/ {print $2; exit}' "$ROOT/deploy/daemonset.yaml")

log() { printf '\n=== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl jq; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ -n "$IMAGE" ] || fail "no meshgate image in deploy/daemonset.yaml"

diagnostics() {
  kubectl get nodes -o wide || true
  kubectl get pods -A -o wide || true
  kubectl -n "$SYS" describe daemonset meshgate || true
  kubectl -n "$SYS" logs -l app.kubernetes.io/name=meshgate --all-containers --tail=200 --prefix || true
  kubectl -n "$SYS" exec ds/meshgate -- meshgate status || true
  kubectl -n "$SYS" exec ds/meshgate -- meshgate dump || true
  kubectl -n "$NS" get events --sort-by=.lastTimestamp || true
}

finish() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    log "failed (exit $rc): diagnostics"
    diagnostics
  fi
  if [ "$KEEP_CLUSTER" = 1 ]; then
    echo "KEEP_CLUSTER=1: cluster $CLUSTER left running (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" || true
  fi
  exit "$rc"
}
trap finish EXIT

# ---------------------------------------------------------------------------------------------
log "cluster $CLUSTER"
kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
kubectl config use-context "kind-$CLUSTER"
WORKER=$(kubectl get nodes -l meshgate-e2e/workloads=true -o jsonpath='{.items[0].metadata.name}')
CONTROL=$(kubectl get nodes -l node-role.kubernetes.io/control-plane -o jsonpath='{.items[0].metadata.name}')
OUTSIDE_IP=$(kubectl get node "$CONTROL" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
if [ -z "$WORKER" ] || [ -z "$OUTSIDE_IP" ]; then fail "could not find the worker node or the control-plane address"; fi

# The agent pins under the node's bpffs (deploy/ mounts /sys/fs/bpf from the node, it never
# mounts it). systemd mounts it on real nodes; mount it in kind's node containers if missing.
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" sh -c '[ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ] || { mount -t bpf bpf /sys/fs/bpf && mount --make-shared /sys/fs/bpf; }'
  docker exec "$node" sh -c '[ -f /sys/fs/cgroup/cgroup.controllers ]' || fail "$node has no cgroup v2 at /sys/fs/cgroup"
done

log "images"
docker build -t "$IMAGE" "$ROOT"
docker build -t "$PROBE_IMAGE" -f "$HERE/probe.Dockerfile" "$ROOT"
kind load docker-image --name "$CLUSTER" "$IMAGE" "$PROBE_IMAGE"

log "install: deploy/ and the sample ConfigMaps"
kubectl create namespace osm-system
kubectl apply -f "$ROOT/deploy/namespace.yaml" -f "$ROOT/deploy/rbac.yaml"
kubectl apply -f "$ROOT/deploy/samples/osm-config.yaml" -f "$ROOT/deploy/samples/egress-allowlist.yaml"
kubectl apply -f "$ROOT/deploy/daemonset.yaml"
kubectl -n "$SYS" rollout status ds/meshgate --timeout=180s
ok "agent ready on every node"

# The allowlist for the test namespace: the outside address on port 19443 only.
allowlist() { # PORTS (comma-separated port numbers)
  local entry ports=""
  for p in ${1//,/ }; do ports+="{number: $p, protocol: TCP}, "; done
  entry="- name: outside
  addresses: [$OUTSIDE_IP]
  ports: [${ports%, }]"
  jq -n --arg egress "$entry" '{apiVersion: "v1", kind: "ConfigMap",
    metadata: {name: "egress-allowlist", namespace: "e2e", labels: {"meshgate.io/egress-allowlist": "true"}},
    data: {egress: $egress}}'
}

log "workloads"
kubectl apply -f "$HERE/manifests/workloads.yaml"
allowlist 19443 | kubectl apply -f -
kubectl -n "$NS" wait --for=condition=Ready pod --all --timeout=120s
WEB_IP=$(kubectl -n "$NS" get service web -o jsonpath='{.spec.clusterIP}')
WEB_POD_IP=$(kubectl -n "$NS" get pod web -o jsonpath='{.status.podIP}')

# ---------------------------------------------------------------------------------------------
# probe POD CONTAINER ADDR PORT: one TCP connect from inside the pod, its JSON result.
probe() {
  kubectl -n "$NS" exec "$1" -c "$2" -- sockprobe connect --family 4 --proto tcp --addr "$3" --port "$4" --read --timeout-ms 2000
}
# The banner of the server that answered, "" when none did.
server_of() { jq -r '(.reply // "") | (fromjson? // {}) | .server // ""'; }

expect_redirect() { # POD ADDR PORT
  local r; r=$(probe "$1" app "$2" "$3")
  [ "$(server_of <<<"$r")" = envoy ] || fail "$1 -> $2:$3 was not redirected to the sidecar: $r"
  local orig; orig=$(jq -r '.reply | fromjson | .origdst' <<<"$r")
  [ "$orig" = "$2:$3" ] || fail "$1 -> $2:$3: the sidecar recovered original destination $orig: $r"
  ok "$1 -> $2:$3 redirected to the sidecar, SO_ORIGINAL_DST = $orig"
}
expect_pass() { # POD CONTAINER ADDR PORT BANNER
  local r; r=$(probe "$1" "$2" "$3" "$4")
  [ "$(server_of <<<"$r")" = "$5" ] || fail "$1/$2 -> $3:$4 should pass to $5: $r"
  ok "$1/$2 -> $3:$4 passed ($5 answered)"
}
expect_deny() { # POD ADDR PORT
  local r; r=$(probe "$1" app "$2" "$3")
  [ "$(jq -r .error <<<"$r")" = EPERM ] || fail "$1 -> $2:$3 should be denied with EPERM: $r"
  ok "$1 -> $2:$3 denied (EPERM)"
}
# eventually SECONDS COMMAND...: retries until it succeeds (bounded).
eventually() {
  local deadline=$((SECONDS + $1)); shift
  until ( "$@" ) >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { "$@"; return 1; }
    sleep 1
  done
  "$@"
}
pod_state() { kubectl -n "$NS" get pods -o json | jq -c '[.items[] | {name: .metadata.name, uid: .metadata.uid, restarts: [.status.containerStatuses[].restartCount]}] | sort_by(.name)'; }

# ---------------------------------------------------------------------------------------------
log "verdicts"
# The first check waits for the agent to map the new pods (the pod-start window).
eventually 60 expect_deny meshed "$OUTSIDE_IP" 19444
expect_redirect meshed "$WEB_IP" 80
expect_redirect meshed "$WEB_POD_IP" 8080
expect_pass meshed app "$OUTSIDE_IP" 19443 outside-19443
expect_pass meshed envoy "$OUTSIDE_IP" 19444 outside-19444   # the sidecar's own traffic
expect_pass unmeshed app "$WEB_IP" 80 web
expect_pass unmeshed app "$OUTSIDE_IP" 19444 outside-19444
expect_pass optout app "$OUTSIDE_IP" 19444 outside-19444
expect_deny labelled "$OUTSIDE_IP" 19444
kubectl -n "$SYS" exec ds/meshgate -- meshgate status
kubectl -n "$SYS" exec ds/meshgate -- meshgate dump

log "live ConfigMap edits, no pod restart"
before=$(pod_state)
allowlist 19443,19444 | kubectl apply -f -
eventually 30 expect_pass meshed app "$OUTSIDE_IP" 19444 outside-19444
ok "allowlisting port 19444 took effect"
allowlist 19443 | kubectl apply -f -
eventually 30 expect_deny meshed "$OUTSIDE_IP" 19444
ok "removing port 19444 took effect"
# An invalid edit: the namespace keeps its last good entries, and an Event names the problem.
kubectl -n "$NS" patch configmap egress-allowlist --type merge \
  -p '{"data":{"egress":"- name: outside\n  addresses: [10.0.0.1/33]\n  ports: [{number: 19444, protocol: TCP}]\n"}}'
has_event() { kubectl -n "$NS" get events --field-selector involvedObject.kind=ConfigMap,involvedObject.name=egress-allowlist -o json | jq -e '.items | length > 0'; }
eventually 30 has_event
sleep 2
expect_deny meshed "$OUTSIDE_IP" 19444
expect_pass meshed app "$OUTSIDE_IP" 19443 outside-19443
ok "invalid allowlist rejected, last good entries kept"
allowlist 19443 | kubectl apply -f -
after=$(pod_state)
[ "$before" = "$after" ] || fail "pods were restarted or replaced: before $before, after $after"
ok "no pod was restarted: $after"

log "agent rollout restart under traffic"
old_agents=$(kubectl -n "$SYS" get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[*].metadata.name}')
# Inside the meshed app: connects that must be denied, passed and redirected, until /tmp/stop
# exists (at most 600 s), one labelled JSON line each. The script is expanded in the pod, not here.
# shellcheck disable=SC2016
kubectl -n "$NS" exec meshed -c app -- sh -c 'rm -f /tmp/stop /tmp/loop.log; i=0
  end=$(( $(cut -d. -f1 /proc/uptime) + 600 ))
  while [ ! -e /tmp/stop ] && [ "$i" -lt 100000 ] && [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    printf "deny %s\n" "$(sockprobe connect --family 4 --proto tcp --addr "$1" --port 19444 --timeout-ms 2000)"
    printf "pass %s\n" "$(sockprobe connect --family 4 --proto tcp --addr "$1" --port 19443 --read --timeout-ms 2000)"
    printf "mesh %s\n" "$(sockprobe connect --family 4 --proto tcp --addr "$2" --port 80 --read --timeout-ms 2000)"
    i=$((i + 1))
  done > /tmp/loop.log 2>&1' loop "$OUTSIDE_IP" "$WEB_IP" &
loop_pid=$!
sleep 5
kubectl -n "$SYS" rollout restart ds/meshgate
kubectl -n "$SYS" rollout status ds/meshgate --timeout=300s
sleep 5
kubectl -n "$NS" exec meshed -c app -- touch /tmp/stop
wait "$loop_pid" || fail "the probe loop failed"
new_agents=$(kubectl -n "$SYS" get pods -l app.kubernetes.io/component=agent -o jsonpath='{.items[*].metadata.name}')
[ "$old_agents" != "$new_agents" ] || fail "the agents were not replaced ($old_agents)"
results=$(kubectl -n "$NS" exec meshed -c app -- cat /tmp/loop.log)
total=$(grep -c '' <<<"$results" || true)
wrong=$(awk '
  $1 == "deny" && $0 !~ /"error":"EPERM"/ { print; next }
  $1 == "pass" && $0 !~ /outside-19443/ { print; next }
  $1 == "mesh" && $0 !~ /envoy/ { print; next }
  $1 != "deny" && $1 != "pass" && $1 != "mesh" { print }' <<<"$results")
[ "$total" -ge 30 ] || fail "only $total probes ran during the restart"
[ -z "$wrong" ] || fail "wrong verdicts during the agent restart:
$wrong"
ok "$total probes during the rollout ($old_agents -> $new_agents), no wrong verdict"

log "uninstall"
kubectl delete -f "$ROOT/deploy/daemonset.yaml" --wait=true
no_agents() { [ -z "$(kubectl -n "$SYS" get pods -l app.kubernetes.io/component=agent -o name)" ]; }
eventually 120 no_agents || fail "the agent pods did not go away"
expect_deny meshed "$OUTSIDE_IP" 19444
ok "enforcement stays after the agent is gone"
kubectl apply -f "$ROOT/deploy/uninstall/cleanup.yaml"
kubectl -n "$SYS" rollout status ds/meshgate-cleanup --timeout=180s
kubectl -n "$SYS" logs -l app.kubernetes.io/component=cleanup -c cleanup --prefix
eventually 30 expect_pass meshed app "$OUTSIDE_IP" 19444 outside-19444
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" sh -c '[ ! -e /sys/fs/bpf/meshgate ]' || fail "$node still has /sys/fs/bpf/meshgate"
done
ok "cleanup removed every pin"
kubectl delete -f "$ROOT/deploy/uninstall/cleanup.yaml" -f "$ROOT/deploy/rbac.yaml" -f "$ROOT/deploy/namespace.yaml" --wait=true
kubectl delete namespace "$NS" osm-system --wait=true
kubectl -n default delete configmap egress-allowlist
ok "everything deleted"

log "e2e passed"
