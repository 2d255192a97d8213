// The console's only way to the server: the same HTTP API as every client, with the signed-in key.
const KEY = "spectron.apiKey";

/** A problem+json answer (or a network failure) as an Error with the problem's fields. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.slug = String(problem.type || "").split("/").pop();
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(secret) {
  if (secret !== storedKey()) forgetSessions(); // sessions belong to the key that opened them
  sessionStorage.setItem(KEY, secret);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
  forgetSessions();
}

/** Close the console's sessions on the server (best effort), then forget the key. */
export async function signOut() {
  await Promise.allSettled([...opening.values()]);
  const open = [...sessions.values()];
  await Promise.allSettled(open.map((id) => api("DELETE", `/v1/sessions/${id}`)));
  forgetKey();
}

/** Send one request with the key; resolve to JSON, reject with an ApiError. */
export async function api(method, path, { body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${storedKey() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, { title: "Server unreachable", detail: String(error) });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// One server-side session per scope, opened on first use and reopened if the server lost it.
// A key may hold only so many open sessions (1,000 by default), agents' included: the ids are
// kept for the tab, so a reload reuses them, and views loading at once share one opening.
const SESSIONS = "spectron.sessions";
const sessions = new Map(Object.entries(JSON.parse(sessionStorage.getItem(SESSIONS) || "{}")));
const opening = new Map();

function keepSessions() {
  sessionStorage.setItem(SESSIONS, JSON.stringify(Object.fromEntries(sessions)));
}

function forgetSessions() {
  sessions.clear();
  opening.clear();
  sessionStorage.removeItem(SESSIONS);
}

function sessionFor(scope) {
  const key = JSON.stringify(scope);
  if (sessions.has(key)) return Promise.resolve(sessions.get(key));
  if (!opening.has(key)) {
    const opened = api("POST", "/v1/sessions", { body: { scope } })
      .then((info) => {
        if (opening.get(key) === opened) {
          sessions.set(key, info.session_id);
          keepSessions();
        }
        return info.session_id;
      })
      .finally(() => {
        if (opening.get(key) === opened) opening.delete(key);
      });
    opening.set(key, opened);
  }
  return opening.get(key);
}

/** A call on the session at `scope` (e.g. "memories", "state"). */
export async function onScope(scope, method, operation, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const id = await sessionFor(scope);
    try {
      return await api(method, `/v1/sessions/${id}/${operation}`, options);
    } catch (error) {
      if (attempt === 0 && error.slug === "session-not-found") {
        const key = JSON.stringify(scope);
        if (sessions.get(key) === id) {
          sessions.delete(key); // not one another view opened again meanwhile
          keepSessions();
        }
        continue;
      }
      throw error;
    }
  }
}
