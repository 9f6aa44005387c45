#!/usr/bin/env bash
# Installs what meshgate needs on a fresh Debian (bookworm) machine, as root, and builds it.
# Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(clang clang-format llvm libbpf-dev bpftool iproute2 iptables ipset make gcc libc6-dev linux-libc-dev procps)
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
command -v node >/dev/null || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: meshgate needs Node.js >= 20, found $(node --version)" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# bpffs for the pins.
if ! awk '$2=="/sys/fs/bpf" && $3=="bpf"{found=1} END{exit !found}' /proc/self/mounts; then
  mount -t bpf bpf /sys/fs/bpf
fi

make --no-print-directory all
