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
  | "counts_by_principal"
  | "by_category"
  | "by_principal"
  | "heads"
  | "kept";

/** A server response with every field name in camelCase (user maps left as they are). */
export type Camelize<T> = T extends readonly unknown[]
  ? { -readonly [I in keyof T]: Camelize<T[I]> } // arrays stay arrays, tuples tuples
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

/** A log position, e.g. a `RememberResult` (`{ id, partition, offset, recordedAt }` is one). */
export interface LogPosition {
  partition: number;
  offset: number;
}

/**
 * Read as the log stood at a moment: an ISO 8601 time with a zone (`"2026-11-20T10:00:00Z"`), a
 * `Date` (sent as `toISOString()`), or a log position: `{ partition, offset }`, a
 * `[partition, offset]` pair (a history entry's `position`) or the string `"partition:offset"`.
 * A position means the time its record was logged.
 */
export type AsOf = string | Date | LogPosition | readonly [number, number];

/** Parameters with an `asOf` that may be a Date or a position, not only the wire's string. */
type WithAsOf<T> = Omit<T, "asOf"> & { asOf?: AsOf | null | undefined };

export type RememberParams = CamelizeTop<Schemas["RememberRequest"]>;
export type RecallParams = WithAsOf<CamelizeTop<Schemas["RecallRequest"]>>;
export type ReflectParams = CamelizeTop<Schemas["ReflectRequest"]>;
export type ReadParams = WithAsOf<
  CamelizeTop<NonNullable<operations["profile"]["parameters"]["query"]>>
>;
export type StateParams = Omit<
  WithAsOf<CamelizeTop<NonNullable<operations["state"]["parameters"]["query"]>>>,
  "scope"
> & { scope?: Scope };
export type HistoryParams = WithAsOf<
  CamelizeTop<NonNullable<operations["history"]["parameters"]["query"]>>
>;

/** `where` of `forget`: which memories of the scope to forget (all given conditions hold). */
export interface ForgetWhere {
  memoryCategory?: MemoryCategory | MemoryCategory[];
  /** Only memories this principal wrote, e.g. `agent:w1`. */
  principal?: string;
  /** Containment match on the memories' metadata. */
  metadata?: Record<string, unknown>;
  /** Logged before this time (ISO 8601 with zone, or a Date). */
  before?: string | Date;
  /** Logged at or after this time (ISO 8601 with zone, or a Date). */
  after?: string | Date;
}

/** `memoryId` for one memory; else every memory at or below `scope` (default: the session's) matching `where`. */
export type ForgetParams = Omit<CamelizeTop<Schemas["ForgetRequest"]>, "where" | "scope"> & {
  scope?: Scope | null;
  where?: ForgetWhere | null;
};
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
export type ForgetResult = Camelize<Schemas["ForgetResult"]>;
export type HistoryEntry = Camelize<Schemas["HistoryEntry"]>;
export type MemoryRecord = Camelize<Schemas["MemoryRecord"]>;
export type MemoryPage = Camelize<Schemas["MemoryPage"]>;
export type ScopeTree = Camelize<Schemas["ScopeTree"]>;
export type ScopeNode = Camelize<Schemas["ScopeNode"]>;
export type AuditRecord = Camelize<Schemas["AuditRecord"]>;
export type AuditPage = Camelize<Schemas["AuditPage"]>;
export type LogStatus = Camelize<Schemas["LogStatus"]>;
export type LogVerification = Camelize<Schemas["LogVerification"]>;
export type DeadLetter = Camelize<Schemas["DeadLetterInfo"]>;
export type RetryOutcome = Camelize<Schemas["RetryOutcome"]>;
export type KeyInfo = Camelize<Schemas["KeyInfo"]>;

/** `memories`: a page of memories, newest first (`cursor`: a previous page's `nextCursor`). */
export type MemoriesParams = WithAsOf<
  Omit<CamelizeTop<NonNullable<operations["list_memories"]["parameters"]["query"]>>, "metadata">
> & { metadata?: Record<string, unknown> | null };
/** `memory`: one memory by id (as of a moment, optionally). */
export type MemoryParams = WithAsOf<
  CamelizeTop<NonNullable<operations["get_memory"]["parameters"]["query"]>>
>;
/** `audit`: the newest events visible from the session's scope. */
export type AuditParams = Omit<
  CamelizeTop<NonNullable<operations["audit"]["parameters"]["query"]>>,
  "since" | "until"
> & { since?: AsOf | null; until?: AsOf | null };

/** An RFC 9457 problem document, exactly as the server sent it. */
export type Problem = Schemas["Problem"];
