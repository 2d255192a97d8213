// Against a real `spectron serve` (started by tests/test_http_typescript.py, which sets
// SPECTRON_BASE_URL and SPECTRON_AGENT_KEY); skipped when those are not set.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { test } from "node:test";

import { SpectronApiError, SpectronClient } from "spectron";

const baseUrl = process.env.SPECTRON_BASE_URL;
const apiKey = process.env.SPECTRON_AGENT_KEY;
const skip = !baseUrl || !apiKey ? "needs SPECTRON_BASE_URL and SPECTRON_AGENT_KEY" : false;
const sharedScope = { org: "acme", project: "market-research-q3" };

test("the seed's TypeScript snippet runs unchanged", { skip }, async () => {
  const script = fileURLToPath(new URL("../examples/seed-shared-scope.js", import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { env: process.env });
  assert.match(stdout, /Competitor X raised prices by 20% in Q2\./);
  assert.match(stdout, /agent=worker-1/);
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
