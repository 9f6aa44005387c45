// "did you mean" for unknown keys: catches typos and the camelCase spelling of OSM's
// MeshConfig (outboundIPRangeExclusionList) used where the ConfigMap key is expected.

function squash(key: string): string {
  return key.toLowerCase().replace(/[-_.\s]/g, '');
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? Number.MAX_SAFE_INTEGER;
}

const MAX_TYPO_DISTANCE = 2;
// Long keys are never typos of ours; skipping them bounds the work on hostile input.
const MAX_COMPARED_LENGTH = 64;

export function suggestKey(unknown: string, known: readonly string[]): string | undefined {
  if (unknown.length > MAX_COMPARED_LENGTH) return undefined;
  const squashed = squash(unknown);
  const exact = known.find((key) => squash(key) === squashed);
  if (exact !== undefined) return exact;
  let best: { key: string; distance: number } | undefined;
  for (const key of known) {
    const distance = editDistance(squashed, squash(key));
    if (distance <= MAX_TYPO_DISTANCE && (best === undefined || distance < best.distance)) best = { key, distance };
  }
  return best?.key;
}
