// Typed datapath errors. Every code is listed in docs/errors.md.
export type DatapathErrorCode =
  | 'MG_MAP_LAYOUT_MISMATCH'
  | 'MG_DESIRED_STATE_INVALID'
  | 'MG_ATTACH_CGROUP_MISMATCH'
  | 'MG_ATTACH_ROOT_CGROUP'
  | 'MG_PIN_DIR_NOT_BPFFS'
  | 'MG_PINS_NOT_FOUND'
  | 'MG_APPLY_FAILED'
  | 'MG_LEARNED_MAX_INVALID';

export class DatapathError extends Error {
  readonly code: DatapathErrorCode;

  constructor(code: DatapathErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatapathError';
    this.code = code;
  }
}
