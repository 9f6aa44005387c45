#!/usr/bin/env bash
# Runs the built test suite, then fails loudly if any test left a cgroup, netns or pin behind.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
node --test --test-concurrency=1 --test-reporter=spec \
  'dist/test/unit/**/*.test.js' 'dist/test/kernel/**/*.test.js' || status=$?
bash scripts/check-leftovers.sh || status=1
exit "$status"
