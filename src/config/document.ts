// Files given to standalone mode and `meshgate validate`: which configuration each YAML
// document holds, and whose it is. Parsing the data itself is parseGlobalConfig's and
// parseAllowlist's job.
import { ALLOWLIST_KEY } from './allowlist.js';
import { deepFreeze } from './freeze.js';
import { type IssueSite, isPlainMap, makeIssue } from './issues.js';
import type { ConfigIssue, ObjectRef } from './types.js';
import { parseYamlDocuments } from './yamlText.js';

export const ALLOWLIST_LABEL = 'meshgate.io/egress-allowlist';

export interface ConfigDocument {
  readonly kind: 'global' | 'allowlist';
  readonly ref: ObjectRef;
  readonly data: Readonly<Record<string, unknown>>;
}

interface Reading {
  readonly path: string;
  readonly fileRef: ObjectRef;
  readonly documents: ConfigDocument[];
  readonly errors: ConfigIssue[];
}

type DocumentCode = 'MG_CONFIG_BAD_MANIFEST' | 'MG_CONFIG_NOT_A_MAP';

function fail(
  reading: Reading,
  site: IssueSite,
  code: DocumentCode,
  value: unknown,
  reason: string,
  line?: number,
): void {
  const locator = line === undefined ? undefined : `document at line ${line}`;
  reading.errors.push(makeIssue(code, site, { ...(locator === undefined ? {} : { locator }), value, reason }));
}

function addDocument(
  reading: Reading,
  kind: ConfigDocument['kind'],
  ref: ObjectRef,
  data: Readonly<Record<string, unknown>>,
): void {
  reading.documents.push(Object.freeze({ kind, ref: Object.freeze(ref), data: deepFreeze(data) }));
}

/** The API server only takes string data values; a manifest it would refuse is refused here too. */
function readManifestData(
  reading: Reading,
  ref: ObjectRef,
  data: unknown,
): Readonly<Record<string, unknown>> | undefined {
  if (data === undefined || data === null) return {};
  if (!isPlainMap(data)) {
    fail(reading, { ref, key: '' }, 'MG_CONFIG_BAD_MANIFEST', data, 'has data that is not a map of keys to strings');
    return undefined;
  }
  let valid = true;
  for (const [key, value] of Object.entries(data)) {
    if (typeof value === 'string') continue;
    valid = false;
    fail(
      reading,
      { ref, key },
      'MG_CONFIG_BAD_MANIFEST',
      value,
      'is not a string: ConfigMap data values are strings (quote it, or use a | block for YAML), and the API server rejects this manifest',
    );
  }
  return valid ? data : undefined;
}

function readConfigMap(reading: Reading, manifest: Readonly<Record<string, unknown>>, line: number): void {
  const { apiVersion, kind, metadata } = manifest;
  if (apiVersion === 'v1' && kind === 'List' && Array.isArray(manifest['items'])) {
    // `kubectl get configmap -o yaml` output.
    for (const item of manifest['items']) {
      if (isPlainMap(item)) readConfigMap(reading, item, line);
      else
        fail(
          reading,
          { ref: reading.fileRef, key: '' },
          'MG_CONFIG_BAD_MANIFEST',
          item,
          'is an item of a List that is not a manifest',
          line,
        );
    }
    return;
  }
  const fileSite = { ref: reading.fileRef, key: '' };
  if (apiVersion !== 'v1' || kind !== 'ConfigMap') {
    const what = `${typeof apiVersion === 'string' ? apiVersion : '?'}/${typeof kind === 'string' ? kind : '?'}`;
    fail(
      reading,
      fileSite,
      'MG_CONFIG_BAD_MANIFEST',
      what,
      'is not a v1 ConfigMap; meshgate reads its configuration from ConfigMaps only',
      line,
    );
    return;
  }
  const name = isPlainMap(metadata) ? metadata['name'] : undefined;
  const namespace = isPlainMap(metadata) ? metadata['namespace'] : undefined;
  if (typeof name !== 'string' || name === '' || (namespace !== undefined && typeof namespace !== 'string')) {
    fail(
      reading,
      fileSite,
      'MG_CONFIG_BAD_MANIFEST',
      undefined,
      'is a ConfigMap without a metadata.name (or with a metadata.namespace that is not a string)',
      line,
    );
    return;
  }
  const ref: ObjectRef = { kind: 'ConfigMap', ...(namespace ? { namespace } : {}), name, path: reading.path };
  const data = readManifestData(reading, ref, manifest['data']);
  if (data === undefined) return;
  const labels = isPlainMap(metadata) ? metadata['labels'] : undefined;
  const labelled = isPlainMap(labels) && labels[ALLOWLIST_LABEL] === 'true';
  addDocument(reading, labelled ? 'allowlist' : 'global', ref, data);
}

function readDocument(reading: Reading, value: unknown, line: number): void {
  if (Array.isArray(value)) {
    addDocument(reading, 'allowlist', reading.fileRef, { [ALLOWLIST_KEY]: value });
  } else if (isPlainMap(value)) {
    // No meshgate key is called kind or apiVersion, so either marks a Kubernetes manifest.
    if ('kind' in value || 'apiVersion' in value) readConfigMap(reading, value, line);
    else addDocument(reading, Array.isArray(value[ALLOWLIST_KEY]) ? 'allowlist' : 'global', reading.fileRef, value);
  } else {
    fail(
      reading,
      { ref: reading.fileRef, key: '' },
      'MG_CONFIG_NOT_A_MAP',
      value,
      'is neither a ConfigMap manifest, a key/value map nor a list of allowlist entries',
      line,
    );
  }
}

/**
 * Every configuration document in a YAML file:
 * - a v1 ConfigMap manifest (or a v1 List of them): its data, named after the ConfigMap; an
 *   allowlist when labelled meshgate.io/egress-allowlist: "true", else the global config;
 * - a plain key/value map: the global config, or an allowlist when its `egress` is a list;
 * - a bare list: allowlist entries.
 * Documents are returned in file order; empty documents are skipped. A broken document is
 * reported in errors and left out, the others are still returned: the caller decides
 * whether a partly broken file is usable (standalone mode refuses it).
 */
export function readConfigDocuments(
  text: string,
  path: string,
): { documents: ConfigDocument[]; errors: ConfigIssue[] } {
  const fileRef: ObjectRef = Object.freeze({ kind: 'File', name: path, path });
  const reading: Reading = { path, fileRef, documents: [], errors: [] };
  if (typeof text !== 'string') {
    fail(reading, { ref: fileRef, key: '' }, 'MG_CONFIG_NOT_A_MAP', text, 'is not text');
    return { documents: reading.documents, errors: reading.errors };
  }
  try {
    const reads = parseYamlDocuments(text);
    for (const read of reads) {
      if (!read.ok) {
        // The parser may notice an error lines after its cause (an unclosed bracket), so in a
        // multi-document file the document's own first line is given too.
        const locator = reads.length > 1 ? { locator: `document starting at line ${read.documentLine}:` } : {};
        const reason = `line ${read.line}, column ${read.column}: invalid YAML: ${read.reason}`;
        reading.errors.push(makeIssue('MG_CONFIG_BAD_YAML', { ref: fileRef, key: '' }, { ...locator, reason }));
      } else if (!read.empty) {
        readDocument(reading, read.value, read.line);
      }
    }
  } catch (err) {
    const reason = err instanceof Error ? err.message : 'a non-Error value was thrown';
    reading.errors.push(
      makeIssue(
        'MG_CONFIG_INTERNAL',
        { ref: fileRef, key: '' },
        { reason: `reading failed unexpectedly (a meshgate bug; please report it): ${reason}` },
      ),
    );
  }
  return { documents: reading.documents, errors: reading.errors };
}
