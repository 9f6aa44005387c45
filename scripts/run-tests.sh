#!/usr/bin/env bash
# Runs the built test suite, then fails loudly if any test left a cgroup, netns or pin behind.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
# Node 20's runner takes no globs, and a directory argument would also run helpers: list the files.
mapfile -t files < <(find dist/test/unit dist/test/kernel -name '*.test.js' | sort)
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" || status=$?
# The compat datapath variant (docs/decisions.md), forced, on the files that exercise identity:
# verdicts and SO_ORIGINAL_DST, side doors, DNS learning, UDP replies, the agent's restart path.
compat=()
for name in verdicts sidedoors dnsLearning replies agent; do compat+=("dist/test/kernel/$name.test.js"); done
MESHGATE_DATAPATH_VARIANT=compat node --test --test-concurrency=1 --test-reporter=spec "${compat[@]}" || status=$?
bash scripts/check-leftovers.sh || status=1
exit "$status"
