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

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(+${text.length - max} chars)`;
}

export function describeObject(ref: ObjectRef): string {
  // Callers are typed, but the never-throw promise covers untyped JavaScript callers too.
  if (typeof ref !== 'object' || ref === null) return 'an unnamed object';
  if (ref.kind === 'File') return `file ${ref.path ?? ref.name}`;
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
  const key = site.key === '' ? '' : ` key ${site.key}`;
  const what = [problem.locator, problem.subject, problem.value === undefined ? undefined : showValue(problem.value)]
    .filter((part) => part !== undefined)
    .join(' ');
  const message = `${object}${key}${entryLabel(site)}: ${what === '' ? '' : `${what} `}${problem.reason}`;
  const issue: MutableIssue = { code, severity: severityOf(code), object, key: site.key, message };
  if (site.entryIndex !== undefined) issue.entryIndex = site.entryIndex;
  if (site.entryName !== undefined) issue.entryName = site.entryName;
  const path = issuePath(site, problem.subject);
  if (path !== undefined) issue.path = path;
  const value = problem.value === undefined ? undefined : valueField(problem.value);
  if (value !== undefined) issue.value = value;
  return Object.freeze(issue);
}

/** Collects the issues of one parse call; the result is ok only when no error was added. */
export class IssueCollector {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];

  add(code: ConfigIssueCode, site: IssueSite, problem: Problem): void {
    const issue = makeIssue(code, site, problem);
    (issue.severity === 'error' ? this.errors : this.warnings).push(issue);
  }

  get errorCount(): number {
    return this.errors.length;
  }

  /** For a parse that stopped at an error it just added. */
  rejected<T>(): ParseResult<T> {
    return Object.freeze({ ok: false, errors: Object.freeze([...this.errors]), warnings: Object.freeze([...this.warnings]) });
  }

  result<T>(value: T): ParseResult<T> {
    const warnings = Object.freeze([...this.warnings]);
    if (this.errors.length > 0) return Object.freeze({ ok: false, errors: Object.freeze([...this.errors]), warnings });
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
    issues.add('MG_CONFIG_INTERNAL', { ref, key }, { reason: `validation failed unexpectedly (a meshgate bug; please report it): ${reason}` });
    return issues.rejected<T>();
  }
}
