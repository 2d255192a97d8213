// Memories: newest first or recalled, as of a moment; one memory; forget with confirmation.
import { ApiError, onScope } from "./api.js";
import { announce, h, scopeLabel, isWithin, shortId, showProblem, when } from "./dom.js";
import { logTimes, scopeForm, viewHeader } from "./controls.js";
import { can, currentScope, navigate, query, rerender, urlOf } from "./nav.js";

const CATEGORIES = ["knowledge", "episodic", "preference", "procedural", "reflection"];

function memoryCard(memory, scope, { withPosition }) {
  const forgettable = can("forget") && isWithin(memory.scope, scope);
  const preview = memory.content.length > 60 ? `${memory.content.slice(0, 60)}…` : memory.content;
  const metadata = Object.keys(memory.metadata || {}).length ? JSON.stringify(memory.metadata) : null;
  return h(
    "li",
    { class: "memory card", "data-memory-id": memory.id },
    h("p", { class: "content" }, memory.content),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Category"),
      h("dd", {}, memory.memory_category),
      h("dt", {}, "Scope"),
      h("dd", {}, scopeLabel(memory.scope)),
      h("dt", {}, "Writer"),
      h("dd", {}, memory.principal),
      h("dt", {}, "Logged"),
      h("dd", {}, when(memory.recorded_at)),
      withPosition ? [h("dt", {}, "Log position"), h("dd", {}, `${memory.partition}:${memory.offset}`)] : null,
      h("dt", {}, "Embedding"),
      h("dd", { class: memory.embedded ? "ok" : "pending" }, memory.embedded ? "embedded" : "pending"),
      memory.score !== undefined ? [h("dt", {}, "Score"), h("dd", {}, memory.score.toFixed(4))] : null,
      metadata ? [h("dt", {}, "Metadata"), h("dd", {}, h("code", {}, metadata))] : null,
      h("dt", {}, "Id"),
      h("dd", {}, shortId(memory.id)),
    ),
    forgettable
      ? h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Forget memory: ${preview}`,
            onclick: () => confirmForget(memory, scope),
          },
          "Forget…",
        )
      : null,
  );
}

function confirmForget(memory, scope) {
  const dialog = h(
    "dialog",
    { "aria-labelledby": "forget-title", "aria-describedby": "forget-text" },
    h("h2", { id: "forget-title" }, "Forget this memory?"),
    h("p", { id: "forget-text" }, `“${memory.content}” will be crypto-shredded: its content, vector and facts are erased for good. The audit keeps who wrote it, where and when.`),
    h(
      "form",
      { method: "dialog", class: "actions" },
      h("button", { value: "cancel", autofocus: true }, "Cancel"),
      h("button", { value: "forget", class: "danger" }, "Forget"),
    ),
  );
  dialog.addEventListener("close", async () => {
    dialog.remove();
    if (dialog.returnValue !== "forget") return;
    try {
      await onScope(scope, "POST", "forget", { body: { memory_id: memory.id, reason: "forgotten in the console" } });
      announce("Memory forgotten.");
      rerender({ focus: true });
    } catch (error) {
      showProblem(error);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
}

async function memoryView(scope, id) {
  const asOf = query().get("as_of") || undefined;
  const [events, memory] = await Promise.all([
    logTimes(scope),
    onScope(scope, "GET", `memories/${encodeURIComponent(id)}`, { query: { as_of: asOf } }).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }),
  ]);
  return [
    ...viewHeader("memories", scope, events),
    h("p", {}, h("a", { href: urlOf("memories", { memory: null }), "data-nav": true }, "All memories at this scope")),
    memory
      ? h("ol", { class: "memories single", "aria-label": "Memory" }, memoryCard(memory, scope, { withPosition: true }))
      : h("p", { class: "empty" }, asOf ? "This memory did not exist yet at that moment, or was forgotten." : "No such memory here: it was forgotten, or it is not visible from this scope."),
  ];
}

export async function memoriesView() {
  const scope = currentScope();
  if (!scope) return [h("h1", { tabindex: -1 }, "Memories"), scopeForm("memories", null)];
  const params = query();
  if (params.get("memory")) return memoryView(scope, params.get("memory"));
  const asOf = params.get("as_of") || undefined;
  const text = params.get("q") || "";
  const mode = params.get("mode") || "hybrid";
  const category = params.get("category") || "";
  const metadataText = params.get("metadata") || "";
  let metadata;
  if (metadataText) {
    try {
      metadata = JSON.parse(metadataText);
    } catch {
      throw new Error("the metadata filter must be a JSON object");
    }
  }
  const [events, found] = await Promise.all([
    logTimes(scope),
    text
      ? onScope(scope, "POST", "recall", {
          body: { query: text, top_k: 20, mode, memory_category: category || null, metadata: metadata ?? null, as_of: asOf ?? null },
        })
      : onScope(scope, "GET", "memories", {
          query: { limit: 50, memory_category: category, metadata: metadataText, as_of: asOf },
        }),
  ]);
  const list = h("ol", { class: "memories", "aria-label": "Memories" });
  const append = (items) => list.append(...items.map((m) => memoryCard(m, scope, { withPosition: !text })));
  append(found.items);
  let more = null;
  if (!text && found.next_cursor) {
    let cursor = found.next_cursor;
    more = h(
      "button",
      {
        type: "button",
        onclick: async () => {
          const page = await onScope(scope, "GET", "memories", {
            query: { limit: 50, memory_category: category, metadata: metadataText, as_of: asOf, cursor },
          });
          append(page.items);
          cursor = page.next_cursor;
          if (!cursor) more.remove();
        },
      },
      "Load older memories",
    );
  }
  const field = (id, labelText, control) => h("div", { class: "field" }, h("label", { for: id }, labelText), control);
  const filters = h(
    "form",
    {
      class: "filters card",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        navigate(
          urlOf("memories", {
            q: data.get("q"),
            mode: data.get("q") ? data.get("mode") : null,
            category: data.get("category"),
            metadata: data.get("metadata"),
          }),
        );
      },
    },
    field("q", "Query (empty: newest first)", h("input", { id: "q", name: "q", type: "search", value: text })),
    field(
      "mode",
      "Mode",
      h("select", { id: "mode", name: "mode" }, ["hybrid", "dense", "keyword"].map((m) => h("option", { value: m, selected: m === mode }, m))),
    ),
    field(
      "category",
      "Category",
      h("select", { id: "category", name: "category" }, h("option", { value: "" }, "any"), CATEGORIES.map((c) => h("option", { value: c, selected: c === category }, c))),
    ),
    field("metadata", "Metadata filter (JSON)", h("input", { id: "metadata", name: "metadata", value: metadataText, placeholder: '{"source":"…"}', spellcheck: "false" })),
    h("button", { type: "submit" }, "Apply"),
  );
  const summary = text
    ? `${found.items.length} best matches for “${text}”${found.pending ? ` (${found.pending} not embedded yet, matched by keyword)` : ""}`
    : `${found.items.length}${found.next_cursor ? "+" : ""} memories, newest first`;
  return [
    ...viewHeader("memories", scope, events),
    filters,
    h("p", { class: "summary" }, summary, asOf ? ` as of ${asOf}` : ""),
    found.items.length ? list : h("p", { class: "empty" }, "No memories here."),
    more,
  ];
}
