// The text of mg_labels values: one JSON object per label, written by the
// compiler and the datapath, read back by every command. This module is the
// only place that knows the format.

/** What a label says; `text` is the raw value (a plain-text label has nothing else). */
export interface ParsedLabel {
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly pod?: string;
  readonly host?: string;
  readonly text: string;
}

/** An allowlist entry (and the host it was resolved from, if any). */
export function entryLabel(namespace: string, name: string, host?: string): string {
  return JSON.stringify(host ? { kind: 'entry', namespace, name, host } : { kind: 'entry', namespace, name });
}

/** A namespace: the id that keys its allowlist and its blocked action. */
export function namespaceLabel(namespace: string): string {
  return JSON.stringify({ kind: 'namespace', namespace });
}

/**
 * A mapped cgroup: `pod` is the agent's display text ("shop/web", "shop/web sidecar"),
 * `name` the pod's own name.
 */
export function cgroupLabel(c: { readonly kind: string; readonly namespace: string; readonly label: string }): string {
  const podPart = c.label.split(' ')[0]!;
  const name = podPart.startsWith(`${c.namespace}/`) ? podPart.slice(c.namespace.length + 1) : podPart;
  return JSON.stringify({ kind: c.kind, pod: c.label, namespace: c.namespace, name });
}

export function parseLabel(text: string): ParsedLabel {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (v && typeof v === 'object') {
      const s = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
      return { kind: s('kind'), namespace: s('namespace'), name: s('name'), pod: s('pod'), host: s('host'), text };
    }
  } catch {
    /* plain text label */
  }
  return { text };
}

/** "shop/stripe (api.stripe.com)" for an entry label, "(global)/…" for the global allowlist; null for any other label. */
export function entryLabelText(label: ParsedLabel | null): string | null {
  return label && label.kind === 'entry'
    ? `${label.namespace || '(global)'}/${label.name}${label.host ? ` (${label.host})` : ''}`
    : null;
}
