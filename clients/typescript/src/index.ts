/** Spectron's TypeScript client. */
export { SpectronClient, Session, Sessions } from "./client.js";
export type { SpectronClientOptions } from "./client.js";
export {
  PROBLEM_BASE,
  SessionClosedError,
  SpectronApiError,
  SpectronConnectionError,
  SpectronError,
} from "./errors.js";
export { camelize, snakeTop } from "./case.js";
export type * from "./types.js";
