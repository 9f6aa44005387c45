// The cluster agent's --enable-egress and --mesh-cidr flags (osm install's --enable-egress and
// --mesh-cidr): defaults for the global keys the ConfigMap leaves out, and the global config when
// there is no ConfigMap at all. Checked once, at start-up: a bad value is a usage error that names
// the flag and the value, never a config the agent silently drops later.
import {
  parseGlobalConfig,
  type ConfigIssue,
  type GlobalConfig,
  type ObjectRef,
  type ParseResult,
} from '../config/index.js';
import { MeshgateError } from '../errors.js';

export interface SeedFlags {
  readonly egress?: boolean;
  /** --mesh-cidr values as given (each may hold several CIDRs, separated by commas or whitespace). */
  readonly meshCidrs: readonly string[];
}

export const SEED_REF: ObjectRef = Object.freeze({ kind: 'ConfigMap', name: 'flags (--enable-egress, --mesh-cidr)' });

const FLAG_OF_KEY: Readonly<Record<string, string>> = { egress: '--enable-egress', mesh_cidr_ranges: '--mesh-cidr' };

/** The flags as global ConfigMap data: only the keys they set. */
export function seedData(seed: SeedFlags): Record<string, string> {
  const data: Record<string, string> = {};
  if (seed.egress !== undefined) data.egress = String(seed.egress);
  const cidrs = seed.meshCidrs.flatMap((s) => s.split(/[\s,]+/)).filter(Boolean);
  if (cidrs.length) data.mesh_cidr_ranges = cidrs.join(',');
  return data;
}

/**
 * The global config when no ConfigMap exists: the defaults, with what the flags set. (egress
 * "false" is the default, named so that no flag at all still parses: an object that sets nothing
 * is refused, docs/config.md.)
 */
export function parseSeed(seed: SeedFlags): ParseResult<GlobalConfig> {
  return parseGlobalConfig({ egress: 'false', ...seedData(seed) }, SEED_REF);
}

function usageMessage(issue: ConfigIssue): string {
  if (issue.code === 'MG_CONFIG_MESH_CIDRS_REQUIRED')
    return '--enable-egress: given without --mesh-cidr: with egress open, only the mesh CIDRs tell in-mesh traffic from external traffic (OSM refuses this too); add --mesh-cidr with the pod and service CIDRs';
  const flag = FLAG_OF_KEY[issue.key] ?? issue.key;
  // The config message without its object and key ("ConfigMap flags (...) key mesh_cidr_ranges item [0]: ").
  const reason = issue.message.slice(issue.message.indexOf(': ') + 2);
  return `${flag}: ${reason}`;
}

/** Throws MG_CLI_BAD_FLAG (a usage error) naming the flag and the value when the flags are unusable. */
export function checkSeedFlags(seed: SeedFlags): void {
  if (Object.keys(seedData(seed)).length === 0) return;
  const result = parseSeed(seed);
  if (result.ok) return;
  throw new MeshgateError('MG_CLI_BAD_FLAG', result.errors.map(usageMessage).join('; '));
}
