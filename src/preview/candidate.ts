// `meshgate preview`: the candidate configuration, read from files with the readers and the
// errors of `meshgate validate` (src/agent/fileSources.ts), then checked per namespace as
// the agent checks a namespace's allowlists (merge, and agreement on blocked_egress_action).
import { readFileObjects } from '../agent/fileSources.js';
import {
  checkNamespaceObjects,
  describeObject,
  mergeNamespaceAllowlists,
  type AllowlistEntry,
  type BlockedEgressAction,
  type ConfigIssue,
  type GlobalConfig,
  type NamespaceObject,
} from '../config/index.js';

export type CandidateIssue = ConfigIssue & { readonly file: string };

export interface CandidateNamespace {
  /** The namespace's merged allowlist: it replaces the live one as a whole. */
  readonly entries: readonly AllowlistEntry[];
  /** Its own blocked_egress_action; null: none (the global one applies). */
  readonly action: BlockedEgressAction | null;
  readonly objects: readonly string[];
}

export interface Candidate {
  /** The candidate global config (replaces the live one), or null when no file holds one. */
  readonly global: GlobalConfig | null;
  readonly globalObject: string | null;
  readonly namespaces: ReadonlyMap<string, CandidateNamespace>;
  /** Errors and warnings, each with its file; any error makes the candidate invalid. */
  readonly issues: readonly CandidateIssue[];
  readonly valid: boolean;
  readonly objects: readonly string[];
}

/**
 * Reads the candidate files. Each document is judged by its shape, as `meshgate validate FILE`
 * does: a ConfigMap manifest (an allowlist by its label, in its metadata.namespace), a key/value
 * map (the global config, or an allowlist when its `egress` is a list), a list of entries. An
 * allowlist without a namespace (a plain file) belongs to `defaultNamespace`, as a standalone
 * agent's --allowlist-file belongs to its --namespace.
 */
export function readCandidate(files: readonly string[], defaultNamespace: string): Candidate {
  const issues: CandidateIssue[] = [];
  const objects: string[] = [];
  const globals: Array<{ file: string; object: string; config: GlobalConfig }> = [];
  const byNamespace = new Map<string, Array<NamespaceObject & { file: string }>>();
  const add = (file: string, list: readonly ConfigIssue[]) => issues.push(...list.map((i) => ({ ...i, file })));
  for (const file of files) {
    const read = readFileObjects(file);
    add(file, read.errors);
    for (const o of read.objects) {
      objects.push(o.object);
      add(file, o.result.warnings);
      if (!o.result.ok) {
        add(file, o.result.errors);
        continue;
      }
      if (o.kind === 'global') {
        globals.push({ file, object: o.object, config: o.result.value as GlobalConfig });
      } else {
        const namespace = o.ref.namespace ?? defaultNamespace;
        const list = byNamespace.get(namespace) ?? byNamespace.set(namespace, []).get(namespace)!;
        list.push({ ref: o.ref, entries: o.result.value as readonly AllowlistEntry[], action: o.action, file });
      }
    }
  }
  if (globals.length > 1) {
    for (const g of globals) {
      issues.push({
        code: 'MG_CONFIG_FILE_SHAPE',
        severity: 'error',
        object: g.object,
        key: '',
        file: g.file,
        message: `${g.object}: is one of ${globals.length} global configs given to preview (${globals.map((x) => x.object).join(', ')}); give exactly one, or none to keep the live one`,
      });
    }
  }
  const namespaces = new Map<string, CandidateNamespace>();
  for (const [namespace, list] of [...byNamespace].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const fileOf = new Map(list.map((o) => [describeObject(o.ref), o.file]));
    const merged = mergeNamespaceAllowlists(list);
    const check = checkNamespaceObjects(list);
    if (!merged.ok) for (const e of merged.errors) issues.push({ ...e, file: fileOf.get(e.object) ?? '' });
    for (const [object, list2] of check.issuesByObject)
      for (const e of list2) issues.push({ ...e, file: fileOf.get(object) ?? '' });
    if (merged.ok && check.issuesByObject.size === 0) {
      namespaces.set(namespace, {
        entries: merged.value,
        action: check.action,
        objects: list.map((o) => describeObject(o.ref)),
      });
    }
  }
  const valid = !issues.some((i) => i.severity === 'error');
  return {
    global: globals.length === 1 ? globals[0]!.config : null,
    globalObject: globals.length === 1 ? globals[0]!.object : null,
    namespaces,
    issues,
    valid,
    objects,
  };
}
