/** Spectron's TypeScript client. */
export { SpectronClient, Session, Sessions } from "./client.js";
export type { SpectronClientOptions } from "./client.js";
export {
  ForbiddenError,
  InvalidInputError,
  MemoryNotFoundError,
  NotFoundError,
  PROBLEM_BASE,
  SessionClosedError,
  SpectronApiError,
  SpectronConnectionError,
  SpectronError,
  UnauthenticatedError,
} from "./errors.js";
export { camelize, snakeTop } from "./case.js";
export type * from "./types.js";
