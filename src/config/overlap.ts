// SPEC §1.4: an allowlisted address inside a mesh CIDR is warned about, because rule 4 (mesh)
// is checked before rule 6 (allowlist): the mesh wins there.
import { ALLOWLIST_KEY } from './allowlist.js';
import { type Cidr, cidrFromText, cidrsOverlap } from './cidr.js';
import { makeIssue } from './issues.js';
import type { AllowlistEntry, ConfigIssue, GlobalConfig, ObjectRef } from './types.js';

export const GLOBAL_ALLOWLIST_NAMESPACE = '';

interface NamespaceAllowlist {
  readonly ref: ObjectRef;
  readonly entries: readonly AllowlistEntry[];
}

const MESH_DECIDES = 'the mesh rule decides there (TCP is redirected to the proxy, UDP passes), not the allowlist';

function overlapReason(address: Cidr, mesh: Cidr): string {
  return address.prefix >= mesh.prefix
    ? `is inside mesh CIDR ${mesh.text}: ${MESH_DECIDES}`
    : `contains mesh CIDR ${mesh.text}: inside it ${MESH_DECIDES}`;
}

/**
 * One MG_WARN_ALLOW_IN_MESH per (allowlist address, overlapping mesh CIDR). Keys of
 * `allowlists` are namespaces, '' for the global egress_allowlist. entryIndex is the entry's
 * position in the list given.
 *
 * Cost is O(addresses x mesh CIDRs): mesh CIDRs are a handful in practice. If that changes,
 * sort the mesh CIDRs and binary-search instead.
 */
export function overlapWarnings(global: GlobalConfig, allowlists: ReadonlyMap<string, NamespaceAllowlist>): ConfigIssue[] {
  const meshCidrs = global.meshCidrs.map(cidrFromText).filter((cidr): cidr is Cidr => cidr !== undefined);
  const warnings: ConfigIssue[] = [];
  if (meshCidrs.length === 0) return warnings;
  const namespaces = [...allowlists.keys()].sort();
  for (const namespace of namespaces) {
    const allowlist = allowlists.get(namespace);
    if (allowlist === undefined) continue;
    const key = namespace === GLOBAL_ALLOWLIST_NAMESPACE ? 'egress_allowlist' : ALLOWLIST_KEY;
    allowlist.entries.forEach((entry, entryIndex) => {
      for (const text of entry.addresses) {
        const address = cidrFromText(text);
        if (address === undefined) continue;
        for (const mesh of meshCidrs.filter((candidate) => cidrsOverlap(address, candidate))) {
          const site = { ref: allowlist.ref, key, entryIndex, entryName: entry.name };
          warnings.push(makeIssue('MG_WARN_ALLOW_IN_MESH', site, { subject: 'addresses', value: text, reason: overlapReason(address, mesh) }));
        }
      }
    });
  }
  return warnings;
}
