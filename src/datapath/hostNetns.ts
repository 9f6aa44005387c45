import { netnsCookie } from '../../native/libbpf.js';

/**
 * The node's netns as the programs name it (bpf_get_netns_cookie): the agent's own, since the
 * agent is hostNetwork, or (tests) the netns a file names. Sockets in it are never enforced as
 * unknown pods: they are hostNetwork pods' or node daemons' (SPEC 1.3, docs/decisions.md).
 */
export function hostNetnsCookie(netnsPath?: string): bigint {
  return netnsCookie(netnsPath);
}
