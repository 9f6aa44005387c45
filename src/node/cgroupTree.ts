// cgroup ids -> cgroup v2 directories, for explain, status and trace. The
// kernel only hands out ids (bpf_get_current_ancestor_cgroup_id, link info);
// a bounded walk of the cgroup2 mount turns them back into paths and levels.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { findCgroup2Mount } from './cgroup.js';

const MAX_DEPTH = 32;
const MAX_DIRS = 200_000;

export interface CgroupNode {
  readonly id: bigint;
  readonly path: string;
  /** 0 for the cgroup2 root, as bpf_get_current_ancestor_cgroup_id counts */
  readonly level: number;
}

export class CgroupTree {
  readonly mount: string;
  private byId = new Map<bigint, CgroupNode>();
  private indexed = false;

  constructor(mount = findCgroup2Mount()) {
    this.mount = path.resolve(mount);
  }

  /** (Re)reads the whole tree, breadth first, bounded in depth and size. */
  private index(): void {
    const byId = new Map<bigint, CgroupNode>();
    let frontier: CgroupNode[] = [{ id: statSync(this.mount, { bigint: true }).ino, path: this.mount, level: 0 }];
    for (let depth = 0; depth <= MAX_DEPTH && frontier.length && byId.size < MAX_DIRS; depth++) {
      const next: CgroupNode[] = [];
      for (const node of frontier) {
        byId.set(node.id, node);
        let subdirs: string[];
        try {
          subdirs = readdirSync(node.path, { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .map((d) => d.name);
        } catch {
          continue; // removed while we looked
        }
        for (const name of subdirs) {
          const p = path.join(node.path, name);
          try {
            next.push({ id: statSync(p, { bigint: true }).ino, path: p, level: node.level + 1 });
          } catch {
            /* removed while we looked */
          }
        }
      }
      frontier = next;
    }
    this.byId = byId;
    this.indexed = true;
  }

  /** The cgroup with this id, or null when no such directory exists (re-reads the tree once on a miss). */
  find(id: bigint): CgroupNode | null {
    if (!this.indexed) this.index();
    let node = this.byId.get(id);
    if (!node) {
      this.index();
      node = this.byId.get(id);
    }
    return node ?? null;
  }

  /** The cgroup at `level` on the path from the root to `node` (the node itself at its own level). */
  ancestorAt(node: CgroupNode, level: number): CgroupNode | null {
    if (level > node.level || level < 0) return null;
    const rel = path.relative(this.mount, node.path);
    const parts = rel === '' ? [] : rel.split(path.sep);
    const p = path.join(this.mount, ...parts.slice(0, level));
    try {
      return { id: statSync(p, { bigint: true }).ino, path: p, level };
    } catch {
      return null;
    }
  }

  /** Whether `node` is `ancestor` or below it. */
  static isUnder(node: CgroupNode, ancestor: CgroupNode): boolean {
    const rel = path.relative(ancestor.path, node.path);
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  }
}
