// Against a real `spectron serve` (started by tests/test_http_typescript.py, which sets
// SPECTRON_BASE_URL, SPECTRON_AGENT_KEY (read, write) and SPECTRON_FORGET_KEY (read, write,
// forget)); skipped when those are not set.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { test } from "node:test";

import {
  ForbiddenError,
  InvalidInputError,
  MemoryNotFoundError,
  SpectronApiError,
  SpectronClient,
} from "spectron";
import type { State } from "spectron";

const baseUrl = process.env.SPECTRON_BASE_URL;
const apiKey = process.env.SPECTRON_AGENT_KEY;
const skip = !baseUrl || !apiKey ? "needs SPECTRON_BASE_URL and SPECTRON_AGENT_KEY" : false;
const forgetKey = process.env.SPECTRON_FORGET_KEY;
const skipForget = skip || (!forgetKey ? "needs SPECTRON_FORGET_KEY" : false);
const sharedScope = { org: "acme", project: "market-research-q3" };
// the forget key's floor: a project of its own, so what it forgets is only what it wrote here
const timeTravelScope = { org: "acme", project: "time-travel" };

test("the seed's TypeScript snippet runs unchanged", { skip }, async () => {
  const script = fileURLToPath(new URL("../examples/seed-shared-scope.js", import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { env: process.env });
  assert.match(stdout, /Competitor X raised prices by 20% in Q2\./);
  assert.match(stdout, /"agent":"worker-1"/);
});

test("reflect, profile and getState over the wire", { skip }, async () => {
  const client = new SpectronClient({ baseUrl, apiKey });
  const session = await client.sessions.create({ scope: sharedScope });
  await session.remember({
    content: "Customer segment 'enterprise' values compliance features most.",
    memoryCategory: "knowledge",
    metadata: { source: "customer-interview-2024-q3", agent: "interview-agent" },
  });
  const reflection = await session.reflect({ query: "What do enterprise customers value?", persist: true });
  assert.equal(reflection.persisted, true);
  const profile = await session.profile();
  assert.ok(profile.reflections.some((r) => r.id === reflection.id));
  assert.ok(Object.values(profile.countsByCategory).reduce((a, b) => a + b, 0) >= 1);
  const state = await session.getState();
  assert.deepEqual(state.scope, sharedScope);
  const ctx = await session.recall({ query: "compliance", topK: 5, metadata: { source: "customer-interview-2024-q3" } });
  assert.equal(ctx.items[0]?.metadata.agent, "interview-agent");
  assert.equal(ctx.items[0]?.principal, session.principal);
  await session.close();
});

test("the server's refusals arrive as typed problems", { skip }, async () => {
  const client = new SpectronClient({ baseUrl, apiKey });
  await assert.rejects(client.sessions.create({ scope: { org: "acme" } }), (error: unknown) => {
    assert.ok(error instanceof SpectronApiError);
    assert.equal(error.status, 403);
    assert.equal(error.slug, "scope-outside-floor");
    assert.equal(error.problem.instance, "/v1/sessions");
    return true;
  });
  const session = await client.sessions.create({ scope: sharedScope });
  await assert.rejects(
    // a category outside the enum: the cast stands for an untyped (JavaScript) caller
    session.remember({ content: "x", memoryCategory: "gossip" as "knowledge" }),
    (error: unknown) => error instanceof SpectronApiError && error.slug === "invalid-category",
  );
  await session.close();
  const stranger = new SpectronClient({ baseUrl, apiKey: "sk_not-a-key" });
  await assert.rejects(
    stranger.sessions.create({ scope: sharedScope }),
    (error: unknown) => error instanceof SpectronApiError && error.status === 401,
  );
});

test("asOf, history and forget over the wire", { skip: skipForget }, async () => {
  const client = new SpectronClient({ baseUrl, apiKey: forgetKey });
  const session = await client.sessions.create({ scope: timeTravelScope });
  assert.ok(session.capabilities.includes("forget"));
  const price = (value: string) => ({
    attributes: [{ entity: { type: "Competitor", name: "Y" }, key: "price", value }],
  });
  const first = await session.remember({ content: "Competitor Y costs $10.", facts: price("$10") });
  const second = await session.remember({ content: "Competitor Y costs $20.", facts: price("$20") });
  const currentPrice = (state: State): string[] =>
    state.entities
      .filter((entity) => entity.type === "Competitor" && entity.name === "Y")
      .flatMap((entity) => entity.attributes)
      .filter((attribute) => attribute.key === "price" && attribute.supersededBy === null)
      .map((attribute) => attribute.value);

  assert.deepEqual(currentPrice(await session.getState()), ["$20"]);
  // a RememberResult is a log position: the state as the log stood when the first was logged
  assert.deepEqual(currentPrice(await session.getState({ asOf: first })), ["$10"]);
  assert.deepEqual(currentPrice(await session.getState({ asOf: `${first.partition}:${first.offset}` })), ["$10"]);
  const past = await session.recall({ query: "Competitor Y costs", asOf: first.recordedAt });
  assert.deepEqual(past.items.map((item) => item.id), [first.id]);
  const then = await session.profile({ asOf: { partition: first.partition, offset: first.offset } });
  assert.deepEqual(currentPrice(then.state), ["$10"]);
  assert.deepEqual(currentPrice((await session.profile({ asOf: new Date(Date.now() + 60_000) })).state), ["$20"]);

  const entries = await session.history({ entity: "Y", attribute: "price" });
  assert.deepEqual(
    entries.map((entry) => [entry.value, entry.supersededBy, entry.memoryId]),
    [
      ["$10", "$20", first.id],
      ["$20", null, second.id],
    ],
  );
  assert.deepEqual(entries[0]?.position, [first.partition, first.offset]);
  assert.equal(entries[0]?.principal, session.principal);
  const early = await session.history({ entity: "Y", asOf: entries[0]?.position ?? null });
  assert.deepEqual(early.map((entry) => [entry.value, entry.supersededBy]), [["$10", null]]);

  const result = await session.forget({ memoryId: second.id, reason: "wrong figure" });
  assert.deepEqual(result.forgotten, [second.id]);
  assert.equal(result.tombstones.length, 1);
  assert.deepEqual(result.citingReflections, []);
  const after = await session.recall({ query: "Competitor Y costs", topK: 10 });
  assert.deepEqual(after.items.map((item) => item.id), [first.id]);
  assert.deepEqual((await session.history({ entity: "Y", attribute: "price" })).map((e) => e.value), ["$10"]);
  assert.deepEqual(currentPrice(await session.getState()), ["$10"]);

  const unknown = "4f1c6c1e-0000-4000-8000-00000000dead";
  await assert.rejects(session.forget({ memoryId: unknown }), (error: unknown) => {
    assert.ok(error instanceof MemoryNotFoundError);
    assert.equal(error.status, 404);
    assert.equal(error.slug, "memory-not-found");
    return true;
  });
  await assert.rejects(
    session.forget({ where: { nonsense: 1 } as never }),
    (error: unknown) => error instanceof InvalidInputError && error.slug === "invalid-input",
  );
  await assert.rejects(
    session.getState({ asOf: "last tuesday" }),
    (error: unknown) => error instanceof InvalidInputError && error.status === 422,
  );
  await session.close();

  // a key without `forget` is refused before anything is looked up or appended
  const reader = await new SpectronClient({ baseUrl, apiKey }).sessions.create({ scope: sharedScope });
  await assert.rejects(reader.forget({ memoryId: first.id }), (error: unknown) => {
    assert.ok(error instanceof ForbiddenError);
    assert.ok(error instanceof SpectronApiError);
    assert.equal(error.status, 403);
    assert.equal(error.slug, "missing-capability");
    return true;
  });
  await reader.close();
});

test("memories, memory, audit, scopes, status and log verification over the wire", { skip: skipForget }, async () => {
  const client = new SpectronClient({ baseUrl, apiKey: forgetKey });
  const me = await client.whoami();
  assert.equal(me.principal, "agent:ts-forget");
  assert.deepEqual(me.scopeFloor, timeTravelScope);
  const scope = { ...timeTravelScope, topic: `listing-${Date.now()}` };
  const session = await client.sessions.create({ scope });
  const first = await session.remember({ content: "Listing note one.", metadata: { n: "1" } });
  const second = await session.remember({ content: "Listing note two.", memoryCategory: "episodic" });
  const page = await session.memories({ limit: 1 });
  assert.deepEqual(page.items.map((m) => m.id), [second.id]);
  assert.ok(page.nextCursor);
  // the scope also sees its parent's memories (older ones, from the test above)
  const older = await session.memories({ limit: 1, cursor: page.nextCursor });
  assert.deepEqual(older.items.map((m) => [m.id, m.partition, m.offset]), [[first.id, first.partition, first.offset]]);
  assert.deepEqual((await session.memories({ memoryCategory: "episodic" })).items.map((m) => m.id), [second.id]);
  assert.deepEqual((await session.memories({ metadata: { n: "1" } })).items.map((m) => m.id), [first.id]);
  const then = (await session.memories({ asOf: first })).items.map((m) => m.id);
  assert.ok(then.includes(first.id) && !then.includes(second.id));
  const one = await session.memory(first.id);
  assert.equal(one.content, "Listing note one.");
  assert.equal(one.principal, "agent:ts-forget");

  const audit = await session.audit({ principal: "agent:ts-forget" });
  assert.deepEqual(audit.items.slice(0, 2).map((r) => r.eventId), [second.id, first.id]);
  assert.deepEqual(audit.items[0]?.position, [second.partition, second.offset]);

  const tree = await client.scopes();
  const node = tree.nodes.find((n) => n.scope.topic === scope.topic);
  assert.ok(node, "the new scope is in the tree");
  assert.deepEqual(node.byCategory, { episodic: 1, knowledge: 1 });
  assert.deepEqual(node.byPrincipal, { "agent:ts-forget": 2 });
  assert.deepEqual(node.scope, scope);

  const status = await client.status();
  assert.ok(status.partitions.length > 0);
  assert.ok(status.partitions.every((p) => p.lag === p.logEnd - p.projected));
  const verification = await client.verifyLog();
  assert.equal(verification.verified, true);
  assert.ok(verification.checked >= 2);

  await session.forget({ memoryId: first.id });
  await assert.rejects(session.memory(first.id), (error: unknown) => error instanceof MemoryNotFoundError);
  const left = (await session.memories()).items.map((m) => m.id);
  assert.ok(left.includes(second.id) && !left.includes(first.id));
  await assert.rejects(client.deadLetters(), (error: unknown) => {
    assert.ok(error instanceof ForbiddenError);
    assert.equal(error.slug, "missing-capability");
    return true;
  });
  await session.close();
});
