// What a path under a pin directory really is, as the kernel says: a BPF map,
// link or program (from /proc/self/fdinfo) and its kernel name. `cleanup`
// unlinks only objects whose type and name are meshgate's.
import { readFileSync } from 'node:fs';
import { libbpf } from '../../native/libbpf.js';
import { STRUCTS } from './abi.generated.js';
import { fieldOffset } from './abiFields.js';

export interface PinnedObject {
  readonly type: 'map' | 'link' | 'prog' | 'unknown';
  /** The kernel's name of the map, or of the link's program (at most 15 characters). */
  readonly name: string | null;
}

// BPF_OBJ_NAME_LEN (include/uapi/linux/bpf.h), checked against the width of the name fields;
// where `name` sits in struct bpf_map_info and struct bpf_prog_info comes from the BTF (bpf/abi.bpf.c).
const OBJ_NAME_LEN = 16;
const MAP_INFO_NAME = fieldOffset('bpf_map_info', 'name', OBJ_NAME_LEN);
const PROG_INFO_NAME = fieldOffset('bpf_prog_info', 'name', OBJ_NAME_LEN);
const PROG_INFO_SIZE = STRUCTS.bpf_prog_info.size;
const MAP_INFO_SIZE = STRUCTS.bpf_map_info.size;

const cString = (b: Buffer, at: number): string => {
  const end = b.indexOf(0, at);
  return b.subarray(at, end === -1 || end > at + OBJ_NAME_LEN ? at + OBJ_NAME_LEN : end).toString('latin1');
};

function fdinfo(fd: number): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** The object pinned at `pin`, or null when it is no BPF object (an ordinary file, a directory). */
export function inspectPin(pin: string): PinnedObject | null {
  let fd: number;
  try {
    fd = libbpf.objGet(pin);
  } catch {
    return null;
  }
  try {
    const info = fdinfo(fd);
    if (info.has('map_type')) {
      const b = Buffer.alloc(MAP_INFO_SIZE);
      libbpf.objGetInfo(fd, b, pin);
      return { type: 'map', name: cString(b, MAP_INFO_NAME) };
    }
    if (info.has('link_type')) {
      const progId = Number(info.get('prog_id'));
      let name: string | null = null;
      if (Number.isInteger(progId) && progId > 0) {
        const progFd = libbpf.progGetFdById(progId);
        try {
          const b = Buffer.alloc(PROG_INFO_SIZE);
          libbpf.objGetInfo(progFd, b, `program ${progId}`);
          name = cString(b, PROG_INFO_NAME);
        } finally {
          libbpf.close(progFd);
        }
      }
      return { type: 'link', name };
    }
    if (info.has('prog_type')) return { type: 'prog', name: null };
    return { type: 'unknown', name: null };
  } finally {
    libbpf.close(fd);
  }
}

/** True when the kernel object's name is the pin's name (the kernel keeps 15 characters). */
export function namedAs(obj: PinnedObject, pinName: string): boolean {
  return obj.name !== null && obj.name === pinName.slice(0, OBJ_NAME_LEN - 1);
}
