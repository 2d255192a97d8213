// Unit tests with a recording fake fetch: naming, headers, errors, session lifecycle.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SessionClosedError,
  SpectronApiError,
  SpectronClient,
  SpectronConnectionError,
  SpectronError,
} from "spectron";

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

function fakeServer(answers: Record<string, [number, unknown]>): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const fake = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const method = init?.method ?? "GET";
    sent.push({
      method,
      url: url.pathname + url.search,
      headers: init?.headers as Record<string, string>,
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    });
    const key = `${method} ${url.pathname.replace(/sessions\/[^/]+/, "sessions/ID")}`;
    const [status, body] = answers[key] ?? [404, { type: "x", title: "x", status: 404, detail: key, instance: "" }];
    if (status === 204) return new Response(null, { status });
    const type = status >= 400 ? "application/problem+json" : "application/json";
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": type } });
  };
  return { fetch: fake as typeof fetch, sent };
}

const SESSION = {
  session_id: "4f1c6c1e-0000-4000-8000-000000000001",
  scope: { org: "acme", project: "p" },
  principal: "agent:w1",
  capabilities: ["read", "write"],
};
const ITEM = {
  id: "4f1c6c1e-0000-4000-8000-000000000002",
  content: "Competitor X raised prices by 20% in Q2.",
  memory_category: "knowledge",
  metadata: { source_doc: "q2_report", nested_key: { inner_key: 1 } },
  scope: { org: "acme", project_id: "p" },
  score: 0.5,
  principal: "agent:w1",
  recorded_at: "2026-01-01T00:00:00Z",
  embedded: true,
};

test("requests use snake_case, responses camelCase, user maps untouched", async () => {
  const server = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "POST /v1/sessions/ID/remember": [201, { id: ITEM.id, partition: 1, offset: 0, recorded_at: ITEM.recorded_at }],
    "POST /v1/sessions/ID/recall": [200, { items: [ITEM], formatted: "[1] ...", pending: 0, waited_ms: 1.5 }],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test/", apiKey: "sk_test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: { org: "acme", project: "p" } });
  assert.equal(session.id, SESSION.session_id);
  assert.equal(session.principal, "agent:w1");
  const written = await session.remember({
    content: "Competitor X raised prices by 20% in Q2.",
    memoryCategory: "knowledge",
    metadata: { source_doc: "q2_report" },
  });
  assert.equal(written.recordedAt, ITEM.recorded_at);
  const ctx = await session.recall({ query: "competitor pricing", topK: 10 });
  assert.equal(ctx.waitedMs, 1.5);
  const [item] = ctx.items;
  assert.ok(item);
  assert.equal(item.memoryCategory, "knowledge");
  assert.deepEqual(item.metadata, ITEM.metadata);
  assert.deepEqual(item.scope, ITEM.scope);

  const [open, remember, recall] = server.sent;
  assert.deepEqual(open?.body, { scope: { org: "acme", project: "p" } });
  assert.equal(open?.headers.Authorization, "Bearer sk_test");
  assert.equal(open?.url, "/v1/sessions");
  assert.deepEqual(remember?.body, {
    content: "Competitor X raised prices by 20% in Q2.",
    memory_category: "knowledge",
    metadata: { source_doc: "q2_report" },
  });
  assert.deepEqual(recall?.body, { query: "competitor pricing", top_k: 10 });
});

test("problems become SpectronApiError carrying the problem+json body", async () => {
  const problem = {
    type: "https://spectron.dev/problems/scope-outside-floor",
    title: "Scope outside floor",
    status: 403,
    detail: "API key key_1 may only open scopes containing {...}",
    instance: "/v1/sessions",
  };
  const server = fakeServer({ "POST /v1/sessions": [403, problem] });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", apiKey: "sk_x", fetch: server.fetch });
  await assert.rejects(client.sessions.create({ scope: { org: "acme" } }), (error: unknown) => {
    assert.ok(error instanceof SpectronApiError);
    assert.ok(error instanceof SpectronError);
    assert.equal(error.status, 403);
    assert.equal(error.slug, "scope-outside-floor");
    assert.deepEqual(error.problem, problem);
    return true;
  });
});

test("non-problem failures still carry a problem; network errors are typed", async () => {
  const server = fakeServer({ "POST /v1/sessions": [502, "bad gateway"] });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  await assert.rejects(client.sessions.create({ scope: { org: "a" } }), (error: unknown) => {
    assert.ok(error instanceof SpectronApiError);
    assert.equal(error.status, 502);
    assert.equal(error.problem.detail, "bad gateway");
    return true;
  });
  const down = new SpectronClient({
    baseUrl: "http://spectron.test",
    fetch: (async () => {
      throw new TypeError("fetch failed");
    }) as typeof fetch,
  });
  await assert.rejects(down.sessions.create({ scope: { org: "a" } }), SpectronConnectionError);
});

test("close is idempotent and a closed session refuses work", async () => {
  const server = fakeServer({ "POST /v1/sessions": [201, SESSION], "DELETE /v1/sessions/ID": [204, null] });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: SESSION.scope });
  await session.close();
  await session.close();
  assert.equal(server.sent.filter((sent) => sent.method === "DELETE").length, 1);
  await assert.rejects(session.recall({ query: "x" }), SessionClosedError);
});

test("getState and profile send their options as query parameters", async () => {
  const state = { scope: SESSION.scope, entities: [], relations: [], pending: 0 };
  const server = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "GET /v1/sessions/ID/state": [200, state],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: SESSION.scope });
  await session.getState({ scope: { ...SESSION.scope, agent: "w1" }, consistency: "eventual" });
  const sent = server.sent.at(-1);
  assert.ok(sent);
  const query = new URLSearchParams(sent.url.split("?")[1]);
  assert.equal(query.get("consistency"), "eventual");
  assert.deepEqual(JSON.parse(query.get("scope") ?? ""), { org: "acme", project: "p", agent: "w1" });
});

test("a client needs a server address", () => {
  const saved = process.env.SPECTRON_BASE_URL;
  delete process.env.SPECTRON_BASE_URL;
  try {
    assert.throws(() => new SpectronClient({}), SpectronError);
  } finally {
    if (saved !== undefined) process.env.SPECTRON_BASE_URL = saved;
  }
});
