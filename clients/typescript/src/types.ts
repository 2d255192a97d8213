/**
 * Request and response types, derived from the server's OpenAPI document (src/generated/openapi.ts
 * is generated from openapi.json at build time), with snake_case fields renamed to camelCase.
 */
import type { components, operations } from "./generated/openapi.js";

type Schemas = components["schemas"];

/** `memory_category` → `memoryCategory` at the type level. */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/** Fields whose values are the caller's own maps: their keys are never renamed. */
export type OpaqueField =
  | "metadata"
  | "scope"
  | "scope_floor"
  | "counts_by_category"
  | "counts_by_scope"
  | "counts_by_principal";

/** A server response with every field name in camelCase (user maps left as they are). */
export type Camelize<T> = T extends readonly (infer Item)[]
  ? Camelize<Item>[]
  : T extends object
    ? {
        [K in keyof T as K extends string ? CamelCase<K> : K]: K extends OpaqueField
          ? T[K]
          : Camelize<T[K]>;
      }
    : T;

/** Top-level field names in camelCase (for request parameters). */
export type CamelizeTop<T> = { [K in keyof T as K extends string ? CamelCase<K> : K]: T[K] };

/** Scope dimensions, e.g. `{ org: "acme", project: "alpha", agent: "w1" }`. */
export type Scope = Schemas["SessionCreate"]["scope"];
export type MemoryCategory = NonNullable<Schemas["RememberRequest"]["memory_category"]>;
export type Capability = Schemas["SessionInfo"]["capabilities"][number];

export type RememberParams = CamelizeTop<Schemas["RememberRequest"]>;
export type RecallParams = CamelizeTop<Schemas["RecallRequest"]>;
export type ReflectParams = CamelizeTop<Schemas["ReflectRequest"]>;
export type ReadParams = CamelizeTop<NonNullable<operations["profile"]["parameters"]["query"]>>;
export type StateParams = Omit<
  CamelizeTop<NonNullable<operations["state"]["parameters"]["query"]>>,
  "scope"
> & { scope?: Scope };
export type EntityType = Schemas["EntityType"];

export type SessionInfo = Camelize<Schemas["SessionInfo"]>;
export type RememberResult = Camelize<Schemas["RememberResult"]>;
export type MemoryItem = Camelize<Schemas["MemoryItem"]>;
export type RecallResult = Camelize<Schemas["RecallResult"]>;
export type Reflection = Camelize<Schemas["Reflection"]>;
export type State = Camelize<Schemas["State"]>;
export type Entity = Camelize<Schemas["Entity"]>;
export type Attribute = Camelize<Schemas["Attribute"]>;
export type Relation = Camelize<Schemas["Relation"]>;
export type Profile = Camelize<Schemas["Profile"]>;

/** An RFC 9457 problem document, exactly as the server sent it. */
export type Problem = Schemas["Problem"];
