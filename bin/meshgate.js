#!/usr/bin/env node
import v8 from 'node:v8';

// The agent is a long-running process with a memory budget (SPEC §7: 60 MB idle, 100 MB at
// 100,000 entries): V8 favours a small heap over allocation speed for it, holds its optimising
// compiler back until the agent's first reconcile (src/agent/tiering.ts), and glibc keeps one
// malloc arena instead of one per busy thread. Set before anything else is loaded, so none of
// them grows for the start-up (docs/decisions.md).
if (process.argv[2] === 'agent') {
  v8.setFlagsFromString('--optimize-for-size');
  const { holdOptimisingCompiler } = await import('../dist/src/agent/tiering.js');
  holdOptimisingCompiler();
  const { singleMallocArena } = await import('../dist/native/libc.js');
  singleMallocArena();
}

const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
