// Builds ConfigIssues whose message is one complete sentence, so every reporter (Event, log
// line, `meshgate validate`) can print it as is.
import { type ConfigIssueCode, severityOf } from './codes.js';
import { deepFreeze } from './freeze.js';
import type { ConfigIssue, ObjectRef, ParseResult } from './types.js';

/** Where in an object an issue is. */
export interface IssueSite {
  readonly ref: ObjectRef;
  readonly key: string;
  readonly entryIndex?: number;
  readonly entryName?: string;
  /** How the message calls the indexed thing: an allowlist 'entry' or a list 'item'. */
  readonly noun?: 'entry' | 'item';
}

/** What is wrong at that site. */
export interface Problem {
  /** Shown first, outside the path: where in a file, e.g. 'document at line 3'. */
  readonly locator?: string;
  /** Path inside the entry, e.g. 'ports[0].protocol'. */
  readonly subject?: string;
  /** The offending value; omitted from the message when undefined. */
  readonly value?: unknown;
  /** Why it is wrong; completes the sentence after the value. */
  readonly reason: string;
}

// Values are user input of any size: a 1 MB CIDR string must not become a 1 MB Event.
const MESSAGE_VALUE_MAX = 120;
const FIELD_VALUE_MAX = 1024;
// Keys are user input too (an unknown key may be a line of an unrelated file): a short prefix only.
const KEY_MAX = 40;
/** Issues kept per severity and object; the rest are counted in one closing issue ("and M more"). */
export const MAX_ISSUES_PER_OBJECT = 100;

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(+${text.length - max} chars)`;
}

// C0 and C1 controls, DEL, format characters (bidi overrides, zero-width) and line separators.
const UNSAFE_CHARS = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/**
 * Text with every control or format character shown as an escape (\x1b, \u202e), so that no
 * message, log line or Event carries a terminal escape, a NUL or a bidi override.
 */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE_CHARS, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** A data key as messages show it: escaped, and a short prefix of a long one. */
export function showKey(key: string): string {
  return escapeControl(truncate(key, KEY_MAX));
}

export function describeObject(ref: ObjectRef): string {
  // Callers are typed, but the never-throw promise covers untyped JavaScript callers too.
  if (typeof ref !== 'object' || ref === null) return 'an unnamed object';
  if (ref.kind === 'File') return `file ${escapeControl(ref.path ?? ref.name)}`;
  const name = ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
  return ref.path === undefined ? `ConfigMap ${name}` : `ConfigMap ${name} (file ${ref.path})`;
}

/** Quoted strings, plain scalars, and a word for structures (their text is not helpful in one line). */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(truncate(value, MESSAGE_VALUE_MAX));
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isPlainMap(value)) return 'a map';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function valueField(value: unknown): string | undefined {
  if (typeof value === 'string') return truncate(value, FIELD_VALUE_MAX);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  return undefined;
}

export function isPlainMap(value: unknown): value is Readonly<Record<string, unknown>> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function entryLabel(site: IssueSite): string {
  const name = site.entryName === undefined ? '' : ` ${JSON.stringify(truncate(site.entryName, MESSAGE_VALUE_MAX))}`;
  if (site.entryIndex !== undefined) return ` ${site.noun ?? 'entry'} [${site.entryIndex}]${name}`;
  return name === '' ? '' : ` entry${name}`;
}

function issuePath(site: IssueSite, subject: string | undefined): string | undefined {
  if (site.entryIndex === undefined && subject === undefined) return undefined;
  const indexed = site.entryIndex === undefined ? site.key : `${site.key}[${site.entryIndex}]`;
  return subject === undefined ? indexed : `${indexed}.${subject}`;
}

type MutableIssue = { -readonly [K in keyof ConfigIssue]: ConfigIssue[K] };

export function makeIssue(code: ConfigIssueCode, site: IssueSite, problem: Problem): ConfigIssue {
  const object = describeObject(site.ref);
  const shownKey = showKey(site.key);
  const key = site.key === '' ? '' : ` key ${shownKey}`;
  const what = [problem.locator, problem.subject, problem.value === undefined ? undefined : showValue(problem.value)]
    .filter((part) => part !== undefined)
    .join(' ');
  // Reasons may quote input too (a prefix length, a YAML parser's excerpt): the whole sentence is escaped.
  const message = escapeControl(
    `${object}${key}${entryLabel(site)}: ${what === '' ? '' : `${what} `}${problem.reason}`,
  );
  const issue: MutableIssue = { code, severity: severityOf(code), object, key: shownKey, message };
  if (site.entryIndex !== undefined) issue.entryIndex = site.entryIndex;
  if (site.entryName !== undefined) issue.entryName = escapeControl(truncate(site.entryName, FIELD_VALUE_MAX));
  const path = issuePath(site, problem.subject);
  if (path !== undefined) issue.path = escapeControl(truncate(path, FIELD_VALUE_MAX));
  const value = problem.value === undefined ? undefined : valueField(problem.value);
  if (value !== undefined) issue.value = escapeControl(value);
  return Object.freeze(issue);
}

/** The closing issue of a capped list: how many more there were. */
function moreIssues(severity: 'error' | 'warning', ref: ObjectRef, more: number): ConfigIssue {
  const code = severity === 'error' ? 'MG_CONFIG_MORE_ERRORS' : 'MG_WARN_MORE_WARNINGS';
  return makeIssue(
    code,
    { ref, key: '' },
    { reason: `and ${more} more ${severity}s, not shown (only the first ${MAX_ISSUES_PER_OBJECT} are)` },
  );
}

/**
 * At most MAX_ISSUES_PER_OBJECT issues of each severity, then one that counts the rest. For lists
 * gathered from several parses (the documents of one file); IssueCollector caps its own.
 */
export function capIssues(issues: readonly ConfigIssue[], ref: ObjectRef): readonly ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const more = { error: 0, warning: 0 };
  const kept = { error: 0, warning: 0 };
  for (const issue of issues) {
    if (issue.code === 'MG_CONFIG_MORE_ERRORS' || issue.code === 'MG_WARN_MORE_WARNINGS') {
      more[issue.severity] += Number(/and (\d+) more/.exec(issue.message)?.[1] ?? 0);
    } else if (kept[issue.severity] < MAX_ISSUES_PER_OBJECT) {
      kept[issue.severity]++;
      out.push(issue);
    } else {
      more[issue.severity]++;
    }
  }
  if (more.error) out.push(moreIssues('error', ref, more.error));
  if (more.warning) out.push(moreIssues('warning', ref, more.warning));
  return out.length === issues.length ? issues : out;
}

/**
 * Collects the issues of one parse call; the result is ok only when no error was added. Past
 * MAX_ISSUES_PER_OBJECT of a severity, issues are only counted (no message is even built), so
 * 200,000 bad items cost neither memory nor 200,000 log lines.
 */
export class IssueCollector {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  private moreErrors = 0;
  private moreWarnings = 0;
  private lastRef: ObjectRef | undefined;

  add(code: ConfigIssueCode, site: IssueSite, problem: Problem): void {
    this.lastRef = site.ref;
    const list = severityOf(code) === 'error' ? this.errors : this.warnings;
    if (list.length >= MAX_ISSUES_PER_OBJECT) {
      if (list === this.errors) this.moreErrors++;
      else this.moreWarnings++;
      return;
    }
    list.push(makeIssue(code, site, problem));
  }

  get errorCount(): number {
    return this.errors.length + this.moreErrors;
  }

  private closed(list: readonly ConfigIssue[], severity: 'error' | 'warning'): readonly ConfigIssue[] {
    const more = severity === 'error' ? this.moreErrors : this.moreWarnings;
    return Object.freeze(more && this.lastRef ? [...list, moreIssues(severity, this.lastRef, more)] : [...list]);
  }

  /** For a parse that stopped at an error it just added. */
  rejected<T>(): ParseResult<T> {
    return Object.freeze({
      ok: false,
      errors: this.closed(this.errors, 'error'),
      warnings: this.closed(this.warnings, 'warning'),
    });
  }

  result<T>(value: T): ParseResult<T> {
    const warnings = this.closed(this.warnings, 'warning');
    if (this.errorCount > 0) return Object.freeze({ ok: false, errors: this.closed(this.errors, 'error'), warnings });
    return Object.freeze({ ok: true, value: deepFreeze(value), warnings });
  }
}

/**
 * The parsers are written not to throw; this boundary turns a bug into a rejected object
 * (MG_CONFIG_INTERNAL) instead of an exception in the agent's sync loop.
 */
export function parseSafely<T>(ref: ObjectRef, key: string, parse: () => ParseResult<T>): ParseResult<T> {
  try {
    return parse();
  } catch (err) {
    const reason = err instanceof Error ? err.message : 'a non-Error value was thrown';
    const issues = new IssueCollector();
    issues.add(
      'MG_CONFIG_INTERNAL',
      { ref, key },
      { reason: `validation failed unexpectedly (a meshgate bug; please report it): ${reason}` },
    );
    return issues.rejected<T>();
  }
}
