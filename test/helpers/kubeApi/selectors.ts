// Label and field selectors, parsed and matched as the real API server does (the subset tests use).
import { ApiError } from './protocol.js';
import type { KubeObject, ResourceType } from './types.js';

export interface LabelRequirement {
  readonly key: string;
  readonly op: 'in' | 'notin' | 'exists' | 'notexists';
  readonly values: readonly string[];
}

export interface FieldRequirement {
  readonly field: string;
  readonly equal: boolean;
  readonly value: string;
}

const LABEL_KEY = '(?:[A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?';
const LABEL_VALUE = '(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?';
const SET_TERM = new RegExp(`^(${LABEL_KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const EQUALITY_TERM = new RegExp(`^(${LABEL_KEY})\\s*(==|=|!=)\\s*(${LABEL_VALUE})$`);
const EXISTS_TERM = new RegExp(`^(!?)\\s*(${LABEL_KEY})$`);
const VALUE_ONLY = new RegExp(`^${LABEL_VALUE}$`);

/** Splits at commas outside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms.map((term) => term.trim()).filter((term) => term !== '');
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  return splitTerms(selector).map((term) => {
    const set = SET_TERM.exec(term);
    if (set) {
      const values = (set[3] ?? '').split(',').map((v) => v.trim());
      if (values.some((v) => !VALUE_ONLY.test(v))) {
        throw new ApiError(400, 'BadRequest', `unable to parse requirement: invalid label value in "${term}"`);
      }
      return { key: set[1] ?? '', op: set[2] === 'in' ? 'in' : 'notin', values };
    }
    const equality = EQUALITY_TERM.exec(term);
    if (equality) {
      return { key: equality[1] ?? '', op: equality[2] === '!=' ? 'notin' : 'in', values: [equality[3] ?? ''] };
    }
    const exists = EXISTS_TERM.exec(term);
    if (exists) {
      return { key: exists[2] ?? '', op: exists[1] === '!' ? 'notexists' : 'exists', values: [] };
    }
    throw new ApiError(400, 'BadRequest', `unable to parse requirement: "${term}" in label selector "${selector}"`);
  });
}

export function parseFieldSelector(selector: string, type: ResourceType): FieldRequirement[] {
  return splitTerms(selector).map((term) => {
    const match = /^([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!match) {
      throw new ApiError(400, 'BadRequest', `invalid field selector term "${term}" in "${selector}"`);
    }
    const field = match[1] ?? '';
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !type.fields.includes(field)) {
      throw new ApiError(400, 'BadRequest', `field label not supported: ${field}`);
    }
    return { field, equal: match[2] !== '!=', value: match[3] ?? '' };
  });
}

export function labelsMatch(requirements: readonly LabelRequirement[], obj: KubeObject): boolean {
  const labels = obj.metadata.labels ?? {};
  return requirements.every((req) => {
    const has = Object.hasOwn(labels, req.key);
    switch (req.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && req.values.includes(labels[req.key] ?? '');
      case 'notin':
        return !has || !req.values.includes(labels[req.key] ?? '');
      default:
        return false;
    }
  });
}

function fieldValue(obj: KubeObject, path: string): string {
  let cursor: unknown = obj;
  for (const part of path.split('.')) {
    if (cursor === null || typeof cursor !== 'object') return '';
    cursor = (cursor as Record<string, unknown>)[part];
  }
  if (typeof cursor === 'string') return cursor;
  if (typeof cursor === 'number' || typeof cursor === 'boolean') return String(cursor);
  if (path === 'source' && cursor && typeof cursor === 'object') {
    return String((cursor as Record<string, unknown>)['component'] ?? '');
  }
  return '';
}

export function fieldsMatch(requirements: readonly FieldRequirement[], obj: KubeObject): boolean {
  return requirements.every((req) => (fieldValue(obj, req.field) === req.value) === req.equal);
}
