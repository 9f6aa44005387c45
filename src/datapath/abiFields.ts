// A struct field's place, from the BTF (abi.generated.ts), once it has been checked.
import { STRUCTS, type StructName } from './abi.generated.js';
import { MeshgateError } from '../errors.js';

export type FieldName<S extends StructName> = keyof (typeof STRUCTS)[S]['fields'] & string;

/**
 * A field's offset, once the BTF has confirmed the width the caller reads and writes it with
 * (a u16 read as a u8 would drop a byte silently). Called when a module loads, so a drift
 * fails at once with MG_ABI_MISMATCH instead of misreading maps.
 */
export function fieldOffset<S extends StructName>(struct: S, name: FieldName<S>, width: number): number {
  const f = (STRUCTS[struct].fields as Record<string, { offset: number; size: number }>)[name];
  if (!f) throw new MeshgateError('MG_ABI_MISMATCH', `ABI has no field ${struct}.${name}`);
  if (f.size !== width)
    throw new MeshgateError(
      'MG_ABI_MISMATCH',
      `${struct}.${name} is ${f.size} bytes in the BTF, the code uses ${width}`,
    );
  return f.offset;
}
