/** snake_case ↔ camelCase for field names; the caller's own maps keep their keys. */

// every field whose value is a map (or list of maps) of the caller's keys: scope keys may hold
// underscores (`team_id`), metadata keys anything (test/client.test.ts checks it against the API)
export const OPAQUE = new Set([
  "metadata",
  "scope",
  "scopes",
  "root",
  "scope_floor",
  "value",
  "where",
  "counts_by_category",
  "counts_by_scope",
  "counts_by_principal",
  "by_category",
  "by_principal",
  "heads",
  "kept",
]);

/** `memory_category` → `memoryCategory`. */
export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, char: string) => char.toUpperCase());
}

/** `memoryCategory` → `memory_category`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (char) => `_${char.toLowerCase()}`);
}

/** A server response with camelCase field names, recursively, leaving user maps untouched. */
export function camelize(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(camelize);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        camelCase(key),
        OPAQUE.has(key) ? item : camelize(item),
      ]),
    );
  }
  return value;
}

/** Request parameters with snake_case top-level names; undefined ones are left out. */
export function snakeTop(params: object): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(params)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => [snakeCase(key), value]),
  );
}
