/** The Spectron client over HTTP: `new SpectronClient({ baseUrl, apiKey }).sessions.create({ scope })`. */
import { camelize, snakeTop } from "./case.js";
import {
  apiError,
  MemoryNotFoundError,
  PROBLEM_BASE,
  SessionClosedError,
  SpectronConnectionError,
  SpectronError,
  toProblem,
} from "./errors.js";
import type {
  AsOf,
  AuditPage,
  AuditParams,
  DeadLetter,
  KeyInfo,
  LogStatus,
  LogVerification,
  MemoriesParams,
  MemoryPage,
  MemoryParams,
  MemoryRecord,
  RetryOutcome,
  ScopeTree,
  Capability,
  EntityType,
  ForgetParams,
  ForgetResult,
  ForgetWhere,
  HistoryEntry,
  HistoryParams,
  LogPosition,
  Profile,
  ReadParams,
  RecallParams,
  RecallResult,
  Reflection,
  ReflectParams,
  RememberParams,
  RememberResult,
  Scope,
  SessionInfo,
  State,
  StateParams,
} from "./types.js";

export interface SpectronClientOptions {
  /** The server, e.g. `http://127.0.0.1:8080`; defaults to env SPECTRON_BASE_URL. */
  baseUrl?: string | undefined;
  /** An API key (`sk_...`); defaults to env SPECTRON_API_KEY. */
  apiKey?: string | undefined;
  /** Per-request timeout in milliseconds (default 30 s; longer when a read may wait). */
  timeoutMs?: number;
  /** A fetch implementation (default: the global one, Node ≥ 18). */
  fetch?: typeof fetch;
}

type Method = "GET" | "POST" | "DELETE";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function env(name: string): string | undefined {
  // read lazily and defensively: browsers and edge runtimes have no `process`
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name] || undefined;
}

/** Entry point: holds the server address and key; `sessions.create` opens sessions. */
export class SpectronClient {
  readonly baseUrl: string;
  readonly sessions: Sessions;
  readonly #apiKey: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  /** Per scope written to: the scope, and per partition the last offset acknowledged there. */
  readonly #written = new Map<string, [Scope, Map<number, number>]>();

  constructor(options: SpectronClientOptions = {}) {
    const baseUrl = options.baseUrl || env("SPECTRON_BASE_URL");
    if (!baseUrl) {
      throw new SpectronError("no server: pass baseUrl or set SPECTRON_BASE_URL");
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey || env("SPECTRON_API_KEY");
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.sessions = new Sessions(this);
  }

  /** Remember an acknowledged write at `scope`: strong reads that can see it wait for it. */
  noteWrite(scope: Scope, position: LogPosition): void {
    const key = JSON.stringify(Object.entries(scope).sort(([a], [b]) => a.localeCompare(b)));
    const [, heads] = this.#written.get(key) ?? [scope, new Map<number, number>()];
    if ((heads.get(position.partition) ?? -1) < position.offset) {
      heads.set(position.partition, position.offset);
    }
    this.#written.set(key, [scope, heads]);
  }

  /**
   * The read-your-writes token (`"partition:offset,..."`) of this client's writes visible from
   * `scope`: strong reads send it as the `Spectron-Read-After` header, so whichever server answers
   * waits for them. Undefined when there are none.
   */
  readToken(scope: Scope): string | undefined {
    const merged = new Map<number, number>();
    for (const [written, heads] of this.#written.values()) {
      if (!isVisible(written, scope)) continue;
      for (const [partition, offset] of heads) {
        merged.set(partition, Math.max(merged.get(partition) ?? -1, offset));
      }
    }
    if (merged.size === 0) return undefined;
    return [...merged.entries()]
      .sort(([a], [b]) => a - b)
      .map(([partition, offset]) => `${String(partition)}:${String(offset)}`)
      .join(",");
  }

  /** Send one request; resolve to its JSON (camelCased) or reject with a typed error. */
  async request<T>(
    method: Method,
    path: string,
    body?: object,
    query?: Record<string, string | undefined>,
    waitSeconds?: number | null,
    readAfter?: string,
  ): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, value);
    }
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.#apiKey) headers.Authorization = `Bearer ${this.#apiKey}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (readAfter !== undefined) headers["Spectron-Read-After"] = readAfter;
    // a read may wait server-side for read-your-writes: never give up before the server does
    const timeout = Math.max(this.#timeoutMs, (waitSeconds ?? 0) * 1000 + 10_000);
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeout),
      });
    } catch (error) {
      throw new SpectronConnectionError(`${method} ${url.href}: ${String(error)}`, {
        cause: error,
      });
    }
    if (response.status === 204) return undefined as T;
    let text: string;
    try {
      text = await response.text(); // the body can time out or break after the headers came
    } catch (error) {
      throw new SpectronConnectionError(`${method} ${url.href}: ${String(error)}`, {
        cause: error,
      });
    }
    let data: unknown = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      if (response.ok) {
        throw new SpectronConnectionError(`${method} ${url.href}: the answer is not JSON`);
      }
    }
    if (!response.ok) {
      throw apiError(response.status, toProblem(response.status, data, url.pathname));
    }
    return camelize(data) as T;
  }

  /** The API key in use: principal, scope floor and capabilities. */
  whoami(): Promise<KeyInfo> {
    return this.request("GET", "/v1/whoami");
  }

  /** Scopes holding memories visible from the key's floor, with counts. Needs `read`. */
  async scopes(params: { asOf?: AsOf | null } = {}): Promise<ScopeTree> {
    return this.request("GET", "/v1/scopes", undefined, { as_of: asOfText(params.asOf) });
  }

  /** Per partition log end, projected position and lag; pending embeddings; dead letters. Needs `read`. */
  status(): Promise<LogStatus> {
    return this.request("GET", "/v1/status");
  }

  /** Check the log's hash chain end to end (reads the whole log). Needs `read`. */
  verifyLog(): Promise<LogVerification> {
    return this.request("GET", "/v1/log/verification");
  }

  /** Dead letters in log order. Needs `admin` with the floor `{}`. */
  deadLetters(params: { limit?: number } = {}): Promise<DeadLetter[]> {
    const limit = params.limit === undefined ? undefined : String(params.limit);
    return this.request("GET", "/v1/dead-letters", undefined, { limit });
  }

  /** Retry one dead letter (its position) or all of them. Needs `admin` with the floor `{}`. */
  retryDeadLetters(position?: LogPosition): Promise<RetryOutcome> {
    const body = position ? { partition: position.partition, offset: position.offset } : {};
    return this.request("POST", "/v1/dead-letters/retry", body);
  }
}

/** `client.sessions`. */
export class Sessions {
  readonly #client: SpectronClient;

  constructor(client: SpectronClient) {
    this.#client = client;
  }

  /** Open a session at `scope`; the server refuses scopes that do not contain the key's floor. */
  async create(params: { scope: Scope }): Promise<Session> {
    const info = await this.#client.request<SessionInfo>("POST", "/v1/sessions", {
      scope: params.scope,
    });
    return new Session(this.#client, info);
  }
}

/** Memory operations at one scope. Close it when done; its memories stay. */
export class Session {
  readonly id: string;
  readonly scope: Scope;
  /** The principal the server stamps on everything this session writes (from the API key). */
  readonly principal: string;
  readonly capabilities: Capability[];
  readonly #client: SpectronClient;
  #closed = false;

  constructor(client: SpectronClient, info: SessionInfo) {
    this.#client = client;
    this.id = info.sessionId;
    this.scope = info.scope;
    this.principal = info.principal;
    this.capabilities = info.capabilities;
  }

  #call<T>(
    method: Method,
    operation: string,
    body?: object,
    query?: Record<string, string | undefined>,
    waitSeconds?: number | null,
    consistency?: string | null,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new SessionClosedError(`session ${this.id} is closed`));
    }
    const path = `/v1/sessions/${encodeURIComponent(this.id)}/${operation}`;
    // a strong read (the default) also waits for this client's own writes, on any server
    const readAfter =
      consistency === undefined ? undefined : strongToken(consistency, this.#client, this.scope);
    return this.#client.request<T>(method, path, body, query, waitSeconds, readAfter);
  }

  /** Append a memory at this scope; resolves once the log has it. Needs `write`. */
  async remember(params: RememberParams): Promise<RememberResult> {
    const written = await this.#call<RememberResult>("POST", "remember", snakeTop(params));
    this.#client.noteWrite(this.scope, written);
    return written;
  }

  /**
   * Memories visible from this scope that best match the query (read-your-writes). Needs `read`.
   * `asOf` answers as the log stood then: a time, a Date or a position (see `AsOf`).
   */
  async recall(params: RecallParams): Promise<RecallResult> {
    const body = snakeTop({ ...params, asOf: asOfText(params.asOf) });
    const consistency = params.consistency ?? "strong";
    return this.#call("POST", "recall", body, undefined, params.timeout, consistency);
  }

  /** Synthesise what this scope can see; `persist: true` records it (needs `write` too). */
  reflect(params: ReflectParams): Promise<Reflection> {
    return this.#call("POST", "reflect", snakeTop(params));
  }

  /** Entity state, persisted reflections, contributions and recent memory (`asOf`: then). Needs `read`. */
  async profile(params: ReadParams = {}): Promise<Profile> {
    const query = readQuery(params);
    const consistency = params.consistency ?? "strong";
    return this.#call("GET", "profile", undefined, query, params.timeout, consistency);
  }

  /**
   * Entities, attributes (with supersession) and relations visible from this scope or one below;
   * with `asOf`, as they stood then. Needs `read`.
   */
  async getState(params: StateParams = {}): Promise<State> {
    const query = {
      ...readQuery(params),
      scope: params.scope ? JSON.stringify(params.scope) : undefined,
    };
    const consistency = params.consistency ?? "strong";
    return this.#call("GET", "state", undefined, query, params.timeout, consistency);
  }

  /**
   * Every value an entity's attribute (or all its attributes) had, oldest first: who asserted it,
   * when, in which memory and log position, and what superseded it. Needs `read`.
   */
  async history(params: HistoryParams): Promise<HistoryEntry[]> {
    const query = {
      entity: params.entity,
      attribute: params.attribute ?? undefined,
      as_of: asOfText(params.asOf),
    };
    return this.#call("GET", "history", undefined, query);
  }

  /**
   * Crypto-shred one memory (`memoryId`), or every memory at or below `scope` (default: this
   * session's) matching `where`; later reads never see their content. Needs `forget`. An unknown id
   * (or one outside this scope) rejects with MemoryNotFoundError; a key without `forget`, with
   * ForbiddenError (`missing-capability`).
   */
  async forget(params: ForgetParams): Promise<ForgetResult> {
    const body = snakeTop({
      ...params,
      where: params.where ? whereBody(params.where) : params.where,
    });
    return this.#call("POST", "forget", body);
  }

  /**
   * Memories visible from this scope, newest first, with their log positions; pass `nextCursor`
   * back as `cursor` for older ones. Needs `read`.
   */
  async memories(params: MemoriesParams = {}): Promise<MemoryPage> {
    const query = {
      ...readQuery(params),
      limit: params.limit === undefined || params.limit === null ? undefined : String(params.limit),
      cursor: params.cursor ?? undefined,
      memory_category: params.memoryCategory ?? undefined,
      metadata: params.metadata ? JSON.stringify(params.metadata) : undefined,
    };
    return this.#call("GET", "memories", undefined, query, params.timeout);
  }

  /** One memory visible from this scope; rejects with MemoryNotFoundError once forgotten. Needs `read`. */
  async memory(id: string, params: MemoryParams = {}): Promise<MemoryRecord> {
    if (!UUID.test(id)) {
      // not a path segment of ours: "." or ".." would address another resource once resolved
      const instance = `/v1/sessions/${encodeURIComponent(this.id)}/memories`;
      const detail = `no memory has the id ${JSON.stringify(id)}: memory ids are UUIDs`;
      const type = `${PROBLEM_BASE}memory-not-found`;
      throw new MemoryNotFoundError(404, { type, title: "Memory not found", status: 404, detail, instance });
    }
    return this.#call("GET", `memories/${encodeURIComponent(id)}`, undefined, readQuery(params), params.timeout);
  }

  /** The newest events visible from this scope: who did what, when, ids and positions. Needs `read`. */
  async audit(params: AuditParams = {}): Promise<AuditPage> {
    const query = {
      limit: params.limit === undefined || params.limit === null ? undefined : String(params.limit),
      principal: params.principal ?? undefined,
      since: asOfText(params.since),
      until: asOfText(params.until),
    };
    return this.#call("GET", "audit", undefined, query);
  }

  /** Register an entity type for extraction at and below this scope. Needs `write`. */
  registerEntityType(entityType: EntityType): Promise<RememberResult> {
    return this.#call("POST", "entity-types", entityType);
  }

  /** End the session on the server (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.request<void>("DELETE", `/v1/sessions/${encodeURIComponent(this.id)}`);
  }
}

/** The client's token for a read (strong by default; eventual waits for nothing). */
function strongToken(
  consistency: string | null,
  client: SpectronClient,
  scope: Scope,
): string | undefined {
  return consistency === "eventual" ? undefined : client.readToken(scope);
}

/** DESIGN rule 1: `written` is visible from `scope` when one contains the other. */
function isVisible(written: Scope, scope: Scope): boolean {
  const within = (inner: Scope, outer: Scope) =>
    Object.entries(outer).every(([key, value]) => inner[key] === value);
  return within(written, scope) || within(scope, written);
}

function readQuery(params: ReadParams): Record<string, string | undefined> {
  return {
    consistency: params.consistency,
    timeout: params.timeout === undefined || params.timeout === null ? undefined : String(params.timeout),
    as_of: asOfText(params.asOf),
  };
}

/** `asOf` as the server reads it: an ISO 8601 time or `"partition:offset"`. */
function asOfText(asOf: AsOf | null | undefined): string | undefined {
  if (asOf === undefined || asOf === null) return undefined;
  if (typeof asOf === "string") return asOf;
  if (asOf instanceof Date) return isoTime(asOf, "asOf");
  const [partition, offset] = Array.isArray(asOf)
    ? asOf
    : [(asOf as { partition?: unknown }).partition, (asOf as { offset?: unknown }).offset];
  if (!Number.isSafeInteger(partition) || !Number.isSafeInteger(offset)) {
    throw new SpectronError(
      "asOf must be an ISO 8601 time, a Date, {partition, offset} or [partition, offset]",
    );
  }
  return `${String(partition)}:${String(offset)}`;
}

function isoTime(date: Date, field: string): string {
  if (Number.isNaN(date.getTime())) throw new SpectronError(`${field} is an invalid Date`);
  return date.toISOString();
}

/** `where` with snake_case names and times as ISO strings (its `metadata` keeps its keys). */
function whereBody(where: ForgetWhere): Record<string, unknown> {
  const { before, after } = where;
  return snakeTop({
    ...where,
    before: before instanceof Date ? isoTime(before, "where.before") : before,
    after: after instanceof Date ? isoTime(after, "where.after") : after,
  });
}
