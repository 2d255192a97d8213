/** Typed errors: every failure the client reports is a SpectronError. */
import type { Problem } from "./types.js";

export const PROBLEM_BASE = "https://spectron.dev/problems/";

/** Base class of every error this client throws. */
export class SpectronError extends Error {
  override name = "SpectronError";
}

/** The server answered with an RFC 9457 problem (4xx/5xx); `problem` is its body. */
export class SpectronApiError extends SpectronError {
  override name = "SpectronApiError";
  readonly status: number;
  /** The stable type URI, e.g. `https://spectron.dev/problems/scope-outside-floor`. */
  readonly type: string;
  /** The type's last segment, e.g. `scope-outside-floor`, `missing-capability`, `invalid-content`. */
  readonly slug: string;
  readonly title: string;
  readonly detail: string;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(`${problem.title} (${status}): ${problem.detail}`);
    this.status = status;
    this.problem = problem;
    this.type = problem.type;
    this.slug = slugOf(problem.type);
    this.title = problem.title;
    this.detail = problem.detail;
  }
}

/** 401 (`unauthenticated`): no API key, an unknown one or a revoked one. */
export class UnauthenticatedError extends SpectronApiError {
  override name = "UnauthenticatedError";
}

/**
 * 403: the key is valid but may not do this; `slug` says why (`scope-outside-floor`,
 * `missing-capability`, e.g. `forget` without the `forget` capability, or `forbidden`).
 */
export class ForbiddenError extends SpectronApiError {
  override name = "ForbiddenError";
}

/** 404: `session-not-found`, `key-not-found`, `not-found` (and `memory-not-found`, a subclass). */
export class NotFoundError extends SpectronApiError {
  override name = "NotFoundError";
}

/** 404 `memory-not-found`: no memory with that id at or below the session's scope. */
export class MemoryNotFoundError extends NotFoundError {
  override name = "MemoryNotFoundError";
}

/** 422: the input was rejected and nothing was appended (`invalid-input`, `invalid-scope`, ...). */
export class InvalidInputError extends SpectronApiError {
  override name = "InvalidInputError";
}

/** The most specific SpectronApiError for a problem: by its slug, else by its status. */
export function apiError(status: number, problem: Problem): SpectronApiError {
  if (slugOf(problem.type) === "memory-not-found") return new MemoryNotFoundError(status, problem);
  switch (status) {
    case 401:
      return new UnauthenticatedError(status, problem);
    case 403:
      return new ForbiddenError(status, problem);
    case 404:
      return new NotFoundError(status, problem);
    case 422:
      return new InvalidInputError(status, problem);
    default:
      return new SpectronApiError(status, problem);
  }
}

/** The server could not be reached, timed out, or answered something that is not Spectron's. */
export class SpectronConnectionError extends SpectronError {
  override name = "SpectronConnectionError";
}

/** An operation on a session after `close()`. */
export class SessionClosedError extends SpectronError {
  override name = "SessionClosedError";
}

/** A problem type's last segment: `https://spectron.dev/problems/memory-not-found` → `memory-not-found`. */
function slugOf(type: string): string {
  return type.startsWith(PROBLEM_BASE) ? type.slice(PROBLEM_BASE.length) : type;
}

/** A problem document from whatever the server sent, so an error always carries one. */
export function toProblem(status: number, body: unknown, instance: string): Problem {
  if (body !== null && typeof body === "object" && "type" in body && "detail" in body) {
    return body as Problem;
  }
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return {
    type: `${PROBLEM_BASE}http-${status}`,
    title: `HTTP ${status}`,
    status,
    detail: text.slice(0, 500),
    instance,
  };
}
