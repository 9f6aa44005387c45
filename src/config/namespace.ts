// Checks across all the allowlist objects of one namespace (SPEC §1.2): what no single
// object can see alone. Pure: objects in, the namespace's settings and each object's issues out.
import { ALLOWLIST_ACTION_KEY } from './allowlist.js';
import { IssueCollector, describeObject } from './issues.js';
import type { AllowlistEntry, BlockedEgressAction, ConfigIssue, ObjectRef } from './types.js';

/** One valid allowlist object (ConfigMap or file) of a namespace. */
export interface NamespaceObject {
  readonly ref: ObjectRef;
  readonly entries: readonly AllowlistEntry[];
  /** blocked_egress_action set by this object, or null when it sets none. */
  readonly action: BlockedEgressAction | null;
}

export interface NamespaceCheck {
  /** The namespace's blocked_egress_action: the value its objects agree on; null when none sets one or they disagree. */
  readonly action: BlockedEgressAction | null;
  /** Errors by object (describeObject), on every object involved in a conflict; empty when all agree. */
  readonly issuesByObject: ReadonlyMap<string, readonly ConfigIssue[]>;
}

const byObject = (a: NamespaceObject, b: NamespaceObject): number => {
  const left = describeObject(a.ref);
  const right = describeObject(b.ref);
  return left < right ? -1 : left > right ? 1 : 0;
};

/**
 * Objects that set blocked_egress_action must agree. When two disagree, every object that
 * sets it gets an error naming the others and their values (so each object's Event says
 * what to fix), and the namespace has no agreed action: the caller keeps its last good state.
 */
export function checkNamespaceObjects(objects: readonly NamespaceObject[]): NamespaceCheck {
  const setting = [...objects].filter((o) => o.action !== null).sort(byObject);
  const actions = new Set(setting.map((o) => o.action));
  if (actions.size <= 1) return { action: setting[0]?.action ?? null, issuesByObject: new Map() };
  const issuesByObject = new Map<string, readonly ConfigIssue[]>();
  for (const object of setting) {
    const others = setting
      .filter((o) => o !== object)
      .map((o) => `${describeObject(o.ref)} sets ${JSON.stringify(o.action)}`);
    const issues = new IssueCollector();
    issues.add(
      'MG_ALLOWLIST_ACTION_CONFLICT',
      { ref: object.ref, key: ALLOWLIST_ACTION_KEY },
      {
        value: object.action,
        reason: `disagrees with another allowlist of the same namespace (${others.join(', ')}); the objects of a namespace must set the same value or leave it unset`,
      },
    );
    issuesByObject.set(describeObject(object.ref), issues.errors);
  }
  return { action: null, issuesByObject };
}
