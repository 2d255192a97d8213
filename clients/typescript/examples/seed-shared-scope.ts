// The seed page's TypeScript example, unchanged (only indented). test/server.test.ts runs it against
// a real `spectron serve` with SPECTRON_BASE_URL and SPECTRON_AGENT_KEY set.
import { SpectronClient } from "spectron";

const client = new SpectronClient({
  baseUrl: process.env.SPECTRON_BASE_URL,
  apiKey: process.env.SPECTRON_AGENT_KEY,
});

const sharedScope = { org: "acme", project: "market-research-q3" };

// Worker writes a finding
const workerSession = await client.sessions.create({ scope: { ...sharedScope, agent: "worker-1" } });
await workerSession.remember({
  content: "Competitor X raised prices by 20% in Q2.",
  memoryCategory: "knowledge",
});
await workerSession.close();

// Supervisor reads all findings
const supervisorSession = await client.sessions.create({ scope: sharedScope });
const ctx = await supervisorSession.recall({ query: "competitor pricing", topK: 10 });
console.log(ctx.formatted);
await supervisorSession.close();
