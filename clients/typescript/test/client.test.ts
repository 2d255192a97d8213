// Unit tests with a recording fake fetch: naming, headers, errors, session lifecycle.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  ForbiddenError,
  InvalidInputError,
  MemoryNotFoundError,
  NotFoundError,
  SessionClosedError,
  SpectronApiError,
  SpectronClient,
  SpectronConnectionError,
  SpectronError,
  UnauthenticatedError,
} from "spectron";
import type { RememberResult } from "spectron";

import { OPAQUE } from "../src/case.js";

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

test("strong reads pass on the positions of the client's acknowledged writes", async () => {
  let offset = 0;
  const server = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "POST /v1/sessions/ID/recall": [200, { items: [], formatted: "", pending: 0, waited_ms: 0 }],
    "GET /v1/sessions/ID/state": [200, { scope: SESSION.scope, entities: [], pending: 0 }],
  });
  const fetchWrites: typeof fetch = async (input, init) => {
    if (String(input).endsWith("/remember")) {
      offset += 1; // writes land at 2:5, 2:6, then 0:7 (another partition)
      const partition = offset === 3 ? 0 : 2;
      return new Response(
        JSON.stringify({ id: ITEM.id, partition, offset: 4 + offset, recorded_at: ITEM.recorded_at }),
        { status: 201, headers: { "Content-Type": "application/json" } },
      );
    }
    return server.fetch(input, init);
  };
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: fetchWrites });
  const session = await client.sessions.create({ scope: { org: "acme", project: "p" } });
  const header = () => server.sent.at(-1)?.headers["Spectron-Read-After"];
  await session.recall({ query: "x" });
  assert.equal(header(), undefined); // nothing written yet: nothing owed
  await session.remember({ content: "one" });
  await session.remember({ content: "two" });
  await session.remember({ content: "three" });
  assert.equal(client.readToken({ org: "acme" }), "0:7,2:6"); // the org sees the project's writes
  assert.equal(client.readToken({ org: "acme", project: "q" }), undefined); // a sibling does not
  await session.recall({ query: "x" });
  assert.equal(header(), "0:7,2:6");
  await session.getState();
  assert.equal(header(), "0:7,2:6");
  await session.recall({ query: "x", consistency: "eventual" });
  assert.equal(header(), undefined);
});

test("recall with explain sends explain and returns each item's legs and ranks camelCased", async () => {
  const explanation = {
    legs: ["dense", "keyword"],
    dense_rank: 3,
    keyword_rank: 1,
    fused_score: 0.28,
    neighbour_score: 0,
    lent_by: [],
  };
  const server = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "POST /v1/sessions/ID/recall": [
      200,
      { items: [{ ...ITEM, explanation }], formatted: "[1] ...", pending: 0, waited_ms: 1 },
    ],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test/", apiKey: "sk_test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: { org: "acme" } });
  const ctx = await session.recall({ query: "pricing", explain: true });
  const why = ctx.items[0]?.explanation;
  assert.ok(why);
  assert.deepEqual(why.legs, ["dense", "keyword"]);
  assert.equal(why.denseRank, 3);
  assert.equal(why.keywordRank, 1);
  assert.deepEqual(why.lentBy, []);
  assert.deepEqual(server.sent[1]?.body, { query: "pricing", explain: true });
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

test("asOf is sent as an ISO time or 'partition:offset', whatever form it is given in", async () => {
  const state = { scope: SESSION.scope, entities: [], relations: [], pending: 0 };
  const server = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "GET /v1/sessions/ID/state": [200, state],
    "GET /v1/sessions/ID/profile": [200, {}],
    "POST /v1/sessions/ID/recall": [200, { items: [], formatted: "", pending: 0, waited_ms: 0 }],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: SESSION.scope });
  const asOfSent = (): string | null => {
    const sent = server.sent.at(-1);
    assert.ok(sent);
    if (sent.method === "POST") return (sent.body as { as_of?: string }).as_of ?? null;
    return new URLSearchParams(sent.url.split("?")[1]).get("as_of");
  };
  await session.getState({ asOf: { partition: 2, offset: 41 } });
  assert.equal(asOfSent(), "2:41");
  // a RememberResult is a position: { id, partition, offset, recordedAt }
  const written: RememberResult = { id: ITEM.id, partition: 0, offset: 7, recordedAt: ITEM.recorded_at };
  await session.getState({ asOf: written });
  assert.equal(asOfSent(), "0:7");
  await session.profile({ asOf: [1, 3] }); // a history entry's `position`
  assert.equal(asOfSent(), "1:3");
  await session.profile({ asOf: new Date(Date.UTC(2026, 10, 20, 10, 0, 0)) });
  assert.equal(asOfSent(), "2026-11-20T10:00:00.000Z");
  await session.recall({ query: "x", asOf: "2026-11-20T10:00:00+01:00" });
  assert.equal(asOfSent(), "2026-11-20T10:00:00+01:00");
  await session.recall({ query: "x", asOf: { partition: 0, offset: 5 } });
  assert.equal(asOfSent(), "0:5");
  await session.recall({ query: "x" });
  assert.equal(asOfSent(), null);
  assert.equal("as_of" in (server.sent.at(-1)?.body as object), false);
  const before = server.sent.length;
  await assert.rejects(session.getState({ asOf: new Date(Number.NaN) }), SpectronError);
  await assert.rejects(
    session.recall({ query: "x", asOf: { partition: 1 } as unknown as [number, number] }),
    SpectronError,
  );
  assert.equal(server.sent.length, before, "nothing is sent for an unusable asOf");
});

test("history sends its query; forget sends snake_case, times as ISO, metadata keys untouched", async () => {
  const entry = {
    entity_type: "Competitor",
    entity: "X",
    scope: { org: "acme", project_id: "p" },
    key: "price",
    value: "$10",
    principal: "agent:w1",
    memory_id: ITEM.id,
    facts_event_id: null,
    extractor: "caller",
    recorded_at: ITEM.recorded_at,
    valid_from: null,
    position: [0, 4],
    superseded_by: "$20",
    superseded_by_memory: "4f1c6c1e-0000-4000-8000-000000000003",
    superseded_at: "2026-01-01T00:00:01Z",
  };
  const forgotten = { forgotten: [ITEM.id], tombstones: ["4f1c6c1e-0000-4000-8000-000000000004"], citing_reflections: [] };
  const server = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "GET /v1/sessions/ID/history": [200, [entry]],
    "POST /v1/sessions/ID/forget": [200, forgotten],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: SESSION.scope });

  const [first] = await session.history({ entity: "X", attribute: "price", asOf: [0, 9] });
  assert.ok(first);
  assert.equal(first.supersededBy, "$20");
  assert.equal(first.supersededByMemory, entry.superseded_by_memory);
  assert.deepEqual(first.position, [0, 4]);
  assert.deepEqual(first.scope, entry.scope);
  const query = new URLSearchParams(server.sent.at(-1)?.url.split("?")[1]);
  assert.deepEqual(Object.fromEntries(query), { entity: "X", attribute: "price", as_of: "0:9" });
  await session.history({ entity: "X" });
  assert.equal(server.sent.at(-1)?.url, `/v1/sessions/${SESSION.session_id}/history?entity=X`);

  const result = await session.forget({ memoryId: ITEM.id, reason: "wrong figure" });
  assert.deepEqual(result, { forgotten: [ITEM.id], tombstones: forgotten.tombstones, citingReflections: [] });
  assert.deepEqual(server.sent.at(-1)?.body, { memory_id: ITEM.id, reason: "wrong figure" });
  await session.forget({
    scope: { ...SESSION.scope, agent: "w1" },
    where: {
      memoryCategory: ["episodic", "preference"],
      principal: "agent:w1",
      metadata: { source_doc: "q2_report" },
      before: new Date(Date.UTC(2026, 0, 2)),
      after: "2026-01-01T00:00:00Z",
    },
  });
  assert.deepEqual(server.sent.at(-1)?.body, {
    scope: { org: "acme", project: "p", agent: "w1" },
    where: {
      memory_category: ["episodic", "preference"],
      principal: "agent:w1",
      metadata: { source_doc: "q2_report" },
      before: "2026-01-02T00:00:00.000Z",
      after: "2026-01-01T00:00:00Z",
    },
  });
});

test("problems become the most specific typed error, all SpectronApiError", async () => {
  const problem = (slug: string, status: number) => ({
    type: `https://spectron.dev/problems/${slug}`,
    title: slug,
    status,
    detail: `${slug} detail`,
    instance: "/v1/sessions/x/forget",
  });
  const cases: [string, number, new (...args: never[]) => SpectronApiError][] = [
    ["memory-not-found", 404, MemoryNotFoundError],
    ["session-not-found", 404, NotFoundError],
    ["missing-capability", 403, ForbiddenError],
    ["scope-outside-floor", 403, ForbiddenError],
    ["unauthenticated", 401, UnauthenticatedError],
    ["invalid-input", 422, InvalidInputError],
    ["log-unavailable", 503, SpectronApiError],
  ];
  for (const [slug, status, kind] of cases) {
    const server = fakeServer({ "POST /v1/sessions": [status, problem(slug, status)] });
    const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
    await assert.rejects(client.sessions.create({ scope: { org: "a" } }), (error: unknown) => {
      assert.ok(error instanceof kind, `${slug} → ${kind.name}`);
      assert.ok(error instanceof SpectronApiError);
      assert.equal(error.slug, slug);
      assert.equal(error.status, status);
      if (kind === SpectronApiError) assert.equal(error.constructor, SpectronApiError);
      return true;
    });
  }
  const memory = new MemoryNotFoundError(404, problem("memory-not-found", 404));
  assert.ok(memory instanceof NotFoundError);
  assert.equal(memory.name, "MemoryNotFoundError");
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

test("memories, memory and audit send their queries; scope-tree maps keep their keys", async () => {
  const page = { items: [{ ...ITEM, partition: 3, offset: 7 }], next_cursor: "c~3~7" };
  const tree = {
    root: { org: "acme" },
    nodes: [
      {
        scope: { org: "acme", project_id: "p" },
        key: '{"org":"acme","project_id":"p"}',
        parent: null,
        memories: 2,
        by_category: { knowledge: 2 },
        by_principal: { "agent:w1": 1, "user:some_one": 1 },
      },
    ],
  };
  const { fetch, sent } = fakeServer({
    "POST /v1/sessions": [201, SESSION],
    "GET /v1/sessions/ID/memories": [200, page],
    [`GET /v1/sessions/ID/memories/${ITEM.id}`]: [200, page.items[0]],
    "GET /v1/sessions/ID/audit": [200, { items: [], matched: 0, truncated: false }],
    "GET /v1/scopes": [200, tree],
    "POST /v1/dead-letters/retry": [200, { revived: [], kept: { "0:1": "bad_bytes" }, missing: [] }],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", apiKey: "sk_x", fetch });
  const session = await client.sessions.create({ scope: SESSION.scope });
  const listed = await session.memories({
    limit: 10,
    cursor: "c~1~2",
    memoryCategory: "knowledge",
    metadata: { source_doc: "q2" },
    asOf: { partition: 1, offset: 2 },
  });
  assert.equal(listed.nextCursor, "c~3~7");
  assert.equal(listed.items[0]?.recordedAt, ITEM.recorded_at);
  assert.deepEqual(listed.items[0]?.scope, { org: "acme", project_id: "p" });
  const url = new URL(`http://x${sent.at(-1)?.url}`);
  assert.equal(url.pathname, `/v1/sessions/${SESSION.session_id}/memories`);
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    as_of: "1:2",
    limit: "10",
    cursor: "c~1~2",
    memory_category: "knowledge",
    metadata: '{"source_doc":"q2"}',
  });
  const one = await session.memory(ITEM.id, { asOf: "2026-01-01T00:00:00Z" });
  assert.equal(one.offset, 7);
  assert.equal(sent.at(-1)?.url, `/v1/sessions/${SESSION.session_id}/memories/${ITEM.id}?as_of=2026-01-01T00%3A00%3A00Z`);
  await session.audit({ limit: 5, principal: "agent:w1", since: new Date("2026-01-01T00:00:00Z") });
  assert.equal(
    sent.at(-1)?.url,
    `/v1/sessions/${SESSION.session_id}/audit?limit=5&principal=agent%3Aw1&since=2026-01-01T00%3A00%3A00.000Z`,
  );
  const scopes = await client.scopes();
  assert.deepEqual(scopes.nodes[0]?.byPrincipal, { "agent:w1": 1, "user:some_one": 1 });
  assert.deepEqual(scopes.nodes[0]?.scope, { org: "acme", project_id: "p" });
  const outcome = await client.retryDeadLetters({ partition: 0, offset: 1 });
  assert.deepEqual(outcome.kept, { "0:1": "bad_bytes" });
  assert.deepEqual(sent.at(-1)?.body, { partition: 0, offset: 1 });
});

test("every map of the caller's keys in an answer keeps its keys (scope keys with underscores)", async () => {
  // the API's own schema says which fields are maps: each must be left as the server sent it
  const spec = JSON.parse(readFileSync(new URL("../../openapi.json", import.meta.url), "utf8")) as {
    components: { schemas: Record<string, { properties?: Record<string, Schema> }> };
  };
  const maps = new Set<string>();
  for (const schema of Object.values(spec.components.schemas)) {
    for (const [field, property] of Object.entries(schema.properties ?? {})) {
      if (isMap(property)) maps.add(field);
    }
  }
  assert.ok(maps.has("scopes") && maps.has("root"));
  assert.deepEqual([...maps].filter((field) => !OPAQUE.has(field)), []);

  const floor = { org: "acme", team_id: "t1" };
  const server = fakeServer({
    "POST /v1/sessions": [201, { ...SESSION, scope: { ...floor, sub_team: "blue" } }],
    "GET /v1/scopes": [200, { root: floor, nodes: [] }],
    "GET /v1/sessions/ID/state": [
      200,
      { scope: floor, pending: 0, entities: [{ scope: floor, scopes: [{ ...floor, sub_team: "blue" }] }] },
    ],
  });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  assert.deepEqual((await client.scopes()).root, floor);
  const session = await client.sessions.create({ scope: { ...floor, sub_team: "blue" } });
  const state = await session.getState();
  assert.deepEqual(state.entities[0]?.scopes, [{ ...floor, sub_team: "blue" }]);
});

type Schema = { type?: string; additionalProperties?: unknown; properties?: unknown; items?: Schema; anyOf?: Schema[] };

function isMap(schema: Schema): boolean {
  if (schema.anyOf) return schema.anyOf.some(isMap);
  if (schema.type === "array") return schema.items !== undefined && isMap(schema.items);
  return schema.type === "object" && schema.additionalProperties !== undefined && schema.properties === undefined;
}

test("a body that breaks after the headers is a SpectronConnectionError", async () => {
  const broken: typeof fetch = async () =>
    new Response(
      new ReadableStream({
        start(controller) {
          controller.error(new TypeError("connection reset"));
        },
      }),
      { status: 200, headers: { "Content-Type": "application/json" } },
    );
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: broken });
  await assert.rejects(client.whoami(), (error: unknown) => error instanceof SpectronConnectionError);
});

test("a memory id that is no UUID is not found, and asks nothing of the server", async () => {
  const server = fakeServer({ "POST /v1/sessions": [201, SESSION] });
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  const session = await client.sessions.create({ scope: SESSION.scope });
  for (const id of ["..", ".", "not-a-uuid", `${ITEM.id}/..`]) {
    await assert.rejects(session.memory(id), (error: unknown) => error instanceof MemoryNotFoundError);
  }
  assert.equal(server.sent.length, 1);
});

test("a bad asOf rejects the promise of scopes(), it does not throw", async () => {
  const server = fakeServer({});
  const client = new SpectronClient({ baseUrl: "http://spectron.test", fetch: server.fetch });
  const pending = client.scopes({ asOf: new Date(Number.NaN) });
  await assert.rejects(pending, (error: unknown) => error instanceof SpectronError);
});
