// Checks on a whole object before any of its values is parsed: its size (a
// ConfigMap cannot exceed 1 MiB; hostile input must not cost the agent more),
// and that it holds at least one meshgate key (an object of unknown keys only,
// such as a symlink to an unrelated file, would otherwise mean "all defaults").
import type { IssueCollector } from './issues.js';
import { MAX_OBJECT_BYTES, type ObjectRef } from './types.js';

/** Bytes of the string keys and values (ConfigMap data); parsed file values were bounded when read. */
export function dataBytes(data: Readonly<Record<string, unknown>>): number {
  let total = 0;
  for (const [key, value] of Object.entries(data)) {
    total += Buffer.byteLength(key);
    if (typeof value === 'string') total += Buffer.byteLength(value);
  }
  return total;
}

/** False (with an issue added) when the object is too large to be parsed. */
export function checkObjectSize(
  data: Readonly<Record<string, unknown>>,
  ref: ObjectRef,
  issues: IssueCollector,
): boolean {
  const bytes = dataBytes(data);
  if (bytes <= MAX_OBJECT_BYTES) return true;
  issues.add(
    'MG_CONFIG_TOO_LARGE',
    { ref, key: '' },
    {
      reason: `holds ${bytes} bytes of data, more than the limit of ${MAX_OBJECT_BYTES} bytes per object (a ConfigMap cannot exceed 1 MiB); not parsed`,
    },
  );
  return false;
}

/**
 * False (with an issue added) when none of `known` is a key of the object. The
 * unknown keys are counted, never quoted: their text may be anything.
 */
export function checkHasMeshgateKey(
  data: Readonly<Record<string, unknown>>,
  known: readonly string[],
  ref: ObjectRef,
  issues: IssueCollector,
): boolean {
  const keys = Object.keys(data);
  if (keys.some((key) => known.includes(key))) return true;
  const others = keys.length === 0 ? 'it is empty' : `its ${keys.length} key(s) are none of them and are not shown`;
  issues.add(
    'MG_CONFIG_NO_MESHGATE_KEY',
    { ref, key: '' },
    {
      reason: `holds none of meshgate's keys (${known.join(', ')}): ${others}; an object that sets nothing is refused, not taken as all defaults`,
    },
  );
  return false;
}
