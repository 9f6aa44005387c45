#!/usr/bin/env bash
# The formatter and linter: biome (format + lint rules, biome.json) for the TypeScript and scripts,
# clang-format (.clang-format, kernel style) for the BPF C. Exit 1 on any finding.
# `npm run format` rewrites the files in place.
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install biome check .
clang-format --dry-run --Werror bpf/*.c bpf/*.h bpf/include/*.h test/helpers/*.bpf.c
echo "lint: biome and clang-format found nothing"
