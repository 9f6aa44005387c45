#!/usr/bin/env node
import v8 from 'node:v8';

// The agent is a long-running process with a memory budget (SPEC §7: 60 MB idle, 100 MB at
// 100,000 entries): V8 favours a small heap over allocation speed for it. Set before anything is
// loaded, so the heap never grows for the start-up (docs/decisions.md).
if (process.argv[2] === 'agent') v8.setFlagsFromString('--optimize-for-size');

const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
