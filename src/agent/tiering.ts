// V8's optimising compiler is held back while the agent starts. Start-up loads about 170 modules
// once, and V8 finds a dozen of node's own module-loading functions hot enough to optimise (path
// normalising, the CommonJS export scanner). That first optimisation is what brings the optimising
// compiler's own machine code, about 3.7 MB of the node binary, into the agent's RSS, for code that
// never runs again: the idle agent's RSS (SPEC §7: 60 MB) went from 62.6 to 57.5 MB.
//
// The hold gives every function a large interrupt budget (V8 counts a function's ticks only when it
// has executed that much bytecode), wants a million ticks before optimising, and stops V8 optimising
// small functions at their first tick. V8 reads all three at every tick, so the release takes effect
// at once: a function first run after it, such as every parser function of the first policy, is
// optimised as usual, and one that ran during start-up must spend its large budget first.
// `--max-opt`, which would say the same more directly, is read only once, at V8's start, so it
// cannot be released (docs/decisions.md).
import v8 from 'node:v8';

/** The V8 whose defaults TIERING_DEFAULTS are: node 20's. On any other the hold is not applied. */
export const TIERING_V8 = '11.3.';

/** V8's defaults for the three tiering flags (node 20, V8 11.3); test/unit/agent/tiering.test.ts compares them with `node --v8-options`. */
export const TIERING_DEFAULTS = {
  'interrupt-budget': 67584,
  'ticks-before-optimization': 3,
  'max-bytecode-size-for-early-opt': 81,
} as const;

const HELD: Record<keyof typeof TIERING_DEFAULTS, number> = {
  'interrupt-budget': 10_000_000,
  'ticks-before-optimization': 1_000_000,
  'max-bytecode-size-for-early-opt': 0,
};

let held = false;

function setFlags(values: Record<string, number>): void {
  for (const [flag, value] of Object.entries(values)) v8.setFlagsFromString(`--${flag}=${value}`);
}

/**
 * Holds V8's optimising compiler back until releaseOptimisingCompiler(). Nothing is held when node
 * was started with any of the three flags (`node --ticks-before-optimization=N`, with dashes or
 * underscores): that choice is kept; nor on a V8 other than TIERING_V8.
 */
export function holdOptimisingCompiler(
  execArgv: readonly string[] = process.execArgv,
  v8Version: string = process.versions.v8,
): void {
  if (!v8Version.startsWith(TIERING_V8)) return; // its defaults are not known here: nothing to release to
  const given = execArgv.map((arg) => arg.replaceAll('_', '-'));
  if (given.some((arg) => Object.keys(TIERING_DEFAULTS).some((flag) => arg.startsWith(`--${flag}`)))) return;
  setFlags(HELD);
  held = true;
}

/** Lets V8 optimise hot functions again (the agent calls it as its first reconcile starts). Idempotent. */
export function releaseOptimisingCompiler(): void {
  if (!held) return;
  held = false;
  setFlags(TIERING_DEFAULTS);
}
