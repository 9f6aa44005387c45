#!/usr/bin/env bash
# meshgate as deployed, on one Debian machine without a cluster and without pulling any image:
#
#   sudo bash test/e2e/container/run.sh
#
# 1. Builds the image from the real Dockerfile on a base made with debootstrap (image.sh), and
#    reports its size. Cached: a second run rebuilds only what changed.
# 2. Runs the image's root filesystem with runc (the runtime containerd drives), as the DaemonSet's
#    container: the OCI spec is built from deploy/daemonset.yaml (manifest.ts, ociSpec.ts) with
#    containerd's own defaults and RuntimeDefault seccomp profile for exactly the manifest's
#    capabilities. Docker itself cannot: Debian's 20.10 does not know CAP_BPF or CAP_PERFMON.
# 3. The agent runs in cluster mode against the Kubernetes API test server, on a fake node whose
#    pods are kubelet-style cgroups with real processes in their own netns, and main.ts checks:
#    ready; exact privileges and mounts; redirect with the original destination, allowlist pass and
#    deny from a meshed pod; /healthz and /metrics through the pod IP; `meshgate status`, `dump`,
#    `explain`, `trace` exec'd in the container; a container restart under a connect loop; for each
#    added capability, the agent without it failing preflight with one line naming it; `meshgate
#    demo` from the image.
#
# Installs what it needs (docker.io, debootstrap; the repo's own setup). Starts dockerd when none
# runs (no bridge, no iptables rules: builds use the host network) and stops it again. Everything it
# creates carries its pid and is removed on exit, on failure too; the caches are kept:
# $MESHGATE_E2E_CACHE (default /var/cache/meshgate-e2e), and the images meshgate-e2e-base:* and
# meshgate-e2e:latest with their layers.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
TAG=mgtest-ctr-$$
NODE_NETNS=$TAG-node
WORK=""
DOCKERD_PID=""
MAIN_PID=""
T0=$(date +%s)

say() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - T0 ))"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root: the test creates cgroups, netns, mounts and containers"

finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$MAIN_PID" ] && kill -0 "$MAIN_PID" 2>/dev/null; then
    kill -TERM "$MAIN_PID" 2>/dev/null || true
    wait "$MAIN_PID" 2>/dev/null || true
  fi
  docker rm -f "$TAG-export" >/dev/null 2>&1 || true
  ip netns del "$NODE_NETNS" 2>/dev/null || true
  [ -z "$WORK" ] || rm -rf "$WORK"
  if [ -n "$DOCKERD_PID" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    # Its log is kept only when the run failed.
    if [ "$rc" -eq 0 ]; then rm -f "/var/log/$TAG-dockerd.log"; else echo "dockerd's log: /var/log/$TAG-dockerd.log" >&2; fi
  fi
  # Anything left with this run's names (main.ts's carry its own pid: mgtest-ctr-<pid>).
  local left
  left=$( { ip netns list 2>/dev/null | awk '{print $1}'; ls -d /sys/fs/bpf/mgtest-ctr-* /sys/fs/cgroup/mgtest-ctr-* /sys/fs/cgroup/*/mgtest-ctr-* /run/mgtest-ctr-* 2>/dev/null; } \
    | grep -E "mgtest-ctr-($$|${MAIN_PID:-none})(-|$)" || true)
  if [ -n "$left" ]; then
    printf 'LEFTOVER: %s\n' $left >&2
    rc=1
  fi
  printf '\nrun.sh: exit %s after %ss\n' "$rc" "$(( $(date +%s) - T0 ))"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
say "prerequisites"
# By command, not by package: a host with Docker's own packages (docker-ce, containerd.io, as on
# GitHub's runners) has docker, runc and ctr already, and docker.io would conflict with them.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in runc ctr nsenter ip; do command -v "$tool" >/dev/null || fail "$tool is missing"; done
bash "$ROOT/scripts/setup.sh" >/dev/null

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (no bridge, no iptables: nothing on the host's network changes)"
  dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false >"/var/log/$TAG-dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { tail -20 "/var/log/$TAG-dockerd.log" >&2; fail "dockerd did not start"; }
fi

# ---------------------------------------------------------------------------------------------
say "image"
t=$(date +%s)
IMAGE_ID=$(bash "$HERE/image.sh")
IMAGE_SECONDS=$(( $(date +%s) - t ))
IMAGE_SIZE=$(docker image inspect -f '{{.Size}}' "$IMAGE_ID")

WORK=$(mktemp -d "/var/tmp/$TAG-XXXX")
mkdir -p "$WORK/rootfs"
docker create --name "$TAG-export" "$IMAGE_ID" >/dev/null
docker export "$TAG-export" | tar -C "$WORK/rootfs" -xf -
docker rm "$TAG-export" >/dev/null
docker image inspect -f '{{json .Config}}' "$IMAGE_ID" >"$WORK/image-config.json"

# ---------------------------------------------------------------------------------------------
say "agent container on a fake node"
ip netns add "$NODE_NETNS"
ip -n "$NODE_NETNS" link set lo up
set +e
# nsenter (not `ip netns exec`, which remounts /sys and would hide bpffs and cgroup2).
MESHGATE_E2E_ROOTFS=$WORK/rootfs MESHGATE_E2E_IMAGE_CONFIG=$WORK/image-config.json MESHGATE_E2E_IMAGE=$IMAGE_ID MESHGATE_E2E_WORK=$WORK \
  nsenter --net="/run/netns/$NODE_NETNS" node "$ROOT/dist/test/e2e/container/main.js" &
MAIN_PID=$!
wait "$MAIN_PID"
rc=$?
set -e

say "summary"
printf 'image: %s, %s MB (SPEC §5: at most 150 MB); build %ss\n' "$(docker image inspect -f '{{index .RepoTags 0}}' "$IMAGE_ID")" "$((IMAGE_SIZE / 1000000))" "$IMAGE_SECONDS"
exit "$rc"
