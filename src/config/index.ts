// Configuration: ConfigMap data or file text -> validated, frozen config. Pure: no I/O, no
// clocks, no logging; problems come back as ConfigIssues.
export * from './types.js';
export { CONFIG_ERROR_CODES, type ConfigIssueCode, isConfigIssueCode } from './codes.js';
export { parseGlobalConfig, GLOBAL_KEYS, GLOBAL_DEFAULTS } from './global.js';
export {
  parseAllowlist,
  parseAllowlistEntries,
  countAllowlistPairs,
  allowlistAction,
  ALLOWLIST_KEY,
  ALLOWLIST_ACTION_KEY,
} from './allowlist.js';
export { checkNamespaceObjects, type NamespaceObject, type NamespaceCheck } from './namespace.js';
export { mergeNamespaceAllowlists, type AllowlistPart } from './merge.js';
export { overlapWarnings, GLOBAL_ALLOWLIST_NAMESPACE } from './overlap.js';
export { readConfigDocuments, type ConfigDocument, ALLOWLIST_LABEL } from './document.js';
export { describeObject } from './issues.js';
