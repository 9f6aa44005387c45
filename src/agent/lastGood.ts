// Per-object last good configuration (SPEC §1.4), as one pure decision: no I/O,
// no clock. For each config object (the global ConfigMap or file, each
// allowlist ConfigMap or file) it holds the hash of its raw content, its own
// parse result, and its last good parsed value; it decides what is in force:
// every valid object's current content, every invalid object's last good
// content (or nothing, when it never was valid: that affects only itself).
// Cross-object checks (a name used in two ConfigMaps of one namespace) run on
// what would be in force; the objects they involve fall back to their last good
// content and report the error on each of them. An object's content becomes its
// last good one only when it is valid alone and with the others; the agent
// persists it then (takePersistQueue), so a restarted agent starts from it.
import { createHash } from 'node:crypto';
import { makeIssue } from '../config/issues.js';
import { ALLOWLIST_KEY } from '../config/allowlist.js';
import {
  allowlistAction,
  checkNamespaceObjects,
  describeObject,
  parseAllowlist,
  type AllowlistEntry,
  type BlockedEgressAction,
  type ConfigIssue,
  type GlobalConfig,
  type ObjectRef,
  type ParseResult,
} from '../config/index.js';

export type ObjectKind = 'global' | 'allowlist';

export interface ConfigObjectId {
  /** Stable and unique: 'ConfigMap shop/partners', 'file /etc/meshgate/egress.yaml'. */
  readonly key: string;
  readonly kind: ObjectKind;
  readonly ref: ObjectRef;
  /** The namespace an allowlist object applies to. */
  readonly namespace?: string;
}

/** An object's content as read: ConfigMap data, or a file's text. What is hashed and persisted. */
export type RawContent = { readonly data: Readonly<Record<string, string>> } | { readonly text: string };

/** An allowlist object's parsed content: its entries and the blocked_egress_action it sets for its namespace. */
export interface AllowlistObject {
  readonly entries: readonly AllowlistEntry[];
  readonly action: BlockedEgressAction | null;
}

/** A labelled ConfigMap's data as an allowlist object. */
export function allowlistObjectFromData(
  data: Readonly<Record<string, unknown>>,
  ref: ObjectRef,
): ParseResult<AllowlistObject> {
  const r = parseAllowlist(data, ref);
  return r.ok ? { ok: true, value: { entries: r.value, action: allowlistAction(data) }, warnings: r.warnings } : r;
}

export interface Parsers {
  global(raw: RawContent, ref: ObjectRef): ParseResult<GlobalConfig>;
  allowlist(raw: RawContent, ref: ObjectRef): ParseResult<AllowlistObject>;
}

/** One allowlist object's entries in force, and the object they come from. */
export interface AllowlistObjectInForce {
  readonly ref: ObjectRef;
  readonly entries: readonly AllowlistEntry[];
}

/** One allowlist object's contribution to its namespace, for cross-object checks. */
export interface NamespacePart extends AllowlistObject {
  readonly key: string;
  readonly ref: ObjectRef;
}

/** An error that involves several objects: one issue per object it names. */
export interface CrossObjectIssue {
  readonly key: string;
  readonly issue: ConfigIssue;
}

/** A rule over one namespace's allowlist objects together (issue 15 adds one for blocked_egress_action). */
export type CrossObjectCheck = (namespace: string, parts: readonly NamespacePart[]) => readonly CrossObjectIssue[];

/** What a restarted agent read back: an object's last good raw content. */
export interface PersistedObject {
  readonly id: ConfigObjectId;
  readonly hash: string;
  readonly raw: RawContent;
}

export interface ObjectState {
  readonly id: ConfigObjectId;
  /** Its own parse and every cross-object check passed. */
  readonly valid: boolean;
  /** Not read yet since the start (only a persisted last good) or gone (a deleted global ConfigMap). */
  readonly absent: boolean;
  /** Its own errors, then the cross-object ones. */
  readonly errors: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
  /** What of it is in force. */
  readonly inForce: 'current' | 'last-good' | 'none';
}

export interface Resolution {
  /** The global config in force (current or last good), or null when there is none. */
  readonly global: GlobalConfig | null;
  readonly allowlists: ReadonlyMap<string, readonly AllowlistEntry[]>;
  /** Each allowlist object's content in force, by key: what warnings about an entry name. */
  readonly allowlistObjects: ReadonlyMap<string, AllowlistObjectInForce>;
  /** A namespace's own blocked_egress_action, where its allowlists in force set one. */
  readonly actions: ReadonlyMap<string, BlockedEgressAction>;
  readonly objects: readonly ObjectState[];
  /** Objects whose validity or errors changed since the last resolve: report these (Event, log, metric). */
  readonly changed: readonly ObjectState[];
  readonly invalid: number;
}

interface NamespaceJudgement {
  readonly signature: string;
  readonly parts: readonly NamespacePart[];
  readonly entries: readonly AllowlistEntry[];
  readonly action: BlockedEgressAction | null;
  readonly errors: ReadonlyMap<string, readonly ConfigIssue[]>;
  /** Changed objects that joined what is in force: they become last good. */
  readonly accepted: readonly string[];
}

interface Good<T> {
  readonly hash: string;
  readonly value: T;
}

interface Tracked {
  readonly id: ConfigObjectId;
  version: string | undefined;
  /** The current content, or null when absent. */
  current: {
    readonly hash: string;
    readonly raw: RawContent;
    readonly result: ParseResult<GlobalConfig | AllowlistObject>;
  } | null;
  lastGood: Good<GlobalConfig | AllowlistObject> | null;
  reported: string | null;
}

export function hashRaw(raw: RawContent): string {
  const h = createHash('sha256');
  if ('text' in raw) h.update('text\0').update(raw.text);
  else for (const k of Object.keys(raw.data).sort()) h.update(k).update('\0').update(String(raw.data[k])).update('\0');
  return h.digest('hex');
}

/** A name used by entries of two objects of one namespace: the error is reported on both. */
export const duplicateEntryNames: CrossObjectCheck = (_namespace, parts) => {
  const owners = new Map<string, Array<{ part: NamespacePart; index: number }>>();
  for (const part of parts) {
    part.entries.forEach((e, index) => {
      (owners.get(e.name) ?? owners.set(e.name, []).get(e.name)!).push({ part, index });
    });
  }
  const out: CrossObjectIssue[] = [];
  for (const [name, list] of owners) {
    if (new Set(list.map((o) => o.part.key)).size < 2) continue;
    for (const { part, index } of list) {
      const others = [
        ...new Set(list.filter((o) => o.part.key !== part.key).map((o) => describeObject(o.part.ref))),
      ].join(', ');
      out.push({
        key: part.key,
        issue: makeIssue(
          'MG_ALLOWLIST_DUPLICATE_NAME',
          { ref: part.ref, key: ALLOWLIST_KEY, entryIndex: index, entryName: name },
          {
            subject: 'name',
            value: name,
            reason: `is also the name of an entry in ${others}; names must be unique within the namespace`,
          },
        ),
      });
    }
  }
  return out;
};

/** Allowlists of one namespace that set different blocked_egress_action values: an error on each (src/config/namespace.ts). */
export const conflictingActions: CrossObjectCheck = (_namespace, parts) => {
  const keyByObject = new Map(parts.map((p) => [describeObject(p.ref), p.key]));
  const { issuesByObject } = checkNamespaceObjects(parts);
  return [...issuesByObject].flatMap(([object, issues]) =>
    issues.map((issue) => ({ key: keyByObject.get(object) ?? object, issue })),
  );
};

export const DEFAULT_CROSS_OBJECT_CHECKS: readonly CrossObjectCheck[] = Object.freeze([
  duplicateEntryNames,
  conflictingActions,
]);

/** Every check over one namespace's objects: what the cluster agent reports, for the file readers and `validate`. */
export const crossObjectIssues = (
  namespace: string,
  parts: readonly NamespacePart[],
  checks: readonly CrossObjectCheck[] = DEFAULT_CROSS_OBJECT_CHECKS,
): readonly CrossObjectIssue[] => checks.flatMap((check) => check(namespace, parts));

export class LastGoodStore {
  private readonly parsers: Parsers;
  private readonly checks: readonly CrossObjectCheck[];
  private readonly objects = new Map<string, Tracked>();
  private persistQueue = new Map<string, PersistedObject | null>();
  private readonly namespaceMemo = new Map<string, NamespaceJudgement>();
  /** Parses done since the start: the cost a change has (one object, not all). */
  parses = 0;

  constructor(parsers: Parsers, checks: readonly CrossObjectCheck[] = DEFAULT_CROSS_OBJECT_CHECKS) {
    this.parsers = parsers;
    this.checks = checks;
  }

  private parse(id: ConfigObjectId, raw: RawContent): ParseResult<GlobalConfig | AllowlistObject> {
    this.parses++;
    return id.kind === 'global' ? this.parsers.global(raw, id.ref) : this.parsers.allowlist(raw, id.ref);
  }

  /**
   * A previous agent's last good content. Parsed again (the rules may have
   * changed since it was written); content that is no longer valid is dropped.
   * Returns the parse's errors when it was dropped.
   */
  restore(p: PersistedObject): readonly ConfigIssue[] {
    const result = this.parse(p.id, p.raw);
    if (!result.ok) {
      this.persistQueue.set(p.id.key, null);
      return result.errors;
    }
    const t = this.track(p.id);
    t.lastGood = { hash: p.hash, value: result.value };
    return [];
  }

  private track(id: ConfigObjectId): Tracked {
    let t = this.objects.get(id.key);
    if (!t) {
      t = { id, version: undefined, current: null, lastGood: null, reported: null };
      this.objects.set(id.key, t);
    }
    return t;
  }

  /**
   * An object's current content. It is parsed only when its content changed:
   * an equal version token (a resourceVersion) skips even the hash, and content
   * equal to the last good one reuses its parsed value. Returns true when parsed.
   */
  observe(id: ConfigObjectId, raw: RawContent, version?: string): boolean {
    const t = this.track(id);
    if (version !== undefined && t.version === version && t.current) return false;
    t.version = version;
    const hash = hashRaw(raw);
    if (t.current?.hash === hash) {
      t.current = { ...t.current, raw };
      return false;
    }
    if (t.lastGood?.hash === hash) {
      t.current = { hash, raw, result: { ok: true, value: t.lastGood.value, warnings: [] } };
      return false;
    }
    t.current = { hash, raw, result: this.parse(id, raw) };
    return true;
  }

  /** The object could not be read (an unreadable or oversized file): invalid, its last good content stays. */
  reject(id: ConfigObjectId, errors: readonly ConfigIssue[]): void {
    const t = this.track(id);
    const hash = `rejected\0${errors.map((e) => e.message).join('\0')}`;
    t.version = undefined;
    if (t.current?.hash !== hash) t.current = { hash, raw: { text: '' }, result: { ok: false, errors, warnings: [] } };
  }

  /** The object is not there now (a deleted global ConfigMap): its last good content stays in force. */
  absent(key: string): void {
    const t = this.objects.get(key);
    if (t) {
      t.current = null;
      t.version = undefined;
    }
  }

  /** The object is gone for good (a deleted allowlist ConfigMap): nothing of it stays. */
  remove(key: string): void {
    if (!this.objects.delete(key)) return;
    this.persistQueue.set(key, null);
  }

  keys(kind?: ObjectKind): string[] {
    return [...this.objects.values()].filter((t) => kind === undefined || t.id.kind === kind).map((t) => t.id.key);
  }

  has(key: string): boolean {
    return this.objects.has(key);
  }

  /** Decides what is in force, runs the cross-object checks and promotes valid content to last good. */
  resolve(): Resolution {
    let global: GlobalConfig | null = null;
    const byNamespace = new Map<string, Tracked[]>();
    for (const t of this.objects.values()) {
      if (t.id.kind === 'global') {
        const value = (t.current?.result.ok ? t.current.result.value : t.lastGood?.value) as GlobalConfig | undefined;
        global ??= value ?? null;
      } else {
        const ns = t.id.namespace ?? '';
        (byNamespace.get(ns) ?? byNamespace.set(ns, []).get(ns)!).push(t);
      }
    }
    const crossErrors = new Map<string, ConfigIssue[]>();
    const allowlists = new Map<string, readonly AllowlistEntry[]>();
    const actions = new Map<string, BlockedEgressAction>();
    const allowlistObjects = new Map<string, AllowlistObjectInForce>();
    for (const ns of [...byNamespace.keys()].sort()) {
      const judged = this.judgeNamespace(ns, byNamespace.get(ns)!);
      for (const part of judged.parts) allowlistObjects.set(part.key, part);
      for (const [key, issues] of judged.errors) crossErrors.set(key, [...issues]);
      if (judged.parts.length) allowlists.set(ns, judged.entries);
      if (judged.action) actions.set(ns, judged.action);
      for (const key of judged.accepted) {
        const t = this.objects.get(key)!;
        this.promote(t);
      }
    }
    for (const ns of [...this.namespaceMemo.keys()]) if (!byNamespace.has(ns)) this.namespaceMemo.delete(ns);

    let invalid = 0;
    const objects: ObjectState[] = [];
    const changed: ObjectState[] = [];
    for (const t of this.objects.values()) {
      const cross = crossErrors.get(t.id.key) ?? [];
      const ownOk = t.current?.result.ok === true;
      const valid = ownOk && cross.length === 0;
      if (valid && t.id.kind === 'global') this.promote(t);
      const errors = [...(t.current && !t.current.result.ok ? t.current.result.errors : []), ...cross];
      const inForce =
        valid || (t.lastGood !== null && t.lastGood.hash === t.current?.hash)
          ? 'current'
          : t.lastGood
            ? 'last-good'
            : 'none';
      const state: ObjectState = {
        id: t.id,
        valid,
        absent: t.current === null,
        errors,
        warnings: t.current?.result.warnings ?? [],
        inForce,
      };
      if (!valid) invalid++;
      objects.push(state);
      const signature = `${valid}|${t.current?.hash ?? 'absent'}|${errors.map((e) => e.message).join('\n')}`;
      if (signature !== t.reported) {
        t.reported = signature;
        changed.push(state);
      }
    }
    return { global, allowlists, allowlistObjects, actions, objects, changed, invalid };
  }

  private promote(t: Tracked): void {
    if (!t.current?.result.ok || t.lastGood?.hash === t.current.hash) return;
    t.lastGood = { hash: t.current.hash, value: t.current.result.value };
    this.persistQueue.set(t.id.key, { id: t.id, hash: t.current.hash, raw: t.current.raw });
  }

  /**
   * One namespace: the last good contents are in force; each changed object
   * that is valid alone joins them, in key order, unless a check finds a new
   * error involving it. Such an error is reported on every object it names.
   * Memoised on the objects' hashes: a pod event re-checks nothing.
   */
  private judgeNamespace(ns: string, list: Tracked[]): NamespaceJudgement {
    list.sort((a, b) => (a.id.key < b.id.key ? -1 : a.id.key > b.id.key ? 1 : 0));
    const signature = list
      .map((t) => `${t.id.key}\0${t.lastGood?.hash ?? ''}\0${t.current?.result.ok ? t.current.hash : ''}`)
      .join('\0');
    const memo = this.namespaceMemo.get(ns);
    if (memo && memo.signature === signature) return memo;

    const inForce = new Map<string, NamespacePart>();
    for (const t of list)
      if (t.lastGood) inForce.set(t.id.key, { key: t.id.key, ref: t.id.ref, ...(t.lastGood.value as AllowlistObject) });
    const errors = new Map<string, ConfigIssue[]>();
    const note = (issues: readonly CrossObjectIssue[]): void => {
      for (const { key, issue } of issues) (errors.get(key) ?? errors.set(key, []).get(key)!).push(issue);
    };
    const run = (parts: readonly NamespacePart[]): readonly CrossObjectIssue[] =>
      this.checks.flatMap((check) => check(ns, parts));
    let baseline = run([...inForce.values()]);
    note(baseline);
    const accepted: string[] = [];
    const pending = list.filter((t) => t.current?.result.ok && t.current.hash !== t.lastGood?.hash);
    const partOf = (t: Tracked): NamespacePart => ({
      key: t.id.key,
      ref: t.id.ref,
      ...(t.current!.result as { value: AllowlistObject }).value,
    });
    // Edits that only agree together (both objects of a namespace moving to a new
    // blocked_egress_action, a name moving from one object to another) are taken
    // together when, together, they add no error involving any of them.
    if (pending.length > 1) {
      const together = new Map(inForce);
      for (const t of pending) together.set(t.id.key, partOf(t));
      const issues = run([...together.values()]);
      const known = new Set(baseline.map((i) => `${i.key}\0${i.issue.message}`));
      const keys = new Set(pending.map((t) => t.id.key));
      if (!issues.some((i) => !known.has(`${i.key}\0${i.issue.message}`) && keys.has(i.key))) {
        for (const t of pending) inForce.set(t.id.key, partOf(t));
        baseline = issues;
        accepted.push(...pending.map((t) => t.id.key));
      }
    }
    for (const t of list) {
      if (!t.current?.result.ok || t.current.hash === t.lastGood?.hash || accepted.includes(t.id.key)) continue;
      const candidate: NamespacePart = { key: t.id.key, ref: t.id.ref, ...(t.current.result.value as AllowlistObject) };
      const trial = new Map(inForce).set(t.id.key, candidate);
      const issues = run([...trial.values()]);
      const known = new Set(baseline.map((i) => `${i.key}\0${i.issue.message}`));
      const fresh = issues.filter((i) => !known.has(`${i.key}\0${i.issue.message}`));
      if (fresh.some((i) => i.key === t.id.key)) {
        note(fresh);
        continue;
      }
      inForce.set(t.id.key, candidate);
      baseline = issues;
      accepted.push(t.id.key);
    }
    // In force together; should two last good contents ever clash, the first owner of a name keeps it.
    const parts = list.map((t) => inForce.get(t.id.key)).filter((p): p is NamespacePart => p !== undefined);
    const seen = new Set<string>();
    const entries: AllowlistEntry[] = [];
    for (const p of parts) {
      for (const e of p.entries) {
        if (seen.has(e.name)) continue;
        seen.add(e.name);
        entries.push(e);
      }
    }
    const action = checkNamespaceObjects(parts).action;
    const judged: NamespaceJudgement = { signature, parts, entries, action, errors, accepted };
    // Accepted objects become last good now, which changes the signature: memoise the settled state.
    const settled = list
      .map(
        (t) =>
          `${t.id.key}\0${accepted.includes(t.id.key) ? t.current!.hash : (t.lastGood?.hash ?? '')}\0${t.current?.result.ok ? t.current.hash : ''}`,
      )
      .join('\0');
    this.namespaceMemo.set(ns, { ...judged, signature: settled, accepted: [] });
    return judged;
  }

  /** Last good contents to persist (null: delete), since the previous call. */
  takePersistQueue(): Map<string, PersistedObject | null> {
    const q = this.persistQueue;
    this.persistQueue = new Map();
    return q;
  }
}

/** The persisted form of a last good object: JSON, with the raw content as read. */
export function encodePersisted(p: PersistedObject): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, id: p.id, hash: p.hash, raw: p.raw }), 'utf8');
}

export function decodePersisted(bytes: Buffer): PersistedObject | null {
  try {
    const o = JSON.parse(bytes.toString('utf8')) as {
      v?: number;
      id?: ConfigObjectId;
      hash?: string;
      raw?: RawContent;
    };
    if (
      o.v !== 1 ||
      !o.id ||
      typeof o.id.key !== 'string' ||
      (o.id.kind !== 'global' && o.id.kind !== 'allowlist') ||
      typeof o.hash !== 'string' ||
      !o.raw
    )
      return null;
    if (
      !('text' in o.raw && typeof o.raw.text === 'string') &&
      !('data' in o.raw && typeof o.raw.data === 'object' && o.raw.data !== null)
    )
      return null;
    return { id: o.id, hash: o.hash, raw: o.raw };
  } catch {
    return null;
  }
}
