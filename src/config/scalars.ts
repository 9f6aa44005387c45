// Readers for the scalar forms a value can take: ConfigMap data is always strings, while a
// plain YAML file may hold real booleans, numbers and lists. Surrounding whitespace is ignored.

/** ok with value undefined: the value is unset (absent, null or blank) and the default applies. */
export type Read<T> =
  | { readonly ok: true; readonly value: T | undefined }
  | { readonly ok: false; readonly reason: string };

export function isUnset(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
}

export function readBoolean(value: unknown): Read<boolean> {
  if (isUnset(value)) return { ok: true, value: undefined };
  if (typeof value === 'boolean') return { ok: true, value };
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (word === 'true' || word === 'false') return { ok: true, value: word === 'true' };
  }
  return { ok: false, reason: 'is not a boolean: write "true" or "false"' };
}

// Beyond 2^53 a decimal string no longer maps to one number; such values are out of range anyway.
const MAX_INTEGER_DIGITS = 15;

export function readInteger(value: unknown, min: number, max: number): Read<number> {
  if (isUnset(value)) return { ok: true, value: undefined };
  const outOfRange: Read<number> = { ok: false, reason: `is out of range ${min}..${max}` };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { ok: false, reason: 'is not an integer' };
    return value >= min && value <= max ? { ok: true, value } : outOfRange;
  }
  if (typeof value === 'string') {
    const text = value.trim();
    if (/^-[0-9]+$/.test(text)) return outOfRange;
    if (!/^[0-9]+$/.test(text)) {
      const range = /^[0-9]+\s*-\s*[0-9]+$/.test(text) ? ' (port ranges are not supported: list each port)' : '';
      return { ok: false, reason: `is not a decimal integer${range}` };
    }
    if (text.length > MAX_INTEGER_DIGITS) return outOfRange;
    const parsed = Number(text);
    return parsed >= min && parsed <= max ? { ok: true, value: parsed } : outOfRange;
  }
  return { ok: false, reason: 'is not an integer' };
}

/** Case-insensitive; returns the choice in its canonical (lower-case) spelling. */
export function readChoice<T extends string>(value: unknown, choices: readonly T[]): Read<T> {
  if (isUnset(value)) return { ok: true, value: undefined };
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    const choice = choices.find((candidate) => candidate === word);
    if (choice !== undefined) return { ok: true, value: choice };
  }
  return { ok: false, reason: `is not one of ${choices.join(', ')}` };
}

/**
 * A list written as one string ("10.0.0.0/8, fd00::/8" or one per line) or, in files, as a
 * YAML list. Empty means none.
 */
export function readListItems(value: unknown): Read<readonly unknown[]> {
  if (isUnset(value)) return { ok: true, value: [] };
  if (typeof value === 'string') {
    // A 50,000-item list is usually comma-separated with no whitespace: split on the comma alone then (much faster).
    const items = /\s/.test(value) ? value.split(/[\s,]+/) : value.split(',');
    return { ok: true, value: items.filter((item) => item !== '') };
  }
  if (typeof value === 'number') return { ok: true, value: [value] };
  if (Array.isArray(value)) return { ok: true, value };
  return { ok: false, reason: 'is not a list: write items separated by commas or whitespace, or a YAML list' };
}
