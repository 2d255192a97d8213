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
    this.slug = problem.type.startsWith(PROBLEM_BASE)
      ? problem.type.slice(PROBLEM_BASE.length)
      : problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
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
