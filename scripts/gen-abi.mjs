#!/usr/bin/env node
// Generates src/datapath/abi.generated.ts from the BTF of the compiled BPF objects,
// so that no kernel/user layout is ever typed twice by hand.
//   node scripts/gen-abi.mjs build/meshgate.bpf.o build/abi.bpf.o > src/datapath/abi.generated.ts
// The first object gives the maps (type, key/value types, sizes, max_entries);
// every object gives struct layouts and enums. A struct seen twice must agree.
// Kernel UAPI facts come the same way: bpf/abi.bpf.c names the UAPI enums and
// structs user space needs, so they are in its BTF (KERNEL_ENUMS, STRUCTS).
import { execFileSync } from 'node:child_process';

const objects = process.argv.slice(2);
if (objects.length === 0) {
  process.stderr.write('usage: gen-abi.mjs MESHGATE_OBJECT [MORE_OBJECTS...]\n');
  process.exit(2);
}

function loadBtf(path) {
  const json = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', path], { encoding: 'utf8' }));
  const byId = new Map(json.types.map((t) => [t.id, t]));
  return { json, byId };
}

function resolve(byId, id) {
  let t = byId.get(id);
  while (t && ['TYPEDEF', 'VOLATILE', 'CONST', 'RESTRICT', 'TYPE_TAG'].includes(t.kind)) t = byId.get(t.type_id);
  return t;
}

function sizeOf(byId, id) {
  const t = resolve(byId, id);
  if (!t) throw new Error(`BTF type ${id} not found`);
  switch (t.kind) {
    case 'INT':
    case 'STRUCT':
    case 'UNION':
    case 'ENUM':
    case 'ENUM64':
      return t.size;
    case 'ARRAY':
      return t.nr_elems * sizeOf(byId, t.type_id);
    case 'PTR':
      return 8;
    default:
      throw new Error(`cannot size BTF kind ${t.kind} (type ${id})`);
  }
}

// Kernel UAPI structs whose offsets user space needs too (from the objects' BTF, never typed by hand):
// every top-level field, or the listed paths (a union's variant as `variant.field`).
const KERNEL_STRUCTS = {
  bpf_map_info: null,
  bpf_link_info: ['type', 'id', 'prog_id', 'cgroup.cgroup_id', 'cgroup.attach_type'],
  bpf_prog_info: ['type', 'id', 'name'],
};
// Kernel UAPI enums user space passes to the kernel (attach, program and map types).
const KERNEL_ENUM_NAMES = ['bpf_attach_type', 'bpf_map_type', 'bpf_prog_type'];

const structs = {};
const enums = {};
const kernelEnums = {};
const maps = {};

function addStruct(byId, t) {
  const layout = {
    size: t.size,
    fields: Object.fromEntries(
      t.members.map((m) => {
        if (m.bits_offset % 8 !== 0) throw new Error(`${t.name}.${m.name} is a bitfield: not allowed in the ABI`);
        return [m.name, { offset: m.bits_offset / 8, size: sizeOf(byId, m.type_id) }];
      }),
    ),
  };
  const seen = structs[t.name];
  if (seen && JSON.stringify(seen) !== JSON.stringify(layout)) {
    throw new Error(`struct ${t.name} differs between objects: ${JSON.stringify(seen)} vs ${JSON.stringify(layout)}`);
  }
  structs[t.name] = layout;
}

/** Named members of a struct or union, with anonymous members' members inlined, at byte offsets from `base`. */
function membersOf(byId, t, base = 0) {
  return t.members.flatMap((m) => {
    if (m.bits_offset % 8 !== 0) throw new Error(`${t.name}.${m.name} is a bitfield: not allowed in the ABI`);
    const offset = base + m.bits_offset / 8;
    const inner = resolve(byId, m.type_id);
    if ((!m.name || m.name === '(anon)') && inner && (inner.kind === 'UNION' || inner.kind === 'STRUCT'))
      return membersOf(byId, inner, offset);
    return [{ name: m.name, offset, typeId: m.type_id }];
  });
}

function addKernelStruct(byId, t, paths) {
  const top = membersOf(byId, t);
  const find = (path) => {
    const [head, ...rest] = path.split('.');
    let m = top.find((x) => x.name === head);
    for (const part of rest) {
      const inner = m && resolve(byId, m.typeId);
      m = inner && membersOf(byId, inner, m.offset).find((x) => x.name === part);
    }
    if (!m) throw new Error(`${t.name} has no field ${path} in this BTF`);
    return [path, { offset: m.offset, size: sizeOf(byId, m.typeId) }];
  };
  const layout = {
    size: t.size,
    fields: Object.fromEntries(
      paths ? paths.map(find) : top.map((m) => [m.name, { offset: m.offset, size: sizeOf(byId, m.typeId) }]),
    ),
  };
  const seen = structs[t.name];
  if (seen && JSON.stringify(seen) !== JSON.stringify(layout))
    throw new Error(`struct ${t.name} differs between objects`);
  structs[t.name] = layout;
}

const btfs = objects.map((path) => ({ path, ...loadBtf(path) }));
for (const { json, byId } of btfs) {
  for (const t of json.types) {
    if (t.kind === 'STRUCT' && t.name.startsWith('mg_') && !t.name.endsWith('_map') && t.name !== 'mg_abi_anchor')
      addStruct(byId, t);
    if (t.kind === 'STRUCT' && Object.hasOwn(KERNEL_STRUCTS, t.name)) addKernelStruct(byId, t, KERNEL_STRUCTS[t.name]);
    if ((t.kind === 'ENUM' || t.kind === 'ENUM64') && t.name.startsWith('mg_')) {
      enums[t.name] = Object.fromEntries(t.values.map((v) => [v.name, v.val]));
    }
    if ((t.kind === 'ENUM' || t.kind === 'ENUM64') && KERNEL_ENUM_NAMES.includes(t.name)) {
      kernelEnums[t.name] = Object.fromEntries(t.values.map((v) => [v.name, v.val]));
    }
  }
}
for (const name of [...KERNEL_ENUM_NAMES, ...Object.keys(KERNEL_STRUCTS)]) {
  if (!kernelEnums[name] && !structs[name]) throw new Error(`no BTF for ${name}: bpf/abi.bpf.c must name it`);
}
// "BPF_MAP_TYPE_LPM_TRIE" -> "lpm_trie"
const MAP_TYPES = Object.fromEntries(
  Object.entries(kernelEnums.bpf_map_type).map(([name, v]) => [v, name.replace(/^BPF_MAP_TYPE_/, '').toLowerCase()]),
);

{
  const { path, json, byId } = btfs[0];
  const section = json.types.find((t) => t.kind === 'DATASEC' && t.name === '.maps');
  if (!section) throw new Error(`${path} has no .maps section`);
  for (const v of section.vars) {
    const variable = byId.get(v.type_id);
    const def = resolve(byId, variable.type_id);
    const spec = { name: variable.name };
    for (const m of def.members) {
      const ptr = byId.get(m.type_id);
      const target = resolve(byId, ptr.type_id);
      if (m.name === 'type' || m.name === 'max_entries' || m.name === 'map_flags') {
        spec[m.name] = target.nr_elems;
      } else if (m.name === 'values') {
        // map-in-map: user space writes inner map fds (u32)
        spec.valueType = 'map_fd';
        spec.valueSize = 4;
      } else if (m.name === 'key' || m.name === 'value') {
        spec[`${m.name}Type`] = target.name && target.name !== '(anon)' ? target.name : `u${target.size * 8}`;
        spec[`${m.name}Size`] = sizeOf(byId, ptr.type_id);
      }
    }
    maps[variable.name] = {
      type: MAP_TYPES[spec.type] ?? `type${spec.type}`,
      keyType: spec.keyType ?? null,
      keySize: spec.keySize ?? 0,
      valueType: spec.valueType ?? null,
      valueSize: spec.valueSize ?? 0,
      maxEntries: spec.max_entries,
      flags: spec.map_flags ?? 0,
    };
  }
}

const sorted = (o) =>
  Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
const out = [
  '// Generated by scripts/gen-abi.mjs from the BTF of the BPF objects. Do not edit: run `make abi`.',
  '// The layouts come from bpf/include/meshgate_abi.h through the compiler; test/unit/abi.test.ts checks for drift.',
  '',
  `export const STRUCTS = ${JSON.stringify(sorted(structs), null, 2)} as const;`,
  '',
  `export const ENUMS = ${JSON.stringify(sorted(enums), null, 2)} as const;`,
  '',
  `export const MAPS = ${JSON.stringify(sorted(maps), null, 2)} as const;`,
  '',
  '/** Kernel UAPI enums (include/uapi/linux/bpf.h), from the BTF of bpf/abi.bpf.c. */',
  `export const KERNEL_ENUMS = ${JSON.stringify(sorted(kernelEnums), null, 2)} as const;`,
  '',
  'export type StructName = keyof typeof STRUCTS;',
  'export type MapName = keyof typeof MAPS;',
  '',
];
process.stdout.write(out.join('\n'));
