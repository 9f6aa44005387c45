// overlapWarnings with its mesh index gives what the plain scan over every (address, mesh CIDR)
// pair gives, and stays fast when both lists are long.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cidrFromText, cidrsOverlap, normaliseCidrTexts } from '../../../src/config/cidr.js';
import {
  overlapWarnings,
  parseGlobalConfig,
  type AllowlistEntry,
  type GlobalConfig,
} from '../../../src/config/index.js';

const v4 = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 }))
  .map(([a, b, p]) => `10.${a}.${b}.0/${p}`);
const v6 = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 128 }))
  .map(([g, p]) => `fd00:${g}::/${p}`);
const cidr = fc.oneof(v4, v6, fc.constantFrom('::/0', '0.0.0.0/0', '::ffff:0:0/96'));

/** The scan the index replaced: every address against every mesh CIDR. */
function reference(global: GlobalConfig, entries: readonly AllowlistEntry[]): string[] {
  const out: string[] = [];
  const mesh = global.meshCidrs.map((t) => cidrFromText(t)!);
  entries.forEach((entry, i) => {
    for (const text of entry.addresses) {
      const a = cidrFromText(text)!;
      for (const m of mesh.filter((c) => cidrsOverlap(a, c))) out.push(`${i} ${text} ${m.text}`);
    }
  });
  return out;
}

test('the indexed overlap check equals the pairwise scan', () => {
  fc.assert(
    fc.property(
      fc.array(cidr, { maxLength: 30 }),
      fc.array(fc.array(cidr, { minLength: 1, maxLength: 5 }), { maxLength: 5 }),
      (meshItems, addressLists) => {
        const parsed = parseGlobalConfig(
          { mesh_cidr_ranges: meshItems.join(' ') },
          { kind: 'ConfigMap', name: 'osm-config' },
        );
        assert.ok(parsed.ok);
        const entries: AllowlistEntry[] = addressLists.map((items, i) => ({
          name: `e${i}`,
          hosts: [],
          addresses: normaliseCidrTexts(items, () => undefined),
          ports: [{ number: 443, protocol: 'TCP', declaredProtocol: 'TCP' }],
        }));
        const warnings = overlapWarnings(
          parsed.value,
          new Map([['shop', { ref: { kind: 'ConfigMap', namespace: 'shop', name: 'a' }, entries }]]),
        );
        const got = warnings.map(
          (w) => `${w.entryIndex} ${String(w.value)} ${/mesh CIDR (\S+):/.exec(w.message)?.[1]}`,
        );
        assert.deepEqual(got, reference(parsed.value, entries));
      },
    ),
    { numRuns: 500 },
  );
});

test('50,000 addresses against 50,000 mesh CIDRs take well under a second, not a product of the two', () => {
  const mesh = Array.from({ length: 50_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
  const addresses = Array.from({ length: 50_000 }, (_, i) => `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  addresses.push('10.0.1.7/32');
  const parsed = parseGlobalConfig({ mesh_cidr_ranges: mesh.join(',') }, { kind: 'ConfigMap', name: 'osm-config' });
  assert.ok(parsed.ok);
  const warnings = overlapWarnings(
    parsed.value,
    new Map([
      [
        'shop',
        {
          ref: { kind: 'ConfigMap', namespace: 'shop', name: 'a' },
          entries: [
            { name: 'bulk', hosts: [], addresses, ports: [{ number: 80, protocol: 'TCP', declaredProtocol: 'TCP' }] },
          ],
        },
      ],
    ]),
  );
  assert.equal(warnings.length, 1, 'only 10.0.1.7 is inside a mesh CIDR');
});
