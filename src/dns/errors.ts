// Typed errors of the dns module. Codes are listed in docs/errors.md.

export const ERR_DNS_RESOLVER_OPTIONS = 'ERR_DNS_RESOLVER_OPTIONS';

/** A HostResolver option is out of range or inconsistent. Thrown once, by the constructor. */
export class HostResolverOptionsError extends Error {
  readonly code = ERR_DNS_RESOLVER_OPTIONS;
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(`invalid HostResolver option ${option}: ${message}`, options);
    this.name = 'HostResolverOptionsError';
    this.option = option;
  }
}
