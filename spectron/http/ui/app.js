// The Spectron console: views over the HTTP API, one URL per view (scope and as-of in the query).
// No framework and no build step: plain DOM, and never innerHTML (memory content is user data).
import { ApiError, api, forgetKey, onScope, signOut, storeKey, storedKey } from "./api.js";

const CATEGORIES = ["knowledge", "episodic", "preference", "procedural", "reflection"];
const TITLES = {
  scopes: "Scopes",
  memories: "Memories",
  state: "State",
  audit: "Audit",
  health: "Health",
};
let me = null; // the signed-in key: principal, scope_floor, capabilities
let rootScopes = null; // the scope tree, for a default scope when the key's floor is {}
let renderId = 0;

// ---- small DOM helpers ------------------------------------------------------------------

/** An element: attributes (on* are listeners, true is a bare attribute) and children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const $ = (selector) => document.querySelector(selector);
const can = (capability) => Boolean(me && me.capabilities.includes(capability));

function scopeLabel(scope) {
  const parts = Object.entries(scope).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(" / ") : "every scope";
}

function isWithin(inner, outer) {
  return Object.entries(outer).every(([k, v]) => inner[k] === v);
}

/** A log time for people: UTC to the second (the full value in a tooltip). */
function when(iso) {
  const text = new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  return h("time", { datetime: iso, title: iso }, text);
}

/** A log position as "partition:offset" (the API sends it as a [partition, offset] pair). */
function position(at) {
  return Array.isArray(at) ? `${at[0]}:${at[1]}` : `${at.partition}:${at.offset}`;
}

/** A link to one memory on the Memories view (at the scope being looked at). */
function memoryLink(id, scope) {
  return h(
    "a",
    { href: urlOf("memories", { scope, memory: id, q: null, cursor: null }, false), "data-nav": true, "aria-label": `Memory ${id}` },
    h("code", {}, String(id).slice(0, 8)),
  );
}

function shortId(id) {
  return h("code", { title: id }, String(id).slice(0, 8));
}

/** A table (stacked as labelled rows on a phone; see style.css), reachable by keyboard. */
function table(caption, headers, rows) {
  for (const row of rows) {
    [...row.children].forEach((cell, i) => cell.setAttribute("data-label", headers[i] ?? ""));
  }
  return h(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((head) => h("th", { scope: "col" }, head)))),
      h("tbody", {}, rows),
    ),
  );
}

function announce(text) {
  const status = $("#status");
  if (status) status.textContent = text;
}

function showProblem(error) {
  const box = $("#problem");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const problem = error instanceof ApiError ? error.problem : { detail: String(error) };
  box.hidden = false;
  box.textContent = `${problem.title || "Error"}: ${problem.detail || ""}`;
}

// ---- URL state --------------------------------------------------------------------------

const query = () => new URLSearchParams(location.search);

function viewName() {
  const name = location.pathname.replace(/^\/ui\/?/, "").split("/")[0];
  return name in TITLES ? name : "scopes";
}

/** The URL of `view` with the current query changed by `changes` (null deletes). */
function urlOf(view, changes = {}, keep = true) {
  const params = keep ? query() : new URLSearchParams();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") params.delete(name);
    else params.set(name, typeof value === "string" ? value : JSON.stringify(value));
  }
  const text = params.toString();
  return `/ui/${view}${text ? `?${text}` : ""}`;
}

function navigate(url, { replace = false, focus = true, travel = false } = {}) {
  announce("");
  history[replace ? "replaceState" : "pushState"](null, "", url);
  render({ focus, travel });
}

/** The scope of the view being rendered (for links that stay on it). */
let viewScope = null;
const scopeOfView = () => viewScope;

function currentScope() {
  const text = query().get("scope");
  if (text) {
    try {
      const scope = JSON.parse(text);
      if (scope && typeof scope === "object" && !Array.isArray(scope)) return scope;
    } catch {
      // fall through to the default: the scope field shows what is in use
    }
  }
  if (me && Object.keys(me.scope_floor).length) return me.scope_floor;
  const root = rootScopes?.nodes.find((node) => node.parent === null);
  return root ? root.scope : null;
}

// ---- shared controls --------------------------------------------------------------------

function scopeForm(view, scope) {
  const input = h("input", {
    id: "scope-input",
    name: "scope",
    value: scope ? JSON.stringify(scope) : "",
    spellcheck: "false",
    placeholder: '{"org":"acme","project":"alpha"}',
    required: true,
  });
  return h(
    "form",
    {
      class: "scope-form",
      onsubmit: (event) => {
        event.preventDefault();
        try {
          const value = JSON.parse(input.value);
          navigate(urlOf(view, { scope: value, as_of: null, cursor: null }));
        } catch {
          showProblem(new Error(`the scope must be a JSON object, e.g. {"org":"acme"}`));
        }
      },
    },
    h("label", { for: "scope-input" }, "Scope (JSON)"),
    input,
    h("button", { type: "submit" }, "Open scope"),
  );
}

// the slider's events, per scope: read again on every render except the slider's and the
// date-time input's own (moving through time must not re-read the log at each step)
const eventCache = new Map();
let reuseEvents = false;

/** Log events visible from the scope (ascending; the newest 1000), for the as-of slider. */
async function logTimes(scope) {
  const key = JSON.stringify(scope);
  if (!reuseEvents || !eventCache.has(key)) {
    const loading = onScope(scope, "GET", "audit", { query: { limit: 1000 } }).then((page) =>
      page.items
        .filter((record) => record.event_id !== null)
        .sort((a, b) => (a.recorded_at < b.recorded_at ? -1 : a.recorded_at > b.recorded_at ? 1 : 0)),
    );
    eventCache.set(key, loading);
    loading.catch(() => eventCache.delete(key));
  }
  return eventCache.get(key);
}

function localInputValue(iso) {
  // datetime-local shows local time; keep milliseconds so a chosen moment survives a round trip
  const date = new Date(iso);
  const offset = date.getTimezoneOffset() * 60_000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 23);
}

function describe(record) {
  return `${record.type} by ${record.principal}${record.summary ? `: ${record.summary}` : ""}`;
}

/** The time-travel control: a date-time input and a slider over the scope's log events. */
function asOfControl(view, events) {
  const asOf = query().get("as_of");
  const index = asOf
    ? events.reduce((found, record, i) => (record.recorded_at <= asOf ? i : found), -1)
    : events.length;
  const at = Math.max(index, 0);
  const label = !asOf
    ? "Now: the latest state"
    : index < 0
      ? "before this scope's first event"
      : `after ${describe(events[index])}`;
  const output = h("output", { id: "as-of-output", for: "as-of-range" }, asOf ? `As of ${asOf}` : "Now");
  const detail = asOf ? [" · ", label] : ": the latest state";
  let pending = null;
  const range = h("input", {
    type: "range",
    id: "as-of-range",
    min: 0,
    max: events.length,
    step: 1,
    value: at,
    "aria-valuetext": asOf ? `${asOf}, ${label}` : label,
    oninput: (event) => {
      const i = Number(event.target.value);
      const chosen = i >= events.length ? null : events[i].recorded_at;
      output.textContent = chosen ? `As of ${chosen}` : "Now";
      clearTimeout(pending);
      pending = setTimeout(
        () => navigate(urlOf(view, { as_of: chosen, cursor: null }), { replace: true, focus: false, travel: true }),
        120,
      );
    },
  });
  const picker = h("input", {
    type: "datetime-local",
    id: "as-of-time",
    step: "0.001",
    value: asOf ? localInputValue(asOf) : "",
    onchange: (event) => {
      const value = event.target.value;
      const chosen = value ? new Date(value).toISOString() : null;
      navigate(urlOf(view, { as_of: chosen, cursor: null }), { replace: true, focus: false, travel: true });
    },
  });
  return h(
    "section",
    { class: "as-of card", "aria-labelledby": "as-of-heading" },
    h("h2", { id: "as-of-heading" }, "Time travel"),
    h(
      "div",
      { class: "as-of-row" },
      h("label", { for: "as-of-time" }, "As of (your local time)"),
      picker,
      h(
        "button",
        {
          type: "button",
          disabled: !asOf,
          onclick: () => navigate(urlOf(view, { as_of: null, cursor: null }), { replace: true }),
        },
        "Now",
      ),
    ),
    h(
      "div",
      { class: "as-of-row" },
      h("label", { for: "as-of-range" }, `Log events (${events.length})`),
      range,
    ),
    h("p", { class: "as-of-now", id: "as-of-label" }, output, detail),
  );
}

function viewHeader(view, scope, events) {
  return [
    h("h1", { tabindex: -1 }, `${TITLES[view]}${scope ? ` · ${scopeLabel(scope)}` : ""}`),
    scopeForm(view, scope),
    events ? asOfControl(view, events) : null,
  ];
}

// ---- views ------------------------------------------------------------------------------

async function scopesView() {
  const tree = await api("GET", "/v1/scopes");
  rootScopes = tree;
  const children = new Map();
  for (const node of tree.nodes) {
    const siblings = children.get(node.parent) || [];
    siblings.push(node);
    children.set(node.parent, siblings);
  }
  const counts = (map) =>
    Object.entries(map)
      .map(([name, n]) => `${name} ${n}`)
      .join(", ");
  const branch = (parent) => {
    const nodes = children.get(parent) || [];
    if (!nodes.length) return null;
    return h(
      "ul",
      { class: parent === null ? "tree" : "subtree" },
      nodes.map((node) => {
        const label = scopeLabel(node.scope);
        const link = (view) =>
          h("a", { href: urlOf(view, { scope: node.scope }, false), "data-nav": true, "aria-label": `${TITLES[view]} at ${label}` }, TITLES[view]);
        return h(
          "li",
          {},
          h(
            "div",
            { class: "node card" },
            h("h2", { class: "scope-name" }, label),
            h("p", { class: "count" }, `${node.memories} ${node.memories === 1 ? "memory" : "memories"} here`),
            h(
              "dl",
              { class: "facts" },
              h("dt", {}, "Categories"),
              h("dd", {}, counts(node.by_category)),
              h("dt", {}, "Writers"),
              h("dd", {}, counts(node.by_principal)),
            ),
            h("p", { class: "links" }, link("memories"), link("state"), link("audit")),
          ),
          branch(node.key),
        );
      }),
    );
  };
  return [
    h("h1", { tabindex: -1 }, "Scopes"),
    h("p", {}, `Scopes holding memories visible from your key's floor (${scopeLabel(tree.root)}). A scope sees its parents' memories and its sub-scopes'.`),
    tree.nodes.length ? branch(null) : h("p", { class: "empty" }, "No memories yet."),
  ];
}

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
      render({ focus: true });
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

async function memoriesView() {
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

/** The scope a value was asserted at (an entity seen from several scopes carries it per value). */
const scopeOf = (attr, entity) => attr.scope || entity.scope;

/** Chains by key and scope (values supersede one another within a scope), each in log order. */
function chains(entity) {
  const byKey = new Map();
  for (const attr of entity.attributes) {
    const id = `${attr.key}\u0000${JSON.stringify(scopeOf(attr, entity))}`;
    const list = byKey.get(id) || [];
    list.push(attr);
    byKey.set(id, list);
  }
  return [...byKey.values()].map((values) => {
    values.sort((a, b) => (a.recorded_at < b.recorded_at ? -1 : a.recorded_at > b.recorded_at ? 1 : 0));
    return {
      key: values[0].key,
      scope: scopeOf(values[0], entity),
      values,
      multi: values.some((v) => v.cardinality === "multi"),
    };
  });
}

/** Scopes whose current values of one key differ (sent by servers that merge an entity's scopes). */
function disagreementLine(entity, disagreement) {
  return h(
    "li",
    { class: "conflict" },
    h("strong", {}, `${entity.name} · ${disagreement.key}: `),
    h("span", { class: "change" }, "scopes disagree"),
    h(
      "ul",
      {},
      disagreement.values.map((v) =>
        h("li", {}, `${v.value} at ${scopeLabel(v.scope)} by ${v.principal}, `, when(v.recorded_at)),
      ),
    ),
  );
}

function conflictLine(entity, chain) {
  const current = chain.values.filter((v) => !v.superseded_by).at(-1);
  const previous = chain.values.filter((v) => v.superseded_by && current && v.superseded_by.memory_id === current.memory_id).at(-1);
  if (!current || !previous) return null;
  return h(
    "li",
    { class: "conflict" },
    h("strong", {}, `${entity.name} · ${chain.key}: `),
    h("span", { class: "change" }, `was ${previous.value} → now ${current.value}`),
    h(
      "span",
      { class: "by" },
      ` — ${current.value} by ${current.principal} at `,
      when(current.recorded_at),
      `; ${previous.value} by ${previous.principal} at `,
      when(previous.recorded_at),
    ),
  );
}

function timeline(entity, chain, label) {
  return h(
    "ol",
    { class: "timeline", "aria-label": label },
    chain.values.map((value) =>
      h(
        "li",
        { class: value.superseded_by && !chain.multi ? "superseded" : "current" },
        h("span", { class: "value" }, value.value),
        h("span", { class: "tag" }, chain.multi ? "one of several" : value.superseded_by ? "superseded" : "current"),
        h(
          "span",
          { class: "meta" },
          `${value.principal} · ${scopeLabel(scopeOf(value, entity))} · `,
          when(value.recorded_at),
          " · memory ",
          memoryLink(value.memory_id, scopeOfView()),
        ),
      ),
    ),
  );
}

async function stateView() {
  const scope = currentScope();
  if (!scope) return [h("h1", { tabindex: -1 }, "State"), scopeForm("state", null)];
  const asOf = query().get("as_of") || undefined;
  const [events, state] = await Promise.all([logTimes(scope), onScope(scope, "GET", "state", { query: { as_of: asOf } })]);
  const conflicts = [];
  const entities = state.entities.map((entity) => {
    const keyed = chains(entity);
    const scopes = entity.scopes || [entity.scope];
    for (const chain of keyed) {
      if (!chain.multi) {
        const line = conflictLine(entity, chain);
        if (line) conflicts.push(line);
      }
    }
    for (const disagreement of entity.disagreements || []) conflicts.push(disagreementLine(entity, disagreement));
    return h(
      "article",
      { class: "entity card" },
      h("h3", {}, `${entity.type}: ${entity.name}`),
      h("p", { class: "scope" }, scopes.map(scopeLabel).join("; ")),
      keyed.length
        ? h(
            "dl",
            { class: "attributes" },
            keyed.map((chain) => {
              // the scope is named only where one entity's values come from several scopes
              const where = scopes.length > 1 ? ` at ${scopeLabel(chain.scope)}` : "";
              return [
                h("dt", {}, chain.key + where),
                h("dd", {}, timeline(entity, chain, `History of ${entity.name} ${chain.key}${where}`)),
              ];
            }),
          )
        : null,
      entity.relations.length
        ? h(
            "ul",
            { class: "relations", "aria-label": `Relations of ${entity.name}` },
            entity.relations.map((r) =>
              h("li", {}, `${r.subject} → ${r.predicate} → ${r.object_type}/${r.object} (${r.principal}, `, when(r.recorded_at), ")"),
            ),
          )
        : null,
    );
  });
  return [
    ...viewHeader("state", scope, events),
    state.pending ? h("p", { class: "pending" }, `${state.pending} memories still await their facts.`) : null,
    h(
      "section",
      { class: "card", "aria-labelledby": "conflicts-heading" },
      h("h2", { id: "conflicts-heading" }, `Superseded values and disagreements (${conflicts.length})`),
      conflicts.length ? h("ul", { class: "conflicts" }, conflicts) : h("p", { class: "empty" }, "No value was superseded; no scopes disagree."),
    ),
    h("h2", {}, `Entities (${state.entities.length})`),
    state.entities.length ? h("div", { class: "entities" }, entities) : h("p", { class: "empty" }, "No entities known here."),
  ];
}

async function verificationSection() {
  const result = await api("GET", "/v1/log/verification");
  const verdict = result.verified
    ? `Verified: ${result.checked} records in ${result.partitions} partitions; every hash chain holds.`
    : `Broken: ${result.breaks.length} partition(s) fail verification.`;
  return h(
    "section",
    { class: `card verification ${result.verified ? "ok" : "broken"}`, "aria-labelledby": "chain-heading" },
    h("h2", { id: "chain-heading" }, "Hash chain"),
    h("p", { class: "verdict" }, verdict, " Checked at ", when(result.checked_at), "."),
    result.unchained ? h("p", {}, `${result.unchained} records are not chained yet.`) : null,
    result.breaks.length
      ? h("ul", {}, result.breaks.map((b) => h("li", {}, `partition ${b.partition}, offset ${b.offset}: ${b.reason}`)))
      : null,
  );
}

async function auditView() {
  const scope = currentScope();
  if (!scope) return [h("h1", { tabindex: -1 }, "Audit"), scopeForm("audit", null)];
  const params = query();
  const principal = params.get("principal") || "";
  const entity = params.get("entity") || "";
  const attribute = params.get("attribute") || "";
  const [page, verification, history] = await Promise.all([
    onScope(scope, "GET", "audit", { query: { limit: 200, principal } }),
    verificationSection(),
    entity ? onScope(scope, "GET", "history", { query: { entity, attribute } }) : null,
  ]);
  const field = (id, labelText, value) =>
    h("div", { class: "field" }, h("label", { for: id }, labelText), h("input", { id, name: id, value, spellcheck: "false" }));
  const historyForm = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        navigate(urlOf("audit", { entity: data.get("entity"), attribute: data.get("attribute") }));
      },
    },
    field("entity", "Entity", entity),
    field("attribute", "Attribute (optional)", attribute),
    h("button", { type: "submit" }, "Show history"),
  );
  const historyRows = (history || []).map((e) =>
    h(
      "tr",
      {},
      h("td", {}, `${e.entity_type}/${e.entity}`),
      h("td", {}, e.key),
      h("td", {}, e.value),
      h("td", {}, e.principal),
      h("td", {}, when(e.recorded_at)),
      h("td", {}, position(e.position)),
      h("td", {}, e.superseded_by ? `${e.superseded_by} (${e.superseded_at ? new Date(e.superseded_at).toISOString().slice(0, 19) : ""})` : "current"),
    ),
  );
  const eventForm = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        navigate(urlOf("audit", { principal: new FormData(event.target).get("principal") }));
      },
    },
    field("principal", "Writer (principal)", principal),
    h("button", { type: "submit" }, "Filter"),
  );
  const rows = page.items.map((r) =>
    h(
      "tr",
      {},
      h("td", {}, when(r.recorded_at)),
      h("td", {}, r.type),
      h("td", {}, r.principal),
      h("td", {}, scopeLabel(r.scope)),
      h("td", {}, position(r.position)),
      h("td", {}, r.event_id ? (r.type === "MemoryRecorded" && r.summary !== "(content forgotten)" ? memoryLink(r.event_id, scope) : shortId(r.event_id)) : "—"),
      h("td", { class: "summary-cell" }, r.summary),
    ),
  );
  return [
    h("h1", { tabindex: -1 }, `Audit · ${scopeLabel(scope)}`),
    scopeForm("audit", scope),
    verification,
    h(
      "section",
      { class: "card", "aria-labelledby": "history-heading" },
      h("h2", { id: "history-heading" }, "Attribute history"),
      historyForm,
      history
        ? history.length
          ? table(`Every value of ${entity}${attribute ? `.${attribute}` : ""}, oldest first`, ["Entity", "Key", "Value", "Writer", "Logged", "Position", "Superseded by"], historyRows)
          : h("p", { class: "empty" }, `No values recorded for ${entity}.`)
        : null,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "events-heading" },
      h("h2", { id: "events-heading" }, "Who did what"),
      eventForm,
      h("p", { class: "summary" }, `${page.items.length} of ${page.matched} events, newest first.`),
      table("Events visible from this scope", ["Logged", "Event", "Writer", "Scope", "Position", "Event id", "Summary"], rows),
    ),
  ];
}

async function healthView() {
  const status = await api("GET", "/v1/status");
  const rows = status.partitions.map((p) =>
    h("tr", { class: p.lag ? "lagging" : "" }, h("td", {}, String(p.partition)), h("td", {}, String(p.log_end)), h("td", {}, String(p.projected)), h("td", {}, String(p.lag))),
  );
  const lag = status.partitions.reduce((sum, p) => sum + p.lag, 0);
  let letters;
  if (can("admin") && Object.keys(me.scope_floor).length === 0) {
    const found = await api("GET", "/v1/dead-letters");
    const retry = async (position) => {
      try {
        const outcome = await api("POST", "/v1/dead-letters/retry", { body: position || {} });
        announce(`Revived ${outcome.revived.length}; still dead ${Object.keys(outcome.kept).length}.`);
        render({ focus: false });
      } catch (error) {
        showProblem(error);
      }
    };
    letters = found.length
      ? [
          table(
            "Dead letters",
            ["Position", "Logged", "Reason", "Bytes", "Starts with", "Action"],
            found.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, `${d.partition}:${d.offset}`),
                h("td", {}, when(d.recorded_at)),
                h("td", {}, d.reason),
                h("td", {}, String(d.size)),
                h("td", {}, h("code", {}, d.preview)),
                h("td", {}, h("button", { type: "button", "aria-label": `Retry dead letter ${d.partition}:${d.offset}`, onclick: () => retry({ partition: d.partition, offset: d.offset }) }, "Retry")),
              ),
            ),
          ),
          h("button", { type: "button", onclick: () => retry(null) }, "Retry all dead letters"),
        ]
      : h("p", { class: "empty" }, "No dead letters.");
  } else {
    letters = h("p", {}, "Listing and retrying dead letters needs an admin key whose floor is every scope ({}).");
  }
  return [
    h("h1", { tabindex: -1 }, "Health"),
    h(
      "ul",
      { class: "stats" },
      h("li", { class: "card" }, h("span", { class: "big" }, String(lag)), " events behind"),
      h("li", { class: "card" }, h("span", { class: "big" }, String(status.pending_embeddings)), " pending embeddings"),
      h("li", { class: `card ${status.dead_letters ? "bad" : ""}` }, h("span", { class: "big" }, String(status.dead_letters)), " dead letters"),
      h("li", { class: "card" }, h("span", { class: "big" }, String(status.memories)), " memories"),
    ),
    table("Projection lag per partition", ["Partition", "Log end", "Projected", "Lag"], rows),
    h("button", { type: "button", onclick: () => render({ focus: false }) }, "Refresh"),
    h("section", { class: "card", "aria-labelledby": "dlq-heading" }, h("h2", { id: "dlq-heading" }, `Dead letters (${status.dead_letters})`), letters),
  ];
}

const VIEWS = { scopes: scopesView, memories: memoriesView, state: stateView, audit: auditView, health: healthView };

// ---- sign-in and rendering --------------------------------------------------------------

function showSignedOut(error) {
  me = null;
  rootScopes = null;
  $("#views").hidden = true;
  $("#who").hidden = true;
  $("#view").replaceChildren();
  $("#sign-in").hidden = false;
  showProblem(error);
  $("#api-key").focus();
}

async function render({ focus = false, travel = false } = {}) {
  const id = ++renderId;
  reuseEvents = travel;
  if (!storedKey()) {
    showSignedOut(null);
    return;
  }
  try {
    if (!me) me = await api("GET", "/v1/whoami");
  } catch (error) {
    forgetKey();
    showSignedOut(error);
    return;
  }
  $("#sign-in").hidden = true;
  $("#views").hidden = false;
  $("#who").hidden = false;
  $("#principal").textContent = `${me.principal} (${me.capabilities.join(", ")})`;
  const view = viewName();
  document.title = `${TITLES[view]} · Spectron`;
  for (const link of document.querySelectorAll("#views a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    // nav links keep the scope (and time) being looked at
    link.href = urlOf(link.dataset.view, {}, true).split("?")[0] + scopeQuery();
  }
  const active = document.activeElement?.id;
  let nodes;
  try {
    if (view !== "scopes" && !query().get("scope") && !Object.keys(me.scope_floor).length && !rootScopes) {
      rootScopes = await api("GET", "/v1/scopes");
    }
    viewScope = currentScope();
    nodes = await VIEWS[view]();
  } catch (error) {
    if (id !== renderId) return;
    if (error instanceof ApiError && error.status === 401) {
      forgetKey();
      showSignedOut(error);
      return;
    }
    showProblem(error);
    $("#view").replaceChildren(h("h1", { tabindex: -1 }, TITLES[view]), h("p", {}, "This view could not be loaded."));
    return;
  }
  if (id !== renderId) return; // a newer render (e.g. the slider moved on) owns the page
  showProblem(null);
  $("#view").replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  const again = active ? document.getElementById(active) : null;
  if (again && !focus) again.focus();
  else if (focus) $("#view h1")?.focus();
}

function scopeQuery() {
  const params = new URLSearchParams();
  const scope = query().get("scope");
  const asOf = query().get("as_of");
  if (scope) params.set("scope", scope);
  if (asOf) params.set("as_of", asOf);
  const text = params.toString();
  return text ? `?${text}` : "";
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute("href"), { focus: true });
});

window.addEventListener("popstate", () => render({ focus: true }));

$("#sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#api-key");
  storeKey(input.value.trim());
  input.value = "";
  me = null;
  const target = location.pathname === "/ui" || location.pathname === "/ui/" ? "/ui/scopes" : location.pathname + location.search;
  navigate(target, { focus: true });
});

$("#sign-out").addEventListener("click", async () => {
  await signOut();
  history.pushState(null, "", "/ui");
  showSignedOut(null);
});

render({ focus: false });
