#!/usr/bin/env bash
# meshgate demo on a fresh Debian machine, as root: installs and builds what it needs, then runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/meshgate.js demo
