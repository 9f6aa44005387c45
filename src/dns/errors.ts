// Typed errors of the dns module; their codes are in src/errors.ts and docs/errors.md.
import { MeshgateError } from '../errors.js';

/** A HostResolver option is out of range or inconsistent. Thrown once, by the constructor. */
export class HostResolverOptionsError extends MeshgateError {
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('MG_DNS_RESOLVER_OPTIONS', `invalid HostResolver option ${option}: ${message}`, options);
    this.name = 'HostResolverOptionsError';
    this.option = option;
  }
}
