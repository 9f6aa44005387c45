// Validated config is frozen all the way down, so no consumer can change what was validated.

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    // Lists of 50,000 CIDR strings are common: visit only the children that are objects.
    const children: readonly unknown[] = Array.isArray(value) ? value : Object.values(value as object);
    for (let i = 0; i < children.length; i++) {
      const child = children[i];
      if (child !== null && typeof child === 'object') deepFreeze(child);
    }
  }
  return value;
}
