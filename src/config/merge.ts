// Several labelled ConfigMaps in one namespace merge into one allowlist (SPEC §1.2); entry
// names stay unique across all of them.
import { ALLOWLIST_KEY } from './allowlist.js';
import { IssueCollector, describeObject } from './issues.js';
import type { AllowlistEntry, ObjectRef, ParseResult } from './types.js';

export interface AllowlistPart {
  readonly ref: ObjectRef;
  readonly entries: readonly AllowlistEntry[];
}

/**
 * The entries of every part, parts ordered by object name (informers deliver them in any
 * order, and the result must not depend on it). A name used in two ConfigMaps is an error on
 * the later one, naming both; the caller then keeps the namespace's last good entries.
 */
export function mergeNamespaceAllowlists(parts: readonly AllowlistPart[]): ParseResult<readonly AllowlistEntry[]> {
  const issues = new IssueCollector();
  const ordered = [...parts].sort((a, b) => {
    const left = describeObject(a.ref);
    const right = describeObject(b.ref);
    return left < right ? -1 : left > right ? 1 : 0;
  });
  const ownerByName = new Map<string, string>();
  const merged: AllowlistEntry[] = [];
  for (const part of ordered) {
    const object = describeObject(part.ref);
    part.entries.forEach((entry, entryIndex) => {
      const owner = ownerByName.get(entry.name);
      if (owner !== undefined) {
        const where = owner === object ? 'another entry of the same object' : owner;
        issues.add(
          'MG_ALLOWLIST_DUPLICATE_NAME',
          { ref: part.ref, key: ALLOWLIST_KEY, entryIndex, entryName: entry.name },
          {
            subject: 'name',
            value: entry.name,
            reason: `is also the name of an entry in ${where}; names must be unique within the namespace`,
          },
        );
        return;
      }
      ownerByName.set(entry.name, object);
      merged.push(entry);
    });
  }
  return issues.result<readonly AllowlistEntry[]>(merged);
}
