// Every numeric command-line flag goes through this one parser: a typo is a usage error that
// names the flag and the value, never a NaN that reaches a timer (setTimeout(NaN) fires at once:
// a retry loop would spin against the API server) or a map size.
import { MeshgateError } from '../errors.js';

/** Node's timers take at most 2^31-1 ms; a longer delay fires at once. */
export const TIMER_MAX_MS = 2_147_483_647;

export interface NumberFlagRange {
  readonly min: number;
  readonly max: number;
  /** Whole numbers only (counts, sizes, uids); otherwise a decimal such as 0.5 is taken. */
  readonly integer?: boolean;
  /** Said in the message: 'milliseconds', 'seconds'. */
  readonly unit?: string;
}

const INTEGER = /^\d+$/;
const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;

/**
 * `value` as a number in range, or MG_CLI_BAD_FLAG (a usage error: `error: …`, exit 2):
 * `--debounce-ms: "1O" is not an integer in 0..60000 (milliseconds)`. Only plain decimal
 * digits are taken: no sign, exponent, hex, blanks or Infinity.
 */
export function parseNumberFlag(flag: string, value: string, range: NumberFlagRange): number {
  const n = Number(value);
  if ((range.integer ? INTEGER : DECIMAL).test(value) && n >= range.min && n <= range.max) return n;
  const what = range.integer ? 'an integer' : 'a number';
  const unit = range.unit === undefined ? '' : ` (${range.unit})`;
  throw new MeshgateError(
    'MG_CLI_BAD_FLAG',
    `${flag}: ${JSON.stringify(value.slice(0, 80))} is not ${what} in ${range.min}..${range.max}${unit}`,
  );
}
