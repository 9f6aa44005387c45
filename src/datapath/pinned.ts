// Read-only access to the pinned maps for the CLI: no object is loaded, nothing is attached.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { libbpf } from '../../native/libbpf.js';
import { MAPS, STRUCTS, type MapName } from './abi.generated.js';
import { DatapathError } from './errors.js';
import { pinLayout, type Maps } from './loader.js';
import { MapHandle } from './maps.js';

export function openPinnedMaps(pinDir: string): { maps: Maps; close(): void } {
  const { mapsDir } = pinLayout(pinDir);
  if (!existsSync(path.join(mapsDir, 'mg_state'))) {
    throw new DatapathError('MG_PINS_NOT_FOUND', `no meshgate maps pinned under ${mapsDir}: is the agent running? (pin dir ${pinDir})`);
  }
  const fds: number[] = [];
  const maps = Object.fromEntries((Object.keys(MAPS) as MapName[]).map((name) => {
    const fd = libbpf.objGet(path.join(mapsDir, name));
    fds.push(fd);
    const info = Buffer.alloc(STRUCTS.bpf_map_info.size);
    libbpf.objGetInfo(fd, info, name);
    const { key_size: key, value_size: value } = STRUCTS.bpf_map_info.fields;
    return [name, new MapHandle(name, fd, { keySize: info.readUInt32LE(key.offset), valueSize: info.readUInt32LE(value.offset) })];
  })) as unknown as Maps;
  return { maps, close: () => fds.forEach((fd) => libbpf.close(fd)) };
}
