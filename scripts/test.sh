#!/usr/bin/env bash
# The whole test suite: unit tests (no root) and kernel tests (root: real
# sockets in test cgroups and netns). Installs and builds what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lint.sh
bash scripts/run-tests.sh
